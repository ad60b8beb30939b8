"""The approval store's contract (storage.base.ApprovalStore), the same for both backends: bound to
the exact arguments, single-use, expiring, shared by every store open on one database — other
processes on one SQLite home, other replicas on one PostgreSQL — and by the operator's
``agentcard-mcp approvals`` command run against it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, closing
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio
import psycopg
import pytest

from agentcard_mcp.approvals import APPROVAL_TTL, Approval, Clock, digest, utcnow
from agentcard_mcp.errors import (
    AgentCardError,
    ApprovalDenied,
    ApprovalRequired,
    InvalidParams,
    NotFound,
)
from agentcard_mcp.storage.base import ApprovalStore
from agentcard_mcp.storage.postgres.approvals import PENDING as PG_PENDING
from agentcard_mcp.storage.postgres.approvals import PostgresApprovals
from agentcard_mcp.storage.postgres.db import open_pool
from agentcard_mcp.storage.sqlite.approvals import PENDING as SQLITE_PENDING
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")

CREATE = {
    "purpose": "flights to Lisbon",
    "daily_limit_cents": 5000,
    "per_auth_max_cents": 5000,
    "mcc_allowlist": ["travel"],
}
SUMMARY = "create_card: daily limit $50.00, per purchase $50.00, categories travel"


class OpenApprovals(Protocol):
    """Opens one more store on the test's database: its own SQLite connection, or its own pool
    (a replica, as far as PostgreSQL can tell), on the test's clock unless given another.
    Closed at the end of the test."""

    def __call__(self, clock: Clock | None = None) -> Awaitable[ApprovalStore]: ...


@pytest.fixture
async def open_approvals(
    backend: str, target: str, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[OpenApprovals]:
    fake = clock
    async with AsyncExitStack() as stack:

        async def open_(clock: Clock | None = None) -> ApprovalStore:
            store: ApprovalStore
            if backend == "sqlite":
                store = SqliteApprovals(Path(target), clock=clock or fake)
            else:
                pool = await stack.enter_async_context(open_pool(target, max_size=4))
                store = PostgresApprovals(pool, clock=clock or fake)
            stack.push_async_callback(store.aclose)
            return store

        yield open_


@pytest.fixture
async def store(open_approvals: OpenApprovals) -> ApprovalStore:
    return await open_approvals()


async def approved(store: ApprovalStore, tool: str = "create_card", **arguments: Any) -> Approval:
    approval, _ = await store.request(tool, arguments or CREATE, SUMMARY)
    return await store.approve(approval.id)


async def code_of(call: Awaitable[object]) -> str:
    with pytest.raises(AgentCardError) as caught:
        await call
    return caught.value.code


# --- request -------------------------------------------------------------------------------


async def test_request_creates_a_pending_approval_that_expires_in_ten_minutes(
    store: ApprovalStore, clock: FakeClock
) -> None:
    approval, _ = await store.request("create_card", {**CREATE, "idempotency_key": "k1"}, SUMMARY)
    assert re.fullmatch(r"apr_[a-z0-9]{20}", approval.id)
    assert approval.status == "pending"
    assert approval.digest == digest("create_card", CREATE)
    assert approval.arguments == CREATE  # stored as bound: no idempotency key
    assert approval.summary == SUMMARY
    assert approval.created_at == clock.now
    assert approval.expires_at == clock.now + APPROVAL_TTL == clock.now + timedelta(minutes=10)
    assert approval.decided_at is None
    assert approval.used_at is None
    assert await store.get(approval.id) == approval


async def test_a_retry_without_approval_id_returns_the_same_pending_request(
    store: ApprovalStore,
) -> None:
    first, made_first = await store.request(
        "create_card", {**CREATE, "idempotency_key": "k1"}, SUMMARY
    )
    again, made_again = await store.request(
        "create_card", {**CREATE, "idempotency_key": "k2"}, SUMMARY
    )
    other, made_other = await store.request(
        "create_card", {**CREATE, "daily_limit_cents": 4000}, SUMMARY
    )
    assert again.id == first.id
    assert other.id != first.id
    # Only a request that made the approval says so: the operator is told of each one once.
    assert (made_first, made_again, made_other) == (True, False, True)
    assert [a.id for a in await store.pending()] == [first.id, other.id]


async def test_concurrent_requests_for_one_call_make_one_pending_approval(
    open_approvals: OpenApprovals,
) -> None:
    stores = [await open_approvals() for _ in range(3)]
    made: list[str] = []
    new: list[bool] = []

    async def ask(own: ApprovalStore) -> None:
        approval, is_new = await own.request("create_card", CREATE, SUMMARY)
        made.append(approval.id)
        new.append(is_new)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for i in range(12):
                tasks.start_soon(ask, stores[i % len(stores)])
    assert len(set(made)) == 1
    assert new.count(True) == 1
    assert [a.id for a in await stores[0].pending()] == made[:1]


async def test_a_new_request_is_made_once_the_pending_one_expired_or_was_decided(
    store: ApprovalStore, clock: FakeClock
) -> None:
    first, _ = await store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=10)
    second, second_new = await store.request("create_card", CREATE, SUMMARY)
    await store.deny(second.id)
    third, third_new = await store.request("create_card", CREATE, SUMMARY)
    assert len({first.id, second.id, third.id}) == 3
    assert (second_new, third_new) == (True, True)
    assert [a.id for a in await store.pending()] == [third.id]


async def test_what_the_agent_wrote_is_kept_as_sent_or_spelled_out(store: ApprovalStore) -> None:
    # PostgreSQL text cannot hold NUL: spelled out there, never an internal error.
    sent = {"purpose": "tab\there, nul\x00there, bidi \u202e, emoji \U0001f4b3"}
    approval, _ = await store.request("create_card", sent, "create_card: x")
    shown = approval.arguments["purpose"]
    assert shown in (sent["purpose"], sent["purpose"].replace("\x00", "\\u0000"))
    assert approval.digest == digest("create_card", sent)
    assert (await store.request("create_card", sent, "create_card: x")).approval.id == approval.id
    await store.approve(approval.id)
    assert (await store.consume(approval.id, "create_card", sent)).status == "used"


# --- approve, deny, consume ------------------------------------------------------------------


async def test_an_approval_is_consumed_once_and_then_refused(store: ApprovalStore) -> None:
    approval = await approved(store)
    assert approval.status == "approved"
    assert approval.decided_at is not None
    repeat = {**CREATE, "approval_id": approval.id, "idempotency_key": "new"}
    used = await store.consume(approval.id, "create_card", repeat)
    assert used.status == "used"
    assert used.used_at is not None
    with pytest.raises(ApprovalDenied, match="single-use"):
        await store.consume(approval.id, "create_card", repeat)


async def test_a_pending_approval_cannot_be_consumed(store: ApprovalStore) -> None:
    approval, _ = await store.request("create_card", CREATE, SUMMARY)
    with pytest.raises(ApprovalRequired) as caught:
        await store.consume(approval.id, "create_card", CREATE)
    assert f"approvals approve {approval.id}" in caught.value.message
    assert (await store.get(approval.id)).status == "pending"


async def test_a_denied_approval_cannot_be_consumed_nor_approved(store: ApprovalStore) -> None:
    approval, _ = await store.request("create_card", CREATE, SUMMARY)
    assert (await store.deny(approval.id)).status == "denied"
    assert await code_of(store.consume(approval.id, "create_card", CREATE)) == "approval_denied"
    assert await code_of(store.approve(approval.id)) == "invalid_params"
    assert (await store.get(approval.id)).status == "denied"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_card", {**CREATE, "daily_limit_cents": 9000}),
        ("create_card", {**CREATE, "mcc_allowlist": None}),
        ("set_policy", CREATE),
    ],
)
async def test_other_arguments_are_refused_and_do_not_use_up_the_approval(
    store: ApprovalStore, tool: str, arguments: dict[str, Any]
) -> None:
    approval = await approved(store)
    with pytest.raises(ApprovalDenied, match="different arguments"):
        await store.consume(approval.id, tool, arguments)
    assert (await store.get(approval.id)).status == "approved"
    assert (await store.consume(approval.id, "create_card", CREATE)).status == "used"


async def test_unknown_ids_are_not_found(store: ApprovalStore) -> None:
    assert await code_of(store.consume("apr_" + "0" * 20, "create_card", CREATE)) == "not_found"
    assert await code_of(store.approve("apr_nope")) == "not_found"
    assert await code_of(store.deny("")) == "not_found"
    assert await code_of(store.get("apr_\x00")) == "not_found"
    with pytest.raises(NotFound) as caught:
        await store.get("x" * 10_000)
    assert len(caught.value.message) < 200  # an agent-sent id is not echoed whole


async def test_deciding_twice_is_refused_saying_so(store: ApprovalStore) -> None:
    approval = await approved(store)
    with pytest.raises(InvalidParams, match="already approved"):
        await store.approve(approval.id)
    with pytest.raises(InvalidParams, match="already approved"):
        await store.deny(approval.id)


# --- expiry --------------------------------------------------------------------------------


async def test_an_approval_is_good_for_ten_minutes_after_the_request(
    store: ApprovalStore, clock: FakeClock
) -> None:
    in_time = await approved(store)
    too_late = await approved(store, daily_limit_cents=4000)
    clock.advance(minutes=9, seconds=59)
    assert (await store.consume(in_time.id, "create_card", CREATE)).status == "used"
    clock.advance(seconds=2)
    assert (await store.get(too_late.id)).status == "expired"
    with pytest.raises(ApprovalDenied, match="expired"):
        await store.consume(too_late.id, "create_card", {**CREATE, "daily_limit_cents": 4000})
    assert (await store.get(in_time.id)).status == "used"  # used stays used, not expired


async def test_an_expired_request_cannot_be_approved(
    store: ApprovalStore, clock: FakeClock
) -> None:
    approval, _ = await store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=10, seconds=1)
    assert await store.pending() == []
    with pytest.raises(InvalidParams, match="expired"):
        await store.approve(approval.id)


# --- elicitation record ----------------------------------------------------------------------


@pytest.mark.parametrize(("accepted", "status"), [(True, "used"), (False, "denied")])
async def test_elicited_decisions_are_recorded_and_cannot_be_consumed_again(
    store: ApprovalStore, accepted: bool, status: str
) -> None:
    record = await store.record_elicited(
        "close_card", {"card_id": "card_1"}, "close card_1", accepted
    )
    assert record.status == status
    assert record.decided_at is not None
    assert (record.used_at is not None) is accepted
    assert await store.pending() == []
    assert await store.recent() == [record]
    consumed = store.consume(record.id, "close_card", {"card_id": "card_1"})
    assert await code_of(consumed) == "approval_denied"


async def test_recent_lists_every_status_newest_first(
    store: ApprovalStore, clock: FakeClock
) -> None:
    first, _ = await store.request("create_card", CREATE, SUMMARY)
    clock.advance(seconds=1)
    second = await store.record_elicited("close_card", {"card_id": "card_1"}, "close", False)
    assert [a.id for a in await store.recent()] == [second.id, first.id]
    assert [a.id for a in await store.recent(limit=1)] == [second.id]


# --- sharing: other processes, other replicas ---------------------------------------------------


async def test_an_approval_made_through_one_store_is_used_through_another(
    open_approvals: OpenApprovals,
) -> None:
    server, operator, other_replica = [await open_approvals() for _ in range(3)]
    approval, _ = await server.request("create_card", CREATE, SUMMARY)
    assert [a.id for a in await other_replica.pending()] == [approval.id]
    await operator.approve(approval.id)
    assert (await other_replica.consume(approval.id, "create_card", CREATE)).status == "used"
    assert (await server.get(approval.id)).status == "used"


async def test_of_twenty_concurrent_consumes_over_three_stores_exactly_one_succeeds(
    open_approvals: OpenApprovals,
) -> None:
    stores = [await open_approvals() for _ in range(3)]
    approval = await approved(stores[0])
    outcomes: list[str] = []
    start = anyio.Event()

    async def attempt(own: ApprovalStore) -> None:
        await start.wait()
        try:
            await own.consume(approval.id, "create_card", CREATE)
            outcomes.append("used")
        except AgentCardError as exc:
            outcomes.append(exc.code)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for i in range(20):
                tasks.start_soon(attempt, stores[i % len(stores)])
            start.set()
    assert sorted(outcomes) == ["approval_denied"] * 19 + ["used"]
    assert (await stores[2].get(approval.id)).status == "used"


async def test_pending_reads_an_index_not_every_approval_ever_made(
    backend: str, target: str, store: ApprovalStore, clock: FakeClock
) -> None:
    waiting, _ = await store.request("create_card", CREATE, SUMMARY)
    now = clock.now.isoformat()
    if backend == "sqlite":
        with closing(sqlite3.connect(Path(target) / "approvals.db")) as db:
            rows = db.execute(f"EXPLAIN QUERY PLAN {SQLITE_PENDING}", (now,)).fetchall()
        plan = " ".join(str(row[3]) for row in rows)
        assert "USING INDEX approvals_pending (status=? AND expires_at>?)" in plan, plan
    else:
        async with await psycopg.AsyncConnection.connect(target, autocommit=True) as conn:
            # A history: 20 000 used approvals and 20 000 requests that expired unanswered
            # (still stored as pending), then fresh statistics.
            await conn.execute(
                "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
                "expires_at) SELECT 'apr_old' || n, 'create_card', md5(n::text), 's', '{}', "
                "CASE WHEN n %% 2 = 0 THEN 'used' ELSE 'pending' END, "
                "%s - interval '1 day', %s - interval '1 day' "
                "FROM generate_series(1, 40000) AS n",
                (clock.now, clock.now),
            )
            await conn.execute("ANALYZE approvals")
            cursor = await conn.execute(f"EXPLAIN {PG_PENDING}", (clock.now,))
            plan = " ".join(str(row[0]) for row in await cursor.fetchall())
        assert "using approvals_pending on approvals" in plan, plan
    assert [a.id for a in await store.pending()] == [waiting.id]


# --- the operator's command, as a process, on the backend the settings name -------------------


def cli_env(backend: str, target: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    env["AGENTCARD_HOME"] = str(Path(target) if backend == "sqlite" else home)
    if backend == "postgres":
        env["AGENTCARD_DATABASE_URL"] = target
    return env


async def approvals_cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(SCRIPT), "approvals", *args],
            env=env,
            cwd=cwd,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_the_operator_lists_and_approves_with_the_command_on_the_same_backend(
    backend: str, target: str, tmp_path: Path, open_approvals: OpenApprovals
) -> None:
    server = await open_approvals(utcnow)  # the real clock: the command reads one too
    approval, _ = await server.request("create_card", CREATE, SUMMARY)
    env = cli_env(backend, target, tmp_path / "operator-home")

    status, out, err = await approvals_cli(env, tmp_path, "list")
    assert status == 0, err
    assert out.startswith(f"{approval.id}  create_card  expires in ")
    assert SUMMARY in out

    status, out, err = await approvals_cli(env, tmp_path, "approve", approval.id)
    assert status == 0, err
    assert out.startswith(f"approved {approval.id}: {SUMMARY}\n")
    assert (await server.consume(approval.id, "create_card", CREATE)).status == "used"

    status, out, err = await approvals_cli(env, tmp_path, "deny", approval.id)
    assert (status, out) == (2, "")
    assert "already used" in err


# --- who asked ---------------------------------------------------------------------------------


async def test_the_caller_of_a_request_is_kept_and_read_back_everywhere(
    store: ApprovalStore, open_approvals: OpenApprovals
) -> None:
    over_http, _ = await store.request("create_card", CREATE, SUMMARY, caller="key_0123abcd")
    on_stdio, _ = await store.request("close_card", {"card_id": "card_1"}, "close", caller="stdio")
    unnamed, _ = await store.request("close_card", {"card_id": "card_2"}, "close")
    elicited = await store.record_elicited("close_card", {"card_id": "c3"}, "x", True, caller="k")
    assert (over_http.caller, on_stdio.caller, unnamed.caller) == ("key_0123abcd", "stdio", None)
    assert elicited.caller == "k"
    other = await open_approvals()
    assert (await other.get(over_http.id)).caller == "key_0123abcd"
    assert (await other.approve(on_stdio.id)).caller == "stdio"
    assert {a.id: a.caller for a in await other.pending()} == {
        over_http.id: "key_0123abcd",
        unnamed.id: None,
    }
    assert {a.id: a.caller for a in await other.recent()}[elicited.id] == "k"
    # A retry by another caller finds the same pending request, which keeps its first asker.
    again, new = await other.request("create_card", CREATE, SUMMARY, caller="stdio")
    assert (again.id, new, again.caller) == (over_http.id, False, "key_0123abcd")


def test_an_approvals_db_made_before_the_caller_column_gains_it_in_place(tmp_path: Path) -> None:
    path = tmp_path / "approvals.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE approvals (
                id TEXT PRIMARY KEY, tool TEXT NOT NULL, digest TEXT NOT NULL,
                summary TEXT NOT NULL, arguments TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
                created_at TEXT NOT NULL, expires_at TEXT NOT NULL, decided_at TEXT, used_at TEXT
            );
            INSERT INTO approvals VALUES ('apr_old', 'close_card', 'd', 's', '{}', 'used',
                '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:10:00.000000+00:00', NULL, NULL);
            """
        )
        conn.commit()

    async def check() -> None:
        async with SqliteApprovals(tmp_path) as store:
            assert (await store.get("apr_old")).caller is None
            made, _ = await store.request("create_card", CREATE, SUMMARY, caller="stdio")
            assert (await store.get(made.id)).caller == "stdio"
        async with SqliteApprovals(tmp_path) as again:  # opening twice adds the column once
            assert (await again.get(made.id)).caller == "stdio"

    anyio.run(check)
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(approvals)")]
    assert columns.count("caller") == 1
