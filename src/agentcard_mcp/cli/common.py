"""What every command shares: the log level, a masked one-line failure, and running a command on
the configured state (SQLite files in the home, or the shared PostgreSQL)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from ..redaction import redact_text
from ..settings import Settings, load_settings

if TYPE_CHECKING:
    from ..storage import Storage

__all__ = [
    "debugging",
    "fail",
    "opened",
    "set_log_level",
    "unexpected",
    "where",
    "with_storage",
]


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level)
    if level == "DEBUG":  # httpx's per-request lines are noise unless asked for
        logging.getLogger("httpx").setLevel(level)


def fail(prefix: str, exc: BaseException) -> None:
    """An error for the operator's terminal, masked: an issuer's message may quote card data."""
    print(f"{prefix}: {redact_text(str(exc))}", file=sys.stderr)


def unexpected(exc: BaseException) -> None:
    """A failure no command expected (a bug, a disk refusing a file), as one line: the first
    error inside any exception group, which only says how many it holds."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    said = redact_text(str(exc))
    print(
        f"agentcard-mcp: {type(exc).__name__}: {said} "
        "(AGENTCARD_LOG_LEVEL=DEBUG shows the traceback)",
        file=sys.stderr,
    )


def debugging() -> bool:
    """Whether AGENTCARD_LOG_LEVEL (the environment or .env) asks for DEBUG, read again so that
    a command stopped by bad settings still answers."""
    try:
        return load_settings().log_level == "DEBUG"
    except Exception:
        return os.environ.get("AGENTCARD_LOG_LEVEL", "").strip().upper() == "DEBUG"


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
