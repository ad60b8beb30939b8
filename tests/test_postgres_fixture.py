"""The test suite's PostgreSQL is a real server: migrations apply once, and twice is a no-op."""

from __future__ import annotations

import psycopg
import pytest

from agentcard_mcp.storage.postgres.db import MIGRATIONS, open_pool


@pytest.mark.anyio
async def test_migrations_apply_once_on_a_real_server(postgres_url: str) -> None:
    async with open_pool(postgres_url):
        pass
    async with open_pool(postgres_url):  # a second start (another replica) applies nothing new
        pass
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(v, n) for v, n in rows] == [(v, n) for v, n, _ in MIGRATIONS]
        server = conn.execute("SHOW server_version").fetchone()
        assert server is not None
        assert int(str(server[0]).split(".")[0]) >= 14
