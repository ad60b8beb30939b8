"""The ClawdCards adapter (issuers/clawdcards.py) against the fake of tests/fakes/clawdcards.py:
exact dollars, one category per card, the TTL, card details only in the operator's card file,
and 1 request a minute per key kept on our side, retries included. Nothing here sleeps: the
pace's sleep moves the fake clock that the fake issuer reads too."""

from __future__ import annotations

import json
import logging
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr

from agentcard_mcp.errors import AgentCardError, InvalidParams, IssuerRateLimited
from agentcard_mcp.issuers import REGISTRY
from agentcard_mcp.issuers.base import CardSpec
from agentcard_mcp.issuers.clawdcards import ClawdCardsIssuer, cents_of, dollars_of
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.issuers.pacing import Pace
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.clawdcards import FakeClawdCards
from tests.support import PERMISSIVE_POLICY, FakeClock

pytestmark = pytest.mark.anyio

BASE_URL = "http://clawd.test"
INFO = REGISTRY["clawdcards"]


@dataclass
class Rig:
    fake: FakeClawdCards
    clock: FakeClock
    issuer: ClawdCardsIssuer
    home: Path
    slept: list[float] = field(default_factory=list)


@asynccontextmanager
async def rig(home: Path, **fake_options: Any) -> AsyncIterator[Rig]:
    clock = FakeClock(datetime.now(UTC))
    fake = FakeClawdCards(clock=clock, **fake_options)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds=seconds)

    pace = Pace(1, 60.0, clock=lambda: clock.now.timestamp(), sleep=sleep)
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=BASE_URL, headers=INFO.auth_headers(fake.api_key)
    ) as client:
        http = IssuerHTTP(
            client, "clawdcards", overrides=ClawdCardsIssuer.error_overrides, pace=pace,
            sleep=sleep,
        )  # fmt: skip
        issuer = ClawdCardsIssuer(
            http, name="clawdcards", mode="live", capabilities=INFO.capabilities_in("live"),
            home=home,
        )  # fmt: skip
        yield Rig(fake, clock, issuer, home, slept)


def spec(cents: int = 75, tags: list[str] | None = None, ttl: int | None = 30) -> CardSpec:
    return CardSpec("default", "buy a domain", cents, None, tags or [], ttl, True)


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def refused(rig_: Rig, card: CardSpec) -> AgentCardError:
    with pytest.raises(AgentCardError) as info:
        await rig_.issuer.create_card(card, "k")
    return info.value


# -- amounts -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=2**53 - 1))
def test_cents_become_dollars_and_back_exactly(cents: int) -> None:
    dollars = dollars_of(cents)
    assert dollars * 100 == cents
    assert cents_of(dollars) == cents
    assert cents_of(str(dollars)) == cents


@pytest.mark.parametrize("dollars", ["1.005", "0.001", "19.999", "NaN"])
def test_dollars_that_are_not_whole_cents_are_invalid_params(dollars: str) -> None:
    with pytest.raises(InvalidParams):
        cents_of(dollars)


async def test_create_sends_exactly_the_documented_body(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(spec(75, ["cloud"]), "k")
    [sent] = r.fake.sent("POST", "/v1/cards")
    assert sent.body == {"amount": Decimal("0.75"), "merchant_category": "cloud_compute",
                         "ttl_minutes": 30}  # fmt: skip
    assert sent.headers["authorization"] == f"Bearer {r.fake.api_key}"
    assert "idempotency-key" not in sent.headers  # not documented: a retry could not replay
    assert (card.daily_limit_cents, card.per_auth_max_cents, card.single_use) == (75, 75, True)
    assert card.status == "active"
    assert card.id in r.fake.cards


@pytest.mark.parametrize(("cents", "ttl"), [(101, 30), (10_001, 30), (50, 0), (50, 1441)])
async def test_what_clawdcards_would_refuse_is_invalid_params_before_any_request(
    tmp_path: Path, cents: int, ttl: int
) -> None:
    async with rig(tmp_path) as r:
        if cents == 101:
            await r.issuer.limits()  # the beta's $1.00 cap, learnt from GET /limits
            r.clock.advance(minutes=1)
        before = len(r.fake.requests)
        error = await refused(r, spec(cents, ttl=ttl))
    assert error.code == "invalid_params"
    assert len(r.fake.requests) == before


async def test_an_allowlist_spanning_two_categories_is_refused_naming_them(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        error = await refused(r, spec(50, ["cloud", "saas"]))
    assert error.code == "invalid_params"
    assert "cloud_compute" in error.message
    assert "saas_tools" in error.message
    assert r.fake.requests == []


async def test_tags_of_one_category_make_one_card_of_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(spec(50, ["saas"]), "k")
    assert r.fake.sent("POST", "/v1/cards")[0].body["merchant_category"] == "saas_tools"
    assert card.mcc_allowlist == ["saas"]


async def test_tags_covering_part_of_a_category_are_refused_naming_the_rest(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        error = await refused(r, spec(50, ["travel", "food"]))
    assert error.code == "invalid_params"
    assert "other" in error.message
    assert "groceries" in error.message
    assert r.fake.requests == []


async def test_no_allowlist_is_the_narrower_other(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(spec(50), "k")
    assert r.fake.sent("POST", "/v1/cards")[0].body["merchant_category"] == "other"
    assert "cloud" not in card.mcc_allowlist
    assert "travel" in card.mcc_allowlist


# -- card details --------------------------------------------------------------------------------


async def test_card_details_are_only_in_the_card_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(spec(), "k")
        again = await r.issuer.get_card(card.id)
    made = r.fake.cards[card.id]
    path = tmp_path / "cards" / f"{card.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert (saved["number"], saved["cvv"], saved["expiry"]) == (made.number, made.cvv, "12/29")
    assert card.last4 == made.number[-4:]
    assert str(path) in (card.note or "")
    assert f"•••• {card.last4}" in (card.note or "")
    shown = card.model_dump_json() + again.model_dump_json() + caplog.text
    assert made.number not in shown
    # A three-digit CVC turns up inside random hex ids by chance: it must not stand alone.
    assert re.search(rf"(?<![0-9A-Za-z]){made.cvv}(?![0-9A-Za-z])", shown) is None
    assert "12/29" not in shown


async def test_a_home_whose_cards_dir_is_a_link_fails_before_any_card_exists(
    tmp_path: Path,
) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "cards").symlink_to(tmp_path / "elsewhere")
    async with rig(tmp_path) as r:
        error = await refused(r, spec())
    assert error.code == "invalid_params"
    assert r.fake.requests == []
    assert r.fake.cards == {}


# -- 1 request a minute --------------------------------------------------------------------------


async def test_a_second_call_within_the_minute_is_rate_limited_with_the_wait(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await r.issuer.create_card(spec(), "k1")
        r.clock.advance(seconds=20)
        error = await refused(r, spec())
        assert isinstance(error, IssuerRateLimited)
        assert error.retry_after == pytest.approx(40, abs=1)
        assert "40 s" in error.message
        r.clock.advance(seconds=37)  # 3 s short: waited out on our side, never at the issuer
        await r.issuer.create_card(spec(), "k2")
    assert r.slept == [pytest.approx(3)]
    assert len(r.fake.cards) == 2
    assert r.fake.rate_limited == 0


async def test_concurrent_creates_send_one_request_the_others_are_told_to_wait(
    tmp_path: Path,
) -> None:
    outcomes: list[str] = []
    async with rig(tmp_path) as r:

        async def create(n: int) -> None:
            try:
                await r.issuer.create_card(spec(), f"k{n}")
                outcomes.append("ok")
            except AgentCardError as exc:
                outcomes.append(exc.code)

        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(create, n)
    assert sorted(outcomes) == ["issuer_rate_limited"] * 4 + ["ok"]
    assert len(r.fake.requests) == 1
    assert len(r.fake.cards) == 1
    assert r.fake.rate_limited == 0


async def test_limits_while_the_key_rests_are_the_last_answer(tmp_path: Path) -> None:
    async with rig(tmp_path, older=True) as r:
        first = await r.issuer.limits()
        r.clock.advance(seconds=30)
        second = await r.issuer.limits()
    assert second == first
    assert first.per_transaction_limit_cents == 100
    assert first.monthly_limit_cents == 50_000
    assert first.cards_remaining is None  # the older API does not say
    assert len(r.fake.requests) == 1
    assert r.fake.rate_limited == 0


async def test_limits_while_the_key_rests_with_no_answer_yet_are_not_reported(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await r.issuer.create_card(spec(), "k")
        limits = await r.issuer.limits()
    assert limits.per_transaction_limit_cents is None
    assert len(r.fake.requests) == 1


async def test_a_5xx_on_a_read_is_not_retried(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.fake.force(502, code="bad_gateway")
        with pytest.raises(AgentCardError) as info:
            await r.issuer.limits()
    assert info.value.code == "issuer_unavailable"
    assert len(r.fake.requests) == 1
    assert r.slept == []


async def test_a_lost_create_answer_is_not_retried_and_leaves_one_card(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.fake.lose_answer("POST", "/v1/cards")
        error = await refused(r, spec())
    assert error.code == "issuer_unavailable"
    assert "may have been issued" in error.message
    assert len(r.fake.sent("POST", "/v1/cards")) == 1
    assert len(r.fake.cards) == 1
    assert r.fake.rate_limited == 0


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "limit_exceeded", "issuer_rejected"),
        (503, "no_cards_available", "issuer_unavailable"),
        (429, "rate_limited", "issuer_rate_limited"),
        (401, "invalid_key", "issuer_auth_failed"),
        (400, "amount_exceeded", "invalid_params"),
    ],
)
async def test_clawdcards_codes_map_to_ours_without_a_retry(
    tmp_path: Path, status: int, code: str, expected: str
) -> None:
    async with rig(tmp_path) as r:
        r.fake.force(status, code=code)
        error = await refused(r, spec())
    assert error.code == expected
    assert code in error.message
    assert len(r.fake.requests) == 1


async def test_an_empty_card_pool_is_issuer_unavailable_not_retried(tmp_path: Path) -> None:
    async with rig(tmp_path, pool=0) as r:
        error = await refused(r, spec())
    assert error.code == "issuer_unavailable"
    assert "pool" in error.message
    assert len(r.fake.requests) == 1


# -- the ledger ----------------------------------------------------------------------------------


async def test_transactions_are_the_ledger(tmp_path: Path) -> None:
    async with rig(tmp_path, transactions=True) as r:
        first = await r.issuer.create_card(spec(90), "k1")
        r.clock.advance(minutes=1)
        second = await r.issuer.create_card(spec(50), "k2")
        assert r.fake.use(first.id, 80, "Namecheap")
        assert not r.fake.use(second.id, 60, "Namecheap")
        r.clock.advance(minutes=1)
        page = await r.issuer.ledger(card_id=None, agent_id=None, limit=50, cursor=None,
                                     decision=None)  # fmt: skip
        r.clock.advance(minutes=1)
        one = await r.issuer.ledger(card_id=first.id, agent_id=None, limit=50, cursor=None,
                                    decision=None)  # fmt: skip
    assert [(e.card_id, e.decision, e.amount_cents) for e in page.entries] == [
        (second.id, "decline", 60), (first.id, "approve", 80),
    ]  # fmt: skip
    assert (page.totals.approved_cents, page.totals.declined_count) == (80, 1)
    assert [e.card_id for e in one.entries] == [first.id]
    assert r.fake.rate_limited == 0


async def test_without_a_transactions_endpoint_the_ledger_is_not_supported_once(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        for _ in range(2):
            with pytest.raises(AgentCardError) as info:
                await r.issuer.ledger(card_id=None, agent_id=None, limit=5, cursor=None,
                                      decision=None)  # fmt: skip
            assert info.value.code == "not_supported"
            assert "clawdcards" in info.value.message.lower()
    assert len(r.fake.requests) == 1


async def test_a_card_past_its_ttl_is_closed_and_counted_as_spent(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(spec(60, ttl=1), "k")
    later = card.model_copy(update={"expires_at": "2000-01-01T00:00:00Z"})
    r.issuer._cards[card.id] = later
    aged = await r.issuer.get_card(card.id)
    assert (aged.status, aged.current_daily_spend_cents) == ("closed", 60)


# -- through the MCP server ----------------------------------------------------------------------


async def test_server_create_card_names_the_file_and_leaks_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeClawdCards()
    settings_ = Settings(
        issuer="clawdcards", api_key=SecretStr(fake.api_key), base_url=BASE_URL, home=tmp_path,
        policy_file=PERMISSIVE_POLICY, live=True,
    )  # fmt: skip
    server = create_server(settings_, issuer_transport=fake.transport())
    with anyio.fail_after(10):
        async with Client(server) as client:
            made = await client.call_tool("create_card", {
                "purpose": "domain", "daily_limit_cents": 90, "mcc_allowlist": ["saas"],
                "ttl_minutes": 15, "single_use": True,
            })  # fmt: skip
            again = await client.call_tool("create_card", {"purpose": "x", "daily_limit_cents": 5})
            frozen = await client.call_tool("freeze_card", {"card_id": "txn_x"})
    assert not made.is_error, made.content
    card = made.structured_content
    assert card is not None
    [issued] = fake.cards.values()
    path = tmp_path / "cards" / f"{card['id']}.json"
    assert json.loads(path.read_text())["number"] == issued.number
    assert str(path) in card["note"]
    assert card["last4"] == issued.number[-4:]
    assert again.is_error
    assert text(again).startswith("issuer_rate_limited:")
    assert "retry after" in text(again)
    assert frozen.is_error
    assert text(frozen).startswith("not_supported:")
    assert "first purchase" in text(frozen)  # what to do instead
    audit = (tmp_path / "audit.jsonl").read_text()
    # A three-digit CVC turns up inside random hex ids by chance: it must not stand alone.
    cvv = re.compile(rf"(?<![0-9A-Za-z]){issued.cvv}(?![0-9A-Za-z])")
    for shown in (text(made), text(again), audit, caplog.text):
        assert issued.number not in shown
        assert cvv.search(shown) is None
    assert fake.rate_limited == 0
    assert len(fake.requests) == 1


# -- the fake is as strict as the documentation --------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"amount": 1, "merchant_category": "other"}, 401, "invalid_key"),
        (None, {"amount_cents": 100, "merchant_category": "other"}, 400, "invalid_params"),
        (None, {"amount": 1.005, "merchant_category": "other"}, 400, "invalid_params"),
        (None, {"amount": "1.00", "merchant_category": "other"}, 400, "invalid_params"),
        (None, {"amount": 1, "merchant_category": "cloud"}, 400, "invalid_params"),
        (None, {"amount": 1, "merchant_category": "other", "ttl_minutes": 1441}, 400,
         "invalid_params"),
        (None, {"amount": 1.01, "merchant_category": "other"}, 400, "amount_exceeded"),
    ],
)  # fmt: skip
async def test_the_fake_refuses_what_the_docs_do_not_allow(
    headers: dict[str, str] | None, body: dict[str, Any], status: int, code: str
) -> None:
    fake = FakeClawdCards()
    sent = INFO.auth_headers(fake.api_key) if headers is None else headers
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE_URL) as client:
        response = await client.post("/v1/cards", json=body, headers=sent)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert fake.cards == {}
