"""Benchmark (not a test): what ``GET /v1/usage`` costs on the embedded sandbox issuer as the
ledger grows.

For each ledger size (10 and 100 000 rows by default) it makes a sandbox database, appends that
many authorizations to the ledger in one bulk INSERT (spread over the 60 days before "now", one
in ten a decline; the ledger's trigger keeps the usage counters as it does for a swipe), then
measures ``GET /v1/usage`` in process (``httpx.ASGITransport``, the app's lifespan running) next
to its floor: a bare Starlette route that returns a fixed body of the same shape, reached the
same way. The two are interleaved in rounds, so load from elsewhere hits both alike. Every
answer is checked (``total_auths`` is the ledger's size).

For reference it also times, directly in SQLite on the same file, the query ``/v1/usage`` ran
before the counters (a scan of the owner's whole ledger), and the one-time fill of the counters
that opening a database made before them costs.

Run from the repository root:  python bench/sandbox_usage.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would then shadow the
# standard library's http package (httpx, uvicorn and starlette import it): the repository root
# takes bench/'s place, which also makes bench/ and tests/ importable.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from tests.support import FakeClock, Sandbox, open_sandbox  # noqa: E402

from agentcard_mcp.sandbox import Store  # noqa: E402
from bench.machine import load_average, verdict  # noqa: E402

USAGE = "/v1/usage"
DEFAULT_SIZES = (10, 100_000)
DEFAULT_N = 1000
QUICK_N = 200
ROUNDS = 10
HISTORY = timedelta(days=60)
DECLINE_EVERY = 10
DECLINE_REASONS = ("per_auth_limit_exceeded", "daily_limit_exceeded", "card_frozen")
AMOUNT_CENTS = 125
# Target: the cost over the floor at the largest size within this much of the smallest's.
TARGET_GROWTH_MS = 0.5
REFERENCE_RUNS = 15

# What the floor answers: a /v1/usage body of the documented shape and about the same size.
FLOOR_BODY = (
    b'{"plan": {"name": "payg"}, "owner": {"id": "own_01K0000000000000000000000", '
    b'"deposit_balance_cents": 100000}, "cards": {"used": 1, "limit": 25, "remaining": 24}, '
    b'"stats": {"total_auths": 100000, "auths_last_24h": 1666, "auths_last_7d": 11666, '
    b'"auths_last_30d": 49999, "total_volume_cents": 11250000, "volume_last_24h_cents": '
    b'187375, "volume_last_30d_cents": 5624875, "approve_rate": 0.9, "decline_reasons_24h": '
    b'{"card_frozen": 55, "daily_limit_exceeded": 56, "per_auth_limit_exceeded": 56}}}'
)

# The statistics query of GET /v1/usage before the usage counters: the owner's whole ledger.
LEDGER_SCAN = (
    "SELECT count(*) AS total, "
    "count(*) FILTER (WHERE decided_at > :d1) AS last_24h, "
    "count(*) FILTER (WHERE decided_at > :d7) AS last_7d, "
    "count(*) FILTER (WHERE decided_at > :d30) AS last_30d, "
    "count(*) FILTER (WHERE decision = 'approve') AS approved, "
    "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve'), 0) AS volume, "
    "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve' AND decided_at > :d1), 0), "
    "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve' AND decided_at > :d30), 0) "
    "FROM ledger WHERE owner_id = :owner"
)
REASONS_SCAN = (
    "SELECT reason, count(*) FROM ledger WHERE owner_id = ? AND decision = 'decline' "
    "AND decided_at > ? GROUP BY reason ORDER BY reason"
)


# --- the floor ------------------------------------------------------------------------------


async def _floor_endpoint(request: Request) -> Response:
    return Response(FLOOR_BODY, 200, media_type="application/json")


def floor_app() -> Starlette:
    return Starlette(routes=[Route(USAGE, _floor_endpoint, methods=["GET"])])


# --- filling the ledger ---------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fill(sandbox: Sandbox, card_id: str, rows: int) -> float:
    """Appends ``rows`` authorizations to the ledger in one transaction, spread evenly over
    the HISTORY before the clock's now; returns the seconds it took."""
    owner, agent = sandbox.credentials.owner_id, sandbox.credentials.agent_id
    start, step = sandbox.clock.now - HISTORY, HISTORY / rows

    def row(i: int) -> tuple[object, ...]:
        declined = i % DECLINE_EVERY == DECLINE_EVERY - 1
        reason = DECLINE_REASONS[i // DECLINE_EVERY % len(DECLINE_REASONS)]
        return (
            f"auth_bench{i:010d}", owner, agent, card_id, _stamp(start + (i + 1) * step),
            "decline" if declined else "approve", reason if declined else "approved",
            AMOUNT_CENTS,
        )  # fmt: skip

    def insert(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'usd', 'Bench Coffee Roasters', 'restaurants', 0)",
            (row(i) for i in range(rows)),
        )

    began = time.perf_counter()
    sandbox.store.transaction_sync(insert)
    return time.perf_counter() - began


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Sample:
    latencies_ns: list[int]

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


Get = Callable[[], Awaitable[None]]


async def interleaved(gets: dict[str, Get], n: int, warmup: int) -> dict[str, Sample]:
    """``n`` requests per target after ``warmup`` each, in ROUNDS rounds; the order of the
    targets rotates from round to round."""
    names = list(gets)
    for name in names:
        for _ in range(warmup):
            await gets[name]()
    samples = {name: Sample([]) for name in names}
    per_round = max(1, n // ROUNDS)
    for r in range(ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            get = gets[name]
            for _ in range(per_round):
                began = time.perf_counter_ns()
                await get()
                samples[name].latencies_ns.append(time.perf_counter_ns() - began)
    return samples


def reference_scan_ms(db: Path, owner_id: str, now: datetime) -> float:
    """p50 of the pre-counter statistics queries, straight in SQLite on a second connection."""
    since = {f"d{d}": _stamp(now - timedelta(days=d)) for d in (1, 7, 30)}
    times = []
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for _ in range(REFERENCE_RUNS):
            began = time.perf_counter_ns()
            conn.execute("BEGIN")
            conn.execute(LEDGER_SCAN, {"owner": owner_id, **since}).fetchone()
            conn.execute(REASONS_SCAN, (owner_id, since["d1"])).fetchall()
            conn.execute("COMMIT")
            times.append(time.perf_counter_ns() - began)
    return Sample(times).pct_ms(0.5)


def refill_ms(db: Path) -> float:
    """Strips the counters from the (closed) file, as a database made before them has none,
    and times opening it: the one-time fill from the ledger."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER ledger_usage")
        for table in ("usage_totals", "usage_hours", "usage_declines"):
            conn.execute(f"DROP TABLE {table}")
    began = time.perf_counter()
    Store(db).close()
    return (time.perf_counter() - began) * 1e3


@dataclass
class Row:
    size: int
    fill_s: float
    usage: Sample
    floor: Sample
    scan_ms: float
    refill_ms: float

    @property
    def over_floor_ms(self) -> float:
        return self.usage.pct_ms(0.5) - self.floor.pct_ms(0.5)


async def bench_size(tmp: Path, size: int, n: int, warmup: int) -> Row:
    db = tmp / f"usage-{size}.db"
    async with open_sandbox(db, "inprocess", FakeClock()) as sandbox:
        card = await sandbox.client.post(
            "/v1/cards",
            json={"agent_id": sandbox.credentials.agent_id, "daily_limit_cents": 10_000},
        )
        if card.status_code != 200:
            raise RuntimeError(f"card create: {card.status_code} {card.text}")
        fill_s = fill(sandbox, card.json()["id"], size)

        async def usage() -> None:
            response = await sandbox.client.get(USAGE)
            if response.status_code != 200:
                raise RuntimeError(f"usage: {response.status_code} {response.text}")
            total = response.json()["stats"]["total_auths"]
            if total != size:
                raise RuntimeError(f"usage: total_auths {total}, the ledger holds {size}")

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=floor_app()), base_url="http://sandbox"
        ) as floor_client:

            async def floor() -> None:
                response = await floor_client.get(USAGE)
                if response.status_code != 200:
                    raise RuntimeError(f"floor: {response.status_code}")
                response.json()

            samples = await interleaved({"usage": usage, "floor": floor}, n, warmup)
        scan = reference_scan_ms(db, sandbox.credentials.owner_id, sandbox.clock.now)
    print(f"  measured {size:,} ledger rows", file=sys.stderr, flush=True)
    return Row(size, fill_s, samples["usage"], samples["floor"], scan, refill_ms(db))


# --- the run --------------------------------------------------------------------------------


def print_header(n: int, warmup: int) -> None:
    print("Sandbox usage benchmark — GET /v1/usage as the ledger grows, in process")
    print(
        f"  python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"  {load_average()} (other work on the machine inflates every number, the floor too)")
    print(
        f"  ledger rows spread over the {HISTORY.days} days before now, 1 in {DECLINE_EVERY} a "
        "decline; one owner, one card"
    )
    print(
        f"  n={n} measured requests per cell after {warmup} warm-up, interleaved with the floor "
        f"in {ROUNDS} rounds; floor: a bare Starlette GET route returning a fixed body of the "
        "same shape, through the same kind of client and transport"
    )
    print()


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'ledger rows':>11} {'fill s':>6} | {'usage p50':>9} {'p99':>6} | {'floor p50':>9} "
        f"{'p99':>6} | {'over floor':>10} | {'old scan p50':>12} {'one-time fill':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        usage, floor = r.usage, r.floor
        print(
            f"{r.size:>11,} {r.fill_s:>6.2f} | {usage.pct_ms(0.5):>6.2f} ms "
            f"{usage.pct_ms(0.99):>6.2f} | {floor.pct_ms(0.5):>6.2f} ms "
            f"{floor.pct_ms(0.99):>6.2f} | {r.over_floor_ms:>+7.2f} ms | "
            f"{r.scan_ms:>9.2f} ms {r.refill_ms:>10.1f} ms"
        )
    print()
    print(
        "over floor = usage p50 - floor p50: what the usage read itself costs. old scan = the "
        "statistics queries /v1/usage ran before the counters (a scan of the owner's ledger), "
        "timed straight in SQLite, not over the API. one-time fill = opening that database as "
        "if made before the counters: they are created and filled from the ledger, once."
    )
    smallest, largest = rows[0], rows[-1]
    if largest.size > smallest.size:
        growth = largest.over_floor_ms - smallest.over_floor_ms
        print(
            f"target: the cost over the floor at {largest.size:,} rows within "
            f"{TARGET_GROWTH_MS} ms of at {smallest.size:,} rows: {growth:+.2f} ms "
            f"{verdict(growth < TARGET_GROWTH_MS)}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/sandbox_usage.py",
        description="Benchmark the sandbox issuer's GET /v1/usage at several ledger sizes, in "
        "process, next to a bare Starlette endpoint (the floor) measured the same way in the "
        "same run; also times the pre-counter ledger scan and the one-time counter fill. Run "
        "it from the repository root on an otherwise idle machine.",
        epilog="examples:\n"
        "  python bench/sandbox_usage.py                     # the full run (about 20 s)\n"
        "  python bench/sandbox_usage.py --quick             # a smoke run\n"
        "  python bench/sandbox_usage.py --sizes 10 10000 1000000\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--n", type=int, default=None, help=f"measured requests per cell (default {DEFAULT_N})"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a fast smoke run: n={QUICK_N} unless --n is given"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="ledger sizes to measure, in rows (default 10 100000)",
    )
    args = parser.parse_args(argv)
    if args.n is not None and args.n < ROUNDS:
        parser.error(f"--n must be at least {ROUNDS}")
    if any(size < 1 for size in args.sizes):
        parser.error("--sizes must be at least 1")
    return args


async def main_async(args: argparse.Namespace) -> None:
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    warmup = max(20, n // 10)
    print_header(n, warmup)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as name:
        rows = [await bench_size(Path(name), size, n, warmup) for size in sorted(args.sizes)]
    print_table(rows)
    print(f"(measured in {time.perf_counter() - began:.1f} s; at the end: {load_average()})")


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(main_async(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
