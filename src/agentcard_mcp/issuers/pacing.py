"""Keeping an issuer's rate limit on our side: every request to the issuer, each retry
included, takes a slot of a sliding window first, so that our retries never push the key over
the limit (and a ClawdCards key, allowed 1 request a minute, is never banned for hammering).

A slot that frees within ``max_wait`` seconds is waited for; a longer wait is not slept through
on the agent's behalf: it is ``issuer_rate_limited`` saying how long to wait.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from ..errors import IssuerRateLimited

__all__ = ["Pace"]


class Pace:
    """At most ``limit`` requests in any ``window`` seconds (per process and key)."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        max_wait: float = 5.0,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("a rate limit allows at least one request")
        self.limit = limit
        self.window = window
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()  # when each of the last ``limit`` requests went
        self._lock = anyio.Lock()

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def sleep(self) -> Callable[[float], Awaitable[None]]:
        return self._sleep

    def wait_s(self) -> float:
        """How long until a slot is free (0: now)."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            return 0.0
        return self._sent[0] + self.window - now

    async def take(self, issuer: str) -> None:
        """Takes a slot, waiting up to ``max_wait``; else ``issuer_rate_limited``."""
        async with self._lock:  # one waiter at a time, so slots go in arrival order
            wait = self.wait_s()
            if wait > self.max_wait:
                raise IssuerRateLimited(
                    f"{issuer} allows {self.limit} request(s) per {self.window:g} s and this "
                    f"key has used them; retry after {wait:.0f} s.",
                    retry_after=round(wait, 1),
                )
            if wait > 0:
                await self._sleep(wait)
                self.wait_s()  # drops the slot that just expired
            self._sent.append(self._clock())
