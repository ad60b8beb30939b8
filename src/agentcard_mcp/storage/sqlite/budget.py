"""The budget's card records and reservations in ``<home>/budget.db`` (see storage.base)."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..base import IDEMPOTENCY_WINDOW, CardRecord, Check, DayTotals, Hold, KeyTaken, Reservation
from ..budget_sql import LOST, OBSERVE, RECALL, TAKE_OVER, UPSERT
from .db import SqliteDB

__all__ = ["SqliteBudget"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_cards (
    account           TEXT NOT NULL,
    card_id           TEXT NOT NULL,
    status            TEXT NOT NULL,
    daily_limit_cents INTEGER NOT NULL,
    spent_cents       INTEGER NOT NULL,
    spent_day         TEXT NOT NULL,
    PRIMARY KEY (account, card_id)
);
CREATE INDEX IF NOT EXISTS budget_cards_status ON budget_cards (account, status);
-- Only cards that spent something: a card closed unspent never counts again.
CREATE INDEX IF NOT EXISTS budget_cards_spent ON budget_cards (account, spent_day)
    WHERE spent_cents > 0;
CREATE TABLE IF NOT EXISTS budget_reservations (
    id            TEXT PRIMARY KEY,
    account       TEXT NOT NULL,
    card_id       TEXT,
    commits_cents INTEGER NOT NULL,
    active        INTEGER NOT NULL,
    owner         TEXT NOT NULL,
    settle_after  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    idem_key      TEXT,
    digest        TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS budget_reservations_card
    ON budget_reservations (account, card_id) WHERE card_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS budget_reservations_account ON budget_reservations (account);
CREATE TABLE IF NOT EXISTS budget_idempotency (
    account    TEXT NOT NULL,
    key        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    card_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
"""

# Columns added since the first budget.db, and what depends on them: a home made by an older
# version gains them when it is next opened (under the write lock, so two processes add each
# once).
_ADDED = {"idem_key": "TEXT", "digest": "TEXT"}
_AFTER_ADDED = """
CREATE UNIQUE INDEX IF NOT EXISTS budget_reservations_key
    ON budget_reservations (account, idem_key) WHERE idem_key IS NOT NULL
"""


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row["name"] for row in conn.execute("PRAGMA table_info(budget_reservations)")}
    for column, definition in _ADDED.items():
        if column not in have:
            conn.execute(f"ALTER TABLE budget_reservations ADD COLUMN {column} {definition}")
    conn.execute(_AFTER_ADDED)


# Cards that can count today: active ones, ones that spent today, and ones being written to.
# Each branch is an index lookup, so closed cards of earlier days cost nothing.
_TOTALS = """
WITH held AS (
    SELECT card_id, commits_cents AS commits, active
    FROM budget_reservations WHERE account = :account AND card_id IS NOT NULL
),
counted AS (
    SELECT * FROM budget_cards WHERE account = :account AND status IN ('active', 'pending')
    UNION
    SELECT * FROM budget_cards WHERE account = :account AND spent_day = :day
        AND spent_cents > 0
    UNION
    SELECT c.* FROM budget_cards c JOIN held h ON h.card_id = c.card_id
    WHERE c.account = :account
),
per_card AS (
    SELECT
        c.card_id,
        MAX(
            CASE WHEN c.status IN ('active', 'pending')
                 THEN MAX(c.daily_limit_cents,
                          CASE WHEN c.spent_day = :day THEN c.spent_cents ELSE 0 END)
                 ELSE CASE WHEN c.spent_day = :day THEN c.spent_cents ELSE 0 END
            END,
            COALESCE(h.commits, 0)
        ) AS commits,
        MAX(c.status IN ('active', 'pending'), COALESCE(h.active, 0)) AS active,
        CASE WHEN c.spent_day = :day THEN c.spent_cents ELSE 0 END AS spent
    FROM counted c LEFT JOIN held h ON h.card_id = c.card_id
    WHERE c.card_id IS NOT :exclude
),
-- Writes in flight with no card record to count them through: new cards, and cards the budget
-- has not seen yet (they still count, in full, until settled).
unrecorded AS (
    SELECT r.commits_cents AS commits, r.active AS active
    FROM budget_reservations r
    WHERE r.account = :account
      AND (r.card_id IS NULL
           OR (r.card_id IS NOT :exclude
               AND NOT EXISTS (SELECT 1 FROM budget_cards c
                               WHERE c.account = :account AND c.card_id = r.card_id)))
)
SELECT
    (SELECT COALESCE(SUM(commits), 0) FROM per_card)
      + (SELECT COALESCE(SUM(commits), 0) FROM unrecorded) AS committed,
    (SELECT COALESCE(SUM(active), 0) FROM per_card)
      + (SELECT COALESCE(SUM(active), 0) FROM unrecorded) AS active,
    (SELECT COALESCE(SUM(spent), 0) FROM per_card) AS spent
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def new_reservation_id() -> str:
    return "rsv_" + secrets.token_hex(12)


def _totals(conn: sqlite3.Connection, account: str, day: str, exclude: str | None) -> DayTotals:
    row = conn.execute(_TOTALS, {"account": account, "day": day, "exclude": exclude}).fetchone()
    return DayTotals(day, int(row["committed"]), int(row["active"]), int(row["spent"]))


def _record(conn: sqlite3.Connection, account: str, card_id: str) -> CardRecord | None:
    row = conn.execute(
        "SELECT * FROM budget_cards WHERE account = ? AND card_id = ?", (account, card_id)
    ).fetchone()
    if row is None:
        return None
    return CardRecord(
        row["card_id"], row["status"], row["daily_limit_cents"], row["spent_cents"],
        row["spent_day"],
    )  # fmt: skip


def _recall(
    conn: sqlite3.Connection, account: str, key: str, since: datetime, *, disowned: bool = False
) -> tuple[str, str | None] | None:
    params = (account, key, _iso(since), account, key, disowned)
    row = conn.execute(RECALL, params).fetchone()
    return None if row is None else (row["digest"], row["card_id"])


def _reservation(row: sqlite3.Row) -> Reservation:
    return Reservation(
        id=row["id"],
        card_id=row["card_id"],
        commits_cents=row["commits_cents"],
        active=bool(row["active"]),
        owner=row["owner"],
        settle_after=datetime.fromisoformat(row["settle_after"]),
    )


def _key_taken(
    conn: sqlite3.Connection, account: str, hold: Hold, owner: str, now: datetime, until: datetime
) -> Reservation | None:
    """For a hold with an idempotency key: the disowned reservation of the same request, now
    ``owner``'s (see ``BudgetStore.reserve``), else ``KeyTaken`` if the key is taken, else
    None."""
    if hold.key is None:
        return None
    taking = (owner, _iso(until), account, hold.key, hold.digest)
    if hold.take_over and conn.execute(TAKE_OVER, taking).rowcount:
        row = conn.execute(
            "SELECT * FROM budget_reservations WHERE account = ? AND idem_key = ?",
            (account, hold.key),
        ).fetchone()
        return _reservation(row)
    if taken := _recall(conn, account, hold.key, now - IDEMPOTENCY_WINDOW, disowned=True):
        raise KeyTaken(*taken)
    return None


def _values(account: str, card: CardRecord) -> tuple[object, ...]:
    return (
        account, card.card_id, card.status, card.daily_limit_cents, card.spent_cents,
        card.spent_day,
    )  # fmt: skip


class SqliteBudget:
    def __init__(self, home: Path, account: str) -> None:
        self.account = account
        self._db = SqliteDB(Path(home) / "budget.db", _SCHEMA)
        self._db.transaction_sync(_migrate)

    async def totals(self, day: str, *, exclude: str | None = None) -> DayTotals:
        return await self._db.read(lambda conn: _totals(conn, self.account, day, exclude))

    async def record(self, card_id: str) -> CardRecord | None:
        return await self._db.read(lambda conn: _record(conn, self.account, card_id))

    async def reserve(
        self, hold: Hold, check: Check, *, day: str, owner: str, now: datetime, lease_s: float
    ) -> Reservation | None:
        def write(conn: sqlite3.Connection) -> Reservation | None:
            if (
                hold.card_id is not None
                and conn.execute(
                    "SELECT 1 FROM budget_reservations WHERE account = ? AND card_id = ?",
                    (self.account, hold.card_id),
                ).fetchone()
            ):
                return None
            until = datetime.fromtimestamp(now.timestamp() + lease_s, UTC)
            if taken_over := _key_taken(conn, self.account, hold, owner, now, until):
                return taken_over
            current = None if hold.card_id is None else _record(conn, self.account, hold.card_id)
            check(_totals(conn, self.account, day, hold.card_id), current)
            reservation = Reservation(
                new_reservation_id(), hold.card_id, hold.commits_cents, hold.active, owner, until
            )
            conn.execute(
                "INSERT INTO budget_reservations (id, account, card_id, commits_cents, active, "
                "owner, settle_after, created_at, idem_key, digest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reservation.id, self.account, hold.card_id, hold.commits_cents,
                    int(hold.active), owner, _iso(reservation.settle_after), _iso(now),
                    hold.key, hold.digest if hold.key is not None else None,
                ),
            )  # fmt: skip
            return reservation

        return await self._db.transaction(write)

    async def settle(
        self, reservation_id: str, card: CardRecord | None, *, found: Reservation | None = None
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            sql = "DELETE FROM budget_reservations WHERE id = ?"
            params: tuple[str, ...] = (reservation_id,)
            if found is not None:
                sql += " AND owner = ? AND settle_after = ?"
                params += (found.owner, _iso(found.settle_after))
            deleted = conn.execute(sql, params).rowcount
            # Settled already (two reconcilers raced): the card may have moved on since.
            if card is not None and deleted:
                conn.execute(UPSERT, _values(self.account, card))

        await self._db.transaction(write)

    async def disown(self, reservation_id: str, settle_after: datetime) -> None:
        await self._db.execute(
            "UPDATE budget_reservations SET owner = '', settle_after = ? WHERE id = ?",
            [(_iso(settle_after), reservation_id)],
        )

    async def observe(self, cards: Sequence[CardRecord]) -> None:
        if cards:
            await self._db.execute(OBSERVE, [_values(self.account, card) for card in cards])

    async def spent(self, card_id: str, cents: int, day: str) -> None:
        await self._db.execute(
            "UPDATE budget_cards SET spent_cents = ?, spent_day = ? WHERE account = ? "
            "AND card_id = ? AND (spent_day < ? OR (spent_day = ? AND spent_cents < ?))",
            [(cents, day, self.account, card_id, day, day, cents)],
        )

    async def active_cards(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT card_id FROM budget_cards WHERE account = ? "
                "AND status IN ('active', 'pending') ORDER BY card_id",
                (self.account,),
            ).fetchall()
            return [row["card_id"] for row in rows]

        return await self._db.read(read)

    async def reservations(self) -> list[Reservation]:
        def read(conn: sqlite3.Connection) -> list[Reservation]:
            rows = conn.execute(
                "SELECT * FROM budget_reservations WHERE account = ? ORDER BY created_at",
                (self.account,),
            ).fetchall()
            return [_reservation(row) for row in rows]

        return await self._db.read(read)

    async def remember(self, key: str, digest: str, card_id: str, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO budget_idempotency (account, key, digest, card_id, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, key) DO NOTHING",
            [(self.account, key, digest, card_id, _iso(now))],
        )

    async def recall(self, key: str, since: datetime) -> tuple[str, str | None] | None:
        return await self._db.read(lambda conn: _recall(conn, self.account, key, since))

    async def lost(self, key: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(LOST, (self.account, key)).fetchone()
            return None if row is None else str(row["digest"])

        return await self._db.read(read)

    async def aclose(self) -> None:
        self._db.close()
