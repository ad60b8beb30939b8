"""The PostgreSQL connection pool and the schema's versioned migrations.

Migrations are the numbered ``migrations/NNNN_name.sql`` files next to this module, applied in
order at start, each in its own transaction with its version recorded in ``schema_migrations``.
An advisory lock makes replicas that start together apply each one exactly once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["MIGRATIONS", "migrate", "open_pool"]

log = logging.getLogger("agentcard_mcp.storage")

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]

CONNECT_TIMEOUT_S = 10

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK = "agentcard_mcp:migrations"


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


MIGRATIONS = _migrations()


async def migrate(conn: AsyncConnection[DictRow]) -> list[str]:
    """Applies the migrations this database lacks; returns their names."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
        done = {row["version"] for row in rows}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql.encode())  # several statements: no parameters
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(name)
    if applied:
        log.info("database: applied migrations %s", ", ".join(applied))
    return applied


@asynccontextmanager
async def open_pool(url: str, *, max_size: int = 10) -> AsyncIterator[Pool]:
    """A pool of connections to ``url``, the schema migrated before the first use."""
    # One plain connection first: an unreachable or refusing server fails at once with the
    # server's own reason, rather than as the pool's retries and a timeout.
    probe = await AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    await probe.close()
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
    )
    await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    try:
        async with pool.connection() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()
