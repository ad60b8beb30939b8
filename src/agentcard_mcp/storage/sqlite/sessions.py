"""HTTP session bindings with the SQLite backend: in this process's memory.

The SQLite backend is one machine and one HTTP process (several replicas need PostgreSQL,
DESIGN §12), and a session lives in the process that opened it: its binding lives there too,
and goes with it when the process stops.

Ids arrive canonical (32 lowercase hex digits: ``http.sessions.canonical``), so one session has
one binding whatever spelling of its id a request uses. A session with no binding is refused to
every key (``http.sessions.check_session``).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["MemorySessionBindings"]


class MemorySessionBindings:
    """Session id -> the key that opened it (storage.base.SessionBindings). Bounded: the
    bindings least recently bound or asked about go first (a forgotten session then answers no
    key at all — the SDK no longer knows it either)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._bound: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    async def bind(self, session_id: str, key_id: str) -> None:
        self._bound.setdefault(session_id, key_id)
        self._bound.move_to_end(session_id)
        while len(self._bound) > self._limit:
            self._bound.popitem(last=False)

    async def owner(self, session_id: str) -> str | None:
        key_id = self._bound.get(session_id)
        if key_id is not None:
            self._bound.move_to_end(session_id)  # a session in use is kept
        return key_id
