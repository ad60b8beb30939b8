"""The deadline of one tool call (``AGENTCARD_CALL_DEADLINE_S``, default 20 s).

A slow or silent issuer must not hold an agent's call for as long as httpx's timeouts and the
retries would allow. Each call gets one :class:`CallDeadline`, set by ``CardServer.call_tool``
and found through a context variable by whatever talks to the issuer on the call's behalf:

- ``issuers/http.py`` does not start an attempt that cannot finish in the time left, waits out
  a backoff or a ``Retry-After`` only when an attempt still fits after it, caps every httpx
  timeout at the time left, and notes on the call which issuer it tried (by host) and whether a
  write may have reached it;
- the call itself runs in a cancel scope that ends it at the deadline whatever it is waiting
  on (a response that trickles in, a card another write holds), as a backstop. Cancelled work
  settles as an unknown outcome does: the budget disowns its reservation until it is reconciled
  with the issuer (budget.py).

The time a human takes to answer an approval form is not the issuer's: the clock is paused
while the human is asked and restarts, in full, once they have answered.

When a call ends with ``issuer_unavailable`` after a write may have reached the issuer, the
agent is told what may have happened and what to do (``IF_UNKNOWN``), so that it looks before
it retries.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

import anyio

from .errors import AgentCardError, IssuerUnavailable

__all__ = [
    "DEFAULT_DEADLINE_S",
    "IF_UNKNOWN",
    "REAL_TIME",
    "CallDeadline",
    "DeadlineExceeded",
    "Timer",
    "bounded",
    "current",
    "explained",
]

DEFAULT_DEADLINE_S = 20.0

# What the agent is to do when a write's outcome is unknown, per tool.
_LOOK_AT_CARD = (
    "The change may have been made; call get_card to see the card's state before retrying."
)
IF_UNKNOWN = {
    "create_card": "The card may have been created; call list_cards before retrying with the "
    "same idempotency_key.",
    "freeze_card": _LOOK_AT_CARD,
    "unfreeze_card": _LOOK_AT_CARD,
    "set_policy": _LOOK_AT_CARD,
    "close_card": _LOOK_AT_CARD,
}


class Timer(Protocol):
    """Monotonic seconds and a way to wait; tests hand in a fake one that never sleeps."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class _RealTime:
    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


REAL_TIME: Timer = _RealTime()


class CallDeadline:
    """One call's deadline, and what the issuer layer noted on it."""

    def __init__(self, seconds: float, timer: Timer = REAL_TIME) -> None:
        self.seconds = seconds
        self.timer = timer
        self.at = timer.now() + seconds
        # The issuer's host last sent a request (for the error text; never a full URL, which
        # may carry credentials), and whether a write may have reached the issuer.
        self.host: str | None = None
        self.wrote = False
        self._scope: anyio.CancelScope | None = None

    def remaining(self) -> float:
        return max(0.0, self.at - self.timer.now())

    def pause(self) -> None:
        """A human is being asked: their time does not count."""
        self.at = math.inf
        if self._scope is not None:
            self._scope.deadline = math.inf

    def resume(self) -> None:
        """After a pause, the whole deadline again from now."""
        if self.at == math.inf:
            self.at = self.timer.now() + self.seconds
            if self._scope is not None:
                self._scope.deadline = anyio.current_time() + self.seconds


class DeadlineExceeded(IssuerUnavailable):
    """The call's deadline passed while it was still waiting."""


_current: ContextVar[CallDeadline | None] = ContextVar("call_deadline", default=None)


def current() -> CallDeadline | None:
    """The deadline of the call under way, if any (None: no bound beyond httpx's timeouts)."""
    return _current.get()


@contextmanager
def bounded(deadline: CallDeadline) -> Iterator[CallDeadline]:
    """Runs the body as the call ``deadline`` bounds (which it starts counting from now);
    ``DeadlineExceeded`` if it was cut short."""
    seconds = deadline.seconds
    deadline.at = deadline.timer.now() + seconds
    token = _current.set(deadline)
    try:
        with anyio.CancelScope(deadline=anyio.current_time() + seconds) as scope:
            deadline._scope = scope
            yield deadline
    finally:
        _current.reset(token)
    if scope.cancelled_caught:
        if deadline.host is None:
            raise DeadlineExceeded(f"this call did not finish within its {seconds:g} s deadline.")
        raise DeadlineExceeded(
            f"no answer from the issuer at {deadline.host} within this call's {seconds:g} s "
            "deadline."
        )


def explained(error: AgentCardError, tool: str, deadline: CallDeadline) -> AgentCardError:
    """``error`` as the agent should read it: after a write of ``tool`` may have reached the
    issuer, an ``issuer_unavailable`` says what may have happened and what to do; a call cut
    short says whether anything changed."""
    if not isinstance(error, IssuerUnavailable):
        return error
    cut_short = isinstance(error, DeadlineExceeded)
    if tool in IF_UNKNOWN and deadline.wrote:
        advice = IF_UNKNOWN[tool]
    elif cut_short:
        advice = "Nothing was changed; retry later." if tool in IF_UNKNOWN else "Retry later."
    else:
        return error  # the issuer layer's own words: nothing reached the issuer
    kind = DeadlineExceeded if cut_short else IssuerUnavailable
    return kind(f"{error.message} {advice}")
