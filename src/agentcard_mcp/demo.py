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

from .errors import AgentCardError, TestModeOnly
from .server import create_server
from .settings import Settings

__all__ = ["DemoFailed", "failure_of", "run_demo"]

# What the operator can do about a tool error the demo meets, beyond what its text says.
_HINTS = {
    "issuer_unavailable": " Is the issuer running there? AGENTCARD_BASE_URL says where it is.",
}


class DemoFailed(Exception):
    """A call of the scripted session came back as a tool error: the session stops there."""

    def __init__(self, tool: str, text: str) -> None:
        code = text.partition(":")[0]
        super().__init__(f"{tool} failed: {text}{_HINTS.get(code, '')}")


def failure_of(exc: BaseException) -> DemoFailed | AgentCardError | None:
    """The demo's failure or our error behind the MCP client's exception groups and wrappers,
    or None for anything else (a bug, shown as one)."""
    if isinstance(exc, DemoFailed | AgentCardError):
        return exc
    inner: list[BaseException] = []
    if isinstance(exc, BaseExceptionGroup):
        inner.extend(exc.exceptions)
    if exc.__cause__ is not None:
        inner.append(exc.__cause__)
    for candidate in inner:
        if (found := failure_of(candidate)) is not None:
            return found
    return None


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
        ("card", f"{card['id']} (•••• {card.get('last4', '----')})"),
        ("status", card["status"]),
        ("purpose", card.get("purpose") or "-"),
        ("daily limit", _dollars(card["daily_limit_cents"])),
        ("per purchase", _dollars(card["per_auth_max_cents"])),
        ("categories", ", ".join(card["mcc_allowlist"]) or "any"),
        ("spent today", _dollars(card["current_daily_spend_cents"])),
    ]


def _shown(out: TextIO, tool: str, args: dict[str, Any]) -> None:
    # Written once the call has answered: a session that cannot start prints only its error.
    out.write(f"> {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})\n")


async def _call(client: Client, out: TextIO, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = result.content[0].text if result.content else "error"  # type: ignore[union-attr]
        raise DemoFailed(tool, text)
    _shown(out, tool, args)
    return result.structured_content or {}


async def _attempt(client: Client, out: TextIO, tool: str, args: dict[str, Any]) -> str:
    """A call expected to be refused; returns its error text."""
    result = await client.call_tool(tool, args)
    if not result.is_error:
        raise DemoFailed(tool, "it was expected to be refused by the operator's policy")
    _shown(out, tool, args)
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
