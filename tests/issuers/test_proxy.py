"""The Proxy adapter (issuers/proxy.py) against the fake of tests/fakes/proxy.py: the create
body field by field, the policy as the read-back, statuses, idempotent freeze and close, cursor
pages, the ledger, rawPan details only in the operator's card file, a lost answer that still
makes one card, and Proxy's rate buckets never emptied by our requests or retries. Nothing here
sleeps: the pace's and the retries' sleep moves the fake clock the fake issuer reads."""

from __future__ import annotations

import functools
import json
import logging
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.errors import AgentCardError, IssuerRateLimited
from agentcard_mcp.issuers import REGISTRY, connect
from agentcard_mcp.issuers.base import CardSpec
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.issuers.pacing import Pace
from agentcard_mcp.issuers.proxy import ProxyIssuer
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.proxy import FakeProxy
from tests.support import PERMISSIVE_POLICY, FakeClock

pytestmark = pytest.mark.anyio

BASE_URL = "http://proxy.test"
INFO = REGISTRY["proxy"]


@dataclass
class Rig:
    fake: FakeProxy
    clock: FakeClock
    issuer: ProxyIssuer
    slept: list[float] = field(default_factory=list)

    def spec(self, daily: int = 5000, per_auth: int | None = 2000, **kw: Any) -> CardSpec:
        return CardSpec(self.fake.agent_id, "flight LAX-JFK", daily, per_auth, [], **kw)


@asynccontextmanager
async def rig(home: Path, exposure: str = "rawPan") -> AsyncIterator[Rig]:
    clock = FakeClock(datetime.now(UTC))
    fake = FakeProxy(clock=clock, exposure=exposure)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds=seconds)

    # As open_issuer makes it from the registry (the adapter narrows it to Proxy's bucket), but
    # waiting out any wait, on the fake clock: these tests are about what reaches the issuer.
    pace = Pace(
        INFO.requests_per_minute or 0, max_wait=60, clock=lambda: clock.now.timestamp(),
        sleep=sleep,
    )  # fmt: skip
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=BASE_URL, headers=INFO.auth_headers(fake.api_key)
    ) as client:
        http = IssuerHTTP(
            client, "proxy", overrides=ProxyIssuer.error_overrides, pace=pace, sleep=sleep
        )
        issuer = ProxyIssuer(
            http, name="proxy", mode="test", capabilities=INFO.capabilities_in("test"), home=home
        )
        yield Rig(fake, clock, issuer, slept)


# -- create --------------------------------------------------------------------------------------


async def test_create_sends_the_documented_fields_with_the_api_key_header(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(r.spec(ttl_minutes=90, single_use=True), "key-1")
        multi = await r.issuer.create_card(r.spec(3000, None), "key-2")
    first, second = r.fake.sent("POST", f"/v1/agents/{r.fake.agent_id}/cards")
    assert first.body == {
        "purpose": "flight LAX-JFK", "type": "single", "maxAmount": 2000,
        "limits": {"perDay": 5000}, "ttlMinutes": 90, "onExpiry": "close",
    }  # fmt: skip
    assert second.body == {"purpose": "flight LAX-JFK", "type": "multi", "maxAmount": 3000,
                           "limits": {"perDay": 3000}}  # fmt: skip
    assert first.headers["api-key"] == r.fake.api_key
    assert "authorization" not in first.headers
    assert first.headers["idempotency-key"] == "key-1"
    assert (card.single_use, multi.single_use) == (True, False)


async def test_the_read_back_is_the_card_policy(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        made = await r.issuer.create_card(r.spec(ttl_minutes=60), "k")
        r.fake.swipe(made.id, 1200, "Delta", "4511")
        card = await r.issuer.get_card(made.id)
    assert (card.daily_limit_cents, card.per_auth_max_cents) == (5000, 2000)
    assert card.current_daily_spend_cents == 1200
    assert card.expires_at is not None
    assert card.expires_at.endswith("Z")
    assert card.status == "active"
    assert card.agent_id == r.fake.agent_id
    assert r.issuer.enforced_policy(r.spec()).daily_limit_cents == card.daily_limit_cents


async def test_an_agent_is_looked_up_through_every_page_of_the_list_never_a_write(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        for n in range(150):  # two pages of 100
            r.fake.agents[f"agent_{n:04d}"] = {"id": f"agent_{n:04d}", "name": f"bot {n}"}
        await r.issuer.check_agent("agent_0149")
        with pytest.raises(AgentCardError) as info:
            await r.issuer.check_agent("agent_nobody")
    assert info.value.code == "not_found"
    assert "agent_nobody" in info.value.message
    assert {(q.method, q.path) for q in r.fake.requests} == {("GET", "/v1/agents")}


async def test_an_allowlist_is_refused_before_any_request(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        spec = CardSpec(r.fake.agent_id, "x", 5000, None, ["travel"])
        with pytest.raises(AgentCardError) as info:
            await r.issuer.create_card(spec, "k")
    assert info.value.code == "not_supported"
    assert "proxy" in info.value.message
    assert r.fake.requests == []


async def test_raw_pan_details_are_only_in_the_card_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with rig(tmp_path) as r:
        card = await r.issuer.create_card(r.spec(), "k")
        read = await r.issuer.get_card(card.id)
    path = tmp_path / "cards" / f"{card.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["pan"].endswith(card.last4 or "?")
    assert len(saved["cvv"]) == 3
    assert saved["expirationYear"] == "2029"
    assert str(path) in (card.note or "")
    assert f"•••• {card.last4}" in (card.note or "")
    shown = card.model_dump_json() + read.model_dump_json() + caplog.text
    assert saved["pan"] not in shown
    assert f'"{saved["cvv"]}"' not in shown


async def test_without_raw_pan_no_card_file_is_written(tmp_path: Path) -> None:
    async with rig(tmp_path, exposure="never") as r:
        card = await r.issuer.create_card(r.spec(), "k")
    assert card.note is None
    assert not (tmp_path / "cards" / f"{card.id}.json").exists()


async def test_details_that_cannot_be_saved_close_the_card(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        (tmp_path / "cards").mkdir(mode=0o700)
        (tmp_path / "cards" / "card_fake00001.json").write_text("planted")
        with pytest.raises(AgentCardError) as info:
            await r.issuer.create_card(r.spec(), "k")
    assert info.value.code == "issuer_rejected"
    assert "closed" in info.value.message
    assert r.fake.cards["card_fake00001"]["status"] == "closed"
    assert (tmp_path / "cards" / "card_fake00001.json").read_text() == "planted"


async def test_a_lost_create_answer_is_retried_with_the_same_key_and_makes_one_card(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.fake.lose_answer("POST", f"/v1/agents/{r.fake.agent_id}/cards")
        card = await r.issuer.create_card(r.spec(), "same-key")
    attempts = r.fake.sent("POST", f"/v1/agents/{r.fake.agent_id}/cards")
    assert [a.headers["idempotency-key"] for a in attempts] == ["same-key", "same-key"]
    assert list(r.fake.cards) == [card.id]
    assert json.loads((tmp_path / "cards" / f"{card.id}.json").read_text())["card_id"] == card.id


# -- states --------------------------------------------------------------------------------------


async def test_statuses_map_and_freeze_and_close_are_idempotent(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.fake.activate_on_create = False
        card = await r.issuer.create_card(r.spec(), "k")
        assert card.status == "pending"  # notActivated
        with pytest.raises(AgentCardError) as info:
            await r.issuer.freeze(card.id)
        assert info.value.code == "issuer_rejected"
        assert "card_not_active" in info.value.message
        r.fake.activate(card.id)
        seen = [(await r.issuer.get_card(card.id)).status]
        seen += [(await r.issuer.freeze(card.id)).status, (await r.issuer.freeze(card.id)).status]
        seen += [(await r.issuer.unfreeze(card.id)).status]
        seen += [(await r.issuer.close(card.id)).status, (await r.issuer.close(card.id)).status]
        with pytest.raises(AgentCardError) as closed:
            await r.issuer.unfreeze(card.id)
    assert seen == ["active", "frozen", "frozen", "active", "closed", "closed"]
    assert closed.value.code == "issuer_rejected"
    posts = [x for x in r.fake.requests if x.method == "POST"]
    assert all(p.headers.get("idempotency-key") for p in posts)


async def test_an_unknown_card_is_not_found(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(AgentCardError) as info:
            await r.issuer.get_card("card_nope")
    assert info.value.code == "not_found"


async def test_list_follows_the_cursor_pages(tmp_path: Path) -> None:
    async with rig(tmp_path, exposure="never") as r:
        for n in range(150):  # seeded behind the API: the list is what is tested
            r.fake.cards[f"card_seed{n:03d}"] = {
                "id": f"card_seed{n:03d}", "agentId": r.fake.agent_id, "type": "multi",
                "purpose": "seed", "status": "frozen" if n % 2 else "active", "last4": "0000",
                "maxAmount": 100, "createdAt": 1_703_520_000_000, "limits": {"perDay": 300},
            }  # fmt: skip
        cards = await r.issuer.list_cards()
    assert [c.id for c in cards] == [f"card_seed{n:03d}" for n in range(150)]
    assert {c.status for c in cards} == {"active", "frozen"}
    assert cards[0].created_at == "2023-12-25T16:00:00.000Z"
    assert cards[0].daily_limit_cents == 300
    pages = r.fake.sent("GET", "/v1/cards")
    assert [p.query.get("cursor") for p in pages] == [None, "card_seed099"]


async def test_transactions_are_the_ledger(tmp_path: Path) -> None:
    async with rig(tmp_path, exposure="never") as r:
        card = await r.issuer.create_card(r.spec(daily=3000, per_auth=2000), "k")
        r.fake.swipe(card.id, 1500, "Delta", "4511")
        r.fake.swipe(card.id, 2500, "Delta", "4511")  # above maxAmount: declined
        r.fake.swipe(card.id, 1000, "Hertz", "3357")
        first = await r.issuer.ledger(card_id=card.id, agent_id=None, limit=2, cursor=None,
                                      decision=None)  # fmt: skip
        rest = await r.issuer.ledger(card_id=card.id, agent_id=None, limit=2,
                                     cursor=first.next_cursor, decision=None)  # fmt: skip
        declined = await r.issuer.ledger(card_id=card.id, agent_id=None, limit=50, cursor=None,
                                         decision="decline")  # fmt: skip
    seen = [(e.merchant, e.mcc, e.decision, e.amount_cents) for e in first.entries + rest.entries]
    assert seen == [
        ("Hertz", "3357", "approve", 1000), ("Delta", "4511", "decline", 2500),
        ("Delta", "4511", "approve", 1500),
    ]  # fmt: skip
    assert first.has_more
    assert not rest.has_more
    assert (first.totals.approved_cents, first.totals.declined_count) == (1000, 1)
    assert [e.amount_cents for e in declined.entries] == [2500]


# -- rate limits ---------------------------------------------------------------------------------


async def test_a_burst_of_writes_never_empties_the_issuers_buckets(tmp_path: Path) -> None:
    async with rig(tmp_path, exposure="never") as r:
        card = await r.issuer.create_card(r.spec(), "k")
        for _ in range(12):
            await r.issuer.freeze(card.id)
            await r.issuer.unfreeze(card.id)
    assert r.fake.over_limit == []
    assert r.slept  # our pace waited, the issuer never had to say so


async def test_an_11th_request_within_20_s_is_rate_limited_on_our_side(tmp_path: Path) -> None:
    async with rig(tmp_path, exposure="never") as r:
        assert r.issuer.http.pace is not None
        r.issuer.http.pace.max_wait = 5.0  # the production default: no long waits in a call
        card = await r.issuer.create_card(r.spec(), "k")
        r.clock.advance(seconds=1)
        for _ in range(3):  # POST + policy, then twice POST (409: frozen already) + card + policy
            await r.issuer.freeze(card.id)
        r.clock.advance(seconds=2)
        with pytest.raises(AgentCardError) as info:  # the card is the 10th, its policy the 11th
            await r.issuer.get_card(card.id)
    assert info.value.code == "issuer_rate_limited"
    assert isinstance(info.value, IssuerRateLimited)
    assert info.value.retry_after == pytest.approx(17, abs=0.5)
    assert len(r.fake.requests) == 10
    assert r.fake.over_limit == []


async def test_a_429_is_waited_out_as_it_says_and_retried_with_the_same_key(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, exposure="never") as r:
        path = f"/v1/agents/{r.fake.agent_id}/cards"
        r.fake.force(429, code="rate_limited", method="POST", path=path, retry_after="2")
        card = await r.issuer.create_card(r.spec(), "k-429")
    assert 2.0 in r.slept
    assert [a.headers["idempotency-key"] for a in r.fake.sent("POST", path)] == ["k-429"] * 2
    assert list(r.fake.cards) == [card.id]


# -- through the MCP server ----------------------------------------------------------------------


async def test_server_tools_on_proxy_leak_no_card_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(datetime.now(UTC))

    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    # The server's pace on the fake's clock: its waits pass without sleeping.
    monkeypatch.setattr(
        connect, "Pace", functools.partial(Pace, clock=lambda: clock.now.timestamp(), sleep=sleep)
    )
    fake = FakeProxy(clock=clock)
    # The issuer acts on the create, and its answer is lost: retried with the same key.
    fake.lose_answer("POST", f"/v1/agents/{fake.agent_id}/cards")
    settings = Settings(
        issuer="proxy", api_key=SecretStr(fake.api_key), base_url=BASE_URL, home=tmp_path,
        policy_file=PERMISSIVE_POLICY,
    )  # fmt: skip
    server = create_server(settings, issuer_transport=fake.transport())
    texts: list[str] = []
    with anyio.fail_after(10):
        async with Client(server) as client:
            made = await client.call_tool("create_card", {
                "purpose": "flight", "daily_limit_cents": 5000, "per_auth_max_cents": 2000,
                "single_use": True, "ttl_minutes": 60,
            })  # fmt: skip
            assert not made.is_error, made.content
            assert made.structured_content is not None
            card_id = made.structured_content["id"]
            texts.append(str(made.content))
            for tool, args in [("get_card", {"card_id": card_id}), ("list_cards", {}),
                               ("freeze_card", {"card_id": card_id}),
                               ("read_ledger", {"card_id": card_id}),
                               ("set_policy", {"card_id": card_id, "daily_limit_cents": 10}),
                               ("close_card", {"card_id": card_id})]:  # fmt: skip
                clock.advance(seconds=21)  # an agent's pace: one call's burst at a time
                result = await client.call_tool(tool, args)
                texts.append(str(result.content))
    path = tmp_path / "cards" / f"{card_id}.json"
    saved = json.loads(path.read_text())
    assert str(path) in made.structured_content["note"]
    assert "not_supported:" in texts[-2]  # set_policy
    assert fake.cards[card_id]["status"] == "closed"
    assert list(fake.cards) == [card_id]  # the lost answer made one card
    keys = [
        r.headers["idempotency-key"] for r in fake.sent("POST", f"/v1/agents/{fake.agent_id}/cards")
    ]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    audit = (tmp_path / "audit.jsonl").read_text()
    for text in [*texts, audit, caplog.text]:
        assert saved["pan"] not in text
        assert f'"cvv": "{saved["cvv"]}"' not in text
    assert fake.over_limit == []


# -- the fake is as strict as the documentation --------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "body", "status", "code"),
    [
        ("none", {"purpose": "x"}, 401, "missing_api_key"),
        ("bearer", {"purpose": "x"}, 401, "missing_api_key"),
        ("key", {"purpose": "x", "maxAmount": 50.0}, 400, "validation_failed"),
        ("key", {"purpose": "x", "max_amount": 50}, 400, "validation_failed"),
        ("key", {"purpose": "x", "limits": {"daily": 50}}, 400, "validation_failed"),
        ("key", {"purpose": "x", "type": "reusable"}, 400, "parameter_invalid"),
        ("key", {"maxAmount": 50}, 400, "parameter_missing"),
    ],
)
async def test_the_fake_refuses_what_the_docs_do_not_allow(
    auth: str, body: dict[str, Any], status: int, code: str
) -> None:
    fake = FakeProxy()
    headers = {
        "none": {},
        "bearer": {"Authorization": f"Bearer {fake.api_key}"},
        "key": INFO.auth_headers(fake.api_key),
    }[auth]
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE_URL) as client:
        response = await client.post(
            f"/v1/agents/{fake.agent_id}/cards", json=body, headers=headers
        )
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert fake.cards == {}
