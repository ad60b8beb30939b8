"""get_limits' spent_today_cents and the day's commitment follow what the issuer's ledger says
was spent — purchases made at the issuer, unseen by the server, included — and do not drop when
a card is closed (DESIGN §5)."""

from __future__ import annotations

import subprocess

import pytest
from mcp import Client

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.server.conftest import Agent
from tests.server.stdio_session import SCRIPT, clean_env

pytestmark = pytest.mark.anyio


def swipe_at_the_issuer(settings: Settings, card_id: str, cents: int) -> None:
    """A merchant charges the card: decided by the sandbox on its database, not by our server."""
    done = subprocess.run(
        [str(SCRIPT), "sandbox", "swipe", card_id, str(cents), "--merchant", "Delta",
         "--mcc", "travel"],
        env={**clean_env(), "AGENTCARD_HOME": str(settings.home)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("APPROVE"), done.stdout


async def test_spend_made_at_the_issuer_counts_today_and_survives_closing_the_card(
    settings: Settings,
) -> None:
    async with Client(create_server(settings)) as client:
        listing = await client.list_tools()
        agent = Agent(client, {tool.name: tool for tool in listing.tools})
        card = await agent.call("create_card", {"purpose": "flights", "daily_limit_cents": 4000})
        swipe_at_the_issuer(settings, card["id"], 1500)
        swipe_at_the_issuer(settings, card["id"], 700)

        limits = await agent.call("get_limits")
        assert (limits["spent_today_cents"], limits["committed_daily_cents"]) == (2200, 4000)

        await agent.call("close_card", {"card_id": card["id"]})
        limits = await agent.call("get_limits")
        # Closed: it commits what it spent, and today's spend stays what it was.
        assert (limits["spent_today_cents"], limits["committed_daily_cents"]) == (2200, 2200)
        assert limits["active_cards"] == 0
