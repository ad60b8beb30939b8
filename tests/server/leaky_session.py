"""One scripted agent session against the leaking issuer (tests/fakes/leaky.py): every tool, and
issuer errors whose messages carry the card. Shared by the in-memory and the stdio tests, which
differ only in how a tool is called and what is scanned afterwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakes.leaky import PANS, LeakyAgentCard

__all__ = ["CallTool", "run_leaky_session"]

# (tool, arguments) -> the tool result as JSON data ({"content": ..., "isError": ...}).
CallTool = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

_VISA = PANS["visa"]
_SPACED = " ".join(_VISA[i : i + 4] for i in range(0, 16, 4))


def _structured(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("isError"), result
    data = result.get("structuredContent")
    assert isinstance(data, dict), result
    return data


async def run_leaky_session(fake: LeakyAgentCard, call: CallTool) -> list[dict[str, Any]]:
    """Runs every tool, successes and issuer failures; returns every result it got."""
    results: list[dict[str, Any]] = []

    async def tool(name: str, **arguments: Any) -> dict[str, Any]:
        results.append(await call(name, arguments))
        return results[-1]

    await tool("get_limits")
    # The agent itself pastes a card into its text; the issuer echoes it back, and worse.
    card = _structured(await tool("create_card", daily_limit_cents=5000, purpose=f"for {_SPACED}"))
    assert card["purpose"].startswith("for •••• 1111"), card["purpose"]
    card_id = card["id"]
    await tool("list_cards")
    await tool("get_card", card_id=card_id)
    bought = await tool(
        "simulate_purchase",
        card_id=card_id,
        amount_cents=1200,
        merchant=f"ACME {PANS['mastercard']}",
        mcc="5411",
    )
    assert "•••• 4444" in _structured(bought)["merchant"]
    await tool("read_ledger", card_id=card_id)
    await tool("read_ledger")
    await tool("set_policy", card_id=card_id, daily_limit_cents=4000)
    await tool("freeze_card", card_id=card_id)
    await tool("unfreeze_card", card_id=card_id)

    # Issuer errors quoting the card back: every one reaches the agent as a masked tool error.
    message = f"card {_SPACED} was refused"
    for status, method, path, name, arguments in (
        (404, "GET", f"/v1/cards/{card_id}", "get_card", {"card_id": card_id}),
        (422, "POST", "/v1/cards", "create_card", {"daily_limit_cents": 1000, "purpose": "x"}),
        (400, "GET", f"/v1/cards/{card_id}/ledger", "read_ledger", {"card_id": card_id}),
        (403, "POST", f"/v1/cards/{card_id}/freeze", "freeze_card", {"card_id": card_id}),
        (409, "PATCH", f"/v1/cards/{card_id}", "set_policy",
         {"card_id": card_id, "daily_limit_cents": 3000}),
    ):  # fmt: skip
        fake.force(status, message=message, method=method, path=path)
        failed = await tool(name, **arguments)
        assert failed.get("isError"), failed
        text = failed["content"][0]["text"]
        assert "•••• 1111" in text, text  # the message got through, masked

    await tool("close_card", card_id=card_id)
    return results
