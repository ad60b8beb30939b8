"""Approvals on PostgreSQL, one table for every replica (the rules: approvals.py).

- ``consume``, ``approve`` and ``deny`` take the approval's row with ``SELECT … FOR UPDATE``
  before checking it: a second replica consuming the same approval waits for the first to
  commit, then reads it ``used`` (READ COMMITTED re-reads a locked row once it is released).
- ``request`` takes a transaction-scoped advisory lock on the digest first, so that two
  replicas asked for the same call at once make one pending approval, not two.
- The clock is read once the lock is held, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from ...approvals import (
    Approval,
    Clock,
    NewStatus,
    Requested,
    check_consumable,
    check_decidable,
    digest,
    from_row,
    new_approval,
    not_found,
    read_clock,
    utcnow,
)
from .db import Pool
from .text import storable

__all__ = ["PostgresApprovals"]

Conn = AsyncConnection[DictRow]

_GET = "SELECT * FROM approvals WHERE id = %s"
_GET_FOR_UPDATE = _GET + " FOR UPDATE"
PENDING = (
    "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > %s ORDER BY created_at, seq"
)


async def _row(conn: Conn, approval_id: str, *, lock: bool = False) -> DictRow:
    sql = _GET_FOR_UPDATE if lock else _GET
    row = await (await conn.execute(sql, (storable(approval_id),))).fetchone()
    if row is None:
        raise not_found(approval_id)
    return row


async def _get(conn: Conn, approval_id: str, now: datetime) -> Approval:
    return from_row(await _row(conn, approval_id), now)


async def _insert(conn: Conn, approval: Approval) -> str:
    await conn.execute(
        "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
        "expires_at, decided_at, used_at, caller) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            approval.id, approval.tool, approval.digest, storable(approval.summary),
            Jsonb(storable(approval.arguments)), approval.status, approval.created_at,
            approval.expires_at, approval.decided_at, approval.used_at,
            None if approval.caller is None else storable(approval.caller),
        ),
    )  # fmt: skip
    return approval.id


class PostgresApprovals:
    def __init__(self, pool: Pool, *, clock: Clock = utcnow) -> None:
        self._pool = pool
        self._clock = clock

    async def request(
        self, tool: str, arguments: Mapping[str, Any], summary: str, *, caller: str | None = None
    ) -> Requested:
        key = digest(tool, arguments)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("approval:" + key,)
            )
            now = self._now()
            cursor = await conn.execute(
                "SELECT id FROM approvals WHERE digest = %s AND status = 'pending' "
                "AND expires_at > %s ORDER BY created_at DESC, seq DESC LIMIT 1",
                (key, now),
            )
            row = await cursor.fetchone()
            if row is not None:
                approval_id: str = row["id"]
            else:
                approval_id = await _insert(
                    conn, new_approval(tool, arguments, summary, "pending", now, caller)
                )
            return Requested(await _get(conn, approval_id, now), new=row is None)

    async def consume(self, approval_id: str, tool: str, arguments: Mapping[str, Any]) -> Approval:
        key = digest(tool, arguments)
        async with self._pool.connection() as conn, conn.transaction():
            row = await _row(conn, approval_id, lock=True)
            now = self._now()  # once the row is ours: waiting for it must not age the check
            check_consumable(from_row(row, now), key)
            await conn.execute(
                "UPDATE approvals SET status = 'used', used_at = %s WHERE id = %s", (now, row["id"])
            )
            return await _get(conn, row["id"], now)

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
        async with self._pool.connection() as conn, conn.transaction():
            now = self._now()
            approval_id = await _insert(
                conn, new_approval(tool, arguments, summary, status, now, caller)
            )
            return await _get(conn, approval_id, now)

    async def approve(self, approval_id: str) -> Approval:
        return await self._decide(approval_id, "approved")

    async def deny(self, approval_id: str) -> Approval:
        return await self._decide(approval_id, "denied")

    async def get(self, approval_id: str) -> Approval:
        async with self._pool.connection() as conn:
            return await _get(conn, approval_id, self._now())

    async def pending(self) -> list[Approval]:
        async with self._pool.connection() as conn:
            now = self._now()
            rows = await (await conn.execute(PENDING, (now,))).fetchall()
            return [from_row(row, now) for row in rows]

    async def recent(self, limit: int = 50) -> list[Approval]:
        async with self._pool.connection() as conn:
            now = self._now()
            cursor = await conn.execute(
                "SELECT * FROM approvals ORDER BY created_at DESC, seq DESC LIMIT %s", (limit,)
            )
            return [from_row(row, now) for row in await cursor.fetchall()]

    async def aclose(self) -> None:
        return None  # the pool belongs to open_postgres

    def _now(self) -> datetime:
        return read_clock(self._clock)

    async def _decide(self, approval_id: str, decision: str) -> Approval:
        async with self._pool.connection() as conn, conn.transaction():
            row = await _row(conn, approval_id, lock=True)
            now = self._now()
            check_decidable(from_row(row, now))
            await conn.execute(
                "UPDATE approvals SET status = %s, decided_at = %s WHERE id = %s",
                (decision, now, row["id"]),
            )
            return await _get(conn, row["id"], now)
