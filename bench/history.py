"""The day's budget does not cost more as history grows (DESIGN §5).

For SQLite (and PostgreSQL in the full run: the embedded test server, or
``AGENTCARD_TEST_DATABASE_URL``) it builds a small history (10 ledger rows, 10 cards, 10 past
approvals) and a large one (100 000 ledger rows and past approvals and 1 000 cards, all but
five closed; a fifth of that in the quick run), then times through the in-memory client
``get_limits`` and ``create_card`` (each followed, untimed, by ``close_card``), interleaved with
a bare MCP server's no-op. Target: with the large history, each tool's p50 over the floor
within 1 ms or 25% of the small history's.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp import Client

from .core import (
    Figure,
    call,
    fill_ledger,
    floor_server,
    interleaved,
    make_cards,
    pct_ms,
    sandbox_settings,
    timed,
)

BENCH = "history"
APPROVAL_INSERT = (
    "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
    "expires_at, decided_at, used_at) VALUES ({})"
)


def past_approvals(count: int) -> list[tuple[object, ...]]:
    """Used approvals, an hour or more old."""
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for i in range(count):
        made = (now - timedelta(hours=1, seconds=i)).isoformat(timespec="microseconds")
        ends = (now - timedelta(minutes=50, seconds=i)).isoformat(timespec="microseconds")
        arguments = json.dumps({"card_id": f"card_{i}"})
        row = (f"apr_bench{i:016d}", "close_card", f"{i:064x}", "close_card(…)", arguments)
        rows.append((*row, "used", made, ends, made, made))
    return rows


async def fill_approvals(settings: Any, count: int) -> None:
    rows = past_approvals(count)
    url = settings.database_url_text()
    if url is None:
        with sqlite3.connect(settings.home / "approvals.db") as db:
            db.executemany(APPROVAL_INSERT.format(", ".join("?" * 10)), rows)
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as pg:
        async with pg.cursor() as cursor:
            await cursor.executemany(APPROVAL_INSERT.format(", ".join(["%s"] * 10)), rows)
        await pg.execute("ANALYZE")  # what autovacuum would have done on a server in use


async def over_floor(settings: Any, n: int) -> dict[str, float]:
    """Each tool's p50 minus the floor's, in ms."""
    from agentcard_mcp.server import create_server

    async with Client(create_server(settings)) as client, Client(floor_server()) as floor:

        async def get_limits() -> int:
            return await timed(call(client, "get_limits", {}))

        async def create_card() -> int:
            began = time.perf_counter_ns()
            made = await call(client, "create_card", {"purpose": "b", "daily_limit_cents": 100})
            elapsed = time.perf_counter_ns() - began
            await call(client, "close_card", {"card_id": made["id"]})  # untimed
            return elapsed

        async def noop() -> int:
            return await timed(floor.call_tool("noop", {}))

        got = await interleaved({"get_limits": get_limits, "create_card": create_card,
                                 "noop": noop}, n, n // 10)  # fmt: skip
    floor_p50 = pct_ms(got["noop"], 0.5)
    return {tool: pct_ms(got[tool], 0.5) - floor_p50 for tool in ("get_limits", "create_card")}


async def measured(home: Path, database_url: str | None, scale: int, cards: int,
                   n: int) -> dict[str, float]:  # fmt: skip
    settings = sandbox_settings(home, database_url)
    first = await make_cards(settings, cards)
    fill_ledger(home / "sandbox.db", first, scale)
    await fill_approvals(settings, scale)
    return await over_floor(settings, n)


async def run(quick: bool) -> list[Figure]:
    backends: list[str] = ["sqlite"] if quick else ["sqlite", "postgres"]
    rows, cards, n = (20_000, 200, 100) if quick else (100_000, 1000, 400)
    figures = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
            urls: list[str | None] = [None, None]
            if backend == "postgres":
                from tests.postgres import fresh_database

                urls = [fresh_database(), fresh_database()]
            small = await measured(Path(tmp) / "small", urls[0], 10, 10, n)
            large = await measured(Path(tmp) / "large", urls[1], rows, cards, n)
        for tool in ("get_limits", "create_card"):
            allowed = max(1.0, 0.25 * small[tool])
            figures.append(Figure(
                BENCH, f"{backend} {tool} over floor, {rows:,} rows/{cards} cards (floor: small)",
                large[tool], "ms", small[tool], "<= small +1 ms or +25%",
                large[tool] <= small[tool] + allowed,
            ))  # fmt: skip
    return figures
