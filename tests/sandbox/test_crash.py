"""Crash safety: SIGKILL the standalone server in the middle of a burst of swipes, restart it on
the same file, and nothing a client was told is lost or half-written: the database is intact,
every acknowledged approval is in the ledger, and the card's spend is the ledger's sum."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.support import Standalone, standalone_server

pytestmark = pytest.mark.anyio

AMOUNT = 100
WORKERS = 8
KILLS = 3
KILL_AFTER = 25  # approvals acknowledged in a round before the server is killed


@dataclass
class History:
    """What the clients know across all the crashes."""

    card: str = ""
    keys: list[str] = field(default_factory=list)  # every Idempotency-Key ever sent
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> approved auth_id
    unanswered: list[str] = field(default_factory=list)  # keys whose response never came
    counter: Iterator[int] = field(default_factory=itertools.count)

    def next_key(self) -> str:
        key = f"crash-{next(self.counter)}"
        self.keys.append(key)
        return key

    def body(self) -> dict[str, Any]:
        return {"card_id": self.card, "amount_cents": AMOUNT, "merchant": "M", "mcc": "saas"}


async def swipe(client: httpx.AsyncClient, history: History, key: str) -> httpx.Response:
    return await client.post(
        "/v1/_test/swipe", json=history.body(), headers={"Idempotency-Key": key}
    )


async def burst_then_kill(client: httpx.AsyncClient, server: Standalone, history: History) -> None:
    """WORKERS clients swipe in a loop; after KILL_AFTER approvals the server gets SIGKILL.
    Each worker stops at its first failed request (in flight or refused)."""
    approvals = 0

    async def worker() -> None:
        nonlocal approvals
        while True:
            key = history.next_key()
            try:
                response = await swipe(client, history, key)
            except httpx.TransportError:
                history.unanswered.append(key)
                return
            assert response.status_code == 200
            outcome = response.json()["agentcard_outcome"]
            assert outcome["decision"] == "approve"
            history.acknowledged[key] = outcome["auth_id"]
            approvals += 1
            if approvals == KILL_AFTER:
                server.process.kill()  # SIGKILL: no shutdown, no flush, mid-transaction

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(WORKERS):
                tg.start_soon(worker)
    assert server.process.wait(timeout=10) == -9
    assert approvals >= KILL_AFTER


async def ledger_of(client: httpx.AsyncClient, card: str) -> list[dict[str, Any]]:
    """The card's whole ledger, oldest first."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/v1/cards/{card}/ledger", params=params)
        assert response.status_code == 200
        page = response.json()
        entries.extend(page["data"])
        if not page["has_more"]:
            return entries[::-1]
        cursor = page["next_cursor"]


def raw_scalar(db: Path, sql: str) -> Any:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql).fetchone()[0]


async def assert_intact(client: httpx.AsyncClient, db: Path, history: History) -> None:
    assert raw_scalar(db, "PRAGMA integrity_check") == "ok"
    ledger = await ledger_of(client, history.card)
    by_id = {entry["id"]: entry for entry in ledger}
    for auth_id in history.acknowledged.values():
        assert by_id[auth_id]["decision"] == "approve"
        assert by_id[auth_id]["amount_cents"] == AMOUNT
    approvals = [entry for entry in ledger if entry["decision"] == "approve"]
    card = (await client.get(f"/v1/cards/{history.card}")).json()
    assert card["current_daily_spend_cents"] == sum(e["amount_cents"] for e in approvals)
    # No approval was half-applied: each row's spend-after is the running sum.
    steps = [e["current_daily_spend_cents_after"] for e in approvals]
    assert steps == [AMOUNT * i for i in range(1, len(approvals) + 1)]


async def retry_unanswered(client: httpx.AsyncClient, history: History) -> None:
    """A client whose request died with the server retries it with the same key: the ones the
    server had committed replay their stored outcome, the others execute now — exactly once."""
    committed = {entry["id"] for entry in await ledger_of(client, history.card)}
    for key in history.unanswered:
        response = await swipe(client, history, key)
        assert response.status_code == 200
        auth_id = response.json()["agentcard_outcome"]["auth_id"]
        if response.headers.get("idempotent-replayed") == "true":
            assert auth_id in committed
        else:
            assert auth_id not in committed
        history.acknowledged[key] = auth_id
    history.unanswered.clear()
    assert len(await ledger_of(client, history.card)) == len(history.keys)


async def test_sigkill_mid_burst_loses_no_acknowledged_approval(tmp_path: Path) -> None:
    db, home = tmp_path / "sandbox.db", tmp_path / "home"
    history = History()
    for round_ in range(KILLS + 1):
        with standalone_server(db, home) as server:
            headers = {"Authorization": f"Bearer {server.api_key()}"}
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=30
            ) as client:
                if round_ == 0:
                    agent = (await client.get("/v1/agents")).json()["data"][0]["id"]
                    body = {"agent_id": agent, "daily_limit_cents": 1_000_000_000}
                    history.card = (await client.post("/v1/cards", json=body)).json()["id"]
                else:
                    await assert_intact(client, db, history)
                    await retry_unanswered(client, history)
                    await assert_intact(client, db, history)
                if round_ < KILLS:
                    await burst_then_kill(client, server, history)
        if round_ < KILLS:
            assert server.process.returncode == -9

    assert len(history.acknowledged) == len(history.keys)
    assert raw_scalar(db, "SELECT count(*) FROM idempotency") == len(history.keys)
