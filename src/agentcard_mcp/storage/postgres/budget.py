"""The budget's card records and reservations on PostgreSQL (see storage.base).

Every write takes a transaction-scoped advisory lock on the account first, so that the check in
``reserve`` and the reservation it writes are one step against every replica's writes (READ
COMMITTED: each statement after the lock sees everything committed before it was granted).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from ..base import IDEMPOTENCY_WINDOW, CardRecord, Check, DayTotals, Hold, KeyTaken, Reservation
from ..budget_sql import LOST, OBSERVE, RECALL, TAKE_OVER, UPSERT, pyformat
from .db import Pool

__all__ = ["PostgresBudget"]

_TOTALS = """
WITH held AS (
    SELECT card_id, commits_cents AS commits, active::int AS active
    FROM budget_reservations WHERE account = %(account)s AND card_id IS NOT NULL
),
counted AS (
    SELECT * FROM budget_cards WHERE account = %(account)s AND status IN ('active', 'pending')
    UNION
    SELECT * FROM budget_cards WHERE account = %(account)s AND spent_day = %(day)s
        AND spent_cents > 0
    UNION
    SELECT c.* FROM budget_cards c JOIN held h ON h.card_id = c.card_id
    WHERE c.account = %(account)s
),
per_card AS (
    SELECT
        GREATEST(
            CASE WHEN c.status IN ('active', 'pending')
                 THEN GREATEST(c.daily_limit_cents,
                               CASE WHEN c.spent_day = %(day)s THEN c.spent_cents ELSE 0 END)
                 ELSE CASE WHEN c.spent_day = %(day)s THEN c.spent_cents ELSE 0 END
            END,
            COALESCE(h.commits, 0)
        ) AS commits,
        GREATEST((c.status IN ('active', 'pending'))::int, COALESCE(h.active, 0)) AS active,
        CASE WHEN c.spent_day = %(day)s THEN c.spent_cents ELSE 0 END AS spent
    FROM counted c LEFT JOIN held h ON h.card_id = c.card_id
    WHERE c.card_id IS DISTINCT FROM %(exclude)s
),
-- Writes in flight with no card record to count them through: new cards, and cards the budget
-- has not seen yet (they still count, in full, until settled).
unrecorded AS (
    SELECT r.commits_cents AS commits, r.active::int AS active
    FROM budget_reservations r
    WHERE r.account = %(account)s
      AND (r.card_id IS NULL
           OR (r.card_id IS DISTINCT FROM %(exclude)s
               AND NOT EXISTS (SELECT 1 FROM budget_cards c
                               WHERE c.account = %(account)s AND c.card_id = r.card_id)))
)
SELECT
    (SELECT COALESCE(SUM(commits), 0) FROM per_card)
      + (SELECT COALESCE(SUM(commits), 0) FROM unrecorded) AS committed,
    (SELECT COALESCE(SUM(active), 0) FROM per_card)
      + (SELECT COALESCE(SUM(active), 0) FROM unrecorded) AS active,
    (SELECT COALESCE(SUM(spent), 0) FROM per_card) AS spent
"""

_UPSERT = pyformat(UPSERT)
_OBSERVE = pyformat(OBSERVE)
_RECALL = pyformat(RECALL)
_LOST = pyformat(LOST)
_TAKE_OVER = pyformat(TAKE_OVER) + " RETURNING *"

Conn = AsyncConnection[DictRow]


def _values(account: str, card: CardRecord) -> tuple[Any, ...]:
    return (
        account, card.card_id, card.status, card.daily_limit_cents, card.spent_cents,
        card.spent_day,
    )  # fmt: skip


def _reservation(row: DictRow) -> Reservation:
    return Reservation(
        id=row["id"],
        card_id=row["card_id"],
        commits_cents=int(row["commits_cents"]),
        active=bool(row["active"]),
        owner=row["owner"],
        settle_after=row["settle_after"],
    )


class PostgresBudget:
    def __init__(self, pool: Pool, account: str) -> None:
        self._pool = pool
        self.account = account

    async def _lock(self, conn: Conn) -> None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("budget:" + self.account,)
        )

    async def _totals(self, conn: Conn, day: str, exclude: str | None) -> DayTotals:
        params = {"account": self.account, "day": day, "exclude": exclude}
        row = await (await conn.execute(_TOTALS, params)).fetchone()
        assert row is not None
        return DayTotals(day, int(row["committed"]), int(row["active"]), int(row["spent"]))

    async def _record(self, conn: Conn, card_id: str) -> CardRecord | None:
        cursor = await conn.execute(
            "SELECT * FROM budget_cards WHERE account = %s AND card_id = %s",
            (self.account, card_id),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return CardRecord(
            row["card_id"], row["status"], int(row["daily_limit_cents"]),
            int(row["spent_cents"]), row["spent_day"],
        )  # fmt: skip

    async def _recall(
        self, conn: Conn, key: str, since: datetime, *, disowned: bool = False
    ) -> tuple[str, str | None] | None:
        params = (self.account, key, since, self.account, key, disowned)
        row = await (await conn.execute(_RECALL, params)).fetchone()
        return None if row is None else (row["digest"], row["card_id"])

    async def _key_taken(
        self, conn: Conn, hold: Hold, owner: str, now: datetime, until: datetime
    ) -> Reservation | None:
        """As the SQLite store's ``_key_taken``: a disowned reservation of the same request
        taken over, else ``KeyTaken`` if the key is taken, else None."""
        if hold.key is None:
            return None
        params = (owner, until, self.account, hold.key, hold.digest)
        if hold.take_over and (row := await (await conn.execute(_TAKE_OVER, params)).fetchone()):
            return _reservation(row)
        if taken := await self._recall(conn, hold.key, now - IDEMPOTENCY_WINDOW, disowned=True):
            raise KeyTaken(*taken)
        return None

    async def totals(self, day: str, *, exclude: str | None = None) -> DayTotals:
        async with self._pool.connection() as conn:
            return await self._totals(conn, day, exclude)

    async def record(self, card_id: str) -> CardRecord | None:
        async with self._pool.connection() as conn:
            return await self._record(conn, card_id)

    async def reserve(
        self, hold: Hold, check: Check, *, day: str, owner: str, now: datetime, lease_s: float
    ) -> Reservation | None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._lock(conn)
            if hold.card_id is not None:
                cursor = await conn.execute(
                    "SELECT 1 FROM budget_reservations WHERE account = %s AND card_id = %s",
                    (self.account, hold.card_id),
                )
                if await cursor.fetchone() is not None:
                    return None
            until = now + timedelta(seconds=lease_s)
            if taken_over := await self._key_taken(conn, hold, owner, now, until):
                return taken_over
            current = None if hold.card_id is None else await self._record(conn, hold.card_id)
            check(await self._totals(conn, day, hold.card_id), current)
            reservation = Reservation(
                "rsv_" + secrets.token_hex(12), hold.card_id, hold.commits_cents, hold.active,
                owner, until,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO budget_reservations (id, account, card_id, commits_cents, active, "
                "owner, settle_after, created_at, idem_key, digest) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    reservation.id, self.account, hold.card_id, hold.commits_cents, hold.active,
                    owner, reservation.settle_after, now,
                    hold.key, hold.digest if hold.key is not None else None,
                ),
            )  # fmt: skip
            return reservation

    async def settle(
        self, reservation_id: str, card: CardRecord | None, *, found: Reservation | None = None
    ) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._lock(conn)
            if found is None:
                cursor = await conn.execute(
                    "DELETE FROM budget_reservations WHERE id = %s", (reservation_id,)
                )
            else:
                cursor = await conn.execute(
                    "DELETE FROM budget_reservations "
                    "WHERE id = %s AND owner = %s AND settle_after = %s",
                    (reservation_id, found.owner, found.settle_after),
                )
            # Settled already (two reconcilers raced): the card may have moved on since.
            if card is not None and cursor.rowcount:
                await conn.execute(_UPSERT, _values(self.account, card))

    async def disown(self, reservation_id: str, settle_after: datetime) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE budget_reservations SET owner = '', settle_after = %s WHERE id = %s",
                (settle_after, reservation_id),
            )

    async def observe(self, cards: Sequence[CardRecord]) -> None:
        if not cards:
            return
        async with self._pool.connection() as conn, conn.transaction():
            await self._lock(conn)
            async with conn.cursor() as cursor:
                await cursor.executemany(_OBSERVE, [_values(self.account, c) for c in cards])

    async def spent(self, card_id: str, cents: int, day: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE budget_cards SET spent_cents = %s, spent_day = %s WHERE account = %s "
                "AND card_id = %s AND (spent_day < %s OR (spent_day = %s AND spent_cents < %s))",
                (cents, day, self.account, card_id, day, day, cents),
            )

    async def active_cards(self) -> list[str]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT card_id FROM budget_cards WHERE account = %s "
                "AND status IN ('active', 'pending') ORDER BY card_id",
                (self.account,),
            )
            return [row["card_id"] for row in await cursor.fetchall()]

    async def reservations(self) -> list[Reservation]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT * FROM budget_reservations WHERE account = %s ORDER BY created_at",
                (self.account,),
            )
            return [_reservation(row) for row in await cursor.fetchall()]

    async def remember(self, key: str, digest: str, card_id: str, now: datetime) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO budget_idempotency (account, key, digest, card_id, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account, key) DO NOTHING",
                (self.account, key, digest, card_id, now),
            )

    async def recall(self, key: str, since: datetime) -> tuple[str, str | None] | None:
        async with self._pool.connection() as conn:
            return await self._recall(conn, key, since)

    async def lost(self, key: str) -> str | None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_LOST, (self.account, key))).fetchone()
            return None if row is None else str(row["digest"])

    async def aclose(self) -> None:
        return None  # the pool belongs to open_postgres
