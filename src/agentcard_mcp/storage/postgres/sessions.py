"""HTTP session bindings in PostgreSQL: a session opened through one replica answers only its
key on every replica.

A binding is written once, when the session opens, and read on each request that names the
session (one primary-key lookup). Each new binding also drops those older than ``keep`` (a day
by default), reading only the old end of the ``created_at`` index, so the table holds about a
day of sessions. A session still in use after that answers no key at all (``http.sessions``
refuses a session bound to none), as one forgotten by the in-memory bindings does.

A binding never changes once written (``ON CONFLICT DO NOTHING``), so the replica that wrote one
remembers it and answers its own sessions -- the only ones its SDK can serve, and so nearly
every request that names a session -- without the lookup. It forgets a binding before the table
can have pruned it: ``keep`` less a margin after the moment before its insert, by a clock that
counts a suspended machine's time too. Every other replica, and this one for any binding it did
not insert itself, asks the table.

Ids arrive canonical (32 lowercase hex digits: ``http.sessions.canonical``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
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
RETURNING key_id
"""
# Seconds a remembered binding is forgotten ahead of the table's pruning (clock drift between
# this machine and the database's over ``keep`` is far less).
_MARGIN = 60.0


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)  # Linux


def _elapsed() -> float:
    """Seconds on a clock that never goes back and, where it can, runs while the machine sleeps
    (the database's pruning counts that time as well)."""
    return time.monotonic() if _BOOTTIME is None else time.clock_gettime(_BOOTTIME)


class PostgresSessionBindings:
    """Session id -> the key that opened it (storage.base.SessionBindings), for all replicas;
    the bindings this store wrote (at most ``remembered``, least recently used out first) are
    also kept in memory."""

    def __init__(
        self,
        pool: Pool,
        *,
        keep: timedelta = timedelta(days=1),
        clock: Callable[[], float] = _elapsed,
        remembered: int = 10_000,
    ) -> None:
        self._pool = pool
        self._keep = keep
        self._clock = clock
        self._limit = remembered
        self._mine: OrderedDict[str, tuple[str, float]] = OrderedDict()  # -> (key, until)

    async def bind(self, session_id: str, key_id: str) -> None:
        if "\x00" in session_id:
            return  # not a session id the SDK makes, and not storable as text
        before = self._clock()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                _BIND, {"session_id": session_id, "key_id": key_id, "keep": self._keep}
            )
            inserted = await cursor.fetchone()
        if inserted is not None:  # this key's binding, made now: no other key's, ever
            self._mine[session_id] = (key_id, before + self._keep.total_seconds() - _MARGIN)
            while len(self._mine) > self._limit:
                self._mine.popitem(last=False)

    async def owner(self, session_id: str) -> str | None:
        if "\x00" in session_id:
            return None  # never bound (see bind)
        mine = self._mine.get(session_id)
        if mine is not None:
            key_id, until = mine
            if self._clock() < until:
                self._mine.move_to_end(session_id)
                return key_id
            del self._mine[session_id]  # the table may have pruned it by now: ask it
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT key_id FROM session_bindings WHERE session_id = %s", (session_id,)
            )
            row = await cursor.fetchone()
        return None if row is None else str(row["key_id"])
