"""Host and Origin, checked first, on every path (DESIGN §10): a request naming a host the
server does not answer to (DNS rebinding) gets 421, one from a web origin not allowed (a page in
the operator's browser) 403 — before the key check, the router's trailing-slash redirect or
``/healthz`` run, so nothing is ever redirected to a host someone else chose.

Both headers are parsed strictly and compared as (scheme, host, port), never by prefix: a Host
is ``name[:port]`` and an Origin ``http(s)://name[:port]``, with nothing else in them, so
``localhost:1@evil.example``, ``localhost.evil.example`` and ``127.0.0.1.nip.io`` are foreign
names, not loopback ones. An Origin without a port has its scheme's (80, 443). A request with no
Origin (not from a browser page) is not refused for it; ``null`` is.

What is allowed:

- the loopback names (``127.0.0.1``, ``localhost``, ``[::1]``) at the port the request came in
  on (ASGI's ``server``), as Host and as ``http://`` Origin: another port on this machine is
  another origin;
- the operator's ``--allowed-host name[:port|:*]`` and ``--allowed-origin
  scheme://name[:port|:*]``; ``*`` is any port, and no port is exactly that (for a Host, none
  in the header).

The SDK's own check (prefix matching) is switched off by the app: this is the one place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import InvalidParams
from .refusal import Refused, refuse

__all__ = ["LOOPBACK_NAMES", "Allowed", "HostGuard", "parse_allowed"]

log = logging.getLogger("agentcard_mcp.http")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VERDICTS = 1024  # (Host, Origin, port) verdicts remembered at most

# A DNS name or IPv4 address, or an IPv6 literal in brackets; then an optional port.
_NAME = r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)"
_PORT = r"(?::(?P<port>[0-9]{1,5}|\*))?"
_HOST = re.compile(_NAME + _PORT, re.IGNORECASE)
_ORIGIN = re.compile(r"(?P<scheme>https?)://" + _NAME + _PORT, re.IGNORECASE)

# A pattern's port: a number, any ("*"), none given, or the port the request came in on.
Port = int | Literal["*", "served"] | None


@dataclass(frozen=True, slots=True)
class Allowed:
    """One allowed Host (``scheme`` None) or Origin."""

    scheme: str | None
    host: str
    port: Port

    def matches(self, scheme: str | None, host: str, port: int | None, served: int | None) -> bool:
        if (scheme, host) != (self.scheme, self.host):
            return False
        if self.port == "*":
            return True
        if self.port == "served":
            return served is not None and port == served
        return port == self.port


@dataclass(frozen=True, slots=True)
class _Parsed:
    scheme: str | None
    host: str
    port: int | Literal["*"] | None


def _parse(text: str, *, origin: bool) -> _Parsed | None:
    found = (_ORIGIN if origin else _HOST).fullmatch(text)
    if found is None:
        return None
    scheme = found["scheme"].lower() if origin else None
    raw_port = found["port"]
    port: int | Literal["*"] | None
    if raw_port == "*":
        port = "*"
    elif raw_port is not None:
        port = int(raw_port)
        if port > 65535:
            return None
    else:
        # An Origin always has a port: its scheme's when none is written.
        port = _DEFAULT_PORTS[scheme] if scheme is not None else None
    return _Parsed(scheme, found["host"].lower(), port)


def parse_allowed(hosts: Iterable[str], origins: Iterable[str]) -> list[Allowed]:
    """The loopback names plus the operator's patterns; invalid_params names a pattern that is
    not ``name[:port|:*]`` (hosts) or ``http(s)://name[:port|:*]`` (origins)."""
    allowed = [Allowed(None, name, "served") for name in LOOPBACK_NAMES]
    allowed += [Allowed("http", name, "served") for name in LOOPBACK_NAMES]
    for text, is_origin in [*((h, False) for h in hosts), *((o, True) for o in origins)]:
        parsed = _parse(text.strip(), origin=is_origin)
        if parsed is None:
            option, shape = (
                ("--allowed-origin", "http(s)://name[:port|:*]")
                if is_origin
                else ("--allowed-host", "name[:port|:*]")
            )
            raise InvalidParams(f"{option} {text!r} is not {shape}.")
        allowed.append(Allowed(parsed.scheme, parsed.host, parsed.port))
    return allowed


class HostGuard:
    """The middleware, outermost: every HTTP request passes here first (``admit``, which the
    app's front door calls itself rather than through one more hop)."""

    def __init__(self, app: ASGIApp, allowed: list[Allowed]) -> None:
        self.app = app
        self.hosts = [a for a in allowed if a.scheme is None]
        self.origins = [a for a in allowed if a.scheme is not None]
        # (Host, Origin, served port) as received -> the refusal (None: admitted). A verdict
        # is a pure function of these and the fixed patterns, and a client sends the same
        # few every time; bounded, since the headers are the client's to choose.
        self._verdicts: dict[tuple[bytes, bytes | None, int | None], Refused | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or await self.admit(scope, send):
            await self.app(scope, receive, send)

    async def admit(self, scope: Scope, send: Send) -> bool:
        """Whether an HTTP request may go on; if not, it has been answered with the refusal."""
        refused = self._verdict(scope)
        if refused is None:
            return True
        log.warning("refused %s %r: %s", scope["method"], scope["path"][:200], refused.code)
        await refuse(send, refused)
        return False

    def _verdict(self, scope: Scope) -> Refused | None:
        server = scope.get("server")
        served = server[1] if server and isinstance(server[1], int) else None
        host = origin = None
        hosts = origins = 0
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"host":
                host, hosts = value, hosts + 1
            elif name == b"origin":
                origin, origins = value, origins + 1
        if hosts != 1 or origins > 1 or host is None:
            return self._check(host if hosts == 1 else None, origin, origins, served)
        seen = (bytes(host), None if origin is None else bytes(origin), served)
        try:
            return self._verdicts[seen]
        except KeyError:
            pass
        verdict = self._check(host, origin, origins, served)
        if len(self._verdicts) >= _VERDICTS:
            self._verdicts.clear()
        self._verdicts[seen] = verdict
        return verdict

    def _check(
        self, host: bytes | None, origin: bytes | None, origins: int, served: int | None
    ) -> Refused | None:
        """Exactly one Host, allowed; no Origin, or exactly one, allowed."""
        if host is None or not _allowed(self.hosts, _text(host), served, origin=False):
            return Refused(421, "INVALID_HOST", "This server does not answer to that Host")
        if origins and (
            origins != 1
            or origin is None
            or not _allowed(self.origins, _text(origin), served, origin=True)
        ):
            return Refused(403, "INVALID_ORIGIN", "Requests from that Origin are not allowed")
        return None


def _text(value: bytes) -> str:
    return bytes(value).decode("latin-1")


def _allowed(patterns: list[Allowed], text: str, served: int | None, *, origin: bool) -> bool:
    parsed = _parse(text, origin=origin)
    if parsed is None or parsed.port == "*":  # a pattern, not a header
        return False
    port = parsed.port
    return any(p.matches(parsed.scheme, parsed.host, port, served) for p in patterns)
