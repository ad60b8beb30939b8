"""SQLite storage for the sandbox: one connection, durable settings, one transaction per call.

Every write runs as a single ``BEGIN IMMEDIATE`` transaction, so the check and the write of an
authorization cannot interleave with another writer — in this process or another one sharing
the file (the ``sandbox swipe`` command, a second server). Calls run in a worker thread so that
waiting for another process's lock never blocks the event loop, and one at a time (a lock around
the one connection) so that this process never contends with itself.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

__all__ = ["Store"]

T = TypeVar("T")

# Long enough to ride out another process's transaction (each is well under a millisecond),
# short enough that a wedged peer surfaces as an error rather than a hang.
_BUSY_TIMEOUT_MS = 10_000


def _schema() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def _create_private(path: Path) -> None:
    """The database holds webhook secrets and key hashes: readable by its owner only."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _connect(path: Path) -> sqlite3.Connection:
    _create_private(path)
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    return conn


class Store:
    """The sandbox database. Use ``transaction`` for writes and ``read`` for reads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_schema())

    def close(self) -> None:
        self._conn.close()

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside ``BEGIN IMMEDIATE``; commit if it returns, roll back if it raises."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a read transaction, so it sees one consistent snapshot."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.transaction_sync, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.read_sync, fn)
