"""The day counter behind the usage windows (``usage_days`` in sandbox/counters.py): it equals
a recount of the ledger — in a database made before it existed, filled once when opened (also
by several Stores opening it at once while another connection writes), and for rows another
connection writes — and the windows it adds up keep their hour boundaries across UTC
midnight, while a read costs about the same after a month of hourly history as after one row.

The recount and the documented windows are test_usage_counters' (``assert_consistent`` checks
``usage_days`` with the other counters; ``expected_stats`` knows nothing of days)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from agentcard_mcp.sandbox import Store
from agentcard_mcp.sandbox.counters import days_installed
from agentcard_mcp.sandbox.ledger import usage
from tests.sandbox.test_api_cards import JSON, new_card, swipe
from tests.sandbox.test_usage_counters import (
    WINDOW_DAYS,
    assert_consistent,
    assert_within_exact_windows,
    counters,
    entries,
    expected_stats,
    raw,
    stats_of,
)
from tests.support import FakeClock, Sandbox, open_sandbox

pytestmark = pytest.mark.anyio

# Around every day's seams and the hour of the clock's start (07:00).
SEAMS = [(0, 0, 0), (0, 59, 59), (6, 59, 59), (7, 0, 0), (7, 30, 0), (23, 0, 0), (23, 59, 59)]


def append_at(path: Path, stamps: list[datetime], tag: str) -> None:
    """Appends one ledger row per stamp for the newest card by plain SQL, in one transaction:
    approvals, and two in five declines (two reasons, alternately)."""
    with raw(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        owner, agent, card = conn.execute(
            "SELECT owner_id, agent_id, id FROM cards ORDER BY created_at DESC, id LIMIT 1"
        ).fetchone()
        approve = ("approve", "approved")
        outcomes = [approve, ("decline", "unknown"), approve, ("decline", "do_not_honor"), approve]
        conn.executemany(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'usd', 'M', 'saas', 0)",
            [
                (f"auth_{tag}{i:07d}", owner, agent, card, at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 *outcomes[i % len(outcomes)], 100 + i % 977)
                for i, at in enumerate(stamps)
            ],
        )  # fmt: skip
        conn.execute("COMMIT")


def around_seams(start: datetime, days: int) -> list[datetime]:
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        midnight + timedelta(days=d, hours=h, minutes=m, seconds=s)
        for d in range(days)
        for h, m, s in SEAMS
    ]


def strip_days(path: Path) -> None:
    """Makes the file what the sandbox before ``usage_days`` left: the other counters and their
    triggers, kept, and no day counter."""
    with raw(path) as conn:
        conn.execute("DROP TRIGGER ledger_days")
        conn.execute("DROP TABLE usage_days")
        assert not days_installed(conn)
        assert conn.execute("SELECT count(*) FROM usage_hours").fetchone()[0] > 0


def hour_sums(path: Path, owner: str, now: datetime) -> dict[str, int]:
    """Each window's authorizations as the windows were summed before ``usage_days``: every
    hour row from the window's first hour on."""
    with raw(path) as conn:
        return {
            name: conn.execute(
                "SELECT coalesce(sum(auths), 0) FROM usage_hours WHERE owner_id = ? AND hour >= ?",
                (owner, (now - timedelta(days=days, hours=-1)).strftime("%Y-%m-%dT%H")),
            ).fetchone()[0]
            for name, days in WINDOW_DAYS.items()
        }


async def test_a_database_from_before_usage_days_gets_them_filled_once_when_opened(
    tmp_path: Path,
) -> None:
    db, clock = tmp_path / "sandbox.db", FakeClock()
    async with open_sandbox(db, "inprocess", clock) as sb:
        card = await new_card(sb, daily_limit_cents=1_000)
        for amount in (300, 300, 300, 300, 2_000):
            await swipe(sb, card["id"], amount)
            clock.advance(hours=9)
    strip_days(db)
    # Rows another program wrote meanwhile: the old trigger counted their hours, no one their days.
    append_at(db, around_seams(clock.now - timedelta(days=40), 41), "old")

    async with open_sandbox(db, "inprocess", clock) as sb:
        ledger = assert_consistent(db)
        assert len(ledger) == 5 + 41 * len(SEAMS)
        owner = sb.credentials.owner_id
        assert await stats_of(sb) == expected_stats(ledger, owner, clock.now)
        # From here on the trigger counts, whichever connection writes.
        append_at(db, around_seams(clock.now - timedelta(days=3), 5), "raw")
        await swipe(sb, card["id"], 100)
        ledger = assert_consistent(db)
        assert len(ledger) == 5 + 46 * len(SEAMS) + 1
        assert await stats_of(sb) == expected_stats(ledger, owner, clock.now)

    before = counters(db)
    Store(db).close()  # opening it again fills nothing twice
    assert counters(db) == before


async def test_stores_opening_a_database_without_usage_days_at_once_fill_it_exactly_once(
    tmp_path: Path,
) -> None:
    """Four Stores open a day-less file at the same moment while a plain connection appends
    rows in small transactions: each row is in the fill or counted by the trigger, once."""
    db, clock = tmp_path / "sandbox.db", FakeClock()
    async with open_sandbox(db, "inprocess", clock) as sb:
        await new_card(sb)
    append_at(db, around_seams(clock.now - timedelta(days=400), 400), "old")
    strip_days(db)
    start = threading.Barrier(5, timeout=10)

    def open_store() -> None:
        start.wait()
        Store(db).close()

    def write() -> None:
        start.wait()
        for batch in range(60):
            append_at(db, around_seams(clock.now + timedelta(days=batch), 1), f"b{batch:02d}_")

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(anyio.to_thread.run_sync, open_store)
            tg.start_soon(anyio.to_thread.run_sync, write)

    ledger = assert_consistent(db)
    assert len(ledger) == 460 * len(SEAMS)


async def test_windows_keep_their_hour_boundaries_across_utc_midnight(inprocess: Sandbox) -> None:
    """Hour by hour through a day and its midnight, at each hour's first and last second, the
    windows hold what hour buckets hold (test_usage_counters' definition) and what summing
    the hour rows alone gives, for rows around every seam of 35 days and every 37 minutes."""
    sb, clock = inprocess, inprocess.clock
    await new_card(sb)
    append_at(sb.db_path, around_seams(clock.now - timedelta(days=32), 35), "seam")
    start = clock.now - timedelta(days=32, minutes=1)
    append_at(sb.db_path, [start + timedelta(minutes=37 * i) for i in range(35 * 39)], "every")
    ledger, owner = entries(sb.db_path), sb.credentials.owner_id
    seen: set[tuple[int, ...]] = set()

    for step in [{"seconds": 0}] + [{"minutes": 59, "seconds": 59}, {"seconds": 1}] * 26:
        clock.advance(**step)
        stats = await stats_of(sb)
        assert stats == expected_stats(ledger, owner, clock.now)
        assert_within_exact_windows(stats, ledger, owner, clock.now)
        sums = hour_sums(sb.db_path, owner, clock.now)
        assert sums == {name: stats[f"auths_last_{name}"] for name in WINDOW_DAYS}
        seen.add(tuple(sums.values()))
    assert len(seen) == 27  # the windows moved at each hour's top, and only there


async def test_reading_usage_costs_about_the_same_after_a_month_of_hourly_history(
    tmp_path: Path,
) -> None:
    """SQLite's virtual-machine steps for one GET /v1/usage read: an authorization in every
    hour of 60 days (a quarter of them declines) against a single one. Summing the 30-day
    window hour by hour took about 9 400 steps more; a day at a time, about 1 300."""
    steps = {}
    for name, hours in (("small", 1), ("large", 60 * 24)):
        db, clock = tmp_path / f"{name}.db", FakeClock()
        async with open_sandbox(db, "inprocess", clock) as sb:
            await new_card(sb)
            first = clock.now - timedelta(hours=hours - 1, minutes=30)
            append_at(db, [first + timedelta(hours=h) for h in range(hours)], name)
            steps[name] = read_steps(sb)
    assert steps["large"] - steps["small"] < 2_500, steps


# --- helpers --------------------------------------------------------------------------------


def read_steps(sb: Sandbox) -> int:
    """Virtual-machine steps of one usage read (statements already prepared)."""
    count = 0

    def step() -> int:
        nonlocal count
        count += 1
        return 0

    def read(conn: sqlite3.Connection) -> JSON:
        usage(conn, sb.credentials.owner_id, sb.clock.now)  # prepares the statements
        conn.set_progress_handler(step, 1)
        try:
            return usage(conn, sb.credentials.owner_id, sb.clock.now)
        finally:
            conn.set_progress_handler(None, 1)

    result = sb.store.read_sync(read)
    assert result["stats"]["total_auths"] > 0
    return count
