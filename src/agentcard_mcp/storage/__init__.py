"""The server's own state behind one layer (DESIGN §12): ``open_storage`` picks the backend —
SQLite files in the home by default, PostgreSQL when ``AGENTCARD_DATABASE_URL`` names one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..redaction import redact
from ..settings import Settings
from .base import ApprovalStore, AuditSink, BudgetStore, KeyStore, RateLimits, SessionBindings

__all__ = ["Storage", "account_of", "open_storage", "storage_errors"]


@dataclass(frozen=True, slots=True)
class Storage:
    budget: BudgetStore
    backend: str  # "sqlite" or "postgres"
    approvals: ApprovalStore
    audit: AuditSink
    keys: KeyStore
    rates: RateLimits  # in process memory on SQLite (one HTTP process)
    sessions: SessionBindings  # likewise


def account_of(settings: Settings) -> str:
    """Which issuer account the budget belongs to: every replica configured for the same
    account shares one budget, and another account (another base URL) never mixes in."""
    if settings.is_embedded():
        return f"{settings.issuer}:{settings.home.resolve() / 'sandbox.db'}"
    return f"{settings.issuer}:{settings.issuer_base_url()}:{settings.agent_id or ''}"


@asynccontextmanager
async def open_storage(
    settings: Settings, *, audit_scrub: Callable[[Any], Any] = redact
) -> AsyncIterator[Storage]:
    """The backend ``settings`` name; ``audit_scrub`` is applied to every audit record."""
    account = account_of(settings)
    url = settings.database_url_text()
    if url is not None:
        from .postgres import open_postgres  # psycopg is needed only for this backend

        async with open_postgres(url, account, audit_scrub=audit_scrub) as storage:
            yield storage
        return
    from .sqlite import open_sqlite

    async with open_sqlite(settings.ensure_home(), account, audit_scrub=audit_scrub) as storage:
        yield storage


def storage_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """What the configured backend raises when it cannot read or write (a disk error, a lock
    held too long, the database unreachable): the operator's commands report these."""
    if settings.database_url_text() is None:
        import sqlite3

        return (OSError, sqlite3.Error)
    import psycopg  # the pool's timeout is a psycopg.OperationalError too

    return (OSError, psycopg.Error)
