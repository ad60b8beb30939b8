"""The session bindings' contract (storage.base.SessionBindings): a session answers the key that
opened it, and keeps that key. In process memory with SQLite (one HTTP process, where the
session itself lives), in PostgreSQL for replicas: a session opened through one replica is bound
to its key on all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any
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


class Clock:
    """A replica's clock, moved by hand (the database's is moved by ageing its rows)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * 3600


@pytest.fixture
async def open_pool_at(target: str) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    async with AsyncExitStack() as stack:

        async def opened() -> Any:
            return await stack.enter_async_context(open_pool(target, max_size=2))

        yield opened


def age(target: str, sid: str, hours: int) -> None:
    aged = (
        "UPDATE session_bindings SET created_at = created_at - %s::interval WHERE session_id = %s"
    )
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(aged, (f"{hours} hours", sid))


def forget(target: str, sid: str) -> None:
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("DELETE FROM session_bindings WHERE session_id = %s", (sid,))


@pytest.mark.usefixtures("replicas")
async def test_bindings_older_than_a_day_are_pruned_when_a_session_is_bound(
    open_pool_at: Callable[[], Awaitable[Any]], target: str
) -> None:
    clock = Clock()
    bindings = PostgresSessionBindings(await open_pool_at(), clock=clock)
    old, recent, new = session(), session(), session()
    await bindings.bind(old, "key_a")
    clock.advance(2)
    await bindings.bind(recent, "key_a")
    clock.advance(23)  # 25 hours since the first binding, 23 since the second
    age(target, old, 25)
    age(target, recent, 23)

    await bindings.bind(new, "key_b")

    assert await bindings.owner(old) is None
    assert await bindings.owner(recent) == "key_a"
    assert await bindings.owner(new) == "key_b"


@pytest.mark.usefixtures("replicas")
async def test_a_replica_answers_the_bindings_it_wrote_from_memory_until_the_table_may_drop_them(
    open_pool_at: Callable[[], Awaitable[Any]], target: str
) -> None:
    clock = Clock()
    a = PostgresSessionBindings(await open_pool_at(), clock=clock)
    b = PostgresSessionBindings(await open_pool_at(), clock=clock)
    mine, theirs = session(), session()
    await a.bind(mine, "key_a")
    await b.bind(theirs, "key_b")
    await a.bind(theirs, "key_a")  # too late: b's binding holds, and a must not remember its own
    forget(target, mine)
    forget(target, theirs)

    # a wrote the first binding: it answers it without the table; nobody else can.
    assert await a.owner(mine) == "key_a"
    assert await b.owner(mine) is None
    assert await a.owner(theirs) is None
    clock.advance(23.9)
    assert await a.owner(mine) == "key_a"
    clock.advance(0.1)  # a day since, less the margin: the table may have pruned it
    assert await a.owner(mine) is None


@pytest.mark.usefixtures("replicas")
async def test_a_replica_remembers_a_bounded_number_of_bindings_and_asks_the_table_for_the_rest(
    open_pool_at: Callable[[], Awaitable[Any]], target: str
) -> None:
    bindings = PostgresSessionBindings(await open_pool_at(), remembered=2)
    first, second, third = session(), session(), session()
    await bindings.bind(first, "key_a")
    await bindings.bind(second, "key_b")
    assert await bindings.owner(first) == "key_a"  # in use: kept over the second
    await bindings.bind(third, "key_c")

    assert await bindings.owner(second) == "key_b"  # forgotten here, still in the table
    for sid in (first, second, third):
        forget(target, sid)
    assert await bindings.owner(first) == "key_a"
    assert await bindings.owner(second) is None
    assert await bindings.owner(third) == "key_c"


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
