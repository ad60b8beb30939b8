"""The operator's API keys in ``<home>/keys.db`` (see storage.base.KeyStore and keys.py).

Every request looks its key up, so lookups are remembered — but only until the file changes.
They are made on a read-only connection of their own, whose ``PRAGMA data_version`` moves when
any other connection commits (the operator's ``keys revoke``, another server on the same home,
this store's own writes): a revocation from anywhere still counts from the very next request.

A lookup runs right on the event loop when it can start at once (the file is in WAL mode, so a
read never waits for a writer; checking ``data_version`` and a remembered answer costs
microseconds). One that would have to wait — for this store's other lookup, or for SQLite
itself (busy, a recovery) — is made in a worker thread instead, through ``SqliteDB``, as every
write is.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal, cast

from ...keys import (
    LAST_USED_EVERY,
    ApiKey,
    Scope,
    StoredKey,
    already_revoked,
    hash_key,
    mint,
    no_such_key,
    timestamp,
)
from ...private_files import connect_private
from .db import SqliteDB

__all__ = ["SqliteKeyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL,
    rate        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at  TEXT,
    allow_in_band_approval INTEGER NOT NULL DEFAULT 0
);
"""

# Columns added since the first keys.db, with their definitions: a home made by an older version
# gains them when it is next opened (under the write lock, so two processes add each once).
_ADDED = {"allow_in_band_approval": "INTEGER NOT NULL DEFAULT 0"}


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row["name"] for row in conn.execute("PRAGMA table_info(api_keys)")}
    for column, definition in _ADDED.items():
        if column not in have:
            conn.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {definition}")


_BY = {
    "sha256": "SELECT * FROM api_keys WHERE sha256 = ?",
    "id": "SELECT * FROM api_keys WHERE id = ?",
}
_REMEMBERED = 10_000  # lookups kept at most: unknown keys tried at random must not pile up


class _Wait:
    """A lookup that cannot be answered without waiting."""


_WAIT: Final = _Wait()


def _read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = ON")


class SqliteKeyStore:
    """The keys of one home, shared by the coroutines of one process."""

    def __init__(self, home: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = SqliteDB(Path(home) / "keys.db", _SCHEMA)  # the file made safely, the schema
        self._db.transaction_sync(_migrate)
        self.path = self._db.path
        self._clock = clock
        self._used: dict[str, float] = {}  # key id -> clock time last_used was written
        # The lookups' own connection; it gives up at once rather than wait (timeout 0).
        try:
            self._reader = connect_private(self.path, _read_only, timeout=0)
        except BaseException:
            self._db.close()
            raise
        self._reader.row_factory = sqlite3.Row
        self._reading = threading.Lock()
        # Lookups by "column:value", valid while the reader's data_version is _version; used
        # only under _reading.
        self._found: dict[str, StoredKey | None] = {}
        self._version = -1

    async def create(
        self,
        name: str,
        *,
        scope: str = "cards:write",
        rate: int = 60,
        allow_in_band_approval: bool = False,
    ) -> tuple[str, ApiKey]:
        new = mint(name, scope=scope, rate=rate, allow_in_band_approval=allow_in_band_approval)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO api_keys (id, name, prefix, sha256, scope, rate, created_at,"
                " allow_in_band_approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new.id, new.name, new.prefix, new.sha256, new.scope, new.rate, timestamp(),
                 int(new.allow_in_band_approval)),
            )  # fmt: skip

        await self._db.transaction(insert)
        return new.key, await self.get(new.id)

    async def get(self, key_id: str) -> ApiKey:
        found = await self._lookup("id", key_id)
        if found is None:
            raise no_such_key(key_id)
        return found.record

    async def find(self, key: str) -> ApiKey | None:
        found = await self._lookup("sha256", hash_key(key))
        return None if found is None else found.matches(key)

    async def is_active(self, key_id: str) -> bool:
        found = await self._lookup("id", key_id)
        return found is not None and found.record.active

    async def touch(self, key_id: str) -> None:
        now = self._clock()
        if now - self._used.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._used[key_id] = now
        await self._write("UPDATE api_keys SET last_used_at = ? WHERE id = ?", timestamp(), key_id)

    async def all(self) -> list[ApiKey]:
        rows = await self._db.read(
            lambda conn: conn.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        )
        return [_stored(row).record for row in rows]

    async def any_active(self) -> bool:
        return bool(
            await self._db.read(
                lambda conn: conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)"
                ).fetchone()[0]
            )
        )

    async def revoke(self, key_id: str) -> ApiKey:
        done = await self._write(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            timestamp(),
            key_id,
        )
        key = await self.get(key_id)  # not_found for an unknown id
        if not done:
            raise already_revoked(key)
        return key

    async def aclose(self) -> None:
        with self._reading:
            self._reader.close()
        self._db.close()

    async def _write(self, sql: str, *args: object) -> int:
        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, args)
            count = cursor.rowcount
            cursor.close()
            return count

        return await self._db.transaction(write)

    async def _lookup(self, column: Literal["sha256", "id"], value: str) -> StoredKey | None:
        found = self._lookup_now(column, value)
        if not isinstance(found, _Wait):
            return found
        row = await self._db.read(lambda conn: conn.execute(_BY[column], (value,)).fetchone())
        return None if row is None else _stored(row)

    def _lookup_now(self, column: Literal["sha256", "id"], value: str) -> StoredKey | _Wait | None:
        """The answer, remembered or read at once; ``_WAIT`` if it would have to wait."""
        if not self._reading.acquire(blocking=False):
            return _WAIT
        try:
            version = self._reader.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._found.clear()
                self._version = version
            remembered = f"{column}:{value}"
            if remembered not in self._found:
                if len(self._found) >= _REMEMBERED:
                    self._found.clear()
                row = self._reader.execute(_BY[column], (value,)).fetchone()
                self._found[remembered] = None if row is None else _stored(row)
            return self._found[remembered]
        except sqlite3.OperationalError:  # busy or locked: SQLite would have us wait
            return _WAIT
        finally:
            self._reading.release()


def _stored(row: sqlite3.Row) -> StoredKey:
    record = ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scope=cast(Scope, row["scope"]),
        rate=row["rate"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        allow_in_band_approval=bool(row["allow_in_band_approval"]),
    )
    return StoredKey(record, row["sha256"])
