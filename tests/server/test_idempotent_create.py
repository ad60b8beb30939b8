"""create_card with an idempotency key: a retry gets the card the first call made — no second
card, no second reservation, no second approval — and a key reused for another request is
idempotency_conflict (the server remembers the key with the request's digest)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from agentcard_mcp.errors import AgentCardError
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.server.conftest import Agent, hermetic_settings, text_of

pytestmark = pytest.mark.anyio

POLICY = """\
max_card_daily_limit_cents = 5000
max_per_auth_cents = 5000
max_total_daily_cents = 5000
max_active_cards = 1
require_approval_above_cents = 2500
unfreeze = "allow"
close = "allow"
"""


@pytest.fixture
def tight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = hermetic_settings(tmp_path / "home", monkeypatch)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return settings.model_copy(update={"policy_file": policy})


@pytest.fixture(params=["auto", "legacy"])
async def agent(request: pytest.FixtureRequest, tight: Settings) -> AsyncIterator[Agent]:
    async with Client(create_server(tight), mode=request.param) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})


CARD = {"purpose": "flights", "daily_limit_cents": 5000, "idempotency_key": "retry-1"}


async def test_a_retry_with_the_same_key_returns_the_same_card_without_a_second_reservation(
    agent: Agent,
) -> None:
    first = await agent.call("create_card", {**CARD, "daily_limit_cents": 2000})
    # The card fills max_active_cards = 1: a new card would be refused, the retry is not.
    again = await agent.call("create_card", {**CARD, "daily_limit_cents": 2000})
    assert again["id"] == first["id"]
    code, _ = await agent.fail(
        "create_card", {**CARD, "daily_limit_cents": 2000, "idempotency_key": "other"}
    )
    assert code == "guardrail_exceeded"
    assert await agent.card_ids() == [first["id"]]
    limits = await agent.call("get_limits")
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (1, 2000)


async def test_a_key_reused_for_another_request_is_an_idempotency_conflict(agent: Agent) -> None:
    first = await agent.call("create_card", {**CARD, "daily_limit_cents": 2000})
    code, message = await agent.fail("create_card", {**CARD, "daily_limit_cents": 1000})
    assert code == "idempotency_conflict"
    assert "new key" in message
    assert await agent.card_ids() == [first["id"]]


async def test_an_approved_create_retried_with_its_key_is_not_asked_again(
    tight: Settings,
) -> None:
    # No elicitation in this client: the first call must go out of band.
    async with Client(create_server(tight)) as client:
        first = await client.call_tool("create_card", CARD)
        assert first.is_error
        text = first.content[0].text  # type: ignore[union-attr]
        assert text.startswith("approval_required:")
        approval = text.split("(id ", 1)[1].split(",", 1)[0]
        async with SqliteApprovals(tight.home) as store:  # the operator's side
            await store.approve(approval)
        made = await client.call_tool("create_card", {**CARD, "approval_id": approval})
        assert not made.is_error, made.content
        # The same call again, as a client retrying after a lost answer: the card, no new ask.
        with anyio.fail_after(10):
            again = await client.call_tool("create_card", {**CARD, "approval_id": approval})
        assert not again.is_error, again.content
        assert again.structured_content is not None
        assert made.structured_content is not None
        assert again.structured_content["id"] == made.structured_content["id"]


async def test_the_server_keeps_a_hash_of_the_key_never_the_text(
    agent: Agent, tight: Settings
) -> None:
    # The key is the agent's to choose: it may hold anything, a card number included.
    key = "order-4111111111111111"
    card = await agent.call(
        "create_card", {**CARD, "daily_limit_cents": 2000, "idempotency_key": key}
    )
    again = await agent.call(
        "create_card", {**CARD, "daily_limit_cents": 2000, "idempotency_key": key}
    )
    assert again["id"] == card["id"]  # found again by the hash
    kept = [tight.home / f"budget.db{side}" for side in ("", "-wal")]
    assert any(path.exists() for path in kept)
    assert all(key.encode() not in path.read_bytes() for path in kept if path.exists())


async def test_a_card_number_in_a_purpose_or_a_key_is_stored_nowhere_in_the_home(
    agent: Agent, tight: Settings
) -> None:
    # The embedded issuer keeps what it is sent in the home too: it is sent masked.
    pan = "4111111111111111"
    arguments = {"purpose": f"pay {pan} cvc 123", "daily_limit_cents": 2000}
    card = await agent.call("create_card", {**arguments, "idempotency_key": f"k-{pan}"})
    again = await agent.call("create_card", {**arguments, "idempotency_key": f"k-{pan}"})
    assert again["id"] == card["id"]
    assert pan not in card["purpose"]
    for path in tight.home.rglob("*"):
        if path.is_file():
            assert pan.encode() not in path.read_bytes(), path.name


async def test_many_calls_at_once_with_one_key_make_one_card_and_commit_it_once(
    agent: Agent,
) -> None:
    # A client retrying before its first answer came back: the calls race each other.
    results: list[tuple[bool, str]] = []

    async def create() -> None:
        result = await agent.raw("create_card", {**CARD, "daily_limit_cents": 2000})
        results.append((bool(result.is_error), text_of(result)))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(create)
    [card_id] = await agent.card_ids()  # one card at the issuer
    made = [text for failed, text in results if not failed]
    assert made, results
    assert all(f'"id": "{card_id}"' in text for text in made)
    # Any call that did not get the card was told why, with a stable code, not a crash.
    stable = {cls.code for cls in AgentCardError.__subclasses__()}
    assert all(text.split(":", 1)[0] in stable for failed, text in results if failed), results
    limits = await agent.call("get_limits")
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (1, 2000)
