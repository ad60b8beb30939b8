"""Webhooks of the embedded sandbox, seen from a real receiver on 127.0.0.1.

The receiver is written here, not taken from the project: it records each request's raw body
and headers, and the signature is checked with this file's own HMAC code, so a signing bug in
the project cannot hide behind a matching bug in its own verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentcard_mcp.sandbox import Store, create_app, provision
from tests.support import FakeClock, Sandbox, open_sandbox, serve_in_thread

pytestmark = pytest.mark.anyio

# --- the receiver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got: the raw bytes and the headers (names lower-cased)."""

    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def event_id(self) -> str:
        return self.headers["x-agentcard-event-id"]

    @property
    def signature(self) -> str:
        return self.headers.get("x-agentcard-signature", "")


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    """The receiver's own check: ``sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode())


class Receiver:
    """A webhook endpoint that answers with scripted statuses, or hangs until released."""

    def __init__(self, statuses: tuple[int, ...] = (), *, status: int = 200, hang: bool = False):
        self.status = status
        self.hang = hang
        self.release = threading.Event()
        self._statuses = list(statuses)
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self._deliveries.append(Delivery(body, dict(request.headers)))
            status = self._statuses.pop(0) if self._statuses else self.status
        if self.hang:  # far longer than any test, until the test tears the receiver down
            await anyio.to_thread.run_sync(self.release.wait, abandon_on_cancel=True)
        return Response(b"", status_code=status)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)


@contextmanager
def running(receiver: Receiver) -> Iterator[str]:
    """Serves the receiver; yields its webhook URL. Hung requests are released on exit."""
    with serve_in_thread(receiver.app) as base_url:
        try:
            yield base_url + "/hook"
        finally:
            receiver.release.set()


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- helpers ----------------------------------------------------------------------------------


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Polls ``check`` until it holds; fails the test after ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            if check():
                return
            await anyio.sleep(0.01)


def outbox(db_path: Path) -> list[dict[str, Any]]:
    """The webhook_outbox rows, read with a raw sqlite3 connection, oldest first."""
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM webhook_outbox ORDER BY rowid").fetchall()
    return [{**dict(row), "event": json.loads(row["body"])} for row in rows]


def all_delivered(db_path: Path, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = outbox(db_path)
        return len(rows) == count and all(row["delivered_at"] is not None for row in rows)

    return check


async def set_webhook(client: httpx.AsyncClient, url: str) -> str:
    response = await client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == url
    secret: str = body["secret"]
    assert secret
    return secret


async def new_card(sb: Sandbox, daily_limit_cents: int, **policy: Any) -> str:
    response = await sb.client.post(
        "/v1/cards",
        json={
            "agent_id": sb.credentials.agent_id,
            "daily_limit_cents": daily_limit_cents,
            **policy,
        },
    )
    assert response.status_code == 200, response.text
    card_id: str = response.json()["id"]
    return card_id


async def swipe(
    client: httpx.AsyncClient, card_id: str, amount_cents: int, mcc: str = "travel"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/_test/swipe",
        json={"card_id": card_id, "amount_cents": amount_cents, "merchant": "Delta", "mcc": mcc},
    )
    assert response.status_code == 200, response.text
    outcome: dict[str, Any] = response.json()["agentcard_outcome"]
    return outcome


# --- events -----------------------------------------------------------------------------------


async def test_every_change_reaches_the_receiver_as_a_signed_event(sandbox: Sandbox) -> None:
    receiver = Receiver()
    with running(receiver) as url:
        secret = await set_webhook(sandbox.client, url)
        shown = (await sandbox.client.get("/v1/webhooks")).json()
        assert shown["url"] == url
        assert "secret" not in shown

        card = await new_card(sandbox, 5000, mcc_allowlist=["travel"])
        approve = await swipe(sandbox.client, card, 1000)
        decline = await swipe(sandbox.client, card, 1000, mcc="gambling")
        assert (await sandbox.client.post(f"/v1/cards/{card}/freeze")).json()["frozen"] is True
        assert (await sandbox.client.post(f"/v1/cards/{card}/unfreeze")).json()["frozen"] is False
        at_limit = await swipe(sandbox.client, card, 4000)
        over = await swipe(sandbox.client, card, 1)
        assert (approve["decision"], approve["reason"]) == ("approve", "approved")
        assert (decline["decision"], decline["reason"]) == ("decline", "category_not_in_allowlist")
        assert (at_limit["decision"], at_limit["current_daily_spend_cents"]) == ("approve", 5000)
        assert (over["decision"], over["reason"]) == ("decline", "daily_limit_exceeded")

        # 4 authorization.decided + card.frozen + card.unfrozen + 2 daily_limit.hit
        await eventually(all_delivered(sandbox.db_path, 8))
        deliveries = receiver.deliveries()

    assert len(deliveries) == 8
    assert len({d.event_id for d in deliveries}) == 8
    assert {d.event_id for d in deliveries} == {row["id"] for row in outbox(sandbox.db_path)}
    for delivery in deliveries:
        assert signature_ok(secret, delivery.body, delivery.signature), delivery.headers
        assert delivery.event["id"] == delivery.event_id
        assert delivery.headers["content-type"] == "application/json"

    by_type: dict[str, list[dict[str, Any]]] = {}
    for delivery in deliveries:
        by_type.setdefault(delivery.event["type"], []).append(delivery.event["data"])
    assert sorted(by_type) == [
        "authorization.decided",
        "card.frozen",
        "card.unfrozen",
        "daily_limit.hit",
    ]

    decided = {data["auth_id"]: data for data in by_type["authorization.decided"]}
    assert set(decided) == {o["auth_id"] for o in (approve, decline, at_limit, over)}
    for outcome, amount, mcc in (
        (approve, 1000, "travel"),
        (decline, 1000, "gambling"),
        (at_limit, 4000, "travel"),
        (over, 1, "travel"),
    ):
        data = decided[outcome["auth_id"]]
        assert (data["decision"], data["reason"]) == (outcome["decision"], outcome["reason"])
        assert data["current_daily_spend_cents"] == outcome["current_daily_spend_cents"]
        assert (data["card_id"], data["amount_cents"], data["mcc"]) == (card, amount, mcc)
        assert data["agent_id"] == sandbox.credentials.agent_id

    agent = sandbox.credentials.agent_id
    assert by_type["card.frozen"] == [{"card_id": card, "agent_id": agent}]
    assert by_type["card.unfrozen"] == [{"card_id": card, "agent_id": agent}]
    hits = {data["auth_id"]: data for data in by_type["daily_limit.hit"]}
    assert set(hits) == {at_limit["auth_id"], over["auth_id"]}
    assert hits[over["auth_id"]]["reason"] == "daily_limit_exceeded"
    assert hits[at_limit["auth_id"]]["current_daily_spend_cents"] == 5000


async def test_a_tampered_body_or_a_wrong_secret_fails_the_receivers_check(
    inprocess: Sandbox,
) -> None:
    receiver = Receiver()
    with running(receiver) as url:
        secret = await set_webhook(inprocess.client, url)
        card = await new_card(inprocess, 5000)
        await swipe(inprocess.client, card, 1000)
        await eventually(all_delivered(inprocess.db_path, 1))
    [delivery] = receiver.deliveries()
    assert signature_ok(secret, delivery.body, delivery.signature)

    tampered = delivery.body.replace(b'"amount_cents":1000', b'"amount_cents":100000')
    assert tampered != delivery.body
    assert not signature_ok(secret, tampered, delivery.signature)
    assert not signature_ok(secret, delivery.body + b" ", delivery.signature)
    assert not signature_ok("whsec_" + "0" * 48, delivery.body, delivery.signature)


async def test_setting_the_url_again_rotates_the_secret(inprocess: Sandbox) -> None:
    receiver = Receiver()
    with running(receiver) as url:
        first = await set_webhook(inprocess.client, url)
        second = await set_webhook(inprocess.client, url)
        assert first != second
        card = await new_card(inprocess, 5000)
        await swipe(inprocess.client, card, 1000)
        await eventually(all_delivered(inprocess.db_path, 1))
    [delivery] = receiver.deliveries()
    assert signature_ok(second, delivery.body, delivery.signature)
    assert not signature_ok(first, delivery.body, delivery.signature)


async def test_freezing_a_frozen_card_or_unfreezing_an_unfrozen_one_emits_nothing(
    inprocess: Sandbox,
) -> None:
    receiver = Receiver()
    with running(receiver) as url:
        await set_webhook(inprocess.client, url)
        card = await new_card(inprocess, 5000)
        for action in ("unfreeze", "freeze", "freeze", "unfreeze", "unfreeze", "freeze"):
            response = await inprocess.client.post(f"/v1/cards/{card}/{action}")
            assert response.status_code == 200, response.text
        assert response.json()["frozen"] is True

        rows = outbox(inprocess.db_path)
        assert [row["event"]["type"] for row in rows] == [
            "card.frozen",
            "card.unfrozen",
            "card.frozen",
        ]
        await eventually(all_delivered(inprocess.db_path, 3))
        deliveries = receiver.deliveries()
    types = sorted(d.event["type"] for d in deliveries)
    assert types == ["card.frozen", "card.frozen", "card.unfrozen"]


async def test_events_follow_the_transaction_replays_and_errors_emit_nothing(
    inprocess: Sandbox,
) -> None:
    await set_webhook(inprocess.client, closed_port_url())  # delivery is not the point here
    card = await new_card(inprocess, 5000)
    body = {"card_id": card, "amount_cents": 700, "merchant": "Delta", "mcc": "travel"}
    headers = {"Idempotency-Key": "swipe-1"}
    first = await inprocess.client.post("/v1/_test/swipe", json=body, headers=headers)
    again = await inprocess.client.post("/v1/_test/swipe", json=body, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()

    missing = await inprocess.client.post("/v1/_test/swipe", json={**body, "card_id": "card_x"})
    assert missing.status_code == 404
    bad = await inprocess.client.post("/v1/_test/swipe", json={**body, "amount_cents": 5.0})
    assert bad.status_code == 400
    assert (await inprocess.client.post("/v1/cards/card_x/freeze")).status_code == 404

    rows = outbox(inprocess.db_path)
    assert [row["event"]["type"] for row in rows] == ["authorization.decided"]
    assert rows[0]["event"]["data"]["auth_id"] == first.json()["agentcard_outcome"]["auth_id"]


async def test_no_events_are_queued_without_a_webhook_url(inprocess: Sandbox) -> None:
    card = await new_card(inprocess, 500)
    await swipe(inprocess.client, card, 500)
    await inprocess.client.post(f"/v1/cards/{card}/freeze")
    assert outbox(inprocess.db_path) == []


# --- delivery: retries, giving up, dead receivers ---------------------------------------------


async def test_a_failing_receiver_gets_the_same_event_until_it_answers_2xx(
    tmp_path: Path,
) -> None:
    receiver = Receiver(statuses=(500, 500, 200))
    db = tmp_path / "sandbox.db"
    with running(receiver) as url:
        async with open_sandbox(db, "inprocess", max_attempts=5) as sb:
            secret = await set_webhook(sb.client, url)
            card = await new_card(sb, 5000)
            outcome = await swipe(sb.client, card, 1000)
            await eventually(all_delivered(db, 1))
            deliveries = receiver.deliveries()

    [row] = outbox(db)
    assert row["event"]["type"] == "authorization.decided"
    assert row["event"]["data"]["auth_id"] == outcome["auth_id"]
    assert (row["attempts"], row["last_status"], row["failed_at"]) == (3, 200, None)
    assert row["delivered_at"] is not None
    assert [d.event_id for d in deliveries] == [row["id"]] * 3
    assert {d.body for d in deliveries} == {row["body"]}
    assert all(signature_ok(secret, d.body, d.signature) for d in deliveries)


async def test_delivery_stops_after_max_attempts(tmp_path: Path) -> None:
    receiver = Receiver(status=500)
    db = tmp_path / "sandbox.db"
    with running(receiver) as url:
        async with open_sandbox(db, "inprocess", max_attempts=3) as sb:
            await set_webhook(sb.client, url)
            card = await new_card(sb, 5000)
            await swipe(sb.client, card, 1000)
            await eventually(lambda: outbox(db)[0]["failed_at"] is not None)
            [given_up] = outbox(db)

            # A later event gets through once the receiver recovers; the given-up one stays put.
            receiver.status = 200
            await swipe(sb.client, card, 1000)
            await eventually(lambda: outbox(db)[1]["delivered_at"] is not None)
            deliveries = receiver.deliveries()

    assert (given_up["attempts"], given_up["last_status"]) == (3, 500)
    assert given_up["delivered_at"] is None
    first, second = outbox(db)
    assert (first["attempts"], first["delivered_at"]) == (3, None)
    assert first["failed_at"] == given_up["failed_at"]
    assert [d.event_id for d in deliveries] == [first["id"]] * 3 + [second["id"]]


async def _timed_swipes(client: httpx.AsyncClient, card_id: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        outcome = await swipe(client, card_id, 100)
        latencies.append(time.perf_counter() - start)
        assert outcome["decision"] == "approve"
    return latencies


@pytest.mark.parametrize(
    ("transport", "receiver_kind"),
    [("inprocess", "closed_port"), ("inprocess", "hung"), ("http", "hung")],
)
async def test_a_dead_or_hung_receiver_never_slows_a_swipe(
    tmp_path: Path, transport: str, receiver_kind: str
) -> None:
    # A swipe that waited on delivery to the hung receiver would take this long, each.
    timeout = 10.0
    receiver = Receiver(hang=True)
    db = tmp_path / "sandbox.db"
    with running(receiver) as hung_url:
        # Production backoff: the fast test backoff would make 50 dead events retry hundreds
        # of times a second, which measures the retry storm rather than the swipe path.
        options: dict[str, Any] = {"timeout": timeout, "base_delay": 0.5, "max_delay": 300.0}
        async with open_sandbox(db, transport, **options) as sb:
            card = await new_card(sb, 10**9)
            baseline = await _timed_swipes(sb.client, card, 50)  # no webhook URL: no events

            url = hung_url if receiver_kind == "hung" else closed_port_url()
            await set_webhook(sb.client, url)
            await swipe(sb.client, card, 100)
            # The dispatcher is really busy with the dead endpoint before the timing starts.
            if receiver_kind == "hung":
                await eventually(lambda: len(receiver.deliveries()) >= 1)
            else:
                await eventually(lambda: outbox(db)[0]["attempts"] >= 1)
            with anyio.fail_after(timeout):
                latencies = await _timed_swipes(sb.client, card, 50)
            rows = outbox(db)

    assert len(rows) == 51  # every swipe queued its event, none delivered
    assert all(row["delivered_at"] is None for row in rows)
    assert max(latencies) < timeout / 10, max(latencies)
    assert sum(latencies) < 3 * sum(baseline) + 1.0, (sum(latencies), sum(baseline))
    if receiver_kind == "closed_port":
        assert rows[0]["last_status"] is None
    else:
        assert all(row["attempts"] == 0 for row in rows)  # still in flight, none given up


# --- POST /v1/webhooks/test -------------------------------------------------------------------


async def test_the_test_endpoint_needs_a_url(inprocess: Sandbox) -> None:
    response = await inprocess.client.post("/v1/webhooks/test")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_not_set"


async def test_the_test_endpoint_delivers_one_signed_synthetic_event(sandbox: Sandbox) -> None:
    receiver = Receiver()
    with running(receiver) as url:
        secret = await set_webhook(sandbox.client, url)
        response = await sandbox.client.post("/v1/webhooks/test")
        deliveries = receiver.deliveries()  # delivered before the answer, not later
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["delivered"], result["status_code"], result["error"]) == (True, 200, None)

    [delivery] = deliveries
    assert delivery.event_id == result["event_id"]
    assert signature_ok(secret, delivery.body, delivery.signature)
    event = delivery.event
    assert (event["id"], event["type"]) == (result["event_id"], "authorization.decided")
    assert event["data"]["test"] is True
    assert event["data"]["decision"] in ("approve", "decline")
    assert outbox(sandbox.db_path) == []  # synthetic: nothing queued


async def test_the_test_endpoint_reports_a_dead_or_failing_receiver(inprocess: Sandbox) -> None:
    await set_webhook(inprocess.client, closed_port_url())
    response = await inprocess.client.post("/v1/webhooks/test")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["delivered"], result["status_code"]) == (False, None)
    assert isinstance(result["error"], str)
    assert result["error"]

    receiver = Receiver(status=503)
    with running(receiver) as url:
        await set_webhook(inprocess.client, url)
        response = await inprocess.client.post("/v1/webhooks/test")
    result = response.json()
    assert (result["delivered"], result["status_code"]) == (False, 503)
    assert len(receiver.deliveries()) == 1


# --- durability -------------------------------------------------------------------------------


async def test_events_queued_without_a_dispatcher_are_delivered_after_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sandbox.db"
    clock = FakeClock()
    receiver = Receiver()
    with running(receiver) as url:
        # An app whose lifespan never runs: nothing delivers, events only pile up.
        store = Store(db)
        try:
            credentials = provision(store, db, clock)
            app = create_app(store, clock=clock)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://sandbox",
                headers={"Authorization": f"Bearer {credentials.api_key}"},
            ) as client:
                secret = await set_webhook(client, url)
                response = await client.post(
                    "/v1/cards", json={"agent_id": credentials.agent_id, "daily_limit_cents": 500}
                )
                card = response.json()["id"]
                outcome = await swipe(client, card, 500)  # reaches the limit: two events
                await client.post(f"/v1/cards/{card}/freeze")
        finally:
            store.close()

        queued = outbox(db)
        assert [row["event"]["type"] for row in queued] == [
            "authorization.decided",
            "daily_limit.hit",
            "card.frozen",
        ]
        assert all(row["delivered_at"] is None and row["attempts"] == 0 for row in queued)
        assert receiver.deliveries() == []

        async with open_sandbox(db, "inprocess", clock):
            await eventually(all_delivered(db, 3))
            deliveries = receiver.deliveries()

    assert sorted(d.event_id for d in deliveries) == sorted(row["id"] for row in queued)
    assert all(signature_ok(secret, d.body, d.signature) for d in deliveries)
    assert {d.body for d in deliveries} == {row["body"] for row in queued}
    [decided] = [d.event for d in deliveries if d.event["type"] == "authorization.decided"]
    assert decided["data"]["auth_id"] == outcome["auth_id"]
