"""freeze_card is always allowed, at once: even while another write to the card is in flight
(here, one held by another replica that has not settled it), the card is frozen at the issuer
within a second, and the budget keeps counting it as before — never less than it may spend."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from mcp import Client

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import account_of
from agentcard_mcp.storage.base import CardRecord, DayTotals, Hold
from agentcard_mcp.storage.sqlite.budget import SqliteBudget
from tests.server.conftest import Agent

pytestmark = pytest.mark.anyio


def _no_check(_: DayTotals, __: CardRecord | None) -> None:
    return None


async def test_a_card_is_frozen_at_once_while_another_replica_writes_to_it(
    settings: Settings,
) -> None:
    async with Client(create_server(settings)) as client:
        listing = await client.list_tools()
        agent = Agent(client, {tool.name: tool for tool in listing.tools})
        card = await agent.call("create_card", {"purpose": "ads", "daily_limit_cents": 4000})
        # Another replica (another host: its process cannot be checked) is mid-way through a
        # raise of this card: its reservation is live for two minutes.
        store = SqliteBudget(settings.home, account_of(settings))
        try:
            held = await store.reserve(
                Hold(card["id"], 6000, active=True), _no_check, day=datetime.now(UTC).date()
                .isoformat(), owner="other-host:4242:abcd", now=datetime.now(UTC), lease_s=120,
            )  # fmt: skip
            assert held is not None
            with anyio.fail_after(5):
                frozen = await agent.call("freeze_card", {"card_id": card["id"]})
            assert frozen["status"] == "frozen"
            assert (await agent.call("get_card", {"card_id": card["id"]}))["status"] == "frozen"
            # Still counted at the larger of its record and the write in flight.
            limits = await agent.call("get_limits")
            assert limits["committed_daily_cents"] == 6000
            assert [r.id for r in await store.reservations()] == [held.id]
        finally:
            await store.aclose()
