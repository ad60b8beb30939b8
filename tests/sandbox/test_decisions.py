"""Authorization decisions through ``POST /v1/_test/swipe``: every one of AgentCard's 12 reasons,
the order the checks run in, what a decision writes, and the daily limit."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agentcard_mcp.sandbox.authorize import CHECK_ORDER, Reason, SwipeFacts, decide
from tests.sandbox.test_api_cards import (
    JSON,
    LEDGER_KEYS,
    assert_id,
    error_of,
    get_card,
    ledger,
    new_card,
    ok,
    stamp,
    swipe,
    swipe_body,
)
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

# The order authorize.py documents; the tests below derive their pairs from CHECK_ORDER, so this
# pins CHECK_ORDER itself to the documentation.
DOCUMENTED_ORDER = [
    Reason.IDEMPOTENCY_REPLAY,
    Reason.OWNER_SUSPENDED,
    Reason.AGENT_NOT_ACTIVE,
    Reason.CARD_NOT_ACTIVE,
    Reason.CARD_FROZEN,
    Reason.CURRENCY_UNSUPPORTED,
    Reason.MERCHANT_BLOCKED,
    Reason.CATEGORY_NOT_IN_ALLOWLIST,
    Reason.PER_AUTH_LIMIT_EXCEEDED,
    Reason.DAILY_LIMIT_EXCEEDED,
    Reason.UNKNOWN,
]
ORDER = [reason for reason, _ in CHECK_ORDER]
ADJACENT = list(itertools.pairwise(ORDER))


def test_the_checks_run_in_the_documented_order_and_cover_every_decline_reason() -> None:
    assert ORDER == DOCUMENTED_ORDER
    assert {*ORDER, Reason.APPROVED} == set(Reason)
    assert len(set(Reason)) == 12


# --- the engine alone -----------------------------------------------------------------------

PASSING = SwipeFacts(
    amount_cents=100,
    mcc="saas",
    merchant_blocked=False,
    currency_enabled=True,
    owner_suspended=False,
    agent_active=True,
    card_active=True,
    frozen=False,
    mcc_allowlist=("saas",),
    per_auth_max_cents=500,
    daily_limit_cents=1_000,
    spend_today_cents=900,
)
FAILING: dict[Reason, dict[str, Any]] = {
    Reason.IDEMPOTENCY_REPLAY: {"network_duplicate": True},
    Reason.OWNER_SUSPENDED: {"owner_suspended": True},
    Reason.AGENT_NOT_ACTIVE: {"agent_active": False},
    Reason.CARD_NOT_ACTIVE: {"card_active": False},
    Reason.CARD_FROZEN: {"frozen": True},
    Reason.CURRENCY_UNSUPPORTED: {"currency_enabled": False},
    Reason.MERCHANT_BLOCKED: {"merchant_blocked": True},
    Reason.CATEGORY_NOT_IN_ALLOWLIST: {"mcc": "food"},
    Reason.PER_AUTH_LIMIT_EXCEEDED: {"per_auth_max_cents": 99},
    Reason.DAILY_LIMIT_EXCEEDED: {"spend_today_cents": 901},
    Reason.UNKNOWN: {"network_decline": "suspected_fraud"},
}


def test_facts_that_fail_no_check_are_approved_at_the_limits() -> None:
    assert decide(PASSING) is Reason.APPROVED
    exactly = dataclasses.replace(PASSING, per_auth_max_cents=100, spend_today_cents=900)
    assert decide(exactly) is Reason.APPROVED  # amount == per-auth max, spend + amount == limit
    assert decide(dataclasses.replace(PASSING, mcc_allowlist=(), mcc="anything")) is (
        Reason.APPROVED
    )


@pytest.mark.parametrize("reason", ORDER)
def test_each_failing_fact_alone_gives_its_own_reason(reason: Reason) -> None:
    assert decide(dataclasses.replace(PASSING, **FAILING[reason])) is reason


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(DOCUMENTED_ORDER, 2)))
def test_when_two_checks_fail_the_earlier_documented_one_decides(
    first: Reason, second: Reason
) -> None:
    facts = dataclasses.replace(PASSING, **FAILING[first], **FAILING[second])
    assert decide(facts) is first


# --- through the API ------------------------------------------------------------------------

Arm = Callable[[Sandbox, JSON], Awaitable[JSON]]
REPLAYED_NETWORK_ID = "net_0001"


async def _nothing(sb: Sandbox, card: JSON) -> JSON:
    return {}


async def _replay(sb: Sandbox, card: JSON) -> JSON:
    await swipe(sb, card["id"], network_id=REPLAYED_NETWORK_ID)
    return {"network_id": REPLAYED_NETWORK_ID}


async def _suspend_owner(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.post("/v1/_test/owner/suspend"))
    return {}


async def _suspend_agent(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.post(f"/v1/agents/{card['agent_id']}/suspend"))
    return {}


async def _delete_card(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.delete(f"/v1/cards/{card['id']}"))
    return {}


async def _freeze_card(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.post(f"/v1/cards/{card['id']}/freeze"))
    return {}


async def _other_currency(sb: Sandbox, card: JSON) -> JSON:
    return {"currency": "eur"}


async def _block_merchant(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.patch("/v1/owner", json={"merchant_blocklist": ["acme corp"]}))
    return {}


async def _other_category(sb: Sandbox, card: JSON) -> JSON:
    return {"mcc": "food"}


async def _lower_per_auth_max(sb: Sandbox, card: JSON) -> JSON:
    ok(await sb.client.patch(f"/v1/cards/{card['id']}", json={"per_auth_max_cents": 50}))
    return {}


async def _lower_daily_limit(sb: Sandbox, card: JSON) -> JSON:
    # 100 already spent today: any further 100 goes over 150.
    ok(await sb.client.patch(f"/v1/cards/{card['id']}", json={"daily_limit_cents": 150}))
    return {}


async def _network_decline(sb: Sandbox, card: JSON) -> JSON:
    return {"network_decline": "suspected_fraud"}


# How to make the next swipe (100 cents at "Acme Corp", mcc "saas") fail each check for real.
ARMS: dict[Reason, Arm] = {
    Reason.APPROVED: _nothing,
    Reason.IDEMPOTENCY_REPLAY: _replay,
    Reason.OWNER_SUSPENDED: _suspend_owner,
    Reason.AGENT_NOT_ACTIVE: _suspend_agent,
    Reason.CARD_NOT_ACTIVE: _delete_card,
    Reason.CARD_FROZEN: _freeze_card,
    Reason.CURRENCY_UNSUPPORTED: _other_currency,
    Reason.MERCHANT_BLOCKED: _block_merchant,
    Reason.CATEGORY_NOT_IN_ALLOWLIST: _other_category,
    Reason.PER_AUTH_LIMIT_EXCEEDED: _lower_per_auth_max,
    Reason.DAILY_LIMIT_EXCEEDED: _lower_daily_limit,
    Reason.UNKNOWN: _network_decline,
}


async def decide_with(sb: Sandbox, reasons: list[Reason]) -> tuple[JSON, JSON]:
    """Arms ``reasons`` on a fresh card that has spent 100 today, swipes once more and checks
    what the decision wrote. Returns the card and the swipe's outcome."""
    card = await new_card(sb, daily_limit_cents=10_000, per_auth_max_cents=5_000,
                          mcc_allowlist=["saas", "travel"])  # fmt: skip
    assert (await swipe(sb, card["id"]))["reason"] == "approved"
    overrides: JSON = {}
    # Later checks first: a card must be frozen before it is deleted, and the replayed network
    # id is recorded whatever that first swipe's own decision is.
    for reason in sorted(reasons, key=lambda r: -ORDER.index(r) if r in ORDER else 0):
        overrides |= await ARMS[reason](sb, card)
    before = await ledger(sb, card["id"])
    spend_before = before[0]["current_daily_spend_cents_after"]

    body = ok(await sb.client.post("/v1/_test/swipe", json=swipe_body(card["id"], **overrides)))
    assert set(body) == {"agentcard_outcome", "approved"}
    outcome: JSON = body["agentcard_outcome"]
    approved = outcome["reason"] == "approved"
    assert (outcome["decision"], body["approved"]) == (
        ("approve", True) if approved else ("decline", False)
    )
    expected_spend = spend_before + (100 if approved else 0)
    assert outcome["current_daily_spend_cents"] == expected_spend
    assert outcome["decided_at"] == stamp(sb.clock)

    after = await ledger(sb, card["id"])
    assert [e["id"] for e in after[1:]] == [e["id"] for e in before]
    assert after[0] == {
        "id": outcome["auth_id"],
        "card_id": card["id"],
        "decided_at": outcome["decided_at"],
        "decision": outcome["decision"],
        "reason": outcome["reason"],
        "amount_cents": 100,
        "merchant": "Acme Corp",
        "mcc": overrides.get("mcc", "saas"),
        "current_daily_spend_cents_after": expected_spend,
    }
    if Reason.CARD_NOT_ACTIVE not in reasons:
        assert (await get_card(sb, card["id"]))["current_daily_spend_cents"] == expected_spend
    return card, outcome


@pytest.mark.parametrize("reason", list(Reason))
async def test_every_reason_is_reachable_and_a_decline_is_logged_without_spending(
    sandbox: Sandbox, reason: Reason
) -> None:
    _, outcome = await decide_with(sandbox, [reason])
    assert outcome["reason"] == reason.value


@pytest.mark.parametrize(("earlier", "later"), ADJACENT)
async def test_when_two_checks_fail_the_earlier_one_names_the_decline(
    inprocess: Sandbox, earlier: Reason, later: Reason
) -> None:
    _, outcome = await decide_with(inprocess, [earlier, later])
    assert outcome["reason"] == earlier.value


async def test_a_swipe_answers_with_the_documented_decision_payload(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    response = await sandbox.client.post(
        "/v1/_test/swipe",
        json={"card_id": card["id"], "amount_cents": 1500, "merchant": "Delta Airlines",
              "mcc": "travel"},
    )  # fmt: skip
    body = ok(response)
    assert response.headers["content-type"].startswith("application/json")
    assert set(body) == {"agentcard_outcome", "approved"}
    outcome = body["agentcard_outcome"]
    assert set(outcome) == {"auth_id", "decision", "reason", "current_daily_spend_cents",
                            "decided_at"}  # fmt: skip
    assert_id(outcome["auth_id"], "auth")
    assert outcome == {
        "auth_id": outcome["auth_id"],
        "decision": "approve",
        "reason": "approved",
        "current_daily_spend_cents": 1500,
        "decided_at": stamp(sandbox.clock),
    }
    assert body["approved"] is True
    entries = await ledger(sandbox, card["id"])
    assert [set(e) for e in entries] == [LEDGER_KEYS]
    assert entries[0]["id"] == outcome["auth_id"]


async def test_merchant_blocklist_matching_ignores_case_and_whitespace(inprocess: Sandbox) -> None:
    card = await new_card(inprocess)
    ok(await inprocess.client.patch("/v1/owner", json={"merchant_blocklist": ["ACME  Corp"]}))
    for merchant in ("Acme Corp", "  acme   corp ", "ACME\tCORP", "aCmE Corp", "AcmeCorp"):
        outcome = await swipe(inprocess, card["id"], merchant=merchant)
        assert outcome["reason"] == "merchant_blocked", merchant
    for merchant in ("Acme Corporation", "Acme", "Acme Cor"):
        outcome = await swipe(inprocess, card["id"], merchant=merchant)
        assert outcome["reason"] == "approved", merchant
    ok(await inprocess.client.patch("/v1/owner", json={"merchant_blocklist": []}))
    assert (await swipe(inprocess, card["id"], merchant="acme corp"))["reason"] == "approved"


async def test_a_currency_declines_until_the_owner_enables_it(inprocess: Sandbox) -> None:
    card = await new_card(inprocess)
    declined = await swipe(inprocess, card["id"], 100, currency="eur")
    assert (declined["reason"], declined["current_daily_spend_cents"]) == (
        "currency_unsupported",
        0,
    )
    assert (await swipe(inprocess, card["id"], 100, currency="usd"))["reason"] == "approved"

    ok(await inprocess.client.patch("/v1/owner", json={"enabled_currencies": ["usd", "eur"]}))
    approved = await swipe(inprocess, card["id"], 100, currency="eur")
    assert (approved["reason"], approved["current_daily_spend_cents"]) == ("approved", 200)

    ok(await inprocess.client.patch("/v1/owner", json={"enabled_currencies": ["eur"]}))
    assert (await swipe(inprocess, card["id"], currency="usd"))["reason"] == "currency_unsupported"
    assert (await swipe(inprocess, card["id"]))["reason"] == "currency_unsupported"  # usd default

    response = await inprocess.client.post(
        "/v1/_test/swipe", json=swipe_body(card["id"], currency="euro")
    )
    assert error_of(response, 400)["param"] == "currency"


async def test_currency_codes_are_case_insensitive(inprocess: Sandbox) -> None:
    card = await new_card(inprocess)
    assert (await swipe(inprocess, card["id"], currency="USD"))["reason"] == "approved"
    owner = ok(
        await inprocess.client.patch("/v1/owner", json={"enabled_currencies": ["usd", "EUR"]})
    )
    assert owner["enabled_currencies"] == ["usd", "eur"]
    assert (await swipe(inprocess, card["id"], currency="Eur"))["reason"] == "approved"


async def test_a_repeated_network_id_on_a_card_is_a_replay_whatever_the_idempotency_key(
    sandbox: Sandbox,
) -> None:
    card, other = await new_card(sandbox), await new_card(sandbox)
    first = await swipe(sandbox, card["id"], 300, network_id="net_42")
    assert (first["reason"], first["current_daily_spend_cents"]) == ("approved", 300)

    body = swipe_body(card["id"], 300, network_id="net_42")
    for headers in ({}, {"Idempotency-Key": "one"}, {"Idempotency-Key": "two"}):
        response = await sandbox.client.post("/v1/_test/swipe", json=body, headers=headers)
        replay = ok(response)["agentcard_outcome"]
        assert (replay["decision"], replay["reason"]) == ("decline", "idempotency_replay")
        assert replay["current_daily_spend_cents"] == 300
        assert replay["auth_id"] != first["auth_id"]
        assert "idempotent-replayed" not in response.headers
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 300
    assert len(await ledger(sandbox, card["id"])) == 4

    # Network ids are per card, and a new id on the same card is a new authorization.
    assert (await swipe(sandbox, other["id"], 300, network_id="net_42"))["reason"] == "approved"
    assert (await swipe(sandbox, card["id"], 300, network_id="net_43"))["reason"] == "approved"


async def test_a_retried_swipe_with_the_same_idempotency_key_replays_without_a_new_decision(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox)
    body, headers = swipe_body(card["id"], 700), {"Idempotency-Key": "swipe-1"}
    first = await sandbox.client.post("/v1/_test/swipe", json=body, headers=headers)
    again = await sandbox.client.post("/v1/_test/swipe", json=body, headers=headers)
    assert ok(again) == ok(first)
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await ledger(sandbox, card["id"])) == 1
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 700

    changed = swipe_body(card["id"], 701)
    conflict = await sandbox.client.post("/v1/_test/swipe", json=changed, headers=headers)
    assert error_of(conflict, 409)["code"] == "idempotency_key_reused"
    assert len(await ledger(sandbox, card["id"])) == 1


async def test_a_deleted_agents_card_declines_as_agent_not_active(inprocess: Sandbox) -> None:
    agent = ok(await inprocess.client.post("/v1/agents", json={"name": "gone"}))
    card = await new_card(inprocess, agent_id=agent["id"])
    ok(await inprocess.client.delete(f"/v1/agents/{agent['id']}"))
    outcome = await swipe(inprocess, card["id"])
    assert (outcome["decision"], outcome["reason"]) == ("decline", "agent_not_active")
    assert outcome["current_daily_spend_cents"] == 0


# --- the daily limit ------------------------------------------------------------------------


async def test_spend_accumulates_and_exactly_reaching_the_daily_limit_approves(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox, daily_limit_cents=1_000)
    first = await swipe(sandbox, card["id"], 400)
    assert (first["decision"], first["current_daily_spend_cents"]) == ("approve", 400)
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 400

    last = await swipe(sandbox, card["id"], 600)
    assert (last["reason"], last["current_daily_spend_cents"]) == ("approved", 1_000)
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 1_000


async def test_one_cent_over_the_daily_limit_declines_and_leaves_spend_unchanged(
    inprocess: Sandbox,
) -> None:
    card = await new_card(inprocess, daily_limit_cents=1_000)
    await swipe(inprocess, card["id"], 999)
    over = await swipe(inprocess, card["id"], 2)
    assert (over["decision"], over["reason"]) == ("decline", "daily_limit_exceeded")
    assert over["current_daily_spend_cents"] == 999
    assert (await get_card(inprocess, card["id"]))["current_daily_spend_cents"] == 999
    assert (await swipe(inprocess, card["id"], 1))["current_daily_spend_cents"] == 1_000


async def test_spend_resets_at_midnight_utc_and_not_a_second_before(sandbox: Sandbox) -> None:
    card = await new_card(sandbox, daily_limit_cents=1_000)
    await swipe(sandbox, card["id"], 1_000)

    sandbox.clock.advance(hours=16, minutes=59, seconds=59)  # 23:59:59 UTC, same day
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 1_000
    assert (await swipe(sandbox, card["id"], 1))["reason"] == "daily_limit_exceeded"

    sandbox.clock.advance(seconds=1)  # 00:00:00 UTC the next day
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 0
    fresh = await swipe(sandbox, card["id"], 1_000)
    assert (fresh["reason"], fresh["current_daily_spend_cents"]) == ("approved", 1_000)


async def test_reset_daily_zeroes_spend_so_the_card_can_spend_again(sandbox: Sandbox) -> None:
    card = await new_card(sandbox, daily_limit_cents=500)
    await swipe(sandbox, card["id"], 500)
    assert (await swipe(sandbox, card["id"], 1))["reason"] == "daily_limit_exceeded"

    reset = ok(await sandbox.client.post(f"/v1/_test/cards/{card['id']}/reset_daily"))
    assert reset == card  # same policy, spend back to 0
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 0
    assert (await swipe(sandbox, card["id"], 500))["reason"] == "approved"
