"""The PostgreSQL backend: one pool shared by every store, for several replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from ...redaction import redact
from .. import Storage
from .approvals import PostgresApprovals
from .audit import PostgresAudit
from .budget import PostgresBudget
from .db import open_pool
from .keys import PostgresKeyStore
from .rates import PostgresRateLimits
from .sessions import PostgresSessionBindings

__all__ = ["open_postgres"]


@asynccontextmanager
async def open_postgres(
    url: str, account: str, *, audit_scrub: Callable[[Any], Any] = redact
) -> AsyncIterator[Storage]:
    async with open_pool(url) as pool:
        yield Storage(
            budget=PostgresBudget(pool, account),
            backend="postgres",
            approvals=PostgresApprovals(pool),
            audit=PostgresAudit(pool, audit_scrub),
            keys=PostgresKeyStore(pool),
            rates=PostgresRateLimits(pool),
            sessions=PostgresSessionBindings(pool),
        )
