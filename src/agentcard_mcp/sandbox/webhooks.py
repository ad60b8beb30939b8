"""Webhooks: the account-level endpoint, signed events, and at-least-once delivery.

An event is written to ``webhook_outbox`` in the same transaction as the change it reports, so
it is never lost and never sent for a change that rolled back. The ``Dispatcher`` delivers from
the outbox in the background with capped, jittered retries; an authorization only ever inserts
a row, so a slow or dead receiver cannot delay it.

Each delivery is a POST of the JSON event with

    X-AgentCard-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>
    X-AgentCard-Event-Id:  evt_...

Receivers verify with ``verify_signature(secret, body, header)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx

from .clock import isoformat
from .ids import new_id
from .store import Store

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "Dispatcher",
    "anything_due",
    "enqueue",
    "event_body",
    "get_endpoint",
    "post_event",
    "set_endpoint",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-AgentCard-Signature"
EVENT_ID_HEADER = "X-AgentCard-Event-Id"

log = logging.getLogger("agentcard_mcp.sandbox.webhooks")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


def set_endpoint(
    conn: sqlite3.Connection, owner_id: str, url: str, now: datetime
) -> dict[str, Any]:
    """Sets the account-level URL; a new secret every time, returned only here."""
    secret = "whsec_" + secrets.token_hex(24)
    conn.execute(
        "INSERT INTO webhook_endpoints (owner_id, url, secret, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (owner_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, "
        "created_at = excluded.created_at",
        (owner_id, url, secret, isoformat(now)),
    )
    return {"url": url, "secret": secret, "created_at": isoformat(now)}


def get_endpoint(conn: sqlite3.Connection, owner_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT url, created_at FROM webhook_endpoints WHERE owner_id = ?", (owner_id,)
    ).fetchone()
    return {"url": None} if row is None else {"url": row["url"], "created_at": row["created_at"]}


def event_body(event_id: str, type_: str, data: dict[str, Any], now: datetime) -> bytes:
    event = {"id": event_id, "type": type_, "created_at": isoformat(now), "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def enqueue(
    conn: sqlite3.Connection, owner_id: str, type_: str, data: dict[str, Any], now: datetime
) -> str | None:
    """Queues an event for the owner's endpoint; None (nothing queued) if there is none."""
    if conn.execute("SELECT 1 FROM webhook_endpoints WHERE owner_id = ?", (owner_id,)).fetchone():
        event_id = new_id("evt")
        conn.execute(
            "INSERT INTO webhook_outbox (id, owner_id, body, next_attempt) VALUES (?, ?, ?, ?)",
            (event_id, owner_id, event_body(event_id, type_, data, now), time.time()),
        )
        return event_id
    return None


@dataclass(frozen=True, slots=True)
class _Delivery:
    event_id: str
    body: bytes
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    status_code: int | None
    error: str | None


async def post_event(
    client: httpx.AsyncClient, url: str, secret: str, event_id: str, body: bytes, *, wait: float
) -> DeliveryResult:
    """One signed delivery attempt; any non-2xx answer or transport error is a failure."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_ID_HEADER: event_id,
    }
    try:
        response = await client.post(url, content=body, headers=headers, timeout=wait)
    except Exception as exc:  # any failure to deliver is a failed attempt, never a crash
        return DeliveryResult(False, None, type(exc).__name__)
    return DeliveryResult(response.is_success, response.status_code, None)


class Dispatcher:
    """Delivers queued events. Run ``run()`` in a task group; call ``wake()`` after enqueueing."""

    def __init__(
        self,
        store: Store,
        connect: Callable[[], httpx.AsyncClient],
        *,
        max_attempts: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        timeout: float = 5.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        # The HTTP client is made on the first delivery: loading TLS certificates costs ~0.1 s
        # of start-up, and most sandboxes never have a webhook.
        self._connect = connect
        self._client: httpx.AsyncClient | None = None
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._wake = anyio.Event()
        self._concurrency = anyio.CapacityLimiter(16)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    for delivery in await self._claim_free():
                        tg.start_soon(self._deliver, delivery)
                except Exception:
                    # Delivery is best effort on top of a durable outbox: log and try again later
                    # rather than take the API down with it.
                    log.exception("webhook dispatcher: could not read the outbox")
                with anyio.move_on_after(self.poll_interval):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _claim_free(self) -> list[_Delivery]:
        # Claim no more than can start now, so that no lease runs out while a delivery waits;
        # and read before writing, since most wakes (every write wakes us) find nothing due.
        free = int(self._concurrency.available_tokens)
        if not free or not await self.store.read(anything_due):
            return []
        return await self.store.transaction(lambda conn: self._claim(conn, free))

    def _claim(self, conn: sqlite3.Connection, batch: int) -> list[_Delivery]:
        now = time.time()
        # The lease keeps a second dispatcher on the same file from sending the event too.
        lease = now + self.timeout + 30
        rows = conn.execute(
            "SELECT o.id, o.body, o.attempts, e.url, e.secret FROM webhook_outbox o "
            "LEFT JOIN webhook_endpoints e ON e.owner_id = o.owner_id "
            "WHERE o.delivered_at IS NULL AND o.failed_at IS NULL "
            "AND o.next_attempt <= ? AND o.lease_until <= ? ORDER BY o.next_attempt LIMIT ?",
            (now, now, batch),
        ).fetchall()
        claimed = []
        for row in rows:
            if row["url"] is None:  # the endpoint was removed: nothing to deliver to
                conn.execute(
                    "UPDATE webhook_outbox SET failed_at = ? WHERE id = ?", (now, row["id"])
                )
                continue
            conn.execute(
                "UPDATE webhook_outbox SET lease_until = ? WHERE id = ?", (lease, row["id"])
            )
            claimed.append(
                _Delivery(row["id"], row["body"], row["attempts"], row["url"], row["secret"])
            )
        return claimed

    async def _deliver(self, delivery: _Delivery) -> None:
        async with self._concurrency:
            result = await post_event(
                self.client(), delivery.url, delivery.secret, delivery.event_id, delivery.body,
                wait=self.timeout,
            )  # fmt: skip
        attempts = delivery.attempts + 1
        if result.delivered:
            await self.store.transaction(lambda c: _mark(c, delivery.event_id, attempts, result))
            return
        delay = self._backoff(attempts)
        give_up = attempts >= self.max_attempts
        log.warning(
            "webhook %s attempt %d failed (%s)%s",
            delivery.event_id,
            attempts,
            result.status_code or result.error,
            "; giving up" if give_up else f"; retrying in {delay:.1f}s",
        )
        await self.store.transaction(
            lambda c: _reschedule(c, delivery.event_id, attempts, result, delay, give_up)
        )
        if not give_up:
            await anyio.sleep(delay)
            self.wake()

    def _backoff(self, attempts: int) -> float:
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def anything_due(conn: sqlite3.Connection) -> bool:
    """Whether an event is waiting for delivery now (cheap: a partial index)."""
    now = time.time()
    row = conn.execute(
        "SELECT 1 FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL "
        "AND next_attempt <= ? AND lease_until <= ? LIMIT 1",
        (now, now),
    ).fetchone()
    return row is not None


def _mark(conn: sqlite3.Connection, event_id: str, attempts: int, result: DeliveryResult) -> None:
    conn.execute(
        "UPDATE webhook_outbox SET delivered_at = ?, attempts = ?, last_status = ? WHERE id = ?",
        (time.time(), attempts, result.status_code, event_id),
    )


def _reschedule(
    conn: sqlite3.Connection,
    event_id: str,
    attempts: int,
    result: DeliveryResult,
    delay: float,
    give_up: bool,
) -> None:
    now = time.time()
    conn.execute(
        "UPDATE webhook_outbox SET attempts = ?, last_status = ?, next_attempt = ?, "
        "lease_until = 0, failed_at = ? WHERE id = ?",
        (attempts, result.status_code, now + delay, now if give_up else None, event_id),
    )
