"""Idempotency-Key: same key and same request within 24 h replays the stored response, a key
reused for another request is refused with 409, and concurrent retries execute exactly once."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

import anyio
import httpx
import pytest

from agentcard_mcp.sandbox import accounts
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

REPLAYED = "idempotent-replayed"
DAY = 24 * 60 * 60


async def send(
    sandbox: Sandbox,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    api_key: str | None = None,
) -> httpx.Response:
    """One request with exact JSON bytes, an optional Idempotency-Key and optional other owner."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    content = json.dumps(body).encode() if body is not None else b""
    return await sandbox.client.request(method, path, content=content, headers=headers)


async def scalar(sandbox: Sandbox, sql: str, *args: Any) -> Any:
    return await sandbox.store.read(lambda conn: conn.execute(sql, args).fetchone()[0])


async def card_count(sandbox: Sandbox) -> int:
    return int(await scalar(sandbox, "SELECT count(*) FROM cards"))


async def ledger_count(sandbox: Sandbox) -> int:
    return int(await scalar(sandbox, "SELECT count(*) FROM ledger"))


def card_body(sandbox: Sandbox, daily: int = 5000, **extra: Any) -> dict[str, Any]:
    return {"agent_id": sandbox.credentials.agent_id, "daily_limit_cents": daily, **extra}


async def new_card(sandbox: Sandbox, daily: int = 5000) -> dict[str, Any]:
    response = await send(sandbox, "POST", "/v1/cards", card_body(sandbox, daily))
    assert response.status_code == 200
    card: dict[str, Any] = response.json()
    return card


async def get_card(sandbox: Sandbox, card_id: str) -> dict[str, Any]:
    response = await send(sandbox, "GET", f"/v1/cards/{card_id}")
    assert response.status_code == 200
    card: dict[str, Any] = response.json()
    return card


def swipe_body(card_id: str, amount: int = 1500) -> dict[str, Any]:
    return {"card_id": card_id, "amount_cents": amount, "merchant": "Delta", "mcc": "travel"}


def assert_replay(first: httpx.Response, again: httpx.Response) -> None:
    assert first.status_code == 200
    assert REPLAYED not in first.headers
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content


def assert_reused(response: httpx.Response) -> None:
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert REPLAYED not in response.headers


def age_key(sandbox: Sandbox, key: str, seconds: float) -> None:
    """Test setup: the replay window runs on real unix time, so move the stored row back."""
    with contextlib.closing(sqlite3.connect(sandbox.db_path, timeout=10)) as conn, conn:
        changed = conn.execute(
            "UPDATE idempotency SET created_at = created_at - ? WHERE key = ?", (seconds, key)
        ).rowcount
    assert changed == 1


# --- POST /v1/cards -----------------------------------------------------------------------


async def test_create_card_replays_the_same_card_once(sandbox: Sandbox) -> None:
    body = card_body(sandbox, 5000, mcc_allowlist=["travel"])
    first = await send(sandbox, "POST", "/v1/cards", body, key="create-1")
    again = await send(sandbox, "POST", "/v1/cards", body, key="create-1")

    assert_replay(first, again)
    assert await card_count(sandbox) == 1
    listed = (await send(sandbox, "GET", "/v1/cards")).json()["data"]
    assert [card["id"] for card in listed] == [first.json()["id"]]


async def test_create_card_with_a_reused_key_and_another_body_is_refused(
    sandbox: Sandbox,
) -> None:
    first = await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 5000), key="create-2")
    assert first.status_code == 200

    assert_reused(
        await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 6000), key="create-2")
    )
    assert await card_count(sandbox) == 1
    # The key stays bound to the first request: replaying that still works.
    again = await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 5000), key="create-2")
    assert_replay(first, again)
    assert await card_count(sandbox) == 1


async def test_a_key_reused_on_another_path_is_refused(sandbox: Sandbox) -> None:
    first = await send(sandbox, "POST", "/v1/cards", card_body(sandbox), key="create-3")
    assert first.status_code == 200
    agents_before = int(await scalar(sandbox, "SELECT count(*) FROM agents"))

    assert_reused(await send(sandbox, "POST", "/v1/agents", {"name": "x"}, key="create-3"))
    assert await scalar(sandbox, "SELECT count(*) FROM agents") == agents_before


async def test_writes_without_a_key_are_not_deduplicated(sandbox: Sandbox) -> None:
    body = card_body(sandbox)
    first = await send(sandbox, "POST", "/v1/cards", body)
    second = await send(sandbox, "POST", "/v1/cards", body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] != second.json()["id"]
    assert await card_count(sandbox) == 2


# --- PATCH, DELETE, freeze ----------------------------------------------------------------


async def test_patch_replays_the_stored_result_without_reapplying_it(sandbox: Sandbox) -> None:
    card = await new_card(sandbox, 5000)
    path = f"/v1/cards/{card['id']}"
    first = await send(sandbox, "PATCH", path, {"daily_limit_cents": 7000}, key="patch-1")
    assert first.json()["daily_limit_cents"] == 7000
    later = await send(sandbox, "PATCH", path, {"daily_limit_cents": 8000}, key="patch-2")
    assert later.status_code == 200

    again = await send(sandbox, "PATCH", path, {"daily_limit_cents": 7000}, key="patch-1")
    assert_replay(first, again)
    assert (await get_card(sandbox, card["id"]))["daily_limit_cents"] == 8000

    assert_reused(await send(sandbox, "PATCH", path, {"daily_limit_cents": 9000}, key="patch-1"))
    assert (await get_card(sandbox, card["id"]))["daily_limit_cents"] == 8000


async def test_delete_replays_instead_of_answering_404(sandbox: Sandbox) -> None:
    card, other = await new_card(sandbox), await new_card(sandbox)
    first = await send(sandbox, "DELETE", f"/v1/cards/{card['id']}", key="delete-1")
    assert first.json() == {"id": card["id"], "deleted": True}

    again = await send(sandbox, "DELETE", f"/v1/cards/{card['id']}", key="delete-1")
    assert_replay(first, again)
    # Without the key, a second delete finds no card.
    plain = await send(sandbox, "DELETE", f"/v1/cards/{card['id']}")
    assert plain.status_code == 404

    assert_reused(await send(sandbox, "DELETE", f"/v1/cards/{other['id']}", key="delete-1"))
    assert (await get_card(sandbox, other["id"]))["id"] == other["id"]
    assert await card_count(sandbox) == 2


async def test_freeze_replays_without_refreezing(sandbox: Sandbox) -> None:
    card, other = await new_card(sandbox), await new_card(sandbox)
    freeze = f"/v1/cards/{card['id']}/freeze"
    first = await send(sandbox, "POST", freeze, key="freeze-1")
    assert first.json()["frozen"] is True
    thawed = await send(sandbox, "POST", f"/v1/cards/{card['id']}/unfreeze", key="unfreeze-1")
    assert thawed.json()["frozen"] is False

    again = await send(sandbox, "POST", freeze, key="freeze-1")
    assert_replay(first, again)
    assert (await get_card(sandbox, card["id"]))["frozen"] is False

    assert_reused(await send(sandbox, "POST", f"/v1/cards/{other['id']}/freeze", key="freeze-1"))
    assert (await get_card(sandbox, other["id"]))["frozen"] is False


# --- _test/swipe ----------------------------------------------------------------------------


async def test_swipe_replay_returns_the_original_auth_and_writes_no_second_row(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox, 5000)
    first = await send(sandbox, "POST", "/v1/_test/swipe", swipe_body(card["id"]), key="sw-1")
    outcome = first.json()["agentcard_outcome"]
    assert (outcome["decision"], outcome["current_daily_spend_cents"]) == ("approve", 1500)

    again = await send(sandbox, "POST", "/v1/_test/swipe", swipe_body(card["id"]), key="sw-1")
    assert_replay(first, again)
    assert again.json()["agentcard_outcome"]["auth_id"] == outcome["auth_id"]
    assert await ledger_count(sandbox) == 1
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 1500

    changed = swipe_body(card["id"], 1600)
    assert_reused(await send(sandbox, "POST", "/v1/_test/swipe", changed, key="sw-1"))
    assert await ledger_count(sandbox) == 1
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 1500
    ledger = (await send(sandbox, "GET", f"/v1/cards/{card['id']}/ledger")).json()["data"]
    assert [entry["id"] for entry in ledger] == [outcome["auth_id"]]


# --- the 24 h window ------------------------------------------------------------------------


async def test_a_key_older_than_24_hours_is_usable_again(sandbox: Sandbox) -> None:
    body = card_body(sandbox)
    first = await send(sandbox, "POST", "/v1/cards", body, key="old-1")
    age_key(sandbox, "old-1", 90_000)

    again = await send(sandbox, "POST", "/v1/cards", body, key="old-1")
    assert again.status_code == 200
    assert REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert await card_count(sandbox) == 2
    # The fresh use is what the key now replays.
    third = await send(sandbox, "POST", "/v1/cards", body, key="old-1")
    assert_replay(again, third)
    assert await card_count(sandbox) == 2


async def test_an_expired_key_may_carry_another_body(sandbox: Sandbox) -> None:
    first = await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 5000), key="old-2")
    assert first.status_code == 200
    age_key(sandbox, "old-2", 90_000)

    other = await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 6000), key="old-2")
    assert other.status_code == 200
    assert other.json()["daily_limit_cents"] == 6000
    assert await card_count(sandbox) == 2


async def test_a_key_just_inside_24_hours_still_replays(sandbox: Sandbox) -> None:
    body = card_body(sandbox)
    first = await send(sandbox, "POST", "/v1/cards", body, key="young-1")
    age_key(sandbox, "young-1", DAY - 600)

    assert_replay(first, await send(sandbox, "POST", "/v1/cards", body, key="young-1"))
    assert_reused(await send(sandbox, "POST", "/v1/cards", card_body(sandbox, 9), key="young-1"))
    assert await card_count(sandbox) == 1


# --- scope ----------------------------------------------------------------------------------


async def test_keys_are_scoped_per_owner(sandbox: Sandbox) -> None:
    other = await sandbox.store.transaction(
        lambda conn: accounts.provision_owner(
            conn, "second@example.com", "second-agent", sandbox.clock(), starter_card=False
        )
    )
    body = {"name": "same-name"}
    mine = await send(sandbox, "POST", "/v1/agents", body, key="shared-key")
    theirs = await send(
        sandbox, "POST", "/v1/agents", body, key="shared-key", api_key=other.api_key
    )
    assert (mine.status_code, theirs.status_code) == (200, 200)
    assert REPLAYED not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    listed = await send(sandbox, "GET", "/v1/agents", api_key=other.api_key)
    assert theirs.json()["id"] in {agent["id"] for agent in listed.json()["data"]}
    assert mine.json()["id"] not in {agent["id"] for agent in listed.json()["data"]}

    # Within one owner the key stays bound to its first use ...
    card = await send(
        sandbox,
        "POST",
        "/v1/cards",
        {"agent_id": other.agent_id, "daily_limit_cents": 100},
        key="shared-key",
        api_key=other.api_key,
    )
    assert_reused(card)
    # ... and a key one owner used for a card is fresh for the other owner's different card.
    mine_card = await send(sandbox, "POST", "/v1/cards", card_body(sandbox), key="mine-only")
    theirs_card = await send(
        sandbox,
        "POST",
        "/v1/cards",
        {"agent_id": other.agent_id, "daily_limit_cents": 100},
        key="mine-only",
        api_key=other.api_key,
    )
    assert (mine_card.status_code, theirs_card.status_code) == (200, 200)
    assert REPLAYED not in theirs_card.headers
    assert theirs_card.json()["agent_id"] == other.agent_id
    assert await card_count(sandbox) == 2


# --- concurrency ----------------------------------------------------------------------------


async def fan_out(
    sandbox: Sandbox, n: int, path: str, body: dict[str, Any], key: str
) -> list[httpx.Response]:
    responses: list[httpx.Response] = []

    async def one() -> None:
        responses.append(await send(sandbox, "POST", path, body, key=key))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    return responses


async def test_twenty_concurrent_creates_with_one_key_create_one_card(sandbox: Sandbox) -> None:
    responses = await fan_out(sandbox, 20, "/v1/cards", card_body(sandbox), "burst-create")

    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1
    assert sorted(r.headers.get(REPLAYED, "") for r in responses) == [""] + ["true"] * 19
    assert await card_count(sandbox) == 1


async def test_twenty_concurrent_swipes_with_one_key_write_one_ledger_row(
    sandbox: Sandbox,
) -> None:
    card = await new_card(sandbox, 5000)
    responses = await fan_out(sandbox, 20, "/v1/_test/swipe", swipe_body(card["id"]), "burst-sw")

    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1
    assert sorted(r.headers.get(REPLAYED, "") for r in responses) == [""] + ["true"] * 19
    assert responses[0].json()["approved"] is True
    assert await ledger_count(sandbox) == 1
    assert (await get_card(sandbox, card["id"]))["current_daily_spend_cents"] == 1500
