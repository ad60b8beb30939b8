"""Faults at the issuer's HTTP boundary: an ``httpx.MockTransport`` in front of a fake issuer
app (tests/fakes/agentcard.py), and a fake clock that the server's call deadline and backoff
go by, so that a fault costing the client 20 seconds costs the test none.

time = FakeTime()
issuer = FaultyIssuer(FakeAgentCard(), time)
issuer.arm("POST", "/v1/cards", FAULTS["reset after acting, every time"])
create_server(settings, issuer_transport=issuer.transport(), timer=time)
issuer.attempts("POST", "/v1/cards")        # the requests that went out for it
issuer.effects("POST", "/v1/cards")         # how many of them the issuer acted on

A fault that makes the client wait (a timeout, a slow answer) moves the clock by as long as
the client would have waited: the smaller of the fault's delay and the timeout the request
carries (which the server caps at what is left of the call's deadline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import httpx

from tests.fakes.agentcard import FakeAgentCard

__all__ = ["FAULTS", "FakeTime", "Fault", "FaultyIssuer"]

_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})

Kind = Literal[
    "read_timeout",  # no answer in time; the issuer never saw the request
    "connect_timeout",  # the connection never opened
    "reset_after",  # the issuer acted, then the connection was reset before the answer
    "status",  # an error answer from in front of the issuer (it did nothing)
    "status_after",  # the issuer acted, then this answer replaced its own
    "slow",  # the issuer acts, and answers after ``delay`` seconds
]


@dataclass
class FakeTime:
    """Monotonic seconds that move only when something waits (deadline.Timer)."""

    seconds: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.seconds += seconds


@dataclass(frozen=True)
class Fault:
    kind: Kind
    status: int = 200
    body: bytes | None = None  # None: a JSON error body (for status) / the issuer's own answer
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    times: float = 1  # how many attempts it hits (math.inf: every one)


# Python's parser recurses per level: this deep it raises RecursionError, no ValueError.
_DEEP = b"[" * 100_000 + b"]" * 100_000
_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
_ERROR = b'{"error": {"type": "api_error", "code": "api_error", "message": "upstream"}}'
EVERY = math.inf

# Every fault the issuer's HTTP boundary is tested with, by what it is.
FAULTS: dict[str, Fault] = {
    "read timeout, once": Fault("read_timeout"),
    "read timeouts, every time": Fault("read_timeout", times=EVERY),
    "connect timeouts, every time": Fault("connect_timeout", times=EVERY),
    "reset after acting, once": Fault("reset_after"),
    "reset after acting, every time": Fault("reset_after", times=EVERY),
    "500, every time": Fault("status", 500, _ERROR, times=EVERY),
    "502 after acting, once": Fault("status_after", 502, _ERROR),
    "503 with a truncated JSON body, once": Fault("status", 503, _ERROR[:30]),
    "429 with Retry-After 2, once": Fault("status", 429, b"{}", headers=(("Retry-After", "2"),)),
    "429 with Retry-After 30": Fault("status", 429, b"{}", headers=(("Retry-After", "30"),)),
    "malformed JSON after acting": Fault("status_after", 200, b'{"id": "card_x", "frozen": }'),
    "truncated JSON after acting": Fault("status_after", 200, b'{"id": "card_x", "agent_id": "a'),
    # Python's parser recurses per level: this deep it would raise RecursionError, no ValueError.
    "JSON nested 100 000 deep after acting": Fault(
        "status_after", 200, b"[" * 100_000 + b"]" * 100_000
    ),
    "an HTML error page, every time": Fault("status", 502, _HTML, "text/html", times=EVERY),
    "an HTML page with 200 after acting": Fault("status_after", 200, _HTML, "text/html"),
    "slower than the deadline, every time": Fault("slow", delay=60.0, times=EVERY),
}


@dataclass
class _Armed:
    method: str
    path: str
    fault: Fault
    left: float


class FaultyIssuer:
    """The fake issuer behind a transport that injects armed faults."""

    def __init__(self, fake: FakeAgentCard, time: FakeTime) -> None:
        self.fake = fake
        self.time = time
        self._inner = fake.transport()
        self._armed: list[_Armed] = []
        self.sent: list[httpx.Request] = []
        # (method, path) of every write the issuer acted on (a replay is not an act).
        self.acted: list[tuple[str, str]] = []

    def arm(self, method: str, path: str, fault: Fault) -> None:
        self._armed.append(_Armed(method, path, fault, fault.times))

    def disarm(self) -> None:
        self._armed.clear()

    def forget(self) -> None:
        """Clears the log of requests and effects (between cases)."""
        self.sent.clear()
        self.acted.clear()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def attempts(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.sent if (r.method, r.url.path) == (method, path)]

    def effects(self, method: str, path: str) -> int:
        return self.acted.count((method, path))

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        fault = self._next_fault(request)
        if fault is None:
            return await self._forward(request)
        kind = fault.kind
        if kind in ("read_timeout", "connect_timeout"):
            phase = "read" if kind == "read_timeout" else "connect"
            self._wait(request, phase, math.inf)
            error = httpx.ReadTimeout if kind == "read_timeout" else httpx.ConnectTimeout
            raise error("timed out (injected)", request=request)
        if kind == "status":
            return self._answer(request, fault)
        answer = await self._forward(request)  # the issuer acts
        if kind == "reset_after":
            raise httpx.RemoteProtocolError("connection reset (injected)", request=request)
        if kind == "slow":
            if not self._wait(request, "read", fault.delay):
                raise httpx.ReadTimeout("timed out (injected)", request=request)
            return answer
        if fault.body is None:
            return httpx.Response(fault.status, content=answer.content, headers=answer.headers)
        return self._answer(request, fault)

    def _next_fault(self, request: httpx.Request) -> Fault | None:
        for armed in self._armed:
            if (armed.method, armed.path) == (request.method, request.url.path) and armed.left:
                armed.left -= 1
                return armed.fault
        return None

    def _wait(self, request: httpx.Request, phase: str, delay: float) -> bool:
        """Moves the clock as the client waits: by ``delay``, or until its timeout for
        ``phase``; True if the answer came in time."""
        timeout = request.extensions.get("timeout", {}).get(phase)
        limit = math.inf if timeout is None else float(timeout)
        self.time.seconds += min(delay, limit)
        return delay <= limit

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        replayed = response.headers.get("idempotent-replayed") == "true"
        if request.method in _WRITES and response.is_success and not replayed:
            self.acted.append((request.method, request.url.path))
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def _answer(self, request: httpx.Request, fault: Fault) -> httpx.Response:
        headers = {"content-type": fault.content_type, **dict(fault.headers)}
        return httpx.Response(fault.status, content=fault.body or b"", headers=headers)
