"""The MCP server over HTTP (DESIGN §10): streamable HTTP at ``/mcp`` (stateful, or stateless on
request) or legacy SSE at ``/sse``, behind ``KeyAuth``, with an unauthenticated ``/healthz``.

Host and Origin are checked first, on every path, by ``HostGuard`` (hosts.py): the loopback
names at the port served, plus whatever the operator allows with ``--allowed-host`` /
``--allowed-origin``, matched exactly. A foreign Host gets 421 and a foreign Origin 403 whatever
address the server is bound to. The SDK's own prefix-matching check is switched off explicitly
(left unset, it would apply defaults of its own). A tool call -- a request to the transport's
path -- goes from ``HostGuard`` to ``KeyAuth`` to the SDK's endpoint with no Starlette layer in
between (door.py); every other path takes Starlette's whole stack.

The app's lifespan opens its storage (``open_storage``: the home's SQLite files, or the
PostgreSQL of ``AGENTCARD_DATABASE_URL``) for as long as it serves; ``KeyAuth`` finds the keys,
rate buckets and session bindings there. Replicas on one PostgreSQL therefore act as one server.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import anyio
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from ..consent import Reach
from ..errors import InvalidParams
from ..redaction import redact
from ..server import CardServer
from ..settings import Settings
from ..storage import Storage, open_storage
from ..storage.base import KeyStore
from .auth import AuthState, KeyAuth
from .door import FrontDoor, endpoint
from .hosts import LOOPBACK_NAMES, HostGuard, parse_allowed

__all__ = [
    "Alongside",
    "HttpOptions",
    "OpenStorage",
    "check_bind",
    "create_http_app",
    "serve_http",
    "serve_together",
]

# Opens the storage the app serves from, for as long as it serves: ``partial(open_storage,
# settings)`` as the CLI does, or a wrapper around it (the benchmark's counting rate limits).
OpenStorage = Callable[[], AbstractAsyncContextManager[Storage]]

# Another uvicorn server to run in the same event loop as the agent's app, with the sockets it
# serves on (``serve --console``: the operator console on its own 127.0.0.1 port).
Alongside = tuple[uvicorn.Server, list[socket.socket]]

log = logging.getLogger("agentcard_mcp.http")


@dataclass(frozen=True)
class HttpOptions:
    transport: Literal["http", "sse"] = "http"
    host: str = "127.0.0.1"
    port: int = 8765
    stateless: bool = False
    allowed_hosts: Sequence[str] = field(default_factory=tuple)
    allowed_origins: Sequence[str] = field(default_factory=tuple)

    @property
    def hosts(self) -> list[str]:
        """The Host values answered, as shown to the operator (``hosts.HostGuard`` checks the
        loopback names at the port a request actually came in on)."""
        return [*(f"{name}:{self.port}" for name in LOOPBACK_NAMES), *self.allowed_hosts]

    @property
    def origins(self) -> list[str]:
        loopback = (f"http://{name}:{self.port}" for name in LOOPBACK_NAMES)
        return [*loopback, *self.allowed_origins]

    @property
    def reach(self) -> Reach:
        """How calls come in, for the approval channel: stateless HTTP has no session to carry
        an in-band form (the calling key's own flag is added per request by ``KeyAuth``)."""
        return Reach(transport=self.transport, session=not self.stateless)

    @property
    def path(self) -> str:
        return "/mcp" if self.transport == "http" else "/sse"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_http_app(server: CardServer, options: HttpOptions, storage: OpenStorage) -> Starlette:
    """The agent's app; invalid_params for an allowed host or origin that is no pattern."""
    allowed = parse_allowed(options.allowed_hosts, options.allowed_origins)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)  # HostGuard's
    if options.transport == "http":
        mcp_app = server.streamable_http_app(
            stateless_http=options.stateless, transport_security=security, host=options.host
        )
    else:
        mcp_app = server.sse_app(transport_security=security, host=options.host)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[AuthState]:
        # The storage and the issuer open once for every session; then the transport's own
        # lifespan (the streamable HTTP session manager) runs inside them.
        async with (
            storage() as opened,
            server.issuer_scope(opened),
            mcp_app.router.lifespan_context(mcp_app),
        ):
            yield {"storage": opened}

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})  # nothing about keys, cards or the issuer

    auth = KeyAuth(mcp_app, reach=options.reach)
    # A tool call goes from HostGuard to KeyAuth to the transport's endpoint, one hop each
    # (door.py); any other path takes the whole way round, as it always did.
    shortcuts: dict[str, ASGIApp]
    if options.transport == "http" and (direct := endpoint(mcp_app, options.path)) is not None:
        shortcuts = {options.path: KeyAuth(direct, reach=options.reach)}
    else:  # SSE (the SDK's defaults): past our own Starlette layers only
        shortcuts = dict.fromkeys((options.path, "/messages/"), auth)
    return FrontDoor(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Mount("", app=auth),
        ],
        guard=partial(HostGuard, allowed=allowed),
        shortcuts=shortcuts,
        lifespan=lifespan,
    )


async def check_bind(options: HttpOptions, keys: KeyStore) -> None:
    """Refuses a non-loopback address while no key exists: it would serve nobody and invite a
    guess at what is listening."""
    if is_loopback(options.host) or await keys.any_active():
        return
    raise InvalidParams(
        f"refusing to bind {options.host}: no API key exists yet. Create one with "
        "`agentcard-mcp keys create --name NAME`, then start again. Allowed hosts: "
        f"{', '.join(options.hosts)}; allowed origins: {', '.join(options.origins)} "
        "(add more with --allowed-host / --allowed-origin)."
    )


async def _check_keys(options: HttpOptions, storage: OpenStorage) -> None:
    async with storage() as opened:
        await check_bind(options, opened.keys)
        if not await opened.keys.any_active():
            log.warning(
                "no API keys yet: every request will get 401 until `agentcard-mcp keys create`"
            )


def serve_http(
    server: CardServer,
    settings: Settings,
    options: HttpOptions,
    alongside: Sequence[Alongside] = (),
) -> None:
    """Serves the agent's app until interrupted; with ``alongside`` (the console), every server
    runs in one event loop and all stop when one does."""
    storage = partial(open_storage, settings, audit_scrub=redact)
    anyio.run(_check_keys, options, storage)
    app = create_http_app(server, options, storage)  # refuses a malformed allowed host first
    log.warning(
        "serving %s on http://%s:%d%s (allowed hosts: %s; allowed origins: %s)",
        "streamable HTTP" + (" (stateless)" if options.stateless else "")
        if options.transport == "http"
        else "SSE",
        options.host,
        options.port,
        options.path,
        ", ".join(options.hosts),
        ", ".join(options.origins),
    )
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", lifespan="on"
    )
    agent = uvicorn.Server(config)
    if not alongside:
        agent.run()
        return
    anyio.run(serve_together, [(agent, None), *alongside])


async def serve_together(
    servers: Sequence[tuple[uvicorn.Server, list[socket.socket] | None]],
) -> None:
    """Serves every server in the running loop until one of them stops -- after SIGINT/SIGTERM
    (uvicorn's handlers: the signal stops the server whose handler it reaches, which then hands
    it on to the handler it replaced) or a failed startup -- and then tells the others to stop."""

    async def one(served: uvicorn.Server, sockets: list[socket.socket] | None) -> None:
        try:
            await served.serve(sockets=sockets)
        finally:
            for other, _ in servers:
                other.should_exit = True

    async with anyio.create_task_group() as group:
        for served, sockets in servers:
            group.start_soon(one, served, sockets)
