"""Faults at the issuer's HTTP boundary, for every write tool, through the MCP server (issue 14
items 1 and 2; DESIGN §5, §7, §8).

The server talks to a remote AgentCard issuer — the fake of tests/fakes/agentcard.py — through
tests/fakes/faults.py, which injects timeouts, a connection reset after the issuer acted,
500/502/503, 429 with Retry-After, malformed and truncated JSON, an HTML error page, and an
answer slower than the call's deadline. The server's clock is a fake one (``timer``): the
deadline and the backoff go by it, so 20 s of waiting costs the test nothing.

Each fault ends with the expected code; every attempt carried the same Idempotency-Key; the
issuer acted at most once (exactly once when the fault let it act); the call waited no longer
than its deadline; an unknown outcome tells the agent what may have happened and what to do,
naming the issuer's host and no secret; and the budget stays right — never below what the
issuer's cards commit, and exactly that once a restarted server has reconciled.

The deadline's backstop (a cancel scope on the real clock) is tested with a short real deadline
against an issuer that never answers, and a human's time answering an approval form is shown
not to count against it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData
from pydantic import SecretStr

from agentcard_mcp.budget import GRACE_S, Budget
from agentcard_mcp.deadline import (
    IF_UNKNOWN,
    REAL_TIME,
    CallDeadline,
    DeadlineExceeded,
    Timer,
    bounded,
)
from agentcard_mcp.errors import IssuerRateLimited
from agentcard_mcp.issuers.connect import open_issuer
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import open_storage
from tests.fakes.agentcard import FakeAgentCard
from tests.fakes.faults import FAULTS, FakeTime, FaultyIssuer
from tests.server.conftest import Agent, hermetic_settings
from tests.support import PERMISSIVE_POLICY, FakeClock

pytestmark = pytest.mark.anyio

BASE_URL = "http://issuer.test"
DEADLINE_S = 20.0
DAILY = 1_000


@dataclass(frozen=True)
class Expect:
    code: str  # "ok", or the error code
    effects: int  # how many times the issuer acted on the write
    advice: bool = False  # the agent is told to look before it retries


UNKNOWN = "issuer_unavailable"
EXPECT: dict[str, Expect] = {
    "read timeout, once": Expect("ok", 1),
    "read timeouts, every time": Expect(UNKNOWN, 0, advice=True),
    "connect timeouts, every time": Expect(UNKNOWN, 0),  # it never left: nothing to look at
    "reset after acting, once": Expect("ok", 1),
    "reset after acting, every time": Expect(UNKNOWN, 1, advice=True),
    "500, every time": Expect(UNKNOWN, 0, advice=True),
    "502 after acting, once": Expect("ok", 1),
    "503 with a truncated JSON body, once": Expect("ok", 1),
    "429 with Retry-After 2, once": Expect("ok", 1),
    "429 with Retry-After 30": Expect("issuer_rate_limited", 0),
    "malformed JSON after acting": Expect(UNKNOWN, 1, advice=True),
    "truncated JSON after acting": Expect(UNKNOWN, 1, advice=True),
    "JSON nested 100 000 deep after acting": Expect(UNKNOWN, 1, advice=True),
    "an HTML error page, every time": Expect(UNKNOWN, 0, advice=True),
    "an HTML page with 200 after acting": Expect(UNKNOWN, 1, advice=True),
    "slower than the deadline, every time": Expect(UNKNOWN, 1, advice=True),
}


@dataclass(frozen=True)
class WriteTool:
    """A write tool, the issuer request that makes its change, and a card to make it on."""

    name: str
    method: str
    suffix: str  # after /v1/cards/{id}; None-card tools write to /v1/cards itself
    frozen: bool = False  # the card must be frozen first
    extra: tuple[tuple[str, Any], ...] = ()

    def path(self, card_id: str | None) -> str:
        return "/v1/cards" if card_id is None else f"/v1/cards/{card_id}{self.suffix}"


CREATE = WriteTool("create_card", "POST", "")
WRITE_TOOLS = [
    CREATE,
    WriteTool("freeze_card", "POST", "/freeze"),
    WriteTool("unfreeze_card", "POST", "/unfreeze", frozen=True),
    WriteTool("set_policy", "PATCH", "", extra=(("daily_limit_cents", DAILY // 2),)),
    WriteTool("close_card", "DELETE", ""),
]


def issuer_commits(fake: FakeAgentCard) -> int:
    """What the issuer's cards commit today (DESIGN §5): an active card its daily limit (or
    more, if it spent more), a frozen one what it spent; deleted cards spent nothing here."""
    total = 0
    for card in fake.cards.values():
        spent = card["current_daily_spend_cents"]
        total += spent if card["frozen"] else max(card["daily_limit_cents"], spent)
    return total


def settings_for(home: Path, fake: FakeAgentCard, **overrides: Any) -> Settings:
    return Settings(
        issuer="agentcard",
        api_key=SecretStr(fake.api_key),
        base_url=BASE_URL,
        home=home,
        policy_file=PERMISSIVE_POLICY,
        **overrides,
    )


@asynccontextmanager
async def agent_on(
    settings: Settings,
    transport: httpx.AsyncBaseTransport,
    timer: Timer = REAL_TIME,
    mode: str = "auto",
    **client_options: Any,
) -> AsyncIterator[Agent]:
    server = create_server(settings, issuer_transport=transport, timer=timer)
    async with Client(server, mode=mode, **client_options) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        yield Agent(client, tools)


async def target(agent: Agent, tool: WriteTool, case: str) -> tuple[str | None, dict[str, Any]]:
    """A fresh card for ``tool`` (None for create_card) and the call's arguments."""
    if tool is CREATE:
        key = "fault-" + "".join(c if c.isalnum() else "-" for c in case)  # printable ASCII
        return None, {"purpose": case, "daily_limit_cents": DAILY, "idempotency_key": key}
    card = await agent.call("create_card", {"purpose": case, "daily_limit_cents": DAILY})
    if tool.frozen:
        await agent.call("freeze_card", {"card_id": card["id"]})
    return card["id"], {"card_id": card["id"], **dict(tool.extra)}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hermetic_settings(tmp_path / "home", monkeypatch)  # no AGENTCARD_* nor .env leaks in
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("tool", "mode"),
    # Both connection modes, in turn (the faults are the issuer's; the mode is the agent's).
    [(tool, ("auto", "legacy")[n % 2]) for n, tool in enumerate(WRITE_TOOLS)],
    ids=lambda v: v.name if isinstance(v, WriteTool) else v,
)
async def test_every_issuer_fault_ends_with_its_code_one_key_at_most_one_effect_in_time(
    home: Path, tool: WriteTool, mode: str
) -> None:
    fake = FakeAgentCard()
    time = FakeTime()
    issuer = FaultyIssuer(fake, time)
    settings = settings_for(home, fake)
    async with agent_on(settings, issuer.transport(), time, mode) as agent:
        for case, fault in FAULTS.items():
            expect = EXPECT[case]
            card_id, arguments = await target(agent, tool, case)
            path = tool.path(card_id)
            issuer.forget()
            issuer.arm(tool.method, path, fault)
            started, slept = time.now(), len(time.slept)
            with anyio.fail_after(5):
                result = await agent.raw(tool.name, arguments)
            issuer.disarm()
            waited = time.now() - started
            said = result.content[0].text  # type: ignore[union-attr]
            where = f"{tool.name} / {case}: {said}"

            if expect.code == "ok":
                assert not result.is_error, where
            else:
                assert result.is_error, where
                assert said.startswith(f"{expect.code}: "), where
            attempts = issuer.attempts(tool.method, path)
            keys = {request.headers.get("idempotency-key") for request in attempts}
            assert 1 <= len(attempts) <= 4, where
            assert len(keys) == 1, where  # one key, on every attempt
            assert None not in keys, where
            if tool is CREATE:
                assert keys == {arguments["idempotency_key"]}, where
            assert issuer.effects(tool.method, path) == expect.effects, where
            assert waited <= DEADLINE_S + 1e-9, where  # a bounded wait, on the server's clock
            if case.startswith("429 with Retry-After 2"):
                assert time.slept[slept:] == [2.0], where  # waited exactly what it was told
            if expect.code == UNKNOWN:
                assert "issuer.test" in said, where  # the host it could not reach
                assert fake.api_key not in said, where
                assert "Bearer" not in said, where
                assert said.endswith(IF_UNKNOWN[tool.name]) == expect.advice, where
            if expect.code == UNKNOWN:
                # Never below what the issuer's cards commit: an unknown outcome keeps counting.
                limits = await agent.call("get_limits")
                assert limits["committed_daily_cents"] >= issuer_commits(fake), where

    # A restarted server serves every card the issuer has, and counts no less than they commit.
    async with agent_on(settings, fake.transport(), mode=mode) as agent:
        limits = await agent.call("get_limits")
        assert limits["committed_daily_cents"] >= issuer_commits(fake)
        assert sorted(await agent.card_ids()) == sorted(fake.cards)
    # Once the unknown outcomes' grace has passed (a lost request can no longer land), they
    # are reconciled with the issuer: exactly what its cards commit.
    later = FakeClock(datetime.now(UTC) + timedelta(seconds=GRACE_S + 1))
    async with (
        open_storage(settings) as storage,
        open_issuer(settings, fake.transport()) as card_issuer,
    ):
        budget = Budget(storage.budget, clock=later)
        await budget.sync(card_issuer)
        assert (await budget.totals()).committed_cents == issuer_commits(fake)
        assert await storage.budget.reservations() == []


async def test_after_an_unknown_create_the_advised_retry_finds_the_one_card(home: Path) -> None:
    fake = FakeAgentCard()
    time = FakeTime()
    issuer = FaultyIssuer(fake, time)
    issuer.arm("POST", "/v1/cards", FAULTS["reset after acting, every time"])
    arguments = {"purpose": "lost", "daily_limit_cents": DAILY, "idempotency_key": "retry-me"}
    async with agent_on(settings_for(home, fake), issuer.transport(), time) as agent:
        code, message = await agent.fail("create_card", arguments)
        assert code == UNKNOWN
        assert message.endswith(IF_UNKNOWN["create_card"])
        issuer.disarm()  # the issuer is reachable again
        (listed,) = (await agent.call("list_cards"))["cards"]  # the card was made
        again = await agent.call("create_card", arguments)  # retried with the same key
    assert again["id"] == listed["id"]
    assert list(fake.cards) == [listed["id"]]
    assert issuer.effects("POST", "/v1/cards") == 1


@pytest.mark.parametrize(
    ("fault", "mode"),
    [("reset after acting, every time", "auto"), ("read timeouts, every time", "legacy")],
)
async def test_with_room_for_one_card_the_retry_of_a_lost_create_gets_it_counted_once(
    home: Path, tmp_path: Path, fault: str, mode: str
) -> None:
    # The lost create's reservation counts until it is reconciled, and fills the day: its
    # retry takes that reservation over instead of being refused as a second card.
    policy = tmp_path / "one-card.toml"
    policy.write_text(
        f"max_active_cards = 1\nmax_total_daily_cents = {DAILY}\n"
        f"max_card_daily_limit_cents = {DAILY}\nmax_per_auth_cents = {DAILY}\n"
    )
    fake = FakeAgentCard()
    issuer = FaultyIssuer(fake, FakeTime())
    issuer.arm("POST", "/v1/cards", FAULTS[fault])
    arguments = {"purpose": "lost", "daily_limit_cents": DAILY, "idempotency_key": "retry-me"}
    settings = settings_for(home, fake).model_copy(update={"policy_file": policy})
    async with agent_on(settings, issuer.transport(), issuer.time, mode) as agent:
        assert (await agent.fail("create_card", arguments))[0] == UNKNOWN
        issuer.disarm()
        await agent.call("list_cards")  # as the agent is advised: the card shows, if it landed
        card = await agent.call("create_card", arguments)
        assert (await agent.call("create_card", arguments))["id"] == card["id"]
        code, _ = await agent.fail("create_card", {**arguments, "idempotency_key": "other"})
        assert code == "guardrail_exceeded"
        limits = await agent.call("get_limits")
    assert list(fake.cards) == [card["id"]]
    assert issuer.effects("POST", "/v1/cards") == 1
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (1, DAILY)


# -- the backstop: a real deadline against an issuer that never answers -----------------------


class Stuck:
    """The fake issuer, except that one request (method and path) is acted on and then never
    answered, timeouts ignored, as a stuck proxy would do."""

    def __init__(self, fake: FakeAgentCard) -> None:
        self._inner = fake.transport()
        self.request: tuple[str, str] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        if (request.method, request.url.path) == self.request:
            await anyio.sleep_forever()
        return httpx.Response(response.status_code, headers=response.headers, content=content)


async def _a_card(agent: Agent) -> dict[str, Any]:
    card = await agent.call("create_card", {"purpose": "stuck", "daily_limit_cents": DAILY})
    return {"card_id": card["id"]}


async def _no_card(agent: Agent) -> dict[str, Any]:
    return {"purpose": "stuck", "daily_limit_cents": DAILY, "idempotency_key": "stuck-1"}


ArgumentsFor = Callable[[Agent], Awaitable[dict[str, Any]]]
STUCK_CASES = {
    "create_card": (_no_card, "POST", "", IF_UNKNOWN["create_card"]),
    "freeze_card": (_a_card, "POST", "/freeze", IF_UNKNOWN["freeze_card"]),
    "get_card": (_a_card, "GET", "", "Retry later."),
}


@pytest.mark.parametrize("tool", list(STUCK_CASES))
async def test_an_issuer_that_never_answers_ends_the_call_at_its_deadline(
    home: Path, tool: str
) -> None:
    arguments_for, method, suffix, ends_with = STUCK_CASES[tool]
    fake = FakeAgentCard()
    stuck = Stuck(fake)
    settings = settings_for(home, fake, call_deadline_s=0.5)
    async with agent_on(settings, stuck.transport()) as agent:
        arguments = await arguments_for(agent)
        card_id = arguments.get("card_id")
        stuck.request = (method, "/v1/cards" if card_id is None else f"/v1/cards/{card_id}{suffix}")
        started = anyio.current_time()
        with anyio.fail_after(5):
            code, message = await agent.fail(tool, arguments)
        took = anyio.current_time() - started
        stuck.request = None
        limits = await agent.call("get_limits")
    assert code == UNKNOWN
    assert "issuer.test" in message
    assert "0.5 s deadline" in message
    assert message.endswith(ends_with)
    assert 0.4 <= took < 2.0
    # A write's outcome is unknown: it keeps counting (until reconciled), never less.
    assert limits["committed_daily_cents"] >= issuer_commits(fake)


APPROVAL_POLICY = """\
max_card_daily_limit_cents = 100000
max_per_auth_cents = 100000
max_total_daily_cents = 1000000
max_active_cards = 10
require_approval_above_cents = 500
unfreeze = "allow"
close = "allow"
approval_channel = "elicit"
"""


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_time_a_human_takes_to_approve_does_not_count_against_the_deadline(
    home: Path, tmp_path: Path, mode: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(APPROVAL_POLICY)
    fake = FakeAgentCard()
    settings = settings_for(home, fake, call_deadline_s=0.3).model_copy(
        update={"policy_file": policy}
    )
    asked = itertools.count()

    async def slow_human(
        context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        next(asked)
        await anyio.sleep(0.6)  # twice the deadline, reading the form
        return ElicitResult(action="accept", content={"approve": True})

    async with agent_on(
        settings, fake.transport(), mode=mode, elicitation_callback=slow_human
    ) as agent:
        with anyio.fail_after(5):
            card = await agent.call("create_card", {"purpose": "big", "daily_limit_cents": 5_000})
    assert next(asked) == 1  # the human was asked once
    assert list(fake.cards) == [card["id"]]


# -- the retry loop within the deadline, directly --------------------------------------------


@asynccontextmanager
async def issuer_http(issuer: FaultyIssuer) -> AsyncIterator[IssuerHTTP]:
    async with httpx.AsyncClient(
        transport=issuer.transport(),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {issuer.fake.api_key}"},
        timeout=httpx.Timeout(10.0, connect=5.0),
    ) as client:
        yield IssuerHTTP(client, "agentcard")


def new_card(fake: FakeAgentCard) -> dict[str, Any]:
    return {"agent_id": fake.agent_id, "daily_limit_cents": DAILY, "nickname": "direct"}


async def test_a_retry_after_that_leaves_no_time_for_the_attempt_is_not_waited() -> None:
    time = FakeTime()
    issuer = FaultyIssuer(FakeAgentCard(), time)
    issuer.arm("POST", "/v1/cards", FAULTS["429 with Retry-After 2, once"])
    # Waiting 2 s would leave 0.1 s: under the tenth of the deadline an attempt needs at least.
    call = CallDeadline(2.1, time)
    async with issuer_http(issuer) as http:
        with bounded(call), pytest.raises(IssuerRateLimited):
            await http.request("POST", "/v1/cards", json=new_card(issuer.fake))
    assert time.slept == []
    assert len(issuer.attempts("POST", "/v1/cards")) == 1


async def test_every_timeout_is_capped_at_the_time_left_and_no_attempt_starts_without_time() -> (
    None
):
    time = FakeTime()
    issuer = FaultyIssuer(FakeAgentCard(), time)
    issuer.arm("POST", "/v1/cards", FAULTS["read timeouts, every time"])
    call = CallDeadline(13.0, time)
    async with issuer_http(issuer) as http:
        with bounded(call), pytest.raises(DeadlineExceeded) as raised:
            await http.request("POST", "/v1/cards", json=new_card(issuer.fake))
    timeouts = [r.extensions["timeout"] for r in issuer.attempts("POST", "/v1/cards")]
    assert timeouts[0] == {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}
    # The second attempt had what was left after 10 s and a backoff: under 3 s for every phase.
    assert len(timeouts) == 2
    assert all(0 < value < 3.0 for value in timeouts[1].values())
    assert time.now() - 1000.0 <= 13.0 + 1e-9
    assert "issuer.test" in str(raised.value)
    assert call.wrote  # a write may have reached the issuer


async def test_a_key_a_header_cannot_carry_is_sent_as_its_digest_the_same_on_every_retry() -> None:
    time = FakeTime()
    issuer = FaultyIssuer(FakeAgentCard(), time)
    issuer.arm("POST", "/v1/cards", FAULTS["reset after acting, once"])
    async with issuer_http(issuer) as http:
        card = await http.request(
            "POST", "/v1/cards", json=new_card(issuer.fake), idempotency_key="ключ 🃏"
        )
    keys = [r.headers["idempotency-key"] for r in issuer.attempts("POST", "/v1/cards")]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert keys[0].startswith("sha256-")
    assert list(issuer.fake.cards) == [card["id"]]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_a_call_its_client_abandons_while_the_issuer_is_stuck_is_still_audited(
    home: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """The record is written as the call unwinds from its cancellation (the client gave up and
    told the server): one write to the JSONL file, a shielded insert into PostgreSQL."""
    fake = FakeAgentCard()
    stuck = Stuck(fake)
    database = (
        {"database_url": request.getfixturevalue("postgres_url")} if store == "postgres" else {}
    )
    settings = settings_for(home, fake, **database)
    async with agent_on(settings, stuck.transport()) as agent:
        card = await agent.call("create_card", {"purpose": "abandoned", "daily_limit_cents": DAILY})
        stuck.request = ("GET", f"/v1/cards/{card['id']}")
        with anyio.move_on_after(0.3) as gave_up:
            await agent.client.call_tool("get_card", {"card_id": card["id"]})
        assert gave_up.cancelled_caught
        stuck.request = None
        async with open_storage(settings) as storage:
            with anyio.fail_after(5):
                while True:
                    tail = await storage.audit.tail(5)
                    reads = [r for r in (tail.records if tail else []) if r["tool"] == "get_card"]
                    if reads:
                        break
                    await anyio.sleep(0.02)
    assert reads[-1]["card_id"] == card["id"]
    assert reads[-1]["outcome"] == "internal_error"  # cut short: neither a result nor a refusal
    assert 250 <= reads[-1]["duration_ms"] < 5000
