"""The PostgreSQL backend: one pool shared by every store, for several replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .. import Storage
from .budget import PostgresBudget
from .db import open_pool

__all__ = ["open_postgres"]


@asynccontextmanager
async def open_postgres(url: str, account: str) -> AsyncIterator[Storage]:
    async with open_pool(url) as pool:
        yield Storage(budget=PostgresBudget(pool, account), backend="postgres")
