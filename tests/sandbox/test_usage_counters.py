"""The usage counters behind ``GET /v1/usage`` (sandbox/counters.py) always equal a full
recount of the ledger: after a random mix of swipes over weeks, under concurrent swipes in one
process and from several, and for a database made before the counters existed, which gets them
filled once when it is opened — by exactly one of several processes opening it at once."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentcard_mcp.sandbox import Store
from agentcard_mcp.sandbox.ledger import usage
from tests.sandbox.test_api_accounts import new_owner
from tests.sandbox.test_api_cards import JSON, new_card, ok, swipe, swipe_body
from tests.sandbox.test_overspend import DB_CLIENT, http_client, run_together, server_with_card
from tests.support import FakeClock, Sandbox, open_sandbox

pytestmark = pytest.mark.anyio

COUNTER_TABLES = ("usage_totals", "usage_hours", "usage_declines", "usage_days")
WINDOW_DAYS = {"24h": 1, "7d": 7, "30d": 30}
TRIGGERS = ("ledger_usage", "ledger_spend", "ledger_days")


# --- the ledger, recounted in Python --------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    owner_id: str
    decided_at: datetime
    decision: str
    reason: str
    amount_cents: int

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, as any other program would open it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
        yield conn


def entries(path: Path) -> list[Entry]:
    with raw(path) as conn:
        rows = conn.execute(
            "SELECT owner_id, decided_at, decision, reason, amount_cents FROM ledger ORDER BY seq"
        ).fetchall()
    return [
        Entry(owner, datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), *rest)
        for owner, at, *rest in rows
    ]


def counters(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the counter tables."""
    with raw(path) as conn:
        return {
            table: set(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in COUNTER_TABLES
        }


def recount(ledger: list[Entry]) -> dict[str, set[tuple[Any, ...]]]:
    """What the counter tables must hold for this ledger, counted row by row."""
    totals: Counter[tuple[str, str]] = Counter()
    hours: Counter[tuple[str, str, str]] = Counter()
    days: Counter[tuple[str, str, str]] = Counter()
    declines: Counter[tuple[str, str, str]] = Counter()
    for e in ledger:
        hour, day = e.decided_at.strftime("%Y-%m-%dT%H"), e.decided_at.strftime("%Y-%m-%d")
        volume = e.amount_cents if e.approved else 0
        for field, amount in (("auths", 1), ("approvals", int(e.approved)), ("volume", volume)):
            totals[e.owner_id, field] += amount
            hours[e.owner_id, hour, field] += amount
            days[e.owner_id, day, field] += amount
        if not e.approved:
            declines[e.owner_id, hour, e.reason] += 1
    owners = {e.owner_id for e in ledger}
    keys = {(e.owner_id, e.decided_at.strftime("%Y-%m-%dT%H")) for e in ledger}
    return {
        "usage_totals": {
            (o, totals[o, "auths"], totals[o, "approvals"], totals[o, "volume"]) for o in owners
        },
        "usage_hours": {
            (o, h, hours[o, h, "auths"], hours[o, h, "approvals"], hours[o, h, "volume"])
            for o, h in keys
        },
        "usage_declines": {(o, h, r, n) for (o, h, r), n in declines.items()},
        "usage_days": {
            (o, d, days[o, d, "auths"], days[o, d, "approvals"], days[o, d, "volume"])
            for o, d in {(o, h[:10]) for o, h in keys}
        },
    }


def in_window(e: Entry, now: datetime, days: int) -> bool:
    """The documented window: whole UTC hours, the current one and the 24*days-1 before it."""
    top = now.replace(minute=0, second=0, microsecond=0)
    return e.decided_at.replace(minute=0, second=0) > top - timedelta(days=days)


def expected_stats(ledger: list[Entry], owner_id: str, now: datetime) -> JSON:
    mine = [e for e in ledger if e.owner_id == owner_id]
    approved = [e for e in mine if e.approved]
    windows = {name: [e for e in mine if in_window(e, now, d)] for name, d in WINDOW_DAYS.items()}
    return {
        "total_auths": len(mine),
        "auths_last_24h": len(windows["24h"]),
        "auths_last_7d": len(windows["7d"]),
        "auths_last_30d": len(windows["30d"]),
        "total_volume_cents": sum(e.amount_cents for e in approved),
        "volume_last_24h_cents": sum(e.amount_cents for e in windows["24h"] if e.approved),
        "volume_last_30d_cents": sum(e.amount_cents for e in windows["30d"] if e.approved),
        "approve_rate": round(len(approved) / len(mine), 4) if mine else None,
        "decline_reasons_24h": dict(
            sorted(Counter(e.reason for e in windows["24h"] if not e.approved).items())
        ),
    }


def assert_within_exact_windows(
    stats: JSON, ledger: list[Entry], owner: str, now: datetime
) -> None:
    """Hour buckets only ever leave out the oldest hour: each count lies between the precise
    count over D - 1 h and over D (``decided_at > now - D``)."""
    mine = [e for e in ledger if e.owner_id == owner]

    def exact(span: timedelta) -> int:
        return sum(e.decided_at > now - span for e in mine)

    for name, days in WINDOW_DAYS.items():
        full = timedelta(days=days)
        assert exact(full - timedelta(hours=1)) <= stats[f"auths_last_{name}"] <= exact(full)


def assert_consistent(path: Path) -> list[Entry]:
    """The counter tables hold exactly what a full recount of the ledger gives."""
    ledger = entries(path)
    assert counters(path) == recount(ledger)
    return ledger


async def stats_of(sb: Sandbox, headers: dict[str, str] | None = None) -> JSON:
    result: JSON = ok(await sb.client.get("/v1/usage", headers=headers))["stats"]
    return result


def strip_counters(path: Path) -> None:
    """Makes the file what a sandbox from before the counters left: no counter tables, no
    trigger."""
    with raw(path) as conn:
        for trigger in TRIGGERS:
            conn.execute(f"DROP TRIGGER {trigger}")
        for table in (*COUNTER_TABLES, "usage_spend"):
            conn.execute(f"DROP TABLE {table}")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not {n for n in names if n.startswith("usage_") or n in TRIGGERS}


def append_raw(path: Path, count: int, start: datetime, step: timedelta) -> None:
    """Appends ``count`` ledger rows for the newest card by plain SQL, ``step`` apart from
    ``start``: approvals, and every third a decline for an unmapped network reason."""
    with raw(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        owner, agent, card = conn.execute(
            "SELECT owner_id, agent_id, id FROM cards ORDER BY created_at DESC, id LIMIT 1"
        ).fetchone()
        conn.executemany(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'usd', 'M', 'saas', 0)",
            [
                (f"auth_raw{i:08d}", owner, agent, card,
                 (start + i * step).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 *(("decline", "unknown") if i % 3 == 0 else ("approve", "approved")), 100 + i)
                for i in range(count)
            ],
        )  # fmt: skip
        conn.execute("COMMIT")


# --- a random history -----------------------------------------------------------------------

# Minutes between two swipes: often none, often across an hour's top, sometimes days.
STEPS = [0, 0, 0, 0, 1, 1, 7, 29, 59, 60, 61, 180, 24 * 60, 3 * 24 * 60 + 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_counters_equal_a_recount_after_random_swipes_over_weeks(
    inprocess: Sandbox, caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    rng = random.Random(seed)
    sb, clock = inprocess, inprocess.clock
    other = await new_owner(sb, caplog, "other@example.com")
    owners: dict[str, dict[str, str]] = {sb.credentials.owner_id: {}, other.owner_id: other.auth}
    cards = [
        (await new_card(sb, daily_limit_cents=1_000, per_auth_max_cents=900))["id"],
        (await new_card(sb, daily_limit_cents=3_000, mcc_allowlist=["saas"]))["id"],
    ]
    plays: list[tuple[str, dict[str, str]]] = [(card, {}) for card in cards]
    plays.append((other.card_id, other.auth))
    frozen: set[str] = set()

    for i in range(240):
        clock.advance(minutes=rng.choice(STEPS))
        card, headers = rng.choice(plays)
        if rng.random() < (0.3 if card in frozen else 0.03):
            action = "unfreeze" if card in frozen else "freeze"
            ok(await sb.client.post(f"/v1/cards/{card}/{action}", headers=headers))
            frozen ^= {card}
        extra: JSON = {"mcc": rng.choice(["saas", "saas", "food"])}
        if rng.random() < 0.05:
            extra["network_decline"] = "do_not_honor"
        body = swipe_body(card, rng.choice([50, 100, 400, 899, 1_000, 2_500]), **extra)
        ok(await sb.client.post("/v1/_test/swipe", json=body, headers=headers))
        if i % 40 == 39:
            ledger = assert_consistent(sb.db_path)
            for owner, auth in owners.items():
                stats = await stats_of(sb, auth)
                assert stats == expected_stats(ledger, owner, clock.now)
                assert_within_exact_windows(stats, ledger, owner, clock.now)

    ledger = assert_consistent(sb.db_path)
    reasons = {e.reason for e in ledger}
    assert {"approved", "per_auth_limit_exceeded", "daily_limit_exceeded"} <= reasons
    assert ledger[-1].decided_at - ledger[0].decided_at > timedelta(days=30)
    # And as history ages out of every window, hour by hour and then day by day.
    for step in [{"minutes": 30}] * 4 + [{"hours": 5}] * 5 + [{"days": 3}] * 11:
        clock.advance(**step)
        for owner, auth in owners.items():
            stats = await stats_of(sb, auth)
            assert stats == expected_stats(ledger, owner, clock.now)
            assert_within_exact_windows(stats, ledger, owner, clock.now)
    assert stats["auths_last_30d"] == 0
    assert stats["total_auths"] == sum(e.owner_id == other.owner_id for e in ledger)


async def test_an_authorization_leaves_the_24h_window_at_the_top_of_an_hour(
    inprocess: Sandbox,
) -> None:
    """The documented granularity: a swipe at 07:30 counts in "last 24h" until 06:59:59 the
    next day and not from 07:00:00 (23.5 h after it); in "last 30d" likewise."""
    card = await new_card(inprocess)
    inprocess.clock.advance(minutes=30)
    await swipe(inprocess, card["id"], 100)
    await swipe(inprocess, card["id"], 20_000)  # over the per-authorization maximum

    inprocess.clock.advance(hours=23, minutes=29, seconds=59)
    stats = await stats_of(inprocess)
    assert (stats["auths_last_24h"], stats["volume_last_24h_cents"]) == (2, 100)
    assert stats["decline_reasons_24h"] == {"per_auth_limit_exceeded": 1}
    inprocess.clock.advance(seconds=1)
    stats = await stats_of(inprocess)
    assert (stats["auths_last_24h"], stats["volume_last_24h_cents"]) == (0, 0)
    assert stats["decline_reasons_24h"] == {}
    assert (stats["auths_last_7d"], stats["auths_last_30d"], stats["total_auths"]) == (2, 2, 2)

    inprocess.clock.advance(days=29, seconds=-1)
    stats = await stats_of(inprocess)
    assert (stats["auths_last_30d"], stats["volume_last_30d_cents"]) == (2, 100)
    inprocess.clock.advance(seconds=1)  # 07:00, 29 days 23.5 h after the swipe
    stats = await stats_of(inprocess)
    assert (stats["auths_last_30d"], stats["volume_last_30d_cents"]) == (0, 0)
    assert (stats["total_auths"], stats["total_volume_cents"]) == (2, 100)


async def test_reading_usage_never_reads_the_ledger(inprocess: Sandbox) -> None:
    card = await new_card(inprocess)
    for amount in (100, 200, 50_000):
        await swipe(inprocess, card["id"], amount)
    tables: set[str] = set()

    def record(action: int, table: str | None, *_: Any) -> int:
        if action == sqlite3.SQLITE_READ and table is not None:
            tables.add(table)
        return sqlite3.SQLITE_OK

    def read(conn: sqlite3.Connection) -> JSON:
        conn.set_authorizer(record)
        try:
            return usage(conn, inprocess.credentials.owner_id, inprocess.clock.now)
        finally:
            conn.set_authorizer(None)

    result = inprocess.store.read_sync(read)
    assert result["stats"]["total_auths"] == 3
    assert tables == {"owners", "cards", "usage_spend", *COUNTER_TABLES}


# --- concurrency ----------------------------------------------------------------------------


async def test_many_concurrent_swipes_leave_the_counters_consistent(sandbox: Sandbox) -> None:
    cards = [(await new_card(sandbox, daily_limit_cents=3_000))["id"] for _ in range(3)]
    rng = random.Random(7)
    plan = [(rng.choice(cards), rng.choice([100, 250, 700])) for _ in range(90)]

    async with anyio.create_task_group() as tg:
        for card, amount in plan:
            tg.start_soon(swipe, sandbox, card, amount)

    ledger = assert_consistent(sandbox.db_path)
    assert len(ledger) == 90
    assert {e.reason for e in ledger} == {"approved", "daily_limit_exceeded"}
    stats = await stats_of(sandbox)
    assert stats == expected_stats(ledger, sandbox.credentials.owner_id, sandbox.clock.now)
    assert stats["total_volume_cents"] == sum(e.amount_cents for e in ledger if e.approved)


async def test_swipes_from_several_processes_leave_the_counters_consistent(
    tmp_path: Path,
) -> None:
    """Two HTTP client processes against the standalone server and two processes swiping
    directly on its database file, all at once, until the daily limit declines them."""
    amount, limit = 100, 4_000
    async with server_with_card(tmp_path, daily=limit, per_auth=limit) as (server, client, card):
        commands = {
            f"http{i}": http_client(server, card, amount, 5, f"u{i}", "stream", cap=30)
            for i in range(2)
        }
        for i in range(2):
            commands[f"db{i}"] = [
                sys.executable, "-c", DB_CLIENT, str(server.db_path), card, str(amount), "30"
            ]  # fmt: skip
        results, _ = await run_together(commands, tmp_path)
        assert sum(len(rows) for rows in results.values()) > limit // amount

        ledger = assert_consistent(server.db_path)
        approved = [e for e in ledger if e.approved]
        assert sum(e.amount_cents for e in approved) == limit
        stats = (await client.get("/v1/usage")).json()["stats"]
        owner = ledger[0].owner_id
        assert stats == expected_stats(ledger, owner, datetime.now(UTC))
        assert stats["total_auths"] == len(ledger)
        assert stats["total_volume_cents"] == limit


# --- a database from before the counters ----------------------------------------------------


async def test_a_database_from_before_the_counters_is_filled_once_when_opened(
    tmp_path: Path,
) -> None:
    db, clock = tmp_path / "sandbox.db", FakeClock()
    async with open_sandbox(db, "inprocess", clock) as sb:
        card = await new_card(sb, daily_limit_cents=1_000)
        for amount in (300, 300, 300, 300, 2_000):
            await swipe(sb, card["id"], amount)
            clock.advance(hours=7)
    strip_counters(db)
    # Rows written while there were no counters: by the old sandbox, or anything else.
    append_raw(db, 500, clock.now - timedelta(days=40), timedelta(hours=2, minutes=1))
    ledger = entries(db)
    assert len(ledger) == 505

    async with open_sandbox(db, "inprocess", clock) as sb:
        assert_consistent(db)
        stats = await stats_of(sb)
        assert stats == expected_stats(ledger, sb.credentials.owner_id, clock.now)
        assert stats["total_auths"] == 505
        await swipe(sb, card["id"], 100)  # from here on the trigger counts
    ledger = assert_consistent(db)
    assert len(ledger) == 506

    before = counters(db)
    Store(db).close()  # opening it again fills nothing twice
    assert counters(db) == before


async def test_processes_opening_an_old_database_at_once_fill_it_exactly_once(
    tmp_path: Path,
) -> None:
    """Four processes open a counter-less file at the same moment (each ``sandbox swipe``
    opens a Store) and swipe on it: one fills the counters, none counts a row twice."""
    db, clock = tmp_path / "sandbox.db", FakeClock()
    async with open_sandbox(db, "inprocess", clock) as sb:
        card = (await new_card(sb, daily_limit_cents=1_500))["id"]
    strip_counters(db)
    append_raw(db, 20_000, clock.now - timedelta(days=60), timedelta(minutes=5))

    commands = {f"db{i}": [sys.executable, "-c", DB_CLIENT, str(db), card, "100", "10"]
                for i in range(4)}  # fmt: skip
    results, _ = await run_together(commands, tmp_path)
    outcomes = [payload for rows in results.values() for code, payload in rows if code == 0]
    assert sum(len(rows) for rows in results.values()) == len(outcomes)

    ledger = assert_consistent(db)
    assert len(ledger) == 20_000 + len(outcomes)
    assert sum(o["approved"] for o in outcomes) == 15  # the raw rows spent nothing: 1 500 / 100
