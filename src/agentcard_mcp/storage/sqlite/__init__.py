"""The SQLite backend (the default): files in the home, for one machine — one HTTP process, or
any number of stdio servers sharing the home."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from .. import Storage
from .approvals import SqliteApprovals
from .audit import JsonlAudit
from .budget import SqliteBudget
from .keys import SqliteKeyStore
from .rates import MemoryRateLimits
from .sessions import MemorySessionBindings

__all__ = ["open_sqlite"]


@asynccontextmanager
async def open_sqlite(
    home: Path, account: str, *, audit_scrub: Callable[[Any], Any]
) -> AsyncIterator[Storage]:
    async with AsyncExitStack() as stack:
        # Each store is closed when the storage is, even if a later one fails to open.
        budget = SqliteBudget(home, account)
        stack.push_async_callback(budget.aclose)
        approvals = SqliteApprovals(home)
        stack.push_async_callback(approvals.aclose)
        audit = JsonlAudit(home, audit_scrub)
        stack.push_async_callback(audit.aclose)
        keys = SqliteKeyStore(home)
        stack.push_async_callback(keys.aclose)
        yield Storage(
            budget=budget,
            backend="sqlite",
            approvals=approvals,
            audit=audit,
            keys=keys,
            rates=MemoryRateLimits(),
            sessions=MemorySessionBindings(),
        )
