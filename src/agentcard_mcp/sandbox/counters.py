"""Usage counters: the statistics of ``GET /v1/usage``, kept as the ledger grows, so that
reading them costs the same whether the ledger holds ten rows or ten million.

Four tables, kept by two triggers on the ledger (``ledger_usage`` for the first three and
``ledger_days``, which came later, for the fourth; both AFTER INSERT):

    usage_totals    per owner: authorizations, approvals, approved volume (cents), all time
    usage_hours     per owner and UTC hour that saw an authorization: the same three counts
    usage_declines  per owner, UTC hour and decline reason: how many declines
    usage_days      per owner and UTC day that saw an authorization: the same three counts

Every ledger row adds to them inside the statement that inserts it, so in the same transaction
as the swipe's decision and spend update, whoever writes it: this process, another process on
the same file (``sandbox swipe``, a second server), a raw connection. They cannot drift from
the ledger; ``usage_totals`` is always the sum of ``usage_hours``, and each ``usage_days`` row
the sum of its day's hours. The ledger is append-only; these tables are ordinary, updatable
counters, written only by the triggers and the fills below.

**Windows are hour-granular.** ``*_last_24h`` covers the current UTC hour so far plus the 23
hours before it (24 hourly buckets); ``*_last_7d`` is 168 buckets and ``*_last_30d`` 720. So a
window spans between D - 1 h and D of history: an authorization leaves the 24-hour window at
the top of the hour 23 to 24 hours after it, rather than exactly 24 hours after it. When the
authorization and "now" both fall exactly on the hour this is the same as the precise
definition (``decided_at > now - D``); otherwise the window leaves out up to one hour of its
oldest end, never more. Authorizations stamped after "now" (a clock set back) count, as they
always did. ``total_auths``, ``total_volume_cents`` and ``approve_rate`` are all-time and exact.

A window's sum is the hours of its first, partial UTC day (at most 24 ``usage_hours`` rows)
plus the whole days after it (at most 30 ``usage_days`` rows, today's included): the same hours,
added up a day at a time. So a read is one ``usage_totals`` row, at most 3 x 54 counter rows and
at most 24 x 11 ``usage_declines`` rows (primary-key ranges), whatever the history. Hours and days
older than 30 days stay (one row per owner per hour or day with activity, however many
authorizations it had) and are simply not read. Rows stamped after "now" are read too: one per
day for the windows, one per hour and reason for the declines.

A database made before these counters existed gets them the first time a ``Store`` opens it
(``install``): tables, trigger and a fill from the ledger in one ``BEGIN IMMEDIATE``
transaction, so a swipe by another process lands either before the fill (and is in it) or
after the trigger exists (and is counted by it) — never missed, never counted twice. A database
made before ``usage_days`` gets it the same way on its own (``install_days``).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DAYS_TRIGGER",
    "SPEND_DAYS",
    "SPEND_TRIGGER",
    "TRIGGER",
    "days_installed",
    "hour_of",
    "install",
    "install_days",
    "install_spend",
    "installed",
    "spend_by_day",
    "spend_installed",
    "stats",
]

TRIGGER = "ledger_usage"
DAYS_TRIGGER = "ledger_days"
SPEND_TRIGGER = "ledger_spend"
# Days (UTC, today included) of approved spend per category that GET /v1/usage reports.
SPEND_DAYS = 14

# An hour's key is the first 13 characters of the ledger's decided_at, "YYYY-MM-DDTHH" (UTC;
# clock.isoformat writes every decided_at as "YYYY-MM-DDTHH:MM:SSZ"), so keys sort by time.
# A day's key is the first 10, "YYYY-MM-DD": it sorts before its own hours and after those of
# the day before. Volume counts approved amounts only.

_TABLES = (
    """CREATE TABLE IF NOT EXISTS usage_totals (
        owner_id      TEXT PRIMARY KEY,
        auths         INTEGER NOT NULL,
        approvals     INTEGER NOT NULL,
        volume_cents  INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS usage_hours (
        owner_id      TEXT NOT NULL,
        hour          TEXT NOT NULL,
        auths         INTEGER NOT NULL,
        approvals     INTEGER NOT NULL,
        volume_cents  INTEGER NOT NULL,
        PRIMARY KEY (owner_id, hour)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS usage_declines (
        owner_id      TEXT NOT NULL,
        hour          TEXT NOT NULL,
        reason        TEXT NOT NULL,
        auths         INTEGER NOT NULL,
        PRIMARY KEY (owner_id, hour, reason)
    ) WITHOUT ROWID""",
)

# The INSERT ... SELECT carries a WHERE, which SQLite needs before ON CONFLICT in that form.
_TRIGGER_SQL = """CREATE TRIGGER ledger_usage AFTER INSERT ON ledger
BEGIN
    INSERT INTO usage_totals (owner_id, auths, approvals, volume_cents)
    VALUES (NEW.owner_id, 1, NEW.decision = 'approve',
            CASE WHEN NEW.decision = 'approve' THEN NEW.amount_cents ELSE 0 END)
    ON CONFLICT (owner_id) DO UPDATE SET
        auths = auths + 1,
        approvals = approvals + excluded.approvals,
        volume_cents = volume_cents + excluded.volume_cents;
    INSERT INTO usage_hours (owner_id, hour, auths, approvals, volume_cents)
    VALUES (NEW.owner_id, substr(NEW.decided_at, 1, 13), 1, NEW.decision = 'approve',
            CASE WHEN NEW.decision = 'approve' THEN NEW.amount_cents ELSE 0 END)
    ON CONFLICT (owner_id, hour) DO UPDATE SET
        auths = auths + 1,
        approvals = approvals + excluded.approvals,
        volume_cents = volume_cents + excluded.volume_cents;
    INSERT INTO usage_declines (owner_id, hour, reason, auths)
    SELECT NEW.owner_id, substr(NEW.decided_at, 1, 13), NEW.reason, 1
    WHERE NEW.decision = 'decline'
    ON CONFLICT (owner_id, hour, reason) DO UPDATE SET auths = auths + 1;
END"""

_FILL = (
    "DELETE FROM usage_totals",
    "DELETE FROM usage_hours",
    "DELETE FROM usage_declines",
    # One pass over the ledger for the hours; the totals are their sums.
    "INSERT INTO usage_hours (owner_id, hour, auths, approvals, volume_cents) "
    "SELECT owner_id, substr(decided_at, 1, 13), count(*), "
    "count(*) FILTER (WHERE decision = 'approve'), "
    "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve'), 0) "
    "FROM ledger GROUP BY 1, 2",
    "INSERT INTO usage_totals (owner_id, auths, approvals, volume_cents) "
    "SELECT owner_id, sum(auths), sum(approvals), sum(volume_cents) "
    "FROM usage_hours GROUP BY owner_id",
    # And one over its declines.
    "INSERT INTO usage_declines (owner_id, hour, reason, auths) "
    "SELECT owner_id, substr(decided_at, 1, 13), reason, count(*) "
    "FROM ledger WHERE decision = 'decline' GROUP BY 1, 2, 3",
)


# Kept by a trigger of its own, so that a database with the first three counters gets it (and
# its fill) by itself.
_DAYS_TABLE = """CREATE TABLE IF NOT EXISTS usage_days (
    owner_id      TEXT NOT NULL,
    day           TEXT NOT NULL,
    auths         INTEGER NOT NULL,
    approvals     INTEGER NOT NULL,
    volume_cents  INTEGER NOT NULL,
    PRIMARY KEY (owner_id, day)
) WITHOUT ROWID"""

_DAYS_TRIGGER_SQL = """CREATE TRIGGER ledger_days AFTER INSERT ON ledger
BEGIN
    INSERT INTO usage_days (owner_id, day, auths, approvals, volume_cents)
    VALUES (NEW.owner_id, substr(NEW.decided_at, 1, 10), 1, NEW.decision = 'approve',
            CASE WHEN NEW.decision = 'approve' THEN NEW.amount_cents ELSE 0 END)
    ON CONFLICT (owner_id, day) DO UPDATE SET
        auths = auths + 1,
        approvals = approvals + excluded.approvals,
        volume_cents = volume_cents + excluded.volume_cents;
END"""

_DAYS_FILL = (
    "DELETE FROM usage_days",
    "INSERT INTO usage_days (owner_id, day, auths, approvals, volume_cents) "
    "SELECT owner_id, substr(decided_at, 1, 10), count(*), "
    "count(*) FILTER (WHERE decision = 'approve'), "
    "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve'), 0) "
    "FROM ledger GROUP BY 1, 2",
)


def _has_trigger(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def installed(conn: sqlite3.Connection) -> bool:
    """Whether the trigger exists, which means the counters are filled and being kept."""
    return _has_trigger(conn, TRIGGER)


def install(conn: sqlite3.Connection) -> bool:
    """Creates the counters and fills them from the ledger, unless they exist already; run it
    inside ``BEGIN IMMEDIATE``. Returns whether it did the fill. The trigger is what marks
    them as done: tables without it (left by hand, say) are emptied and filled afresh."""
    if installed(conn):
        return False
    for statement in (*_TABLES, _TRIGGER_SQL, *_FILL):
        conn.execute(statement)
    return True


def days_installed(conn: sqlite3.Connection) -> bool:
    return _has_trigger(conn, DAYS_TRIGGER)


def install_days(conn: sqlite3.Connection) -> bool:
    """Like :func:`install`, for ``usage_days`` (inside ``BEGIN IMMEDIATE``)."""
    if days_installed(conn):
        return False
    for statement in (_DAYS_TABLE, _DAYS_TRIGGER_SQL, *_DAYS_FILL):
        conn.execute(statement)
    return True


def hour_of(moment: datetime) -> str:
    """The key of the UTC hour ``moment`` falls in, as the trigger writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _first_hour(now: datetime, days: int) -> datetime:
    """The start of the first hour of a ``days``-day window that ends with the current hour."""
    return (now - timedelta(days=days, hours=-1)).astimezone(UTC)


def _window(conn: sqlite3.Connection, owner_id: str, first: datetime) -> tuple[int, int]:
    """Authorizations and approved volume from ``first``'s hour on: the rest of its UTC day
    from ``usage_hours``, every day after it (today, and any stamped after now) from
    ``usage_days`` — the same hours as ``hour >= first``, a day at a time."""
    next_day = (first + timedelta(days=1)).strftime("%Y-%m-%d")
    auths, volume = conn.execute(
        "SELECT coalesce(sum(auths), 0), coalesce(sum(volume_cents), 0) FROM ("
        "SELECT auths, volume_cents FROM usage_hours "
        "WHERE owner_id = :owner AND hour >= :hour AND hour < :day "
        "UNION ALL SELECT auths, volume_cents FROM usage_days "
        "WHERE owner_id = :owner AND day >= :day)",
        {"owner": owner_id, "hour": hour_of(first), "day": next_day},
    ).fetchone()
    return auths, volume


def stats(conn: sqlite3.Connection, owner_id: str, now: datetime) -> dict[str, Any]:
    """The ``stats`` object of ``GET /v1/usage``, from the counters alone."""
    first_24h, first_7d, first_30d = (_first_hour(now, days) for days in (1, 7, 30))
    totals = conn.execute(
        "SELECT auths, approvals, volume_cents FROM usage_totals WHERE owner_id = ?", (owner_id,)
    ).fetchone()
    total, approved, volume = tuple(totals) if totals is not None else (0, 0, 0)
    auths_24h, volume_24h = _window(conn, owner_id, first_24h)
    auths_7d, _ = _window(conn, owner_id, first_7d)
    auths_30d, volume_30d = _window(conn, owner_id, first_30d)
    reasons = conn.execute(
        "SELECT reason, sum(auths) FROM usage_declines WHERE owner_id = ? AND hour >= ? "
        "GROUP BY reason ORDER BY reason",
        (owner_id, hour_of(first_24h)),
    ).fetchall()
    return {
        "total_auths": total,
        "auths_last_24h": auths_24h,
        "auths_last_7d": auths_7d,
        "auths_last_30d": auths_30d,
        "total_volume_cents": volume,
        "volume_last_24h_cents": volume_24h,
        "volume_last_30d_cents": volume_30d,
        "approve_rate": round(approved / total, 4) if total else None,
        "decline_reasons_24h": dict(reasons),
    }


# --- approved spend per UTC day and category (the operator console's chart) -----------------
#
# Another counter, kept by its own trigger so that a database with the first three gets it
# (and its fill) on its own: ``usage_spend`` per owner, UTC day ("YYYY-MM-DD", the first 10
# characters of decided_at) and category (the ledger's mcc tag), approved authorizations and
# their volume. A read is a primary-key range of at most SPEND_DAYS x categories rows.

_SPEND_TABLE = """CREATE TABLE IF NOT EXISTS usage_spend (
    owner_id      TEXT NOT NULL,
    day           TEXT NOT NULL,
    mcc           TEXT NOT NULL,
    approvals     INTEGER NOT NULL,
    volume_cents  INTEGER NOT NULL,
    PRIMARY KEY (owner_id, day, mcc)
) WITHOUT ROWID"""

_SPEND_TRIGGER_SQL = """CREATE TRIGGER ledger_spend AFTER INSERT ON ledger
WHEN NEW.decision = 'approve'
BEGIN
    INSERT INTO usage_spend (owner_id, day, mcc, approvals, volume_cents)
    VALUES (NEW.owner_id, substr(NEW.decided_at, 1, 10), NEW.mcc, 1, NEW.amount_cents)
    ON CONFLICT (owner_id, day, mcc) DO UPDATE SET
        approvals = approvals + 1,
        volume_cents = volume_cents + excluded.volume_cents;
END"""

_SPEND_FILL = (
    "DELETE FROM usage_spend",
    "INSERT INTO usage_spend (owner_id, day, mcc, approvals, volume_cents) "
    "SELECT owner_id, substr(decided_at, 1, 10), mcc, count(*), sum(amount_cents) "
    "FROM ledger WHERE decision = 'approve' GROUP BY 1, 2, 3",
)


def spend_installed(conn: sqlite3.Connection) -> bool:
    return _has_trigger(conn, SPEND_TRIGGER)


def install_spend(conn: sqlite3.Connection) -> bool:
    """Like :func:`install`, for the per-day, per-category spend (inside ``BEGIN IMMEDIATE``)."""
    if spend_installed(conn):
        return False
    for statement in (_SPEND_TABLE, _SPEND_TRIGGER_SQL, *_SPEND_FILL):
        conn.execute(statement)
    return True


def spend_by_day(
    conn: sqlite3.Connection, owner_id: str, now: datetime, days: int = SPEND_DAYS
) -> list[dict[str, Any]]:
    """Approved spend of the last ``days`` UTC days (today included) per day and category,
    oldest first: ``{"day", "mcc", "approvals", "volume_cents"}``; days without spend absent."""
    since = (now.astimezone(UTC) - timedelta(days=days - 1)).strftime("%Y-%m-%d")
    rows = conn.execute(
        "SELECT day, mcc, approvals, volume_cents FROM usage_spend "
        "WHERE owner_id = ? AND day >= ? ORDER BY day, mcc",
        (owner_id, since),
    ).fetchall()
    return [
        {"day": day, "mcc": mcc, "approvals": approvals, "volume_cents": volume}
        for day, mcc, approvals, volume in rows
    ]
