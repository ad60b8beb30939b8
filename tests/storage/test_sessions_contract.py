"""The session bindings' contract (storage.base.SessionBindings): a session answers the key that
opened it, and keeps that key. In process memory with SQLite (one HTTP process, where the
session itself lives), in PostgreSQL for replicas: a session opened through one replica is bound
to its key on all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from uuid import uuid4

import psycopg
import pytest

from agentcard_mcp.storage.base import SessionBindings
from agentcard_mcp.storage.postgres.db import open_pool
from agentcard_mcp.storage.postgres.sessions import PostgresSessionBindings
from agentcard_mcp.storage.sqlite.sessions import MemorySessionBindings

pytestmark = pytest.mark.anyio

OpenBindings = Callable[[], Awaitable[SessionBindings]]


@pytest.fixture
async def open_bindings(
    backend: str, target: str, anyio_backend: str
) -> AsyncIterator[OpenBindings]:
    """One more store: on PostgreSQL its own pool (a replica); with SQLite the process's one."""
    if backend == "sqlite":
        memory = MemorySessionBindings()

        async def open_memory() -> SessionBindings:
            return memory

        yield open_memory
        return
    async with AsyncExitStack() as stack:

        async def open_postgres() -> SessionBindings:
            pool = await stack.enter_async_context(open_pool(target, max_size=2))
            return PostgresSessionBindings(pool)

        yield open_postgres


@pytest.fixture
async def bindings(open_bindings: OpenBindings) -> SessionBindings:
    return await open_bindings()


def session() -> str:
    return uuid4().hex  # as the SDK makes them


async def test_a_session_never_bound_answers_no_key(bindings: SessionBindings) -> None:
    assert await bindings.owner(session()) is None


async def test_a_bound_session_answers_the_key_that_opened_it(bindings: SessionBindings) -> None:
    first, second = session(), session()
    await bindings.bind(first, "key_a")
    await bindings.bind(second, "key_b")

    assert await bindings.owner(first) == "key_a"
    assert await bindings.owner(second) == "key_b"


async def test_a_session_keeps_its_first_key(bindings: SessionBindings) -> None:
    sid = session()
    await bindings.bind(sid, "key_a")
    await bindings.bind(sid, "key_b")  # another key's response naming the same session

    assert await bindings.owner(sid) == "key_a"


async def test_session_ids_are_matched_exactly(bindings: SessionBindings) -> None:
    sid = session()
    await bindings.bind(sid, "key_a")

    assert await bindings.owner(sid.upper()) is None  # KeyAuth canonicalizes what may vary
    assert await bindings.owner(sid[:-1]) is None
    assert await bindings.owner("") is None
    assert await bindings.owner("nul\x00") is None


# --- shared by every replica (PostgreSQL) ---------------------------------------------------


@pytest.fixture
def replicas(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite's bindings belong to its one HTTP process, as its sessions do")


@pytest.mark.usefixtures("replicas")
async def test_a_session_bound_through_one_replica_answers_its_key_on_every_other(
    open_bindings: OpenBindings,
) -> None:
    a, b, c = [await open_bindings() for _ in range(3)]
    sid = session()
    await a.bind(sid, "key_a")
    await c.bind(sid, "key_c")  # too late: the session is key_a's everywhere

    assert await b.owner(sid) == "key_a"
    assert await c.owner(sid) == "key_a"


@pytest.mark.usefixtures("replicas")
async def test_bindings_older_than_a_day_are_pruned_when_a_session_is_bound(
    bindings: SessionBindings, target: str
) -> None:
    old, recent, new = session(), session(), session()
    await bindings.bind(old, "key_a")
    await bindings.bind(recent, "key_a")
    aged = (
        "UPDATE session_bindings SET created_at = created_at - %s::interval WHERE session_id = %s"
    )
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(aged, ("25 hours", old))
        conn.execute(aged, ("23 hours", recent))

    await bindings.bind(new, "key_b")

    assert await bindings.owner(old) is None
    assert await bindings.owner(recent) == "key_a"
    assert await bindings.owner(new) == "key_b"


# --- bounded memory (SQLite) ----------------------------------------------------------------


async def test_memory_bindings_forget_the_least_recently_used_past_their_limit() -> None:
    bindings = MemorySessionBindings(limit=2)
    first, second, third = session(), session(), session()
    await bindings.bind(first, "key_a")
    await bindings.bind(second, "key_b")
    assert await bindings.owner(first) == "key_a"  # in use: kept over the second

    await bindings.bind(third, "key_c")

    assert await bindings.owner(first) == "key_a"
    assert await bindings.owner(second) is None
    assert await bindings.owner(third) == "key_c"
