"""The console's keys page (create shown once, revoke) and budget page (the gauge against
get_limits, the spend chart per day and category), through its ASGI app."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from agentcard_mcp.sandbox import Store
from agentcard_mcp.sandbox.provision import read_credentials
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import open_storage
from tests.console.conftest import ORIGIN, Console
from tests.console.test_console import agent_on

pytestmark = pytest.mark.anyio

_KEY = re.compile(r"amcp_[a-z0-9]{32}")


async def _create(console: Console, csrf: str, **fields: str) -> str:
    data = {"csrf": csrf, "name": "ci bot", "scope": "cards:read", "rate": "120"} | fields
    response = await console.client.post("/keys", data=data, headers={"Origin": ORIGIN})
    assert response.status_code == 201, response.text
    return response.text


async def test_a_key_created_on_the_page_is_shown_once_listed_and_revocable(
    console: Console, settings: Settings
) -> None:
    await console.login()
    assert "no keys yet" in await console.page("/keys")
    csrf = await console.csrf()
    created = await _create(console, csrf, allow_in_band_approval="1")
    match = _KEY.search(created)
    assert match is not None
    key = match.group(0)
    assert "only time the key is shown" in created
    listing = await console.page("/keys")
    assert key not in listing  # never again
    assert key[:9] + "…" in listing
    assert "ci bot" in listing
    assert "cards:read" in listing
    assert "120/min" in listing
    assert "allowed" in listing
    assert "never" in listing
    key_id = re.search(r'data-key-id="(key_[a-z0-9]+)"', listing)
    assert key_id is not None
    async with open_storage(settings) as storage:
        record = await storage.keys.find(key)
        assert record is not None
        assert record.id == key_id.group(1)
        assert record.allow_in_band_approval
        assert record.rate == 120
    # The CLI's listing (the same desk) agrees.
    revoked = await console.post(f"/keys/{key_id.group(1)}/revoke", csrf)
    assert revoked.status_code == 303
    listing = await console.page("/keys")
    assert f'action="/keys/{key_id.group(1)}/revoke"' not in listing
    async with open_storage(settings) as storage:
        assert await storage.keys.find(key) is None  # the HTTP app's lookup: refused (401)
        assert (await storage.keys.get(key_id.group(1))).revoked_at is not None
    again = await console.post(f"/keys/{key_id.group(1)}/revoke", csrf)
    assert again.status_code == 409


async def test_a_key_the_store_refuses_is_not_created(console: Console) -> None:
    await console.login()
    csrf = await console.csrf()
    response = await console.client.post(
        "/keys",
        data={"csrf": csrf, "name": "x", "rate": "7"},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 400
    assert "not created" in response.text
    assert _KEY.search(response.text) is None


async def test_the_keys_pages_need_the_session_and_the_csrf_token(
    console: Console, settings: Settings
) -> None:
    assert (await console.client.get("/keys")).status_code == 401
    assert (await console.client.get("/budget")).status_code == 401
    assert (await console.post("/keys")).status_code == 401
    assert (await console.post("/keys/key_x/revoke")).status_code == 401
    await console.login()
    assert (await console.post("/keys", csrf="wrong")).status_code == 403
    created = await _create(console, await console.csrf())
    key_id = re.search(r'data-new-key-id="(key_[a-z0-9]+)"', created)
    assert key_id is not None
    assert (await console.post(f"/keys/{key_id.group(1)}/revoke")).status_code == 403
    foreign = await console.client.post(
        f"/keys/{key_id.group(1)}/revoke",
        data={"csrf": await console.csrf()},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    async with open_storage(settings) as storage:
        assert (await storage.keys.get(key_id.group(1))).active


def _past_spend(settings: Settings, card_id: str, day: datetime, mcc: str, cents: int) -> None:
    """An approved ledger row of an earlier day, as the issuer would have written it."""
    db = settings.home / "sandbox.db"
    credentials = read_credentials(db)
    assert credentials is not None

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, 'approve', 'approved', ?, 'usd', 'Old Shop', ?, 0)",
            (f"auth_past{cents}", credentials.owner_id, credentials.agent_id, card_id,
             day.strftime("%Y-%m-%dT12:00:00Z"), cents, mcc),
        )  # fmt: skip

    store = Store(db)
    try:
        store.transaction_sync(insert)
    finally:
        store.close()


async def test_the_budget_page_shows_get_limits_and_the_spend_per_day_and_category(
    console: Console, settings: Settings
) -> None:
    await console.login()
    today = datetime.now(UTC)
    async with agent_on(settings) as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        for cents, mcc in ((700, "saas"), (300, "restaurants")):
            bought = await agent.call(
                "simulate_purchase",
                {"card_id": card["id"], "amount_cents": cents, "merchant": "ACME", "mcc": mcc},
            )
            assert bought["decision"] == "approve"
        _past_spend(settings, card["id"], today - timedelta(days=3), "saas", 1234)
        _past_spend(settings, card["id"], today - timedelta(days=20), "travel", 99999)  # too old
        limits = await agent.call("get_limits")
        page = await console.page("/budget")
    assert f'data-committed-cents="{limits["committed_daily_cents"]}"' in page
    assert f'data-max-total-daily-cents="{limits["max_total_daily_cents"]}"' in page
    assert f'data-spent-cents="{limits["spent_today_cents"]}"' in page
    assert "$20.00 committed of $200.00" in page
    bars = dict(re.findall(r'data-day="(\d{4}-\d\d-\d\d)" data-cents="(\d+)"', page))
    assert len(bars) == 14
    assert bars[today.strftime("%Y-%m-%d")] == "1000"
    assert bars[(today - timedelta(days=3)).strftime("%Y-%m-%d")] == "1234"
    assert sum(map(int, bars.values())) == 2234  # the 20-day-old row is outside the window
    categories = dict(re.findall(r'data-category="([a-z]+)" data-cents="(\d+)"', page))
    assert categories == {"saas": "1934", "restaurants": "300"}
    assert page.count('class="bar"') == 2 + 2  # two days with spend, two categories
    assert "<script>" not in page
    assert "<svg" in page
