"""What masking card data costs (DESIGN §6). Prints sizes and timings only, never an input.

- The boundary: ``server._redacted`` on the typical result, a ``read_ledger`` page of 7 entries
  with nothing to mask (structured content and the SDK's text of it), against an in-memory
  ``get_card`` call through the MCP client, interleaved. Target: under 5% of the call.
- Hostile text: ``redact_text`` on 1 MB (and 10 MB in the full run) of text built to be slow —
  long digit and separator runs, Luhn-valid numbers by the thousand, fullwidth digits. Target:
  each under 50 ms at 1 MB and, in the full run, 10 MB within 20x of 1 MB (linear: 10x).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic_core
from mcp import Client
from mcp.types import CallToolResult, TextContent

from .core import Figure, call, pct_ms, sandbox_settings

BENCH = "redaction"
MB = 1_000_000
PATTERNS = {
    "digits": "1",
    "digit, space": "1 ",
    "4-digit groups": "4242 ",
    "12 digits + letter": "123456789012a",
    "Luhn PANs": "4111111111111111 x ",
    "fullwidth digits": "\uff14\uff12",
    "mixed separators": "4242\u00a04242/4242-",
}


def ledger_page(entries: int) -> dict[str, Any]:
    rows = [
        {
            "id": f"led_01JD3K4M5N6P7Q8R9S0T{i:06d}",
            "card_id": "card_01JD3K4M5N6P7Q8R9S0T00",
            "decided_at": f"2026-05-{11 + i % 17:02d}T07:{i % 60:02d}:00Z",
            "decision": "approve",
            "reason": "approved",
            "amount_cents": 1250 + i * 7919 % 48000,
            "merchant": ("Blue Bottle Coffee", "Delta Air Lines", "AWS EMEA")[i % 3],
            "mcc": "restaurants",
            "current_daily_spend_cents_after": 10000 + i * 1250,
        }
        for i in range(entries)
    ]
    totals = {"approved_cents": 12345, "approved_count": entries, "declined_count": 0}
    return {"entries": rows, "has_more": True, "next_cursor": "led_next", "totals": totals}


def result_of(data: dict[str, Any]) -> CallToolResult:
    """The result as the SDK makes it from a tool's structured output."""
    text = pydantic_core.to_json(data, indent=2).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def per_call_ns(fn: Callable[[], object], seconds: float = 0.02) -> int:
    """Nanoseconds per call of ``fn``, repeated for about ``seconds``."""
    n, began = 0, time.perf_counter_ns()
    while (elapsed := time.perf_counter_ns() - began) < seconds * 1e9:
        fn()
        n += 1
    return elapsed // n


async def boundary(home: Path, quick: bool) -> Figure:
    from agentcard_mcp.server import _redacted, create_server

    page = result_of(ledger_page(7))
    async with Client(create_server(sandbox_settings(home))) as client:
        card_id = (await call(client, "create_card", {"purpose": "b", "daily_limit_cents": 1}))[
            "id"
        ]
        calls: list[int] = []
        masks: list[int] = []
        for _ in range(5 if quick else 20):  # rounds: load from elsewhere hits both alike
            for _ in range(60):
                began = time.perf_counter_ns()
                await call(client, "get_card", {"card_id": card_id})
                calls.append(time.perf_counter_ns() - began)
            masks.append(per_call_ns(lambda: _redacted(page)))
    call_ms, mask_ms = pct_ms(calls, 0.5), pct_ms(masks, 0.5)
    # The floor here is the whole call the boundary is part of.
    return Figure(BENCH, "boundary on a ledger page (floor: get_card)", mask_ms, "ms", call_ms,
                  "< 0.05x", mask_ms < 0.05 * call_ms)  # fmt: skip


def hostile_ms(unit: str, size: int) -> float:
    from agentcard_mcp.redaction import redact_text

    text = (unit * (size // len(unit) + 1))[:size]
    best = float("inf")
    for _ in range(3 if size <= MB else 1):
        began = time.perf_counter()
        out = redact_text(text)
        best = min(best, time.perf_counter() - began)
    assert "4111111111111111" not in out
    return best * 1e3


def hostile(quick: bool) -> list[Figure]:
    figures = []
    for name, unit in PATTERNS.items():
        one = hostile_ms(unit, MB)
        figures.append(Figure(BENCH, f"1 MB of {name}", one, "ms", None, "< 50 ms", one < 50))
        if not quick:
            ten = hostile_ms(unit, 10 * MB)
            figures.append(Figure(BENCH, f"10 MB of {name}", ten, "ms", one, "<= 20x 1 MB",
                                  ten <= 20 * one))  # fmt: skip
    return figures


async def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        return [await boundary(Path(tmp) / "home", quick), *hostile(quick)]
