"""The day's budget under concurrency (DESIGN §5: "check and act are one step").

Every write that can widen what may be spent reserves its share in the server's store in one
transaction, then calls the issuer, then confirms or releases. These tests drive the real server
through the SDK's ``Client`` and fake only the remote issuer, at its HTTP boundary: the fake
AgentCard of tests/fakes/agentcard.py with a per-request latency, so that concurrent calls
really overlap at the issuer — a check made apart from its write would let them all through.
The embedded sandbox answers where the issuer's speed does not matter, and four console-script
processes share one home (one ``budget.db``) for the cross-process case.

"The issuer's commitment" is computed from what the issuer holds, as DESIGN §5 defines it: for
an active card the larger of its daily limit and today's spend, for a frozen or closed card
today's spend.
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
from mcp.client.stdio import StdioServerParameters
from pydantic import SecretStr
from starlette.requests import Request

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import account_of
from agentcard_mcp.storage.sqlite.budget import SqliteBudget
from tests.fakes.agentcard import FakeAgentCard, Recorded
from tests.server.conftest import Agent, hermetic_settings, text_of
from tests.server.stdio_session import SCRIPT

pytestmark = pytest.mark.anyio

BASE_URL = "http://issuer.test"
LATENCY = 0.05  # seconds per issuer request
NO_APPROVAL = 1_000_000_000  # an approval threshold no test reaches


def write_policy(path: Path, **ceilings: int | str | list[str]) -> Path:
    """A policy file with these ceilings; nothing asks for approval, unfreeze and close are
    allowed unless given."""
    values: dict[str, int | str | list[str]] = {
        "require_approval_above_cents": NO_APPROVAL,
        "unfreeze": "allow",
        "close": "allow",
        **ceilings,
    }
    lines = []
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]".replace("'", '"'))
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded-sandbox settings in a fresh home; no AGENTCARD_* variable or .env leaks in."""
    return hermetic_settings(tmp_path / "home", monkeypatch)


def sandbox_settings(base: Settings, policy: Path) -> Settings:
    return base.model_copy(update={"policy_file": policy})


def remote_settings(base: Settings, policy: Path, fake: FakeAgentCard) -> Settings:
    return base.model_copy(
        update={
            "issuer": "agentcard",
            "api_key": SecretStr(fake.api_key),
            "base_url": BASE_URL,
            "policy_file": policy,
        }
    )


@asynccontextmanager
async def connected(
    settings: Settings, mode: str, fake: FakeAgentCard | None = None
) -> AsyncIterator[Agent]:
    """The server for ``settings`` (the remote issuer being ``fake``), through the SDK client."""
    transport = None if fake is None else fake.transport()
    server = create_server(settings, issuer_transport=transport)
    async with Client(server, mode=mode) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})


async def outcome(agent: Agent, tool: str, arguments: dict[str, Any]) -> str:
    """The error code of a call that failed (the text before ': '), or "ok"."""
    result = await agent.raw(tool, arguments)
    if not result.is_error:
        return "ok"
    code, sep, _ = text_of(result).partition(": ")
    assert sep, f"error text is not 'code: message': {text_of(result)!r}"
    return code


def issuer_commitment(fake: FakeAgentCard) -> int:
    """The day's commitment over every card the issuer holds (closed ones included)."""
    total = 0
    for card in fake.cards.values():
        spend = int(card["current_daily_spend_cents"])
        total += spend if card["frozen"] else max(int(card["daily_limit_cents"]), spend)
    total += sum(int(card["current_daily_spend_cents"]) for card in fake.deleted.values())
    return total


def active_at(fake: FakeAgentCard) -> list[dict[str, Any]]:
    return [card for card in fake.cards.values() if not card["frozen"]]


class InFlight:
    """Counts the issuer requests in flight at once (from the fake's before and after hooks)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def enter(self, _: Recorded) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    async def leave(self, _: Recorded) -> None:
        self.now -= 1


# --- 1. concurrent creates against max_active_cards ---------------------------------------


async def test_twenty_concurrent_creates_on_a_slow_issuer_make_exactly_max_active_cards(
    base: Settings, tmp_path: Path, mode: str
) -> None:
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=5,
        max_card_daily_limit_cents=1_000,
        max_per_auth_cents=1_000,
        max_total_daily_cents=1_000_000,
    )
    fake = FakeAgentCard(latency=LATENCY)
    flight = InFlight()
    fake.before, fake.after = flight.enter, flight.leave
    codes: list[str] = []

    async def create(i: int) -> None:
        codes.append(
            await outcome(
                agent, "create_card", {"purpose": f"task {i}", "daily_limit_cents": 1_000}
            )
        )

    with anyio.fail_after(30):
        async with connected(remote_settings(base, policy, fake), mode, fake) as agent:
            async with anyio.create_task_group() as tasks:
                for i in range(20):
                    tasks.start_soon(create, i)
            limits = await agent.call("get_limits")
            listed = await agent.call("list_cards", {"status": "active"})

    assert Counter(codes) == {"ok": 5, "guardrail_exceeded": 15}
    # The calls overlapped at the issuer (the five creates at least were in flight at once).
    assert flight.most >= 5
    assert len(fake.requests_to("POST", "/v1/cards")) == 5  # the refused ones never got there
    assert len(fake.cards) == len(active_at(fake)) == 5
    assert sorted(c["id"] for c in listed["cards"]) == sorted(fake.cards)
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (5, 5_000)


# --- 2. concurrent raises and unfreezes against max_total_daily_cents ---------------------

BUDGET = 10_000


async def test_concurrent_raises_and_unfreezes_never_commit_more_than_the_days_budget(
    base: Settings, tmp_path: Path, mode: str
) -> None:
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=20,
        max_card_daily_limit_cents=4_000,
        max_per_auth_cents=4_000,
        max_total_daily_cents=BUDGET,
    )
    fake = FakeAgentCard(latency=LATENCY)
    seen: list[int] = []

    async def measure(_: Recorded) -> None:
        seen.append(issuer_commitment(fake))  # after every request the issuer acted on

    fake.after = measure
    calls: list[tuple[str, str, str]] = []  # (tool, card, code)

    async def call(tool: str, card_id: str, arguments: dict[str, Any]) -> None:
        code = await outcome(agent, tool, {"card_id": card_id, **arguments})
        seen.append(issuer_commitment(fake))  # and after every tool call
        calls.append((tool, card_id, code))

    with anyio.fail_after(40):
        async with connected(remote_settings(base, policy, fake), mode, fake) as agent:
            # Four active cards of 1000 and four frozen ones that spent 300 today: 5200 of 10000.
            active, frozen = [], []
            for i in range(8):
                card = await agent.call(
                    "create_card", {"purpose": f"c{i}", "daily_limit_cents": 1_000}
                )
                if i < 4:
                    active.append(card["id"])
                    continue
                swipe = {"card_id": card["id"], "amount_cents": 300, "merchant": "Linear",
                         "mcc": "saas"}  # fmt: skip
                assert (await agent.call("simulate_purchase", swipe))["approved"] is True
                await agent.call("freeze_card", {"card_id": card["id"]})
                frozen.append(card["id"])
            assert issuer_commitment(fake) == 5_200
            # Together they would ask for 4 x 3000 + 4 x 700 more (and the frozen cards'
            # raises would make their unfreezes worth 3700 each): far beyond the 4800 left.
            async with anyio.create_task_group() as tasks:
                for card_id in active + frozen:
                    tasks.start_soon(call, "set_policy", card_id, {"daily_limit_cents": 4_000})
                for card_id in frozen:
                    tasks.start_soon(call, "unfreeze_card", card_id, {})
            limits = await agent.call("get_limits")

    codes = Counter(code for _, _, code in calls)
    assert set(codes) == {"ok", "guardrail_exceeded"}, calls
    assert max(seen) <= BUDGET, (max(seen), calls)
    assert issuer_commitment(fake) <= BUDGET
    assert limits["committed_daily_cents"] == issuer_commitment(fake)
    assert limits["active_cards"] == len(active_at(fake))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The raise is reviewed while the card is frozen (a frozen card's limit commits
        # nothing), then waits for the unfreeze to land: it must be checked as the raise of
        # an active card.
        ("unfreeze_card", "set_policy"),
        # The unfreeze is reviewed at the card's old limit, then waits for the raise to land:
        # it must be checked at the new one.
        ("set_policy", "unfreeze_card"),
    ],
)
async def test_a_write_is_checked_against_the_card_as_the_write_before_it_left_it(
    base: Settings, tmp_path: Path, mode: str, first: str, second: str
) -> None:
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=5,
        max_card_daily_limit_cents=4_000,
        max_per_auth_cents=4_000,
        max_total_daily_cents=BUDGET,
    )
    fake = FakeAgentCard(latency=LATENCY)
    settings = remote_settings(base, policy, fake)
    codes: dict[str, str] = {}

    with anyio.fail_after(30):
        async with connected(settings, mode, fake) as agent:
            for i in range(2):
                await agent.call("create_card", {"purpose": f"big {i}", "daily_limit_cents": 4_000})
            card_id = (
                await agent.call("create_card", {"purpose": "x", "daily_limit_cents": 1_000})
            )["id"]
            path = f"/v1/cards/{card_id}"
            swipe = {"card_id": card_id, "amount_cents": 300, "merchant": "Linear", "mcc": "saas"}
            await agent.call("simulate_purchase", swipe)
            writes = {"set_policy": ("PATCH", path), "unfreeze_card": ("POST", f"{path}/unfreeze")}

            async def reads_before_reserving(tool: str, arguments: dict[str, Any]) -> int:
                """How often a lone call of ``tool`` reads the card from the issuer before it
                holds a reservation on it in the server's store."""
                reads = 0

                async def count(request: Recorded) -> None:
                    nonlocal reads
                    if (request.method, request.path) == ("GET", path):
                        held = [r for r in await store.reservations() if r.card_id == card_id]
                        reads += not held

                fake.before = count
                await agent.call(tool, {"card_id": card_id, **arguments})
                fake.before = None
                return reads

            await agent.call("freeze_card", {"card_id": card_id})
            store = SqliteBudget(base.home, account_of(settings))
            try:
                reads = {
                    "set_policy": await reads_before_reserving(
                        "set_policy", {"per_auth_max_cents": 900}
                    ),
                    "unfreeze_card": await reads_before_reserving("unfreeze_card", {}),
                }
            finally:
                await store.aclose()
            assert min(reads.values()) >= 1
            await agent.call("freeze_card", {"card_id": card_id})
            # 8300 of 10000: either write alone fits (unfreeze 9000; raise while frozen 8300),
            # both together do not (12000).
            assert issuer_commitment(fake) == 8_300

            # The first write is held at the issuer until the second call has read the card as
            # often as it does before reserving: its review saw the card as it was before the
            # first write. It then has to wait for the first write to land before it reserves.
            arrived, reviewed = anyio.Event(), anyio.Event()
            read_after_arrival = 0

            async def hold_write(request: Recorded) -> None:
                if (request.method, request.path) == writes[first]:
                    arrived.set()
                    await reviewed.wait()

            async def count_reads(request: Recorded) -> None:
                nonlocal read_after_arrival
                if arrived.is_set() and (request.method, request.path) == ("GET", path):
                    read_after_arrival += 1
                    if read_after_arrival == reads[second]:
                        reviewed.set()

            arguments = {"unfreeze_card": {}, "set_policy": {"daily_limit_cents": 4_000}}

            async def call(tool: str) -> None:
                codes[tool] = await outcome(agent, tool, {"card_id": card_id, **arguments[tool]})

            fake.before, fake.after = hold_write, count_reads
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call, first)
                await arrived.wait()
                tasks.start_soon(call, second)
            limits = await agent.call("get_limits")

    assert issuer_commitment(fake) <= BUDGET, codes
    assert codes == {first: "ok", second: "guardrail_exceeded"}
    assert limits["committed_daily_cents"] == issuer_commitment(fake)


# --- 3. churn: create, spend, freeze, again -----------------------------------------------


async def test_churning_cards_never_spends_more_than_the_days_budget(
    base: Settings, tmp_path: Path, mode: str
) -> None:
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=5,
        max_card_daily_limit_cents=3_000,
        max_per_auth_cents=3_000,
        max_total_daily_cents=BUDGET,
    )
    with anyio.fail_after(30):
        async with connected(sandbox_settings(base, policy), mode) as agent:
            cards: list[str] = []

            async def churn(daily: int) -> None:
                """A card of ``daily``, 2000 spent on it (and a purchase past its limit
                declined), then frozen."""
                arguments = {"purpose": f"churn {len(cards)}", "daily_limit_cents": daily}
                card = await agent.call("create_card", arguments)
                cards.append(card["id"])
                swipe = {"card_id": card["id"], "merchant": "Linear", "mcc": "saas"}
                bought = await agent.call("simulate_purchase", {**swipe, "amount_cents": 2_000})
                assert bought["reason"] == "approved"
                over = {**swipe, "amount_cents": daily - 2_000 + 100}
                assert (await agent.call("simulate_purchase", over))["reason"] == (
                    "daily_limit_exceeded"
                )
                await agent.call("freeze_card", {"card_id": card["id"]})
                limits = await agent.call("get_limits")
                # A frozen card goes on committing what it spent today, and no more.
                assert limits["committed_daily_cents"] == 2_000 * len(cards)
                assert limits["spent_today_cents"] == 2_000 * len(cards)
                assert limits["active_cards"] == 0

            for _ in range(4):
                await churn(3_000)
            # 8000 committed by four frozen cards: a card of 3000 no longer fits, one of 2000 does.
            code, message = await agent.fail(
                "create_card", {"purpose": "too big", "daily_limit_cents": 3_000}
            )
            assert code == "guardrail_exceeded"
            assert "max_total_daily_cents" in message
            await churn(2_000)

            # All five are frozen, none active; still no new card, however small.
            code, message = await agent.fail(
                "create_card", {"purpose": "one more", "daily_limit_cents": 100}
            )
            assert code == "guardrail_exceeded"
            assert "max_total_daily_cents" in message

            limits = await agent.call("get_limits")
            issuer = await agent.snapshot()
            approved = sum(
                e["amount_cents"] for e in issuer["ledger"] if e["decision"] == "approve"
            )
            assert approved == 10_000 <= BUDGET
            assert limits["spent_today_cents"] == approved
            commits = sum(
                c["current_daily_spend_cents"]
                if c["status"] != "active"
                else max(c["daily_limit_cents"], c["current_daily_spend_cents"])
                for c in issuer["cards"]
            )
            assert limits["committed_daily_cents"] == commits == 10_000
            assert limits["remaining_daily_cents"] == BUDGET - commits == 0

            # Closing a card that spent today frees nothing: its spend still counts.
            await agent.call("close_card", {"card_id": cards[0]})
            after = await agent.call("get_limits")
            assert after["spent_today_cents"] == 10_000
            assert (after["committed_daily_cents"], after["remaining_daily_cents"]) == (10_000, 0)
            code, _ = await agent.fail(
                "create_card", {"purpose": "after close", "daily_limit_cents": 100}
            )
            assert code == "guardrail_exceeded"
            ledger = (await agent.call("read_ledger", {"limit": 500}))["totals"]
            assert ledger["approved_cents"] == after["spent_today_cents"]


# --- 4. unfreezing a card wider than the policy ---------------------------------------------


async def test_unfreeze_is_refused_for_a_card_above_a_ceiling_the_operator_lowered(
    base: Settings, tmp_path: Path, mode: str
) -> None:
    ceilings: dict[str, int] = {
        "max_active_cards": 5, "max_per_auth_cents": 5_000, "max_total_daily_cents": 20_000,
    }  # fmt: skip
    wide = write_policy(tmp_path / "wide.toml", max_card_daily_limit_cents=5_000, **ceilings)
    narrow = write_policy(tmp_path / "narrow.toml", max_card_daily_limit_cents=3_000, **ceilings)
    with anyio.fail_after(30):
        async with connected(sandbox_settings(base, wide), mode) as agent:
            card = await agent.call("create_card", {"purpose": "big", "daily_limit_cents": 5_000})
            await agent.call("freeze_card", {"card_id": card["id"]})
        # The operator lowers the per-card ceiling and restarts the server on the same home.
        async with connected(sandbox_settings(base, narrow), mode) as agent:
            code, message = await agent.fail("unfreeze_card", {"card_id": card["id"]})
            assert code == "guardrail_exceeded"
            assert "max_card_daily_limit_cents" in message
            assert (await agent.call("get_card", {"card_id": card["id"]}))["status"] == "frozen"
            # Tightened to the new ceiling, it may come back.
            await agent.call("set_policy", {"card_id": card["id"], "daily_limit_cents": 3_000})
            back = await agent.call("unfreeze_card", {"card_id": card["id"]})
            assert (back["status"], back["daily_limit_cents"]) == ("active", 3_000)


class Widening(FakeAgentCard):
    """The fake issuer, except that a create quietly leaves out ``dropped``: the card it makes
    is wider than asked, so the server's read-back freezes it."""

    def __init__(self, dropped: str) -> None:
        super().__init__()
        self.dropped = dropped

    def _create_card(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return super()._create_card(request, {k: v for k, v in body.items() if k != self.dropped})


@pytest.mark.parametrize(
    ("dropped", "ceilings"),
    [
        # Any category, where the operator allows travel and lodging only.
        ("mcc_allowlist", {"allowed_categories": ["travel", "lodging"]}),
        # The whole daily limit (4000) per purchase, where the operator allows 2000.
        ("per_auth_max_cents", {}),
    ],
)
async def test_unfreeze_is_refused_for_a_card_the_read_back_froze_because_the_issuer_widened_it(
    base: Settings, tmp_path: Path, mode: str, dropped: str, ceilings: dict[str, list[str]]
) -> None:
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=5,
        max_card_daily_limit_cents=5_000,
        max_per_auth_cents=2_000,
        max_total_daily_cents=20_000,
        **ceilings,
    )
    fake = Widening(dropped)
    asked = {
        "purpose": "trip", "daily_limit_cents": 4_000, "per_auth_max_cents": 2_000,
        "mcc_allowlist": ["travel"],
    }  # fmt: skip
    with anyio.fail_after(30):
        async with connected(remote_settings(base, policy, fake), mode, fake) as agent:
            code, _ = await agent.fail("create_card", asked)
            assert code == "issuer_rejected"
            (card_id,) = fake.cards
            assert fake.cards[card_id]["frozen"] is True
            code, _ = await agent.fail("unfreeze_card", {"card_id": card_id})
            assert code == "guardrail_exceeded"
            assert (await agent.call("get_card", {"card_id": card_id}))["status"] == "frozen"
    assert fake.cards[card_id]["frozen"] is True
    assert fake.requests_to("POST", f"/v1/cards/{card_id}/unfreeze") == []


# --- 5. several processes on one home -------------------------------------------------------


async def test_four_stdio_servers_on_one_home_make_exactly_max_active_cards_together(
    base: Settings, tmp_path: Path
) -> None:
    # Counted by cards (5) and by money (5 x 1000 = the whole budget): forty creates that each
    # checked apart from the others' writes would pass both.
    policy = write_policy(
        tmp_path / "policy.toml",
        max_active_cards=5,
        max_card_daily_limit_cents=1_000,
        max_per_auth_cents=1_000,
        max_total_daily_cents=5_000,
    )
    params = StdioServerParameters(
        command=str(SCRIPT),
        args=[],
        env={"AGENTCARD_HOME": str(base.home), "AGENTCARD_POLICY_FILE": str(policy)},
        cwd=tmp_path,
    )
    codes: list[str] = []
    ready = 0
    go = anyio.Event()

    async def process(n: int) -> None:
        nonlocal ready
        async with Client(params) as client:
            listing = await client.list_tools()
            agent = Agent(client, {tool.name: tool for tool in listing.tools})
            ready += 1
            if ready == 4:
                go.set()
            await go.wait()  # every process is up before any of them creates a card

            async def create(i: int) -> None:
                arguments = {"purpose": f"p{n} c{i}", "daily_limit_cents": 1_000}
                codes.append(await outcome(agent, "create_card", arguments))

            async with anyio.create_task_group() as tasks:
                for i in range(10):
                    tasks.start_soon(create, i)

    with anyio.fail_after(45):
        async with anyio.create_task_group() as tasks:
            for n in range(4):
                tasks.start_soon(process, n)
        # What the issuer (the home's sandbox) and the budget hold afterwards. Cards were only
        # ever created, never frozen or closed, so this is the most that was ever committed.
        async with connected(sandbox_settings(base, policy), "auto") as agent:
            cards = (await agent.call("list_cards"))["cards"]
            limits = await agent.call("get_limits")

    assert Counter(codes) == {"ok": 5, "guardrail_exceeded": 35}
    assert [c["status"] for c in cards] == ["active"] * 5
    assert sum(c["daily_limit_cents"] for c in cards) == 5_000
    assert (limits["active_cards"], limits["committed_daily_cents"]) == (5, 5_000)
