"""One SQLite file of the server's own state, opened safely and used off the event loop.

- Created mode 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same mode),
  and never through a symlink, its side files included (``private_files.connect_private``):
  a link planted in the home must not point our writes at a file of someone's choosing.
- WAL, so readers and one writer from other processes (the operator's commands, a second MCP
  host on the same home) go on together; ``synchronous=FULL``, so a committed reservation or
  approval survives a power loss.
- Every call runs in a worker thread, one at a time per file: a transaction that waits for
  another process's write lock waits there, never on the event loop.
- ``transaction`` is ``BEGIN IMMEDIATE``: the write lock is taken before the first read, so a
  check and the write that depends on it cannot interleave with any other writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from ...private_files import connect_private

__all__ = ["SqliteDB"]

T = TypeVar("T")

# Long enough to ride out another process's transaction, short enough that a wedged peer
# surfaces as an error rather than a hang.
_BUSY_TIMEOUT_MS = 10_000


def _set_up(conn: sqlite3.Connection, schema: str) -> None:
    """WAL, FULL and the schema (every statement idempotent). Several processes opening a new
    file at once can be refused at once — switching to WAL does not always wait for the busy
    timeout — so a refusal is tried again until that timeout has passed."""
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(schema)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteDB:
    """A connection to one state file, shared by the coroutines of one process."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = connect_private(
            self.path, lambda conn: _set_up(conn, schema), timeout=_BUSY_TIMEOUT_MS / 1000
        )
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` inside ``BEGIN IMMEDIATE``: committed if it returns, rolled back if it raises."""
        return self._run("BEGIN IMMEDIATE", fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` inside a read transaction: one consistent snapshot."""
        return self._run("BEGIN", fn)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.transaction_sync, fn)

    async def execute(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """One statement for each of ``rows``, in one write transaction."""

        def write(conn: sqlite3.Connection) -> None:
            # The cursor is closed here, under the lock: one that outlived it would hold a
            # cached statement another thread may then reset ("API misuse").
            conn.executemany(sql, rows).close()

        await self.transaction(write)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.read_sync, fn)

    def _run(self, begin: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._conn
            conn.execute(begin)
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
