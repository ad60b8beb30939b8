"""The key store's contract (storage.base.KeyStore), the same for both backends: keys shown once
and kept only as digests, found by the plaintext, revoked for good — and shared by every store
open on one database (other processes on one SQLite home, other replicas on one PostgreSQL), so
a key made or revoked through one counts on all from their next lookup."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, closing
from pathlib import Path
from typing import Protocol

import anyio
import psycopg
import pytest

from agentcard_mcp.errors import AgentCardError
from agentcard_mcp.keys import KEY_PATTERN, ApiKey, hash_key, new_key
from agentcard_mcp.storage.base import KeyStore
from agentcard_mcp.storage.postgres.db import open_pool
from agentcard_mcp.storage.postgres.keys import PostgresKeyStore
from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore

pytestmark = pytest.mark.anyio


class Clock:
    """A monotonic clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class OpenKeys(Protocol):
    """Opens one more store on the test's database: its own SQLite connection, or its own pool
    (a replica, as far as PostgreSQL can tell). Closed at the end of the test."""

    def __call__(self, clock: Clock | None = None) -> Awaitable[KeyStore]: ...


@pytest.fixture
async def open_keys(backend: str, target: str, anyio_backend: str) -> AsyncIterator[OpenKeys]:
    async with AsyncExitStack() as stack:

        async def open_(clock: Clock | None = None) -> KeyStore:
            store: KeyStore
            kwargs = {} if clock is None else {"clock": clock}
            if backend == "sqlite":
                store = SqliteKeyStore(Path(target), **kwargs)
            else:
                pool = await stack.enter_async_context(open_pool(target, max_size=4))
                store = PostgresKeyStore(pool, **kwargs)
            stack.push_async_callback(store.aclose)
            return store

        yield open_


@pytest.fixture
async def store(open_keys: OpenKeys) -> KeyStore:
    return await open_keys()


def raw(backend: str, target: str, sql: str) -> list[tuple[object, ...]]:
    """``sql`` run on the database itself, past the store (no parameters)."""
    if backend == "sqlite":
        with closing(sqlite3.connect(Path(target) / "keys.db")) as conn, conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(target, autocommit=True) as pg:
        cursor = pg.execute(sql.encode())
        return cursor.fetchall() if cursor.description else []


async def code_of(call: Awaitable[object]) -> str:
    with pytest.raises(AgentCardError) as caught:
        await call
    return caught.value.code


# --- create and find -------------------------------------------------------------------------


async def test_a_new_key_is_returned_once_and_found_by_its_plaintext(store: KeyStore) -> None:
    key, record = await store.create("crewai prod", scope="cards:read", rate=120)

    assert KEY_PATTERN.fullmatch(key)
    assert record.id.startswith("key_")
    assert (record.name, record.scope, record.rate) == ("crewai prod", "cards:read", 120)
    assert record.prefix == key[:9]
    assert record.active
    assert record.last_used_at is None
    assert await store.find(key) == record
    assert await store.get(record.id) == record
    assert await store.all() == [record]


async def test_in_band_approval_is_off_unless_the_key_is_made_with_it(store: KeyStore) -> None:
    plain, default = await store.create("agent framework")
    trusted, allowed = await store.create("desktop host", allow_in_band_approval=True)

    assert not default.allow_in_band_approval
    assert allowed.allow_in_band_approval
    assert await store.find(plain) == default
    assert await store.find(trusted) == allowed
    assert await store.get(allowed.id) == allowed
    listed = {key.id: key.allow_in_band_approval for key in await store.all()}
    assert listed == {default.id: False, allowed.id: True}


async def test_a_keys_db_made_before_the_in_band_flag_gains_it_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    old = new_key()
    with closing(sqlite3.connect(home / "keys.db")) as conn, conn:
        conn.execute(
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NOT NULL,"
            " sha256 TEXT NOT NULL UNIQUE, scope TEXT NOT NULL, rate INTEGER NOT NULL,"
            " created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT)"
        )
        conn.execute(
            "INSERT INTO api_keys VALUES ('key_old', 'old', ?, ?, 'cards:write', 60,"
            " '2026-01-01T00:00:00+00:00', NULL, NULL)",
            (old[:9], hash_key(old)),
        )

    first, second = SqliteKeyStore(home), SqliteKeyStore(home)  # the second finds it added
    try:
        found = await second.find(old)
        assert found is not None
        assert not found.allow_in_band_approval
        _, made = await first.create("new", allow_in_band_approval=True)
        assert (await second.get(made.id)).allow_in_band_approval
    finally:
        await first.aclose()
        await second.aclose()


async def test_only_the_digest_and_the_display_prefix_are_kept(
    store: KeyStore, backend: str, target: str
) -> None:
    key, _ = await store.create("prod")

    rows = raw(backend, target, "SELECT * FROM api_keys")
    kept = " ".join(str(value) for row in rows for value in row)
    assert hash_key(key) in kept
    assert key[9:] not in kept  # nothing of the key past its prefix
    assert key[13:] not in kept


async def test_a_key_that_was_never_made_is_not_found(store: KeyStore) -> None:
    key, _ = await store.create("prod")
    near = key[:-1] + ("a" if key[-1] != "a" else "b")

    assert await store.find(new_key()) is None
    assert await store.find(near) is None
    assert await code_of(store.get("key_nope")) == "not_found"
    assert not await store.is_active("key_nope")


@pytest.mark.parametrize(
    ("name", "scope", "rate"),
    [
        ("", "cards:write", 60),
        ("   ", "cards:write", 60),
        ("x" * 101, "cards:write", 60),
        ("tab\there", "cards:write", 60),
        ("nul\x00", "cards:write", 60),
        ("ok", "admin", 60),
        ("ok", "cards:write", 45),
    ],
    ids=["empty", "blank", "long", "control", "nul", "scope", "rate"],
)
async def test_a_key_it_cannot_have_is_refused_and_nothing_is_stored(
    store: KeyStore, name: str, scope: str, rate: int
) -> None:
    assert await code_of(store.create(name, scope=scope, rate=rate)) == "invalid_params"
    assert await store.all() == []


async def test_keys_are_listed_oldest_first(store: KeyStore) -> None:
    made = [(await store.create(name))[1] for name in ("first", "second", "third")]

    listed = await store.all()
    assert {key.id for key in listed} == {key.id for key in made}
    assert [key.created_at for key in listed] == sorted(key.created_at for key in made)


# --- revoke ----------------------------------------------------------------------------------


async def test_a_revoked_key_is_no_longer_found_nor_active(store: KeyStore) -> None:
    key, record = await store.create("to revoke")
    other, _ = await store.create("other")
    assert await store.is_active(record.id)

    revoked = await store.revoke(record.id)

    assert revoked.id == record.id
    assert revoked.revoked_at is not None
    assert not revoked.active
    assert await store.find(key) is None
    assert not await store.is_active(record.id)
    assert (await store.get(record.id)).revoked_at == revoked.revoked_at  # kept, for the list
    assert await store.find(other) is not None  # only that key


async def test_a_key_is_revoked_once_and_an_unknown_one_not_at_all(store: KeyStore) -> None:
    _, record = await store.create("to revoke")
    await store.revoke(record.id)

    assert await code_of(store.revoke(record.id)) == "invalid_params"
    assert await code_of(store.revoke("key_nope")) == "not_found"


async def test_any_active_counts_only_keys_not_revoked(store: KeyStore) -> None:
    assert not await store.any_active()
    _, record = await store.create("only")
    assert await store.any_active()
    await store.revoke(record.id)
    assert not await store.any_active()


# --- shared by every store on the database ---------------------------------------------------


async def test_a_key_made_and_revoked_through_one_store_counts_on_another_at_once(
    open_keys: OpenKeys,
) -> None:
    server, operator = await open_keys(), await open_keys()
    unknown = new_key()
    assert await server.find(unknown) is None  # looked up (and remembered) before it exists

    key, record = await operator.create("elsewhere")
    assert await server.find(key) == record
    assert await server.is_active(record.id)  # both lookups made, and remembered

    await operator.revoke(record.id)
    assert await server.find(key) is None
    assert not await server.is_active(record.id)
    assert not await server.any_active()


async def test_concurrent_creates_through_several_stores_all_land(open_keys: OpenKeys) -> None:
    stores = [await open_keys() for _ in range(3)]
    made: list[tuple[str, ApiKey]] = []

    async def create(store: KeyStore, n: int) -> None:
        made.append(await store.create(f"key {n}"))

    async with anyio.create_task_group() as tasks:
        for n in range(12):
            tasks.start_soon(create, stores[n % 3], n)

    assert len({record.id for _, record in made}) == 12
    for key, record in made:
        assert await stores[0].find(key) == record


# --- last use ----------------------------------------------------------------------------------


async def test_use_is_recorded_at_most_once_a_minute_per_key(
    open_keys: OpenKeys, backend: str, target: str
) -> None:
    clock = Clock()
    store = await open_keys(clock)
    _, record = await store.create("used")

    await store.touch(record.id)
    first = (await store.get(record.id)).last_used_at
    assert first is not None
    assert first >= record.created_at

    raw(backend, target, "UPDATE api_keys SET last_used_at = NULL")
    clock.now += 59
    await store.touch(record.id)
    assert (await store.get(record.id)).last_used_at is None  # not written again yet

    clock.now += 1
    await store.touch(record.id)
    assert (await store.get(record.id)).last_used_at is not None
