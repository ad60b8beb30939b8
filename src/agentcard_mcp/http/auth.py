"""Who may use the HTTP transports (DESIGN §10): an ASGI middleware in front of the MCP app,
behind ``HostGuard`` (hosts.py), which has checked Host and Origin already.

Every request is checked in ClawHQ's order (issuer-docs/clawhq-api-keys.txt):

1. **format** — ``Authorization: Bearer amcp_`` + 32 lowercase alphanumerics; a key in the query
   string is refused outright (URLs end up in logs and browser history);
2. **hash lookup** — the SHA-256 digest against the key store, on every request, so a key
   revoked anywhere is refused on its next one; a session (``Mcp-Session-Id``, or SSE's
   ``session_id``, in canonical form) answers only the key that opened it (sessions.py);
3. **rate limit** — the key's requests per minute (a token bucket), else 429 with Retry-After;
   a POST's body is read first (body.py), and one too large or not JSON within the depth limit
   is refused after its token is taken;
4. **scope** — by the MCP server itself (``agentcard_mcp.scopes``), from the key's scope set
   here: a ``cards:read`` key is offered only the read tools, and its write call is refused as
   a JSON-RPC error its client shows the agent. (A 403 at this door would reach the agent as
   "Server returned an error response".)

Refusals are ``{"error": "...", "code": "...", "status": N}`` (refusal.py). The key's id becomes
the audit log's ``caller`` for the calls it makes, and with the transport and the key's
``allow_in_band_approval`` flag (``consent.reach``) it decides whether the client may be asked
for an approval in band (DESIGN §5). Open streams are watched: revoking the key ends them.

Keys, rate buckets and session bindings are the app's storage (storage.base: ``KeyStore``,
``RateLimits``, ``SessionBindings``), opened by the app's lifespan and handed to every request
in Starlette's lifespan state (``AuthState``). On PostgreSQL they are shared by every replica:
one key store, one bucket per key, one session's binding seen by all.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TypedDict
from urllib.parse import parse_qsl

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import scopes
from ..consent import Reach, caller, reach
from ..keys import KEY_PATTERN, ApiKey
from ..storage import Storage
from ..storage.base import KeyStore, RateLimits
from .body import read_body, replay
from .refusal import Refused, refuse
from .sessions import binding_send, check_session, named_session

__all__ = ["AuthState", "KeyAuth"]

log = logging.getLogger("agentcard_mcp.http")

_WATCH_EVERY = 1.0  # seconds between checks that an open stream's key is still active
_READ = frozenset({b"authorization", b"content-length", b"mcp-session-id"})
_QUERY_KEY_NAMES = frozenset({"key", "api_key", "apikey", "token", "access_token", "auth"})


class AuthState(TypedDict):
    """What the app's lifespan yields (Starlette's lifespan state) for ``KeyAuth``."""

    storage: Storage


class KeyAuth:
    """The middleware. The stores it reads on every request are those of the app's lifespan
    state (``AuthState``); nothing about keys is remembered here."""

    def __init__(
        self, app: ASGIApp, *, watch_every: float = _WATCH_EVERY, reach: Reach | None = None
    ) -> None:
        self.app = app
        self.watch_every = watch_every
        # How the app behind serves calls: stateful streamable HTTP unless told otherwise.
        self.reach = reach or Reach(transport="http")
        # What a caller's ``consent.reach`` is, by its key's allow_in_band_approval flag.
        self._reaches = {
            allows: replace(self.reach, key_allows_in_band=allows) for allows in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        storage = _storage(scope)
        headers = _headers(scope)
        try:
            key = await self._authenticate(storage.keys, scope, headers.get(b"authorization"))
            session_id, body, malformed = await self._read_request(
                storage, scope, receive, key, headers
            )
            await self._check_rate(storage.rates, key)  # malformed input spends a token too
            if malformed is not None:
                log.warning(
                    "refused a request from key %s to %r: %s",  # %r: one line whatever the path
                    key.id, scope["path"][:200], malformed.error,
                )  # fmt: skip
                raise malformed
        except Refused as refused:
            await refuse(send, refused)
            return
        await storage.keys.touch(key.id)
        # What the server's tools learn of the caller: its id (the audit's ``caller``), how it
        # may be asked for approval (``consent.reach``) and its scope (``scopes.granted``).
        calling = caller.set(key.id)
        reaching = reach.set(self._reaches[key.allow_in_band_approval])
        granting = scopes.granted.set(key.scope)
        try:
            await self._serve(
                storage.keys,
                scope,
                replay(body, receive) if body else receive,
                binding_send(storage.sessions, send, key.id, session_id, self.reach),
            )
        finally:
            scopes.granted.reset(granting)
            reach.reset(reaching)
            caller.reset(calling)

    # -- the checks, in order ---------------------------------------------------------------

    async def _authenticate(self, keys: KeyStore, scope: Scope, header: bytes | None) -> ApiKey:
        query = scope.get("query_string", b"")
        for name, value in parse_qsl(query.decode("latin-1")) if query else ():
            if name.lower() in _QUERY_KEY_NAMES or value.startswith("amcp_"):
                raise Refused(
                    401, "KEY_IN_QUERY", "API keys are accepted only in the Authorization header"
                )
        if header is None:
            raise Refused(401, "MISSING_KEY", "Missing API key: use 'Authorization: Bearer <key>'")
        scheme, _, presented = header.decode("latin-1").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not KEY_PATTERN.fullmatch(presented):
            raise Refused(401, "INVALID_KEY", "Invalid API key")
        key = await keys.find(presented)
        if key is None:
            raise Refused(401, "INVALID_KEY", "Invalid API key")
        return key

    async def _read_request(
        self, storage: Storage, scope: Scope, receive: Receive, key: ApiKey,
        headers: dict[bytes, bytes],
    ) -> tuple[str | None, bytes, Refused | None]:  # fmt: skip
        """The session the request names (refused if it is another key's), its body, and why
        the request is malformed (None: it is not): a session id that is no UUID, or a body
        ``read_body`` refuses."""
        try:
            session_id = named_session(scope, self.reach, headers.get(b"mcp-session-id"))
        except Refused as no_uuid:
            return None, b"", no_uuid
        await check_session(storage.sessions, session_id, key.id)
        if scope["method"] != "POST":
            return session_id, b"", None
        return (session_id, *await read_body(receive, headers.get(b"content-length")))

    async def _check_rate(self, rates: RateLimits, key: ApiKey) -> None:
        wait = await rates.take(key.id, key.rate)
        if wait is not None:
            raise Refused(429, "RATE_LIMITED", "Rate limit exceeded", retry_after=wait)

    # -- serving ------------------------------------------------------------------------------

    async def _serve(self, keys: KeyStore, scope: Scope, receive: Receive, send: Send) -> None:
        """Runs the app; a long-lived stream (a GET) is ended when its key is revoked. The app
        is told the client went away (``http.disconnect``), as when a client hangs up, so the
        transport closes the stream and its session state the way it always does."""
        if scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        key_id = caller.get()
        revoked = anyio.Event()

        async def receive_until_revoked() -> Message:
            message: Message = {"type": "http.disconnect"}
            async with anyio.create_task_group() as race:

                async def from_client() -> None:
                    nonlocal message
                    message = await receive()
                    race.cancel_scope.cancel()

                async def on_revocation() -> None:
                    await revoked.wait()
                    race.cancel_scope.cancel()

                race.start_soon(from_client)
                race.start_soon(on_revocation)
            return message

        started = ended = False

        async def send_once(message: Message) -> None:
            # After the disconnect, the SSE endpoint answers a fresh (empty) response on the
            # same connection: one response per request, so that one is dropped.
            nonlocal started, ended
            if ended or (started and message["type"] == "http.response.start"):
                return
            started = True
            ended = message["type"] == "http.response.body" and not message.get("more_body")
            await send(message)

        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                while not revoked.is_set():
                    await anyio.sleep(self.watch_every)
                    if not await keys.is_active(key_id):
                        revoked.set()
                # A transport that ignores the disconnect is stopped outright.
                await anyio.sleep(5 * self.watch_every)
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch)
            await self.app(scope, receive_until_revoked, send_once)
            tasks.cancel_scope.cancel()
        if started and not ended:  # the stream was cut: end the response properly
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header read here, matched as Starlette's ``Headers.get`` (and
    so the SDK) matches names: one pass over the headers instead of one per name."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        if name in _READ and name not in found:
            found[name] = value
    return found


def _storage(scope: Scope) -> Storage:
    storage = scope.get("state", {}).get("storage")
    if not isinstance(storage, Storage):
        raise RuntimeError("KeyAuth needs the app's lifespan to yield AuthState (see http.app)")
    return storage
