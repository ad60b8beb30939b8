"""The sandbox's notion of "now", injected so tests can cross midnight UTC without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "isoformat", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z`` suffix and second precision, as AgentCard prints times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
