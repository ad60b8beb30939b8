"""create_card retried at once with one idempotency key, when the day has room for one card only
(DESIGN §5, §8): the racing calls are retries of one card, not new cards. Each gets that card,
or — while it is still being made — ``issuer_unavailable`` saying so, to retry with the same
key; never ``guardrail_exceeded``, never a second card, and the card is counted once. The same
arguments under another key are a new card, refused by the guardrail; the key reused for other
arguments is ``idempotency_conflict``.

Run through the SDK's ``Client`` in both modes, on the embedded sandbox and on a remote issuer
(the fake AgentCard at the HTTP boundary, holding the first create until every other call has
been answered, so that all of them meet it in flight), with the server's state on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.agentcard import FakeAgentCard, Recorded
from tests.server.conftest import Agent, hermetic_settings, text_of

pytestmark = pytest.mark.anyio

CALLS = 8
CARD = {"purpose": "flights", "daily_limit_cents": 2000, "idempotency_key": "trip-42"}
# Room for one card of 2000: by the card count, or by the day's budget.
ONE_CARD = {"max_active_cards": 1, "max_total_daily_cents": 10_000}
ONE_BUDGET = {"max_active_cards": 5, "max_total_daily_cents": 2000}


def policy_file(path: Path, room: dict[str, int]) -> Path:
    lines = {"max_card_daily_limit_cents": 5000, "max_per_auth_cents": 5000,
             "require_approval_above_cents": 5000, **room}  # fmt: skip
    path.write_text("".join(f"{key} = {value}\n" for key, value in lines.items()))
    return path


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def state_of(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where the server keeps its own state: the home's files, or a PostgreSQL database."""
    if backend == "sqlite":
        return {}
    return {"database_url": SecretStr(request.getfixturevalue("postgres_url"))}


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return hermetic_settings(tmp_path / "home", monkeypatch)


class HeldCreate:
    """Holds the fake issuer's first card creation until ``release``: the call making the card
    stays in flight while every other call is answered."""

    def __init__(self) -> None:
        self.released = anyio.Event()

    async def __call__(self, request: Recorded) -> None:
        if (request.method, request.path) == ("POST", "/v1/cards"):
            await self.released.wait()


@asynccontextmanager
async def connected(
    settings: Settings, mode: str, fake: FakeAgentCard | None
) -> AsyncIterator[Agent]:
    """The server for ``settings`` through the SDK client; its issuer ``fake`` when given."""
    transport = None
    if fake is not None:
        remote = {"issuer": "agentcard", "base_url": "http://issuer.test"}
        settings = settings.model_copy(update={**remote, "api_key": SecretStr(fake.api_key)})
        transport = fake.transport()
    async with Client(create_server(settings, issuer_transport=transport), mode=mode) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})


async def race(agent: Agent, on_answer: HeldCreate | None = None) -> list[tuple[str, str]]:
    """(code or "ok", text) of CALLS create_card calls started together with one key; with
    ``on_answer``, the held create is released once all the other calls have been answered."""
    answers: list[tuple[str, str]] = []

    async def create() -> None:
        result = await agent.raw("create_card", CARD)
        text = text_of(result)
        answers.append((text.partition(": ")[0] if result.is_error else "ok", text))
        if on_answer is not None and len(answers) == CALLS - 1:
            on_answer.released.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for _ in range(CALLS):
                group.start_soon(create)
    return answers


async def assert_one_card_counted_once(agent: Agent, card_id: str) -> None:
    assert await agent.card_ids() == [card_id]
    limits = await agent.call("get_limits")
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (1, 2000)
    # Retried once the race is over: the same card, and still counted once.
    assert (await agent.call("create_card", CARD))["id"] == card_id
    code, _ = await agent.fail("create_card", {**CARD, "idempotency_key": "another-trip"})
    assert code == "guardrail_exceeded"  # the same arguments under a new key: a new card
    code, _ = await agent.fail("create_card", {**CARD, "daily_limit_cents": 1000})
    assert code == "idempotency_conflict"
    assert await agent.card_ids() == [card_id]
    limits = await agent.call("get_limits")
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (1, 2000)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_racing_retries_on_the_sandbox_get_the_one_card_or_are_told_it_is_in_progress(
    base: Settings, tmp_path: Path, mode: str, backend: str, request: pytest.FixtureRequest
) -> None:
    policy = policy_file(tmp_path / "policy.toml", ONE_CARD)
    settings = base.model_copy(update={"policy_file": policy, **state_of(backend, request)})
    async with connected(settings, mode, None) as agent:
        answers = await race(agent)
        made = {text for code, text in answers if code == "ok"}
        assert len(made) == 1, answers  # every call that got a card got the same one
        assert {code for code, _ in answers} <= {"ok", "issuer_unavailable"}, answers
        card_id = (await agent.card_ids())[0]
        assert f'"id": "{card_id}"' in made.pop()
        await assert_one_card_counted_once(agent, card_id)


@pytest.mark.parametrize(
    ("room", "backend"),
    [(ONE_CARD, "sqlite"), (ONE_CARD, "postgres"), (ONE_BUDGET, "sqlite")],
    ids=["card-count-sqlite", "card-count-postgres", "day-budget-sqlite"],
)
async def test_retries_racing_a_create_in_flight_at_a_remote_issuer_are_told_to_retry_it(
    base: Settings,
    tmp_path: Path,
    mode: str,
    room: dict[str, int],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    fake = FakeAgentCard(latency=0.01)
    held = HeldCreate()
    fake.before = held
    policy = policy_file(tmp_path / "policy.toml", room)
    settings = base.model_copy(update={"policy_file": policy, **state_of(backend, request)})
    async with connected(settings, mode, fake) as agent:
        answers = await race(agent, held)
        assert Counter(code for code, _ in answers) == {"ok": 1, "issuer_unavailable": CALLS - 1}
        assert all("still in progress" in text and "same idempotency_key" in text
                   for code, text in answers if code != "ok")  # fmt: skip
        assert len(fake.requests_to("POST", "/v1/cards")) == 1  # one request, one card
        (card_id,) = fake.cards
        await assert_one_card_counted_once(agent, card_id)
    assert len(fake.cards) == 1
