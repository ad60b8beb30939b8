"""An approval is for one exact call (DESIGN §5), so a create_card the issuer cannot carry out —
its agent_id is not an agent of the account — must spend none: the agent is checked at the
issuer (a read) before the human is asked and before an approval is used. Two calls racing
with one approval still make one card.

Through the SDK's ``Client`` in both modes, against the fake AgentCard at the HTTP boundary;
the operator approves through the approvals store, as ``agentcard-mcp approvals approve`` does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.fakes.agentcard import FakeAgentCard
from tests.server.conftest import Agent, hermetic_settings, text_of

pytestmark = pytest.mark.anyio

APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")
# Above the built-in policy's approval threshold (2500), within its ceilings.
BIG = {"purpose": "flights to Lisbon", "daily_limit_cents": 5000}


@pytest.fixture
def fake() -> FakeAgentCard:
    return FakeAgentCard()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAgentCard) -> Settings:
    """The remote issuer, the built-in policy (approval above $25); the client cannot show a
    form, so approvals go to the operator."""
    base = hermetic_settings(tmp_path / "home", monkeypatch)
    return base.model_copy(
        update={
            "issuer": "agentcard",
            "base_url": "http://issuer.test",
            "policy_file": None,
            "api_key": SecretStr(fake.api_key),
        }
    )


@pytest.fixture(params=["auto", "legacy"])
async def agent(
    request: pytest.FixtureRequest, settings: Settings, fake: FakeAgentCard
) -> AsyncIterator[Agent]:
    server = create_server(settings, issuer_transport=fake.transport())
    async with Client(server, mode=request.param) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})


async def new_agent(fake: FakeAgentCard, name: str) -> str:
    """An agent added at the issuer, through its API, as the operator would."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://issuer.test", headers=headers
    ) as issuer:
        made = await issuer.post("/v1/agents", json={"name": name})
        assert made.status_code == 200, made.text
        return str(made.json()["id"])


async def test_an_unknown_agent_is_not_found_before_any_approval_is_requested(
    agent: Agent, fake: FakeAgentCard
) -> None:
    code, message = await agent.fail("create_card", {**BIG, "agent_id": "agent_nobody"})
    assert code == "not_found"
    assert "agent_nobody" in message
    assert (await agent.call("get_limits"))["pending_approvals"] == []
    assert fake.requests_to("POST", "/v1/cards") == []


async def test_an_approved_call_whose_agent_is_gone_leaves_the_approval_for_that_call(
    agent: Agent, fake: FakeAgentCard, settings: Settings
) -> None:
    travel = await new_agent(fake, "travel-bot")
    call = {**BIG, "agent_id": travel}
    asked = await agent.fail("create_card", call)
    assert asked[0] == "approval_required"
    (approval_id,) = set(APPROVAL_ID.findall(asked[1]))
    async with SqliteApprovals(settings.home) as store:
        await store.approve(approval_id)

        # The operator deletes the agent in the issuer's dashboard before the agent repeats.
        gone = fake.agents.pop(travel)
        code, _ = await agent.fail("create_card", {**call, "approval_id": approval_id})
        assert code == "not_found"
        assert (await store.get(approval_id)).status == "approved"  # not spent
        assert fake.requests_to("POST", "/v1/cards") == []

        # Back again: the approval is still good for that exact call, once, however it races.
        fake.agents[travel] = gone
        outcomes: list[str] = []

        async def repeat() -> None:
            result = await agent.raw("create_card", {**call, "approval_id": approval_id})
            outcomes.append(text_of(result).partition(": ")[0] if result.is_error else "ok")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(repeat)
                group.start_soon(repeat)
        assert sorted(outcomes) == ["approval_denied", "ok"]
        assert (await store.get(approval_id)).status == "used"
    assert len(fake.requests_to("POST", "/v1/cards")) == 1
    assert [card["agent_id"] for card in fake.cards.values()] == [travel]
