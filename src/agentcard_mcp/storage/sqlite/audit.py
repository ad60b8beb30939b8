"""The audit trail of a SQLite home: the JSON-lines file ``<home>/audit.jsonl`` (audit.py).

Its durability rules are ``AuditLog``'s: one ``O_APPEND`` write per record, the file 0600 and
never reached through a symlink, a line torn by a kill never glued to the next. The file is
opened at the first record, so reading the trail (``agentcard-mcp audit tail``) creates nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from ...audit import AuditLog, AuditRecord, Tail, audit_path, identity, scan_tail

__all__ = ["JsonlAudit"]


class JsonlAudit:
    inline = True  # see write

    def __init__(
        self, home: Path, scrub: Callable[[Any], Any] = identity, *, fsync: bool = False
    ) -> None:
        self.path = audit_path(Path(home))
        self.where = str(self.path)
        self._scrub = scrub
        self._fsync = fsync
        self._lock = threading.Lock()
        self._log: AuditLog | None = None

    async def write(self, record: AuditRecord) -> None:
        # On the event loop, as before storage/: one write() into the page cache (without
        # fsync) costs less than the hop to a worker thread would.
        self._opened().write(record)

    async def tail(self, n: int) -> Tail | None:
        try:
            return await anyio.to_thread.run_sync(scan_tail, self.path, n)
        except FileNotFoundError:
            return None

    async def aclose(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()

    def _opened(self) -> AuditLog:
        with self._lock:
            if self._log is None:
                self._log = AuditLog(self.path, self._scrub, fsync=self._fsync)
            return self._log
