"""The sandbox's card API: policy, freeze, delete, the ledger, and the rules for amounts and
request bodies.

The small helpers at the top are shared with ``test_api_accounts`` and ``test_decisions``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support import FakeClock, Sandbox

pytestmark = pytest.mark.anyio

JSON = dict[str, Any]

CARD_KEYS = {
    "id",
    "agent_id",
    "last4",
    "daily_limit_cents",
    "per_auth_max_cents",
    "mcc_allowlist",
    "frozen",
    "current_daily_spend_cents",
    "created_at",
    "nickname",  # ours: the documented create field, echoed back
}
LEDGER_KEYS = {
    "id",
    "card_id",
    "decided_at",
    "decision",
    "reason",
    "amount_cents",
    "merchant",
    "mcc",
    "current_daily_spend_cents_after",
}
_ULID = "[0-9A-HJKMNP-TV-Z]{26}"


# --- shared helpers -------------------------------------------------------------------------


def assert_id(value: object, prefix: str) -> None:
    assert isinstance(value, str)
    assert re.fullmatch(f"{prefix}_{_ULID}", value), value


def stamp(clock: FakeClock) -> str:
    """The clock's time as the API prints it (UTC, second precision, ``Z``)."""
    return clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")


def error_of(response: httpx.Response, status: int) -> JSON:
    """The ``error`` object of a JSON error response with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: JSON = body["error"]
    assert {"type", "code", "message"} <= set(error)
    return error


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def new_card(sb: Sandbox, **fields: Any) -> JSON:
    body = {"agent_id": sb.credentials.agent_id, "daily_limit_cents": 10_000, **fields}
    card: JSON = ok(await sb.client.post("/v1/cards", json=body))
    return card


async def get_card(sb: Sandbox, card_id: str) -> JSON:
    card: JSON = ok(await sb.client.get(f"/v1/cards/{card_id}"))
    return card


def swipe_body(card_id: str, amount_cents: int = 100, **extra: Any) -> JSON:
    return {
        "card_id": card_id,
        "amount_cents": amount_cents,
        "merchant": "Acme Corp",
        "mcc": "saas",
        **extra,
    }


async def swipe(sb: Sandbox, card_id: str, amount_cents: int = 100, **extra: Any) -> JSON:
    """Swipes and returns ``agentcard_outcome``."""
    body = ok(
        await sb.client.post("/v1/_test/swipe", json=swipe_body(card_id, amount_cents, **extra))
    )
    outcome: JSON = body["agentcard_outcome"]
    assert body["approved"] is (outcome["decision"] == "approve")
    return outcome


async def ledger(sb: Sandbox, card_id: str) -> list[JSON]:
    """The card's whole ledger, newest first."""
    page = ok(await sb.client.get(f"/v1/cards/{card_id}/ledger", params={"limit": 500}))
    assert page["has_more"] is False
    entries: list[JSON] = page["data"]
    return entries


async def walk(sb: Sandbox, path: str, limit: int) -> list[JSON]:
    """Follows ``next_cursor`` from the first page to the last; returns every entry seen."""
    seen: list[JSON] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = ok(await sb.client.get(path, params=params))
        assert set(page) == {"data", "has_more", "next_cursor"}
        assert len(page["data"]) <= limit
        assert page["data"] or cursor is None, "has_more promised a page that is empty"
        seen += page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return seen
        assert len(page["data"]) == limit
        assert page["next_cursor"] == page["data"][-1]["id"]
        cursor = page["next_cursor"]


# --- cards ----------------------------------------------------------------------------------


async def test_a_new_card_has_exactly_the_documented_fields_and_the_requested_policy(
    sandbox: Sandbox,
) -> None:
    card = await new_card(
        sandbox,
        daily_limit_cents=50_000,
        per_auth_max_cents=25_000,
        mcc_allowlist=["travel", "lodging"],
        nickname="Q2 ads card",
    )
    assert set(card) == CARD_KEYS
    assert_id(card["id"], "card")
    assert card["agent_id"] == sandbox.credentials.agent_id
    assert re.fullmatch(r"\d{4}", card["last4"])
    assert card["daily_limit_cents"] == 50_000
    assert card["per_auth_max_cents"] == 25_000
    assert card["mcc_allowlist"] == ["travel", "lodging"]
    assert card["nickname"] == "Q2 ads card"
    assert card["frozen"] is False
    assert card["current_daily_spend_cents"] == 0
    assert card["created_at"] == stamp(sandbox.clock)
    assert await get_card(sandbox, card["id"]) == card


async def test_per_auth_max_defaults_to_the_daily_limit_when_omitted_or_null(
    inprocess: Sandbox,
) -> None:
    omitted = await new_card(inprocess, daily_limit_cents=7_000)
    null = await new_card(inprocess, daily_limit_cents=8_000, per_auth_max_cents=None)
    assert omitted["per_auth_max_cents"] == 7_000
    assert null["per_auth_max_cents"] == 8_000
    assert omitted["mcc_allowlist"] == []
    assert omitted["nickname"] is None


async def test_allowlist_tags_are_trimmed_and_deduplicated_and_malformed_tags_refused(
    inprocess: Sandbox,
) -> None:
    card = await new_card(inprocess, mcc_allowlist=["travel", " travel ", "saas"])
    assert card["mcc_allowlist"] == ["travel", "saas"]

    body = {"agent_id": inprocess.credentials.agent_id, "daily_limit_cents": 100}
    for tags, param in ((["bad tag!"], "mcc_allowlist.0"), (["saas", ""], "mcc_allowlist.1")):
        response = await inprocess.client.post("/v1/cards", json=body | {"mcc_allowlist": tags})
        assert error_of(response, 400)["param"] == param
    assert ok(await inprocess.client.get("/v1/cards"))["data"] == [card]


async def test_allowlist_tags_in_upper_case_are_lowercased_not_refused(inprocess: Sandbox) -> None:
    card = await new_card(inprocess, mcc_allowlist=["Travel", "travel", "SAAS"])
    assert card["mcc_allowlist"] == ["travel", "saas"]
    patched = ok(
        await inprocess.client.patch(f"/v1/cards/{card['id']}", json={"mcc_allowlist": ["Lodging"]})
    )
    assert patched["mcc_allowlist"] == ["lodging"]


async def test_listing_cards_returns_the_live_cards_in_a_data_envelope(sandbox: Sandbox) -> None:
    first, second = await new_card(sandbox), await new_card(sandbox)
    listed = ok(await sandbox.client.get("/v1/cards"))
    assert listed["has_more"] is False
    assert {c["id"] for c in listed["data"]} == {first["id"], second["id"]}
    assert all(set(c) == CARD_KEYS for c in listed["data"])

    ok(await sandbox.client.delete(f"/v1/cards/{first['id']}"))
    listed = ok(await sandbox.client.get("/v1/cards"))
    assert [c["id"] for c in listed["data"]] == [second["id"]]


async def test_an_unknown_card_is_a_404_for_every_card_endpoint(sandbox: Sandbox) -> None:
    missing = "card_00000000000000000000000000"
    calls = [
        ("GET", f"/v1/cards/{missing}", None),
        ("PATCH", f"/v1/cards/{missing}", {"daily_limit_cents": 100}),
        ("DELETE", f"/v1/cards/{missing}", None),
        ("POST", f"/v1/cards/{missing}/freeze", None),
        ("POST", f"/v1/cards/{missing}/unfreeze", None),
        ("GET", f"/v1/cards/{missing}/ledger", None),
        ("POST", f"/v1/_test/cards/{missing}/reset_daily", None),
        ("POST", "/v1/_test/swipe", swipe_body(missing)),
    ]
    for method, path, body in calls:
        response = await sandbox.client.request(method, path, json=body)
        assert error_of(response, 404)["code"] == "resource_missing", (method, path)


async def test_a_patch_changes_only_the_fields_sent(sandbox: Sandbox) -> None:
    card = await new_card(
        sandbox, daily_limit_cents=5_000, per_auth_max_cents=1_000, mcc_allowlist=["saas"],
        nickname="ads",
    )  # fmt: skip
    path = f"/v1/cards/{card['id']}"

    patched = ok(await sandbox.client.patch(path, json={"daily_limit_cents": 9_000}))
    assert patched == card | {"daily_limit_cents": 9_000}

    patched = ok(
        await sandbox.client.patch(path, json={"mcc_allowlist": ["travel", "lodging", "travel"]})
    )
    assert patched == card | {"daily_limit_cents": 9_000, "mcc_allowlist": ["travel", "lodging"]}

    patched = ok(await sandbox.client.patch(path, json={"per_auth_max_cents": 2_000}))
    assert patched["per_auth_max_cents"] == 2_000

    patched = ok(await sandbox.client.patch(path, json={"nickname": None}))
    assert patched["nickname"] is None
    assert await get_card(sandbox, card["id"]) == patched
    assert (patched["daily_limit_cents"], patched["mcc_allowlist"]) == (
        9_000,
        ["travel", "lodging"],
    )


async def test_freezing_declines_swipes_until_unfrozen(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    path = f"/v1/cards/{card['id']}"

    frozen = ok(await sandbox.client.post(f"{path}/freeze"))
    assert frozen == card | {"frozen": True}
    assert ok(await sandbox.client.post(f"{path}/freeze"))["frozen"] is True  # idempotent
    assert (await get_card(sandbox, card["id"]))["frozen"] is True
    assert (await swipe(sandbox, card["id"]))["reason"] == "card_frozen"

    unfrozen = ok(await sandbox.client.post(f"{path}/unfreeze"))
    assert unfrozen == card | {"frozen": False}
    assert (await swipe(sandbox, card["id"]))["reason"] == "approved"


async def test_a_deleted_card_is_gone_declines_swipes_and_keeps_its_ledger(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox)
    approved = await swipe(sandbox, card["id"], 300)
    path = f"/v1/cards/{card['id']}"

    assert ok(await sandbox.client.delete(path)) == {"id": card["id"], "deleted": True}
    assert error_of(await sandbox.client.get(path), 404)["code"] == "resource_missing"
    assert error_of(await sandbox.client.delete(path), 404)["code"] == "resource_missing"
    assert error_of(await sandbox.client.patch(path, json={"nickname": "x"}), 404)

    late = await swipe(sandbox, card["id"], 100)
    assert (late["decision"], late["reason"]) == ("decline", "card_not_active")
    entries = await ledger(sandbox, card["id"])
    assert [e["id"] for e in entries] == [late["auth_id"], approved["auth_id"]]


async def test_an_account_holds_at_most_25_cards_as_usage_reports(inprocess: Sandbox) -> None:
    cards = [await new_card(inprocess) for _ in range(25)]
    usage = ok(await inprocess.client.get("/v1/usage"))
    assert usage["cards"] == {"used": 25, "limit": 25, "remaining": 0}

    body = {"agent_id": inprocess.credentials.agent_id, "daily_limit_cents": 100}
    response = await inprocess.client.post("/v1/cards", json=body)
    assert error_of(response, 422)["code"] == "card_limit_reached"
    assert len(ok(await inprocess.client.get("/v1/cards"))["data"]) == 25

    ok(await inprocess.client.delete(f"/v1/cards/{cards[0]['id']}"))
    assert ok(await inprocess.client.get("/v1/usage"))["cards"]["remaining"] == 1
    await new_card(inprocess)


# --- ledger ---------------------------------------------------------------------------------


async def test_ledger_entries_have_the_documented_fields_newest_first(sandbox: Sandbox) -> None:
    card = await new_card(sandbox, mcc_allowlist=["travel"])
    approved = await swipe(sandbox, card["id"], 15_00, merchant="Delta Airlines", mcc="travel")
    sandbox.clock.advance(minutes=1)
    declined = await swipe(sandbox, card["id"], 8_00, merchant="Starbucks", mcc="food")

    entries = await ledger(sandbox, card["id"])
    assert [set(e) for e in entries] == [LEDGER_KEYS, LEDGER_KEYS]
    newest, oldest = entries
    assert_id(newest["id"], "auth")
    assert newest == {
        "id": declined["auth_id"],
        "card_id": card["id"],
        "decided_at": stamp(sandbox.clock),
        "decision": "decline",
        "reason": "category_not_in_allowlist",
        "amount_cents": 8_00,
        "merchant": "Starbucks",
        "mcc": "food",
        "current_daily_spend_cents_after": 15_00,
    }
    assert oldest == {
        "id": approved["auth_id"],
        "card_id": card["id"],
        "decided_at": "2026-05-11T07:00:00Z",
        "decision": "approve",
        "reason": "approved",
        "amount_cents": 15_00,
        "merchant": "Delta Airlines",
        "mcc": "travel",
        "current_daily_spend_cents_after": 15_00,
    }


async def eight_decisions(sb: Sandbox) -> tuple[str, list[str]]:
    """A card with eight ledger entries, approvals and declines mixed; returns its id and the
    entry ids newest first."""
    card = await new_card(sb, mcc_allowlist=["saas"])
    ids = [
        (await swipe(sb, card["id"], 100 + i, mcc="saas" if i % 2 else "travel"))["auth_id"]
        for i in range(8)
    ]
    return card["id"], ids[::-1]


async def test_the_cursor_walks_every_ledger_entry_exactly_once_newest_first(
    sandbox: Sandbox,
) -> None:
    card_id, expected = await eight_decisions(sandbox)
    path = f"/v1/cards/{card_id}/ledger"
    assert [e["id"] for e in await walk(sandbox, path, 3)] == expected

    first = ok(await sandbox.client.get(path, params={"limit": 3}))
    assert ([e["id"] for e in first["data"]], first["has_more"]) == (expected[:3], True)
    everything = ok(await sandbox.client.get(path))  # the default page holds 50
    assert ([e["id"] for e in everything["data"]], everything["has_more"]) == (expected, False)
    assert everything["next_cursor"] is None


async def test_every_page_size_walks_the_same_entries_in_the_same_order(
    inprocess: Sandbox,
) -> None:
    card_id, expected = await eight_decisions(inprocess)
    path = f"/v1/cards/{card_id}/ledger"
    for limit in (1, 2, 4, 7, 8, 9, 500):
        assert [e["id"] for e in await walk(inprocess, path, limit)] == expected, limit


async def test_the_agent_ledger_spans_all_the_agents_cards_and_only_them(sandbox: Sandbox) -> None:
    other_agent = ok(await sandbox.client.post("/v1/agents", json={"name": "other"}))
    one, two = await new_card(sandbox), await new_card(sandbox)
    elsewhere = await new_card(sandbox, agent_id=other_agent["id"])
    ids = []
    for card in (one, two, elsewhere, two, one):
        ids.append(((await swipe(sandbox, card["id"]))["auth_id"], card["id"]))

    mine = [auth for auth, card in ids if card != elsewhere["id"]][::-1]
    path = f"/v1/agents/{sandbox.credentials.agent_id}/ledger"
    for limit in (2, 50):
        entries = await walk(sandbox, path, limit)
        assert [e["id"] for e in entries] == mine
        assert all(set(e) == LEDGER_KEYS for e in entries)
    theirs = await walk(sandbox, f"/v1/agents/{other_agent['id']}/ledger", 50)
    assert [e["id"] for e in theirs] == [ids[2][0]]


async def test_the_ledger_can_be_filtered_by_decision(inprocess: Sandbox) -> None:
    card = await new_card(inprocess, mcc_allowlist=["saas"])
    approved = await swipe(inprocess, card["id"])
    declined = await swipe(inprocess, card["id"], mcc="food")
    path = f"/v1/cards/{card['id']}/ledger"
    only = ok(await inprocess.client.get(path, params={"decision": "decline"}))["data"]
    assert [e["id"] for e in only] == [declined["auth_id"]]
    only = ok(await inprocess.client.get(path, params={"decision": "approve"}))["data"]
    assert [e["id"] for e in only] == [approved["auth_id"]]
    response = await inprocess.client.get(path, params={"decision": "maybe"})
    assert error_of(response, 400)["param"] == "decision"


async def test_bad_ledger_limits_and_cursors_are_400s_naming_the_parameter(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox)
    await swipe(sandbox, card["id"])
    path = f"/v1/cards/{card['id']}/ledger"
    for limit in ("0", "501", "-1", "abc", "2.5", ""):
        response = await sandbox.client.get(path, params={"limit": limit})
        assert error_of(response, 400)["param"] == "limit", limit
    response = await sandbox.client.get(path, params={"cursor": "auth_nope"})
    assert error_of(response, 400)["param"] == "cursor"
    assert len(ok(await sandbox.client.get(path, params={"limit": "500"}))["data"]) == 1


async def test_a_limit_of_non_ascii_digits_is_a_400_not_a_server_error(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    response = await sandbox.client.get(f"/v1/cards/{card['id']}/ledger", params={"limit": "²"})
    assert error_of(response, 400)["param"] == "limit"


# --- amounts and request bodies -------------------------------------------------------------

BAD_AMOUNTS: list[Any] = [5.0, 5.5, "500", True, False, 0, -1, 10**13, None, [500], {"v": 1}]
MISSING = object()
AMOUNT_FIELDS = [
    ("swipe", "amount_cents"),
    ("create", "daily_limit_cents"),
    ("create", "per_auth_max_cents"),
    ("patch", "daily_limit_cents"),
    ("patch", "per_auth_max_cents"),
]


async def send_amount(
    sb: Sandbox, card: JSON, where: str, field: str, value: Any
) -> httpx.Response:
    """The request ``where`` with ``field`` set to ``value`` (or left out, for ``MISSING``)."""
    if where == "swipe":
        body = swipe_body(card["id"])
    elif where == "create":
        body = {"agent_id": sb.credentials.agent_id, "daily_limit_cents": 1_000}
    else:
        body = {}
    body.pop(field, None)
    if value is not MISSING:
        body[field] = value
    if where == "patch":
        return await sb.client.patch(f"/v1/cards/{card['id']}", json=body)
    return await sb.client.post("/v1/_test/swipe" if where == "swipe" else "/v1/cards", json=body)


def assert_bad_amount(response: httpx.Response, field: str, value: Any) -> None:
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error", value
    assert error["param"] == field, value
    if value is MISSING:
        assert error["code"] == "parameter_missing"
    elif value is None:  # a null is refused as invalid, whichever code says so
        assert error["code"] in {"invalid_amount", "parameter_invalid"}
    else:
        assert error["code"] == "invalid_amount", value


async def assert_nothing_changed(sb: Sandbox, card: JSON) -> None:
    assert ok(await sb.client.get("/v1/cards"))["data"] == [card]
    assert await ledger(sb, card["id"]) == []


async def test_dollar_floats_and_numeric_strings_are_refused_as_amounts(sandbox: Sandbox) -> None:
    card = await new_card(sandbox, daily_limit_cents=1_000, per_auth_max_cents=500)
    for where, field in AMOUNT_FIELDS:
        for value in (5.0, "500"):
            response = await send_amount(sandbox, card, where, field, value)
            assert_bad_amount(response, field, value)
    await assert_nothing_changed(sandbox, card)


@pytest.mark.parametrize(("where", "field"), AMOUNT_FIELDS)
async def test_every_non_positive_integer_amount_is_a_400_naming_the_field_and_changes_nothing(
    inprocess: Sandbox, where: str, field: str
) -> None:
    card = await new_card(inprocess, daily_limit_cents=1_000, per_auth_max_cents=500)
    values = list(BAD_AMOUNTS)
    if field in ("amount_cents", "daily_limit_cents") and where != "patch":
        values.append(MISSING)  # required; per_auth_max_cents may be left out (see above)
    if (where, field) == ("create", "per_auth_max_cents"):
        values.remove(None)  # null means "default to the daily limit", as tested above
    for value in values:
        assert_bad_amount(await send_amount(inprocess, card, where, field, value), field, value)
    await assert_nothing_changed(inprocess, card)
    assert ok(await inprocess.client.get("/v1/usage"))["cards"]["used"] == 1


async def test_a_rejected_patch_applies_none_of_its_valid_fields(inprocess: Sandbox) -> None:
    card = await new_card(inprocess, mcc_allowlist=["saas"], nickname="before")
    for bad in ({"per_auth_max_cents": None}, {"daily_limit_cents": 0}):
        body = {"mcc_allowlist": ["travel"], "nickname": "after", "daily_limit_cents": 5} | bad
        assert error_of(await inprocess.client.patch(f"/v1/cards/{card['id']}", json=body), 400)
    assert await get_card(inprocess, card["id"]) == card


async def test_amounts_from_one_cent_to_ten_billion_dollars_are_accepted(
    inprocess: Sandbox,
) -> None:
    card = await new_card(inprocess, daily_limit_cents=10**12, per_auth_max_cents=1)
    assert (card["daily_limit_cents"], card["per_auth_max_cents"]) == (10**12, 1)
    assert (await swipe(inprocess, card["id"], 1))["reason"] == "approved"
    big = ok(
        await inprocess.client.patch(f"/v1/cards/{card['id']}", json={"per_auth_max_cents": 10**12})
    )
    assert big["per_auth_max_cents"] == 10**12
    assert (await swipe(inprocess, card["id"], 10**12 - 1))["current_daily_spend_cents"] == 10**12


async def test_unknown_body_fields_are_400_parameter_unknown(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    agent = sandbox.credentials.agent_id
    calls: list[tuple[str, str, JSON, str]] = [
        ("POST", "/v1/cards", {"agent_id": agent, "daily_limit_cents": 1, "limit": 5}, "limit"),
        ("PATCH", f"/v1/cards/{card['id']}", {"mcc_blocklist": ["food"]}, "mcc_blocklist"),
        ("POST", "/v1/_test/swipe", swipe_body(card["id"]) | {"amount": 100}, "amount"),
        ("POST", "/v1/agents", {"name": "x", "role": "admin"}, "role"),
        ("PATCH", f"/v1/agents/{agent}", {"status": "active"}, "status"),
        ("PATCH", "/v1/owner", {"suspended": False}, "suspended"),
        ("POST", "/v1/webhooks", {"url": "https://example.com/h", "events": []}, "events"),
        ("POST", "/v0/agent/sign-up", {"human_email": "a@example.com", "plan": "x"}, "plan"),
    ]
    for method, path, body, field in calls:
        error = error_of(await sandbox.client.request(method, path, json=body), 400)
        assert (error["code"], error["param"]) == ("parameter_unknown", field), (method, path)
    assert ok(await sandbox.client.get("/v1/agents"))["data"][0]["status"] == "active"
    assert ok(await sandbox.client.get("/v1/webhooks")) == {"url": None}
    assert ok(await sandbox.client.get("/v1/cards"))["data"] == [card]


async def test_a_body_that_is_not_a_json_object_within_64_levels_is_a_400(
    sandbox: Sandbox,
) -> None:
    headers = {"content-type": "application/json"}
    for content, code in (
        (b"not json", "body_not_json"),
        (b'{"agent_id": ', "body_not_json"),
        (b"[1, 2]", "body_not_object"),
        (b'"card"', "body_not_object"),
        # Nesting Python's parser would recurse on (once a 500 with a traceback per request).
        (b'{"agent_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body_not_json"),
        (b'{"agent_id": ' + b"[" * 64 + b"]" * 64 + b"}", "body_not_json"),
    ):
        for path in ("/v1/cards", "/v1/_test/swipe", "/v0/agent/sign-up"):
            response = await sandbox.client.post(path, content=content, headers=headers)
            assert error_of(response, 400)["code"] == code, (path, content)
    assert ok(await sandbox.client.get("/v1/cards"))["data"] == []
