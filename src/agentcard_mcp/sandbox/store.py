"""SQLite storage for the sandbox: one connection, durable settings, one transaction per call.

Every write runs as a single ``BEGIN IMMEDIATE`` transaction, so the check and the write of an
authorization cannot interleave with another writer — in this process or another one sharing
the file (the ``sandbox swipe`` command, a second server). Calls run one at a time (a lock) so
that this process never contends with itself. A call that can start at once runs right on the
event loop; one that would have to wait — for this process's lock or another process's write
lock — waits in a worker thread, so that waiting never blocks the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from ..private_files import connect_private
from . import counters

__all__ = ["Store"]

T = TypeVar("T")

# Long enough to ride out another process's transaction (each is well under a millisecond),
# short enough that a wedged peer surfaces as an error rather than a hang.
_BUSY_TIMEOUT_MS = 10_000


def _schema() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """The database holds webhook secrets and key hashes: created readable by its owner only,
    and never opened through a symlink (``private_files``)."""

    def set_up(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA recursive_triggers = ON")

    conn = connect_private(path, set_up, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    return conn


class _Busy(Exception):
    """The fast path could not start at once; the call goes to a worker thread instead."""


class Store:
    """The sandbox database. Use ``transaction`` for writes and ``read`` for reads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = _connect(self.path, _BUSY_TIMEOUT_MS)
        try:
            # Same file, but gives up at once when another process holds the write lock.
            self._fast = _connect(self.path, 0)
        except BaseException:
            self._conn.close()
            raise
        with self._lock:
            self._conn.executescript(_schema())
            # A database made before the usage counters gets them now, filled from its ledger,
            # once: the check is repeated under the write lock, so when several processes open
            # such a file at once exactly one of them fills it.
            if not counters.installed(self._conn):
                _run(self._conn, "BEGIN IMMEDIATE", counters.install)
            if not counters.spend_installed(self._conn):
                _run(self._conn, "BEGIN IMMEDIATE", counters.install_spend)
            if not counters.days_installed(self._conn):
                _run(self._conn, "BEGIN IMMEDIATE", counters.install_days)

    def close(self) -> None:
        self._fast.close()
        self._conn.close()

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside ``BEGIN IMMEDIATE``; commit if it returns, roll back if it raises."""
        with self._lock:
            return _run(self._conn, "BEGIN IMMEDIATE", fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a read transaction, so it sees one consistent snapshot."""
        with self._lock:
            return _run(self._conn, "BEGIN", fn)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._inline("BEGIN IMMEDIATE", fn)
        except _Busy:
            return await anyio.to_thread.run_sync(self.transaction_sync, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._inline("BEGIN", fn)
        except _Busy:
            return await anyio.to_thread.run_sync(self.read_sync, fn)

    def _inline(self, begin: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs the call on the event loop when it can start without waiting.

        A transaction here takes well under a millisecond (most of it the commit's fsync), less
        than the two thread hand-offs a worker thread would cost. Whenever it would have to
        wait — this process's lock is held, or another process holds the database's write lock
        — it raises ``_Busy`` (for a write, always before ``fn`` runs) and the caller waits in a
        worker thread instead."""
        if not self._lock.acquire(blocking=False):
            raise _Busy
        try:
            try:
                self._fast.execute(begin)
            except sqlite3.OperationalError as exc:
                _raise_busy_if_locked(exc)
                raise
            if begin != "BEGIN":
                return _finish(self._fast, fn)
            try:
                return _finish(self._fast, fn)
            except sqlite3.OperationalError as exc:
                # A reader can meet a lock mid-way in WAL mode (rarely); it changed nothing,
                # so it may simply run again where waiting is allowed.
                _raise_busy_if_locked(exc)
                raise
        finally:
            self._lock.release()


def _raise_busy_if_locked(exc: sqlite3.OperationalError) -> None:
    if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        raise _Busy from exc


def _run(conn: sqlite3.Connection, begin: str, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute(begin)
    return _finish(conn, fn)


def _finish(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Runs ``fn`` in the open transaction: commit if it returns, roll back if it raises."""
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
