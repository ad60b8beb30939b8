"""What every command shares: the log level, a masked one-line failure, and running a command on
the configured state (SQLite files in the home, or the shared PostgreSQL)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from ..redaction import redact_text
from ..settings import Settings

if TYPE_CHECKING:
    from ..storage import Storage

__all__ = ["fail", "opened", "set_log_level", "where", "with_storage"]


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level)
    if level == "DEBUG":  # httpx's per-request lines are noise unless asked for
        logging.getLogger("httpx").setLevel(level)


def fail(prefix: str, exc: BaseException) -> None:
    """An error for the operator's terminal, masked: an issuer's message may quote card data."""
    print(f"{prefix}: {redact_text(str(exc))}", file=sys.stderr)


def with_storage(
    settings: Settings, prefix: str, failed: int, command: Callable[[Storage], Awaitable[int]]
) -> int:
    """Runs ``command`` on the state the settings name (SQLite files in the home, or the
    PostgreSQL database the replicas share); the backend's own failures (a disk error, a lock
    held too long, the database unreachable) exit ``failed``, saying where; a home that must not
    be used (home.py) exits 2."""
    from ..errors import AgentCardError
    from ..storage import open_storage, storage_errors

    async def run() -> int:
        async with open_storage(settings) as storage:
            return await command(storage)

    try:
        errors = storage_errors(settings)  # refuses a malformed AGENTCARD_DATABASE_URL
    except AgentCardError as exc:
        fail(prefix, exc)
        return 2
    try:
        return anyio.run(run)
    except AgentCardError as exc:  # a home another user could change (home.py), say
        fail(f"{prefix}: {where(settings)}", exc)
        return 2
    except errors as exc:
        fail(f"{prefix}: {where(settings)}", exc)
        return failed


async def opened(_: Storage) -> int:
    return 0


def where(settings: Settings) -> str:
    """The home, or the database URL without its user and password."""
    url = settings.database_url_text()
    if url is None:
        return str(settings.home)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
