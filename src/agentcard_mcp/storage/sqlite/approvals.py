"""Approvals in ``<home>/approvals.db`` (the rules: approvals.py; the interface: storage.base).

Shared by the server and the operator's ``approvals`` command, two processes: every write is
one ``BEGIN IMMEDIATE`` transaction (``SqliteDB``), so a check and the write that depends on it
cannot interleave with another writer, and the clock is read once the write lock is ours.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from ...approvals import (
    Approval,
    Clock,
    NewStatus,
    Requested,
    canonical,
    check_consumable,
    check_decidable,
    digest,
    from_row,
    new_approval,
    not_found,
    read_clock,
    utcnow,
)
from .db import SqliteDB

__all__ = ["SqliteApprovals"]

# ``approvals_pending`` serves ``pending()`` (status, then the expiry range) however many
# approvals were ever made; ``approvals_pending_digest`` serves ``request``'s lookup.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id          TEXT PRIMARY KEY,
    tool        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    decided_at  TEXT,
    used_at     TEXT,
    caller      TEXT
);
CREATE INDEX IF NOT EXISTS approvals_pending_digest ON approvals (digest)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS approvals_created_at ON approvals (created_at);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (status, expires_at);
"""

# Columns added since the first approvals.db, with their definitions: a home made by an older
# version gains them when it is next opened (under the write lock, so two processes add each once).
_ADDED = {"caller": "TEXT"}


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row["name"] for row in conn.execute("PRAGMA table_info(approvals)")}
    for column, definition in _ADDED.items():
        if column not in have:
            conn.execute(f"ALTER TABLE approvals ADD COLUMN {column} {definition}")


PENDING = (
    "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > ? ORDER BY created_at, rowid"
)


def _iso(moment: datetime) -> str:
    # One fixed width (always microseconds, always +00:00) so the text orders like the time.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _get(conn: sqlite3.Connection, approval_id: str, now: datetime) -> Approval:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    if row is None:
        raise not_found(approval_id)
    return from_row(row, now)


def _insert(conn: sqlite3.Connection, approval: Approval) -> str:
    conn.execute(
        "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
        "expires_at, decided_at, used_at, caller) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            approval.id,
            approval.tool,
            approval.digest,
            approval.summary,
            canonical(approval.arguments),
            approval.status,
            _iso(approval.created_at),
            _iso(approval.expires_at),
            None if approval.decided_at is None else _iso(approval.decided_at),
            None if approval.used_at is None else _iso(approval.used_at),
            approval.caller,
        ),
    )
    return approval.id


class SqliteApprovals:
    """The approvals of one home; calls run in a worker thread, one at a time (``SqliteDB``)."""

    def __init__(self, home: Path, *, clock: Clock = utcnow) -> None:
        self.path = Path(home) / "approvals.db"
        self._clock = clock
        self._db = SqliteDB(self.path, _SCHEMA)
        self._db.transaction_sync(_migrate)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def request(
        self, tool: str, arguments: Mapping[str, Any], summary: str, *, caller: str | None = None
    ) -> Requested:
        key = digest(tool, arguments)
        made: list[str] = []

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            row = conn.execute(
                "SELECT id FROM approvals WHERE digest = ? AND status = 'pending' "
                "AND expires_at > ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (key, _iso(now)),
            ).fetchone()
            if row is not None:
                return cast(str, row["id"])
            made.append(
                _insert(conn, new_approval(tool, arguments, summary, "pending", now, caller))
            )
            return made[0]

        approval = await self._write_then_get(write)
        return Requested(approval, new=bool(made))

    async def consume(self, approval_id: str, tool: str, arguments: Mapping[str, Any]) -> Approval:
        key = digest(tool, arguments)

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            check_consumable(_get(conn, approval_id, now), key)
            conn.execute(
                "UPDATE approvals SET status = 'used', used_at = ? WHERE id = ?",
                (_iso(now), approval_id),
            )
            return approval_id

        return await self._write_then_get(write)

    async def record_elicited(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        summary: str,
        accepted: bool,
        *,
        caller: str | None = None,
    ) -> Approval:
        status: NewStatus = "used" if accepted else "denied"

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            return _insert(conn, new_approval(tool, arguments, summary, status, now, caller))

        return await self._write_then_get(write)

    async def approve(self, approval_id: str) -> Approval:
        return await self._decide(approval_id, "approved")

    async def deny(self, approval_id: str) -> Approval:
        return await self._decide(approval_id, "denied")

    async def get(self, approval_id: str) -> Approval:
        return await self._db.read(lambda conn: _get(conn, approval_id, self._now()))

    async def pending(self) -> list[Approval]:
        def read(conn: sqlite3.Connection) -> list[Approval]:
            now = self._now()
            return [from_row(row, now) for row in conn.execute(PENDING, (_iso(now),)).fetchall()]

        return await self._db.read(read)

    async def recent(self, limit: int = 50) -> list[Approval]:
        def read(conn: sqlite3.Connection) -> list[Approval]:
            now = self._now()
            rows = conn.execute(
                "SELECT * FROM approvals ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
            return [from_row(row, now) for row in rows]

        return await self._db.read(read)

    async def aclose(self) -> None:
        self._db.close()

    def _now(self) -> datetime:
        return read_clock(self._clock)

    async def _decide(self, approval_id: str, decision: str) -> Approval:
        def write(conn: sqlite3.Connection, now: datetime) -> str:
            check_decidable(_get(conn, approval_id, now))
            conn.execute(
                "UPDATE approvals SET status = ?, decided_at = ? WHERE id = ?",
                (decision, _iso(now), approval_id),
            )
            return approval_id

        return await self._write_then_get(write)

    async def _write_then_get(self, fn: Callable[[sqlite3.Connection, datetime], str]) -> Approval:
        """Runs ``fn`` in ``BEGIN IMMEDIATE`` (commit if it returns, roll back if it raises) and
        reads back the approval whose id it returns, as of the same moment."""

        def run(conn: sqlite3.Connection) -> Approval:
            # Read the clock once the write lock is ours: waiting for it must not age the check.
            now = self._now()
            return _get(conn, fn(conn, now), now)

        return await self._db.transaction(run)
