"""PostgreSQL migrations (DESIGN §12): replicas that start together on a fresh database apply
each versioned migration exactly once, and every one of them can then use the schema."""

from __future__ import annotations

import anyio
import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row

from agentcard_mcp.storage.base import DayTotals
from agentcard_mcp.storage.postgres.budget import PostgresBudget
from agentcard_mcp.storage.postgres.db import MIGRATIONS, Pool, migrate, open_pool
from tests.storage.support import TODAY, card

pytestmark = pytest.mark.anyio

REPLICAS = 4


def recorded(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(int(version), str(name)) for version, name in rows]


async def test_four_pools_opening_together_on_a_fresh_database_record_each_migration_once(
    postgres_url: str,
) -> None:
    pools: list[Pool] = []
    all_open = anyio.Event()

    async def replica(n: int) -> None:
        async with open_pool(postgres_url, max_size=2) as pool:
            pools.append(pool)
            if len(pools) == REPLICAS:
                all_open.set()
            await all_open.wait()  # keep every pool open until all four have migrated
            budget = PostgresBudget(pool, "acct")
            await budget.observe([card(f"replica-{n}", "active", limit=100)])

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for n in range(REPLICAS):
                tg.start_soon(replica, n)

    assert recorded(postgres_url) == [(version, name) for version, name, _ in MIGRATIONS]
    async with open_pool(postgres_url) as pool:
        totals = await PostgresBudget(pool, "acct").totals(TODAY)
    assert totals == DayTotals(TODAY, REPLICAS * 100, REPLICAS, 0)


async def test_of_four_concurrent_migrations_each_migration_is_applied_by_exactly_one(
    postgres_url: str,
) -> None:
    # Connected first, so the four migrations start together rather than as each connects.
    conns: list[AsyncConnection[DictRow]] = [
        await AsyncConnection.connect(postgres_url, autocommit=True, row_factory=dict_row)
        for _ in range(REPLICAS)
    ]
    applied: list[list[str]] = []

    async def run(conn: AsyncConnection[DictRow]) -> None:
        applied.append(await migrate(conn))

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for conn in conns:
                    tg.start_soon(run, conn)
        again = await migrate(conns[0])
    finally:
        for conn in conns:
            await conn.close()

    names = [name for _, name, _ in MIGRATIONS]
    assert names  # there is a schema to migrate to
    assert sorted(name for one in applied for name in one) == sorted(names)
    assert sorted(applied, key=len) == [[]] * (REPLICAS - 1) + [names]
    assert again == []
    assert recorded(postgres_url) == [(version, name) for version, name, _ in MIGRATIONS]
