"""The sandbox's account API: sign-up and verify, usage, agents, the owner, API keys, webhooks,
authentication and routing."""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from agentcard_mcp.sandbox.app import ROUTES
from tests.sandbox.test_api_cards import (
    CARD_KEYS,
    JSON,
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

INBOX = "agentcard_mcp.sandbox.inbox"
AGENT_KEYS = {"id", "name", "description", "status", "created_at"}
STATS_KEYS = {
    "total_auths",
    "auths_last_24h",
    "auths_last_7d",
    "auths_last_30d",
    "total_volume_cents",
    "volume_last_24h_cents",
    "volume_last_30d_cents",
    "approve_rate",
    "decline_reasons_24h",
}
_KEY = re.compile(r"ac_test_[a-z0-9]{32}")


def code_sent_to(caplog: pytest.LogCaptureFixture, email: str) -> str:
    """The newest 6-digit code the sandbox "emailed" (logged to its inbox logger) to ``email``."""
    email = email.strip().lower()
    codes = [
        match.group(1)
        for record in caplog.records
        if record.name == INBOX
        and email in (message := record.getMessage())
        and (match := re.search(r"\b(\d{6})\s*$", message))
    ]
    assert codes, f"no code was sent to {email}"
    return codes[-1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def sign_up(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, email: str, **extra: Any
) -> tuple[JSON, str]:
    """Starts a sign-up; returns its response and the code from the inbox."""
    caplog.set_level(logging.INFO, logger=INBOX)
    started: JSON = ok(await client.post("/v0/agent/sign-up", json={"human_email": email, **extra}))
    return started, code_sent_to(caplog, email)


async def verify(client: httpx.AsyncClient, verification_id: str, code: str) -> httpx.Response:
    body = {"verification_id": verification_id, "otp_code": code}
    return await client.post("/v0/agent/verify", json=body)


@dataclass
class Owner:
    owner_id: str
    agent_id: str
    card_id: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def new_owner(sb: Sandbox, caplog: pytest.LogCaptureFixture, email: str) -> Owner:
    async with sb.anonymous() as anonymous:
        started, code = await sign_up(anonymous, caplog, email)
        made = ok(await verify(anonymous, started["verification_id"], code))
    return Owner(made["owner_id"], made["agent_id"], made["card_id"], made["api_key"])


# --- sign-up and verify ---------------------------------------------------------------------


async def test_sign_up_and_verify_need_no_key_and_provision_an_owner_agent_card_and_key(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    async with sandbox.anonymous() as anonymous:
        started, code = await sign_up(anonymous, caplog, "Human@Example.com", agent_name="scout")
        assert set(started) == {"verification_id", "human_email", "expires_at", "message"}
        assert_id(started["verification_id"], "ver")
        assert started["human_email"] == "human@example.com"
        in_ten_minutes = sandbox.clock.now + timedelta(minutes=10)
        assert started["expires_at"] == in_ten_minutes.strftime("%Y-%m-%dT%H:%M:%SZ")

        made = ok(await verify(anonymous, started["verification_id"], code))
    assert set(made) == {"owner_id", "agent_id", "card_id", "last4", "api_key"}
    assert_id(made["owner_id"], "own")
    assert_id(made["agent_id"], "agt")
    assert_id(made["card_id"], "card")
    assert re.fullmatch(r"\d{4}", made["last4"])
    assert _KEY.fullmatch(made["api_key"])
    assert made["owner_id"] != sandbox.credentials.owner_id

    auth = {"Authorization": f"Bearer {made['api_key']}"}
    card = ok(await sandbox.client.get(f"/v1/cards/{made['card_id']}", headers=auth))
    assert card == {
        "id": made["card_id"],
        "agent_id": made["agent_id"],
        "last4": made["last4"],
        "nickname": None,
        "daily_limit_cents": 10_000,  # $100/day
        "per_auth_max_cents": 10_000,
        "mcc_allowlist": [],  # no MCC restrictions
        "frozen": False,
        "current_daily_spend_cents": 0,
        "created_at": stamp(sandbox.clock),
    }
    agents = ok(await sandbox.client.get("/v1/agents", headers=auth))["data"]
    assert [(a["id"], a["name"], a["status"]) for a in agents] == [
        (made["agent_id"], "scout", "active")
    ]
    usage = ok(await sandbox.client.get("/v1/usage", headers=auth))
    assert usage["owner"]["id"] == made["owner_id"]
    assert usage["cards"] == {"used": 1, "limit": 25, "remaining": 24}


async def test_signing_up_an_email_that_has_an_account_is_a_409_whatever_its_case(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    await new_owner(sandbox, caplog, "taken@example.com")
    for email in ("taken@example.com", "TAKEN@example.COM", " taken@example.com "):
        response = await sandbox.client.post("/v0/agent/sign-up", json={"human_email": email})
        assert error_of(response, 409)["code"] == "account_exists", email
    response = await sandbox.client.post("/v0/agent/sign-up", json={"human_email": "free@x.io"})
    assert response.status_code == 200


async def test_a_malformed_email_or_code_is_a_400_and_an_unknown_verification_a_404(
    sandbox: Sandbox,
) -> None:
    for email in ("not-an-email", "a@b", "", "a b@example.com"):
        response = await sandbox.client.post("/v0/agent/sign-up", json={"human_email": email})
        assert error_of(response, 400)["param"] == "human_email", email
    response = await sandbox.client.post("/v0/agent/sign-up", json={})
    assert error_of(response, 400)["code"] == "parameter_missing"
    for code in ("12345", "1234567", "12a456", 123456):
        response = await sandbox.client.post(
            "/v0/agent/verify", json={"verification_id": "ver_x", "otp_code": code}
        )
        assert error_of(response, 400)["param"] == "otp_code", code
    response = await verify(sandbox.client, "ver_00000000000000000000000000", "123456")
    assert error_of(response, 404)["code"] == "resource_missing"


async def test_wrong_codes_are_counted_and_the_fifth_locks_the_verification(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    four, code4 = await sign_up(sandbox.client, caplog, "four@example.com")
    five, code5 = await sign_up(sandbox.client, caplog, "five@example.com")
    for _ in range(4):
        error = error_of(await verify(sandbox.client, four["verification_id"], wrong(code4)), 400)
        assert (error["code"], error["param"]) == ("code_invalid", "otp_code")
        error = error_of(await verify(sandbox.client, five["verification_id"], wrong(code5)), 400)
        assert error["code"] == "code_invalid"
    error = error_of(await verify(sandbox.client, five["verification_id"], wrong(code5)), 400)
    assert error["code"] == "code_invalid"

    assert ok(await verify(sandbox.client, four["verification_id"], code4))["owner_id"]
    locked = error_of(await verify(sandbox.client, five["verification_id"], code5), 400)
    assert locked["code"] == "code_locked"


async def test_a_code_works_for_ten_minutes_and_then_expires(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    early, early_code = await sign_up(sandbox.client, caplog, "early@example.com")
    late, late_code = await sign_up(sandbox.client, caplog, "late@example.com")
    sandbox.clock.advance(minutes=9, seconds=59)
    assert ok(await verify(sandbox.client, early["verification_id"], early_code))["api_key"]
    sandbox.clock.advance(minutes=1, seconds=1)  # 11 minutes after sign-up
    error = error_of(await verify(sandbox.client, late["verification_id"], late_code), 400)
    assert error["code"] == "code_expired"


async def test_a_code_can_be_used_only_once(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    started, code = await sign_up(sandbox.client, caplog, "once@example.com")
    made = ok(await verify(sandbox.client, started["verification_id"], code))
    error = error_of(await verify(sandbox.client, started["verification_id"], code), 400)
    assert error["code"] == "code_used"
    auth = {"Authorization": f"Bearer {made['api_key']}"}
    assert len(ok(await sandbox.client.get("/v1/agents", headers=auth))["data"]) == 1


async def test_of_two_pending_sign_ups_for_one_email_only_the_first_verified_makes_an_account(
    inprocess: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    first, first_code = await sign_up(inprocess.client, caplog, "twice@example.com")
    second, second_code = await sign_up(inprocess.client, caplog, "twice@example.com")
    assert ok(await verify(inprocess.client, second["verification_id"], second_code))
    error = error_of(await verify(inprocess.client, first["verification_id"], first_code), 409)
    assert error["code"] == "account_exists"


# --- usage ----------------------------------------------------------------------------------


async def test_usage_has_the_documented_shape_and_counts_auths_volume_and_declines(
    sandbox: Sandbox,
) -> None:
    usage = ok(await sandbox.client.get("/v1/usage"))
    assert set(usage) == {"plan", "owner", "cards", "stats", "spend_by_day"}
    assert usage["plan"] == {"name": "payg"}
    assert usage["owner"] == {"id": sandbox.credentials.owner_id, "deposit_balance_cents": 100_000}
    assert usage["cards"] == {"used": 0, "limit": 25, "remaining": 25}
    assert usage["stats"] == dict.fromkeys(STATS_KEYS, 0) | {
        "approve_rate": None,
        "decline_reasons_24h": {},
    }

    card = await new_card(sandbox, mcc_allowlist=["saas"])
    await swipe(sandbox, card["id"], 100)
    await swipe(sandbox, card["id"], 250)
    await swipe(sandbox, card["id"], 900, mcc="food")
    ok(await sandbox.client.post(f"/v1/cards/{card['id']}/freeze"))
    await swipe(sandbox, card["id"], 400)
    await swipe(sandbox, card["id"], 500)

    usage = ok(await sandbox.client.get("/v1/usage"))
    assert usage["cards"] == {"used": 1, "limit": 25, "remaining": 24}
    assert usage["stats"] == {
        "total_auths": 5,
        "auths_last_24h": 5,
        "auths_last_7d": 5,
        "auths_last_30d": 5,
        "total_volume_cents": 350,
        "volume_last_24h_cents": 350,
        "volume_last_30d_cents": 350,
        "approve_rate": 0.4,
        "decline_reasons_24h": {"card_frozen": 2, "category_not_in_allowlist": 1},
    }


async def test_usage_windows_roll_forward_with_the_clock(inprocess: Sandbox) -> None:
    card = await new_card(inprocess)
    await swipe(inprocess, card["id"], 100)
    await swipe(inprocess, card["id"], 200, network_decline="suspected_fraud")
    inprocess.clock.advance(days=3)
    await swipe(inprocess, card["id"], 300)

    def windows(usage: JSON) -> tuple[int, ...]:
        names = ["total_auths", "auths_last_24h", "auths_last_7d", "auths_last_30d"]
        names += ["total_volume_cents", "volume_last_24h_cents", "volume_last_30d_cents"]
        return tuple(usage["stats"][name] for name in names)

    usage = ok(await inprocess.client.get("/v1/usage"))
    assert windows(usage) == (3, 1, 3, 3, 400, 300, 400)
    assert usage["stats"]["decline_reasons_24h"] == {}  # the decline was three days ago
    assert usage["stats"]["approve_rate"] == 0.6667

    inprocess.clock.advance(days=5)  # 8 days after the first two, 5 after the third
    assert windows(ok(await inprocess.client.get("/v1/usage"))) == (3, 0, 1, 3, 400, 0, 400)
    inprocess.clock.advance(days=25)  # 33 and 30 days
    assert windows(ok(await inprocess.client.get("/v1/usage"))) == (3, 0, 0, 0, 400, 0, 0)


# --- agents ---------------------------------------------------------------------------------


async def test_agents_can_be_created_listed_read_and_patched_field_by_field(
    sandbox: Sandbox,
) -> None:
    starter = sandbox.credentials.agent_id
    created = ok(
        await sandbox.client.post("/v1/agents", json={"name": "travel-bot", "description": "Fly"})
    )
    assert set(created) == AGENT_KEYS
    assert_id(created["id"], "agt")
    assert created == {
        "id": created["id"],
        "name": "travel-bot",
        "description": "Fly",
        "status": "active",
        "created_at": stamp(sandbox.clock),
    }
    listed = ok(await sandbox.client.get("/v1/agents"))
    assert listed["has_more"] is False
    assert [a["id"] for a in listed["data"]] == [starter, created["id"]]
    path = f"/v1/agents/{created['id']}"
    assert ok(await sandbox.client.get(path)) == created

    patched = ok(await sandbox.client.patch(path, json={"description": "Books hotels too"}))
    assert patched == created | {"description": "Books hotels too"}
    patched = ok(await sandbox.client.patch(path, json={"name": "trip-bot"}))
    assert patched == created | {"description": "Books hotels too", "name": "trip-bot"}
    patched = ok(await sandbox.client.patch(path, json={"description": None}))
    assert patched["description"] is None
    assert ok(await sandbox.client.get(path)) == patched


async def test_an_agent_needs_a_non_blank_name(inprocess: Sandbox) -> None:
    for body, code in (({}, "parameter_missing"), ({"name": "   "}, "parameter_invalid")):
        error = error_of(await inprocess.client.post("/v1/agents", json=body), 400)
        assert (error["param"], error["code"]) == ("name", code)
    path = f"/v1/agents/{inprocess.credentials.agent_id}"
    assert error_of(await inprocess.client.patch(path, json={"name": ""}), 400)["param"] == "name"
    assert len(ok(await inprocess.client.get("/v1/agents"))["data"]) == 1


async def test_patching_an_agents_name_to_null_is_a_400_not_a_server_error(
    inprocess: Sandbox,
) -> None:
    path = f"/v1/agents/{inprocess.credentials.agent_id}"
    before = ok(await inprocess.client.get(path))
    assert error_of(await inprocess.client.patch(path, json={"name": None}), 400)["param"] == "name"
    assert ok(await inprocess.client.get(path)) == before


async def test_a_suspended_agents_cards_decline_until_it_is_resumed(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    path = f"/v1/agents/{sandbox.credentials.agent_id}"
    suspended = ok(await sandbox.client.post(f"{path}/suspend"))
    assert suspended["status"] == "suspended"
    assert ok(await sandbox.client.get(path))["status"] == "suspended"
    assert (await swipe(sandbox, card["id"]))["reason"] == "agent_not_active"

    assert ok(await sandbox.client.post(f"{path}/resume"))["status"] == "active"
    assert (await swipe(sandbox, card["id"]))["reason"] == "approved"


async def test_deleting_an_agent_deletes_its_cards_but_not_other_agents_cards(
    sandbox: Sandbox,
) -> None:
    doomed = ok(await sandbox.client.post("/v1/agents", json={"name": "doomed"}))
    card = await new_card(sandbox, agent_id=doomed["id"])
    approved = await swipe(sandbox, card["id"])
    survivor = await new_card(sandbox)
    path = f"/v1/agents/{doomed['id']}"

    assert ok(await sandbox.client.delete(path)) == {"id": doomed["id"], "deleted": True}
    assert error_of(await sandbox.client.get(path), 404)["code"] == "resource_missing"
    assert error_of(await sandbox.client.delete(path), 404)["code"] == "resource_missing"
    assert doomed["id"] not in [a["id"] for a in ok(await sandbox.client.get("/v1/agents"))["data"]]
    assert error_of(await sandbox.client.get(f"/v1/cards/{card['id']}"), 404)
    assert ok(await sandbox.client.get("/v1/cards"))["data"] == [survivor]
    assert ok(await sandbox.client.get("/v1/usage"))["cards"]["used"] == 1

    late = await swipe(sandbox, card["id"])
    assert (late["decision"], late["reason"]) == ("decline", "agent_not_active")
    assert [e["id"] for e in await ledger(sandbox, card["id"])] == [
        late["auth_id"],
        approved["auth_id"],
    ]
    response = await sandbox.client.post(
        "/v1/cards", json={"agent_id": doomed["id"], "daily_limit_cents": 100}
    )
    assert error_of(response, 404)["code"] == "resource_missing"
    assert (await swipe(sandbox, survivor["id"]))["reason"] == "approved"


async def test_an_unknown_agent_is_a_404_for_every_agent_endpoint(sandbox: Sandbox) -> None:
    path = "/v1/agents/agt_00000000000000000000000000"
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("DELETE", "", None),
        ("POST", "/suspend", None),
        ("POST", "/resume", None),
        ("GET", "/ledger", None),
    ):
        response = await sandbox.client.request(method, path + suffix, json=body)
        assert error_of(response, 404)["code"] == "resource_missing", (method, suffix)


# --- the owner (sandbox: what the human would set in the dashboard) -------------------------


async def test_the_owner_shows_its_defaults_and_patches_blocklist_and_currencies(
    sandbox: Sandbox,
) -> None:
    owner = ok(await sandbox.client.get("/v1/owner"))
    assert owner == {
        "id": sandbox.credentials.owner_id,
        "suspended": False,
        "merchant_blocklist": [],
        "enabled_currencies": ["usd"],
        "deposit_balance_cents": 100_000,
    }
    patched = ok(
        await sandbox.client.patch("/v1/owner", json={"merchant_blocklist": ["Acme", "Acme"]})
    )
    assert patched == owner | {"merchant_blocklist": ["Acme"]}
    patched = ok(
        await sandbox.client.patch("/v1/owner", json={"enabled_currencies": ["usd", "eur", "eur"]})
    )
    assert patched == owner | {"merchant_blocklist": ["Acme"], "enabled_currencies": ["usd", "eur"]}
    assert ok(await sandbox.client.get("/v1/owner")) == patched

    for body, param in (
        ({"enabled_currencies": []}, "enabled_currencies"),
        ({"enabled_currencies": None}, "enabled_currencies"),
        ({"enabled_currencies": ["euro"]}, "enabled_currencies.0"),
        ({"merchant_blocklist": None}, "merchant_blocklist"),
        ({"merchant_blocklist": ["  "]}, "merchant_blocklist.0"),
    ):
        error = error_of(await sandbox.client.patch("/v1/owner", json=body), 400)
        assert error["param"] == param, body
    assert ok(await sandbox.client.get("/v1/owner")) == patched


async def test_suspending_the_owner_declines_every_card_until_resumed(sandbox: Sandbox) -> None:
    card = await new_card(sandbox)
    suspended = ok(await sandbox.client.post("/v1/_test/owner/suspend"))
    assert suspended["suspended"] is True
    assert ok(await sandbox.client.get("/v1/owner"))["suspended"] is True
    assert (await swipe(sandbox, card["id"]))["reason"] == "owner_suspended"
    assert ok(await sandbox.client.post("/v1/_test/owner/resume"))["suspended"] is False
    assert (await swipe(sandbox, card["id"]))["reason"] == "approved"


# --- API keys -------------------------------------------------------------------------------


async def test_a_minted_key_works_is_listed_without_its_secret_and_dies_when_revoked(
    sandbox: Sandbox,
) -> None:
    before = ok(await sandbox.client.get("/v1/api_keys"))["data"]
    assert len(before) == 1
    assert set(before[0]) == {"id", "prefix", "created_at", "revoked_at"}
    assert before[0]["revoked_at"] is None

    minted = ok(await sandbox.client.post("/v1/api_keys"))
    assert set(minted) == {"id", "api_key"}
    assert_id(minted["id"], "key")
    assert _KEY.fullmatch(minted["api_key"])
    auth = {"Authorization": f"Bearer {minted['api_key']}"}
    assert ok(await sandbox.client.get("/v1/owner", headers=auth))["id"] == (
        sandbox.credentials.owner_id
    )

    listed = await sandbox.client.get("/v1/api_keys")
    assert minted["api_key"] not in listed.text
    assert sandbox.credentials.api_key not in listed.text
    entry = next(k for k in listed.json()["data"] if k["id"] == minted["id"])
    assert minted["api_key"].startswith(entry["prefix"])
    assert entry["created_at"] == stamp(sandbox.clock)

    sandbox.clock.advance(minutes=5)
    revoked = ok(await sandbox.client.post(f"/v1/api_keys/{minted['id']}/revoke"))
    assert revoked == {"id": minted["id"], "revoked": True}
    error = error_of(await sandbox.client.get("/v1/owner", headers=auth), 401)
    assert error["type"] == "authentication_error"
    entry = next(
        k for k in ok(await sandbox.client.get("/v1/api_keys"))["data"] if k["id"] == minted["id"]
    )
    assert entry["revoked_at"] == stamp(sandbox.clock)
    assert ok(await sandbox.client.get("/v1/owner"))["id"] == sandbox.credentials.owner_id

    missing = await sandbox.client.post("/v1/api_keys/key_00000000000000000000000000/revoke")
    assert error_of(missing, 404)["code"] == "resource_missing"


# --- webhooks -------------------------------------------------------------------------------


async def test_the_webhook_secret_is_returned_only_when_the_url_is_set(sandbox: Sandbox) -> None:
    assert ok(await sandbox.client.get("/v1/webhooks")) == {"url": None}
    url = "https://hooks.example.com/agentcard"
    first = ok(await sandbox.client.post("/v1/webhooks", json={"url": url}))
    assert set(first) == {"url", "secret", "created_at"}
    assert (first["url"], first["created_at"]) == (url, stamp(sandbox.clock))
    assert re.fullmatch(r"whsec_[0-9a-f]{48}", first["secret"])

    shown = await sandbox.client.get("/v1/webhooks")
    assert ok(shown) == {"url": url, "created_at": stamp(sandbox.clock)}
    assert first["secret"] not in shown.text

    second = ok(await sandbox.client.post("/v1/webhooks", json={"url": url + "/v2"}))
    assert second["secret"] != first["secret"]
    for bad in ("ftp://example.com/x", "example.com/hook", "https://exa mple.com"):
        response = await sandbox.client.post("/v1/webhooks", json={"url": bad})
        assert error_of(response, 400)["param"] == "url", bad
    assert ok(await sandbox.client.get("/v1/webhooks"))["url"] == url + "/v2"


async def test_a_webhook_test_needs_a_url_and_reports_an_unreachable_one(sandbox: Sandbox) -> None:
    response = await sandbox.client.post("/v1/webhooks/test")
    assert error_of(response, 400)["code"] == "webhook_not_set"

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    ok(await sandbox.client.post("/v1/webhooks", json={"url": url}))
    result = ok(await sandbox.client.post("/v1/webhooks/test"))
    assert set(result) == {"event_id", "delivered", "status_code", "error"}
    assert_id(result["event_id"], "evt")
    assert (result["delivered"], result["status_code"]) == (False, None)
    assert result["error"]


# --- authentication and isolation -----------------------------------------------------------

OPEN_ROUTES = {"/v0/agent/sign-up", "/v0/agent/verify"}


def authenticated_routes() -> list[tuple[str, str]]:
    routes = []
    for route in ROUTES:
        assert isinstance(route, Route)
        if route.path in OPEN_ROUTES:
            continue
        path = re.sub(
            r"\{(\w+)_id\}", lambda m: f"{m.group(1)}_00000000000000000000000000", route.path
        )
        routes += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return routes


async def test_every_route_but_sign_up_and_verify_refuses_a_request_without_a_key(
    sandbox: Sandbox,
) -> None:
    routes = authenticated_routes()
    assert len(routes) == len(ROUTES) - len(OPEN_ROUTES)
    async with sandbox.anonymous() as anonymous:
        for method, path in routes:
            response = await anonymous.request(method, path, json={})
            error = error_of(response, 401)
            assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key"), (
                method,
                path,
            )


async def test_bad_credentials_are_401_authentication_errors(sandbox: Sandbox) -> None:
    key = sandbox.credentials.api_key
    live = "ac_live_" + key.removeprefix("ac_test_")
    for header in (
        None,
        "",
        key,  # no scheme
        f"Basic {key}",
        f"Token {key}",
        "Bearer",
        "Bearer ac_test_" + "0" * 32,
        f"Bearer {live}",
        f"Bearer {key}x",
        f"Bearer {key[:-1]}",
    ):
        headers = {} if header is None else {"Authorization": header}
        async with sandbox.anonymous() as anonymous:
            response = await anonymous.get("/v1/cards", headers=headers)
        error = error_of(response, 401)
        assert error["type"] == "authentication_error", header
    assert ok(await sandbox.client.get("/v1/cards", headers={"Authorization": f"bearer {key}"}))


async def test_one_owner_can_neither_see_nor_touch_another_owners_cards_agents_or_keys(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    card = await new_card(sandbox)
    ok(await sandbox.client.post(f"/v1/cards/{card['id']}/freeze"))
    card = await get_card(sandbox, card["id"])
    await swipe(sandbox, card["id"])
    keys = ok(await sandbox.client.get("/v1/api_keys"))["data"]
    other = await new_owner(sandbox, caplog, "other@example.com")

    mine = sandbox.credentials.agent_id
    for method, path, body in (
        ("GET", f"/v1/cards/{card['id']}", None),
        ("PATCH", f"/v1/cards/{card['id']}", {"daily_limit_cents": 1}),
        ("DELETE", f"/v1/cards/{card['id']}", None),
        ("POST", f"/v1/cards/{card['id']}/unfreeze", None),
        ("GET", f"/v1/cards/{card['id']}/ledger", None),
        ("POST", f"/v1/_test/cards/{card['id']}/reset_daily", None),
        ("POST", "/v1/_test/swipe", swipe_body(card["id"])),
        ("GET", f"/v1/agents/{mine}", None),
        ("POST", f"/v1/agents/{mine}/suspend", None),
        ("DELETE", f"/v1/agents/{mine}", None),
        ("GET", f"/v1/agents/{mine}/ledger", None),
        ("POST", "/v1/cards", {"agent_id": mine, "daily_limit_cents": 100}),
        ("POST", f"/v1/api_keys/{keys[0]['id']}/revoke", None),
    ):
        response = await sandbox.client.request(method, path, json=body, headers=other.auth)
        assert error_of(response, 404)["code"] == "resource_missing", (method, path)

    theirs = ok(await sandbox.client.get("/v1/cards", headers=other.auth))["data"]
    assert [c["id"] for c in theirs] == [other.card_id]
    assert all(set(c) == CARD_KEYS for c in theirs)
    assert await get_card(sandbox, card["id"]) == card
    assert len(await ledger(sandbox, card["id"])) == 1
    assert ok(await sandbox.client.get(f"/v1/agents/{mine}"))["status"] == "active"
    assert ok(await sandbox.client.get("/v1/api_keys"))["data"] == keys


# --- routing --------------------------------------------------------------------------------


async def test_unknown_routes_and_wrong_methods_are_json_errors(sandbox: Sandbox) -> None:
    for path in ("/v1/nope", "/v2/cards", "/", "/v1/cards/x/y/z"):
        error = error_of(await sandbox.client.get(path), 404)
        assert (error["type"], error["code"]) == ("invalid_request_error", "route_not_found"), path
    for method, path in (("PUT", "/v1/cards"), ("DELETE", "/v1/usage"), ("GET", "/v1/_test/swipe")):
        error = error_of(await sandbox.client.request(method, path), 405)
        assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")


async def test_a_405_names_the_allowed_methods_in_an_allow_header(inprocess: Sandbox) -> None:
    response = await inprocess.client.put("/v1/cards")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
    assert {"GET", "POST"} <= allowed
