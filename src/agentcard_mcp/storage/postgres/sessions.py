"""HTTP session bindings in PostgreSQL: a session opened through one replica answers only its
key on every replica.

A binding is written once, when the session opens, and read on each request that names the
session (one primary-key lookup). Each new binding also drops those older than ``keep`` (a day
by default), reading only the old end of the ``created_at`` index, so the table holds about a
day of sessions. A session still in use after that answers no key at all (``http.sessions``
refuses a session bound to none), as one forgotten by the in-memory bindings does.

Ids arrive canonical (32 lowercase hex digits: ``http.sessions.canonical``).
"""

from __future__ import annotations

from datetime import timedelta

from .db import Pool

__all__ = ["PostgresSessionBindings"]

_BIND = """
WITH pruned AS (
    DELETE FROM session_bindings WHERE created_at < statement_timestamp() - %(keep)s
)
INSERT INTO session_bindings (session_id, key_id, created_at)
VALUES (%(session_id)s, %(key_id)s, statement_timestamp())
ON CONFLICT (session_id) DO NOTHING
"""


class PostgresSessionBindings:
    """Session id -> the key that opened it (storage.base.SessionBindings), for all replicas."""

    def __init__(self, pool: Pool, *, keep: timedelta = timedelta(days=1)) -> None:
        self._pool = pool
        self._keep = keep

    async def bind(self, session_id: str, key_id: str) -> None:
        if "\x00" in session_id:
            return  # not a session id the SDK makes, and not storable as text
        async with self._pool.connection() as conn:
            await conn.execute(
                _BIND, {"session_id": session_id, "key_id": key_id, "keep": self._keep}
            )

    async def owner(self, session_id: str) -> str | None:
        if "\x00" in session_id:
            return None  # never bound (see bind)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT key_id FROM session_bindings WHERE session_id = %s", (session_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else str(row["key_id"])
