"""The server's own state behind one layer (DESIGN §12): ``open_storage`` picks the backend —
SQLite files in the home by default, PostgreSQL when ``AGENTCARD_DATABASE_URL`` names one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..settings import Settings
from .base import BudgetStore

__all__ = ["Storage", "account_of", "open_storage"]


@dataclass(frozen=True, slots=True)
class Storage:
    budget: BudgetStore
    backend: str  # "sqlite" or "postgres"


def account_of(settings: Settings) -> str:
    """Which issuer account the budget belongs to: every replica configured for the same
    account shares one budget, and another account (another base URL) never mixes in."""
    if settings.issuer == "sandbox":
        return f"sandbox:{settings.home.resolve() / 'sandbox.db'}"
    return f"{settings.issuer}:{settings.issuer_base_url()}:{settings.agent_id or ''}"


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    account = account_of(settings)
    url = settings.database_url_text()
    if url is not None:
        from .postgres import open_postgres  # psycopg is needed only for this backend

        async with open_postgres(url, account) as storage:
            yield storage
        return
    from .sqlite.budget import SqliteBudget

    budget = SqliteBudget(settings.ensure_home(), account)
    try:
        yield Storage(budget=budget, backend="sqlite")
    finally:
        await budget.aclose()
