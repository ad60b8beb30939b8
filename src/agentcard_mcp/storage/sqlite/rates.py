"""Rate-limit buckets with the SQLite backend: in this process's memory.

The SQLite backend is one machine and one HTTP process (several replicas need PostgreSQL,
DESIGN §12), so every request a key makes passes through this one object: a bucket in memory is
exact, costs no I/O, and starting the server again refills every bucket — as waiting a minute
would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MemoryRateLimits"]


class MemoryRateLimits:
    """A token bucket per key (storage.base.RateLimits), in memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)

    async def take(self, key_id: str, rate_per_minute: int) -> float | None:
        rate = float(rate_per_minute)
        now = self._clock()
        tokens, at = self._buckets.get(key_id, (rate, now))
        tokens = min(rate, tokens + (now - at) * rate / 60.0)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) * 60.0 / rate
