"""``agentcard-mcp demo``: a scripted first session through the real MCP client.

Creates a card, makes one approved and one declined test purchase, reads the ledger, tightens
the policy and freezes the card — printing what an agent would see, as tables.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from mcp import Client

from .errors import TestModeOnly
from .server import create_server
from .settings import Settings

__all__ = ["run_demo"]


def _dollars(cents: Any) -> str:
    return f"${int(cents) / 100:,.2f}" if isinstance(cents, int) else "-"


def _table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        out.write("  " + line.rstrip() + "\n")
        if n == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")
    out.write("\n")


def _card_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("card", f"{card['id']} (•••• {card['last4']})"),
        ("status", card["status"]),
        ("purpose", card["purpose"] or "-"),
        ("daily limit", _dollars(card["daily_limit_cents"])),
        ("per purchase", _dollars(card["per_auth_max_cents"])),
        ("categories", ", ".join(card["mcc_allowlist"]) or "any"),
        ("spent today", _dollars(card["current_daily_spend_cents"])),
    ]


async def _call(client: Client, out: TextIO, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    out.write(f"> {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})\n")
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = result.content[0].text if result.content else "error"  # type: ignore[union-attr]
        raise RuntimeError(f"{tool} failed: {text}")
    return result.structured_content or {}


async def _attempt(client: Client, out: TextIO, tool: str, args: dict[str, Any]) -> str:
    """A call expected to be refused; returns its error text."""
    out.write(f"> {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})\n")
    result = await client.call_tool(tool, args)
    if not result.is_error:
        raise RuntimeError(f"{tool} was expected to be refused")
    return result.content[0].text if result.content else ""  # type: ignore[union-attr]


async def run_demo(out: TextIO, settings: Settings | None = None) -> None:
    """Runs the demo against the configured issuer when it is a remote one (a test key, say, or
    a standalone sandbox), else against a fresh, temporary embedded sandbox."""
    configured = settings or Settings()
    if configured.is_live_key():
        raise TestModeOnly(
            "the demo creates cards and test purchases; it never runs on a live key."
        )
    with tempfile.TemporaryDirectory(prefix="agentcard-demo-") as scratch:
        if configured.is_embedded():
            # A fresh sandbox under the built-in operator policy, whatever the local one says.
            configured = configured.model_copy(update={"home": Path(scratch), "policy_file": None})
        async with Client(create_server(configured)) as client:
            limits = await _call(client, out, "get_limits", {})
            out.write(f"  issuer: {limits['issuer']}, {limits['mode']} mode\n\n")
            card = await _call(client, out, "create_card", {
                "purpose": "conference flights", "daily_limit_cents": 2_500,
                "per_auth_max_cents": 2_500, "mcc_allowlist": ["travel", "lodging"],
            })  # fmt: skip
            _table(out, ("field", "value"), _card_rows(card))
            purchases = []
            for merchant, cents, mcc in (
                ("Delta Airlines", 1_900, "travel"),
                ("Steakhouse", 850, "restaurants"),
            ):
                args = {
                    "card_id": card["id"],
                    "amount_cents": cents,
                    "merchant": merchant,
                    "mcc": mcc,
                }
                auth = await _call(client, out, "simulate_purchase", args)
                purchases.append((merchant, _dollars(cents), mcc, auth["decision"], auth["reason"]))
            _table(out, ("merchant", "amount", "category", "decision", "reason"), purchases)
            page = await _call(client, out, "read_ledger", {"card_id": card["id"]})
            rows = [
                (
                    e["decided_at"],
                    e["merchant"],
                    _dollars(e["amount_cents"]),
                    e["decision"],
                    e["reason"],
                )
                for e in page["entries"]
            ]
            _table(out, ("decided at", "merchant", "amount", "decision", "reason"), rows)
            refused = await _attempt(client, out, "create_card", {
                "purpose": "a bigger card", "daily_limit_cents": 50_000,
            })  # fmt: skip
            out.write(f"  refused by the operator's policy: {refused}\n\n")
            tightened = await _call(client, out, "set_policy", {
                "card_id": card["id"], "daily_limit_cents": 2_000, "mcc_allowlist": ["travel"],
            })  # fmt: skip
            _table(out, ("field", "value"), _card_rows(tightened))
            frozen = await _call(
                client, out, "freeze_card", {"card_id": card["id"], "reason": "trip booked"}
            )
            _table(out, ("field", "value"), _card_rows(frozen)[:2])
            out.write(
                "Card numbers, CVCs and expiry dates never appear: only the last four digits.\n"
            )
