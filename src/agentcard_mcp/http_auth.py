"""Who may use the HTTP transports (DESIGN §10): an ASGI middleware in front of the MCP app.

Every request is checked in ClawHQ's order (issuer-docs/clawhq-api-keys.txt):

1. **format** — ``Authorization: Bearer amcp_`` + 32 lowercase alphanumerics; a key in the query
   string is refused outright (URLs end up in logs and browser history);
2. **hash lookup** — the SHA-256 digest against the key store, on every request, so a key
   revoked anywhere is refused on its next one; a session (``Mcp-Session-Id``, or SSE's
   ``session_id``) answers only the key that opened it;
3. **scope** — ``cards:read`` keys may call only the read tools; ``cards:write`` may call all;
4. **rate limit** — the key's requests per minute (a token bucket), else 429 with Retry-After.

Refusals are ``{"error": "...", "code": "...", "status": N}``. The key's id becomes the audit
log's ``caller`` for the calls it makes, and with the transport and the key's
``allow_in_band_approval`` flag (``consent.reach``) it decides whether the client may be asked
for an approval in band (DESIGN §5). Open streams are watched: revoking the key ends them.

Keys, rate buckets and session bindings are the app's storage (storage.base: ``KeyStore``,
``RateLimits``, ``SessionBindings``), opened by the app's lifespan and handed to every request
in Starlette's lifespan state (``AuthState``). On PostgreSQL they are shared by every replica:
one key store, one bucket per key, one session's binding seen by all.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any, TypedDict
from urllib.parse import parse_qsl
from uuid import UUID

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .consent import Reach, caller, reach
from .keys import KEY_PATTERN, ApiKey, hash_key, keys_command, new_key
from .storage import Storage
from .storage.base import KeyStore, RateLimits, SessionBindings

# The keys themselves live in keys.py (one concept per module) and their stores in storage/;
# they are part of this API too.
__all__ = [
    "KEY_PATTERN",
    "READ_TOOLS",
    "ApiKey",
    "AuthState",
    "KeyAuth",
    "KeyStore",
    "RateLimits",
    "SessionBindings",
    "hash_key",
    "keys_command",
    "new_key",
]

# What a cards:read key may call; everything else needs cards:write.
READ_TOOLS = frozenset({"get_limits", "list_cards", "get_card", "read_ledger"})
_MAX_BODY = 4 * 1024 * 1024  # bytes read to find the tool a request calls
_WATCH_EVERY = 1.0  # seconds between checks that an open stream's key is still active
_QUERY_KEY_NAMES = frozenset({"key", "api_key", "apikey", "token", "access_token", "auth"})


class AuthState(TypedDict):
    """What the app's lifespan yields (Starlette's lifespan state) for ``KeyAuth``."""

    storage: Storage


class _Refused(Exception):
    def __init__(self, status: int, code: str, error: str, retry_after: float | None = None):
        super().__init__(error)
        self.status, self.code, self.error, self.retry_after = status, code, error, retry_after


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        storage = _storage(scope)
        try:
            key = await self._authenticate(storage.keys, scope)
            session_id = _session_id(scope)
            owner = await self._check_session(storage.sessions, session_id, key)
            body = await _read_body(receive) if scope["method"] == "POST" else b""
            self._check_scope(key, body)
            await self._check_rate(storage.rates, key)
        except _Refused as refused:
            await _refuse(send, refused)
            return
        await storage.keys.touch(key.id)
        # A session this key already holds is not bound again: one write per session, not one
        # per request.
        held = session_id if owner == key.id else None
        token = caller.set(key.id)
        reached = reach.set(replace(self.reach, key_allows_in_band=key.allow_in_band_approval))
        try:
            await self._serve(
                storage.keys,
                scope,
                _replay(body, receive),
                self._binding_send(storage.sessions, send, key, held),
            )
        finally:
            reach.reset(reached)
            caller.reset(token)

    # -- the checks, in order ---------------------------------------------------------------

    async def _authenticate(self, keys: KeyStore, scope: Scope) -> ApiKey:
        for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if name.lower() in _QUERY_KEY_NAMES or value.startswith("amcp_"):
                raise _Refused(
                    401, "KEY_IN_QUERY", "API keys are accepted only in the Authorization header"
                )
        header = _header(scope, b"authorization")
        if header is None:
            raise _Refused(401, "MISSING_KEY", "Missing API key: use 'Authorization: Bearer <key>'")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not KEY_PATTERN.fullmatch(presented):
            raise _Refused(401, "INVALID_KEY", "Invalid API key")
        key = await keys.find(presented)
        if key is None:
            raise _Refused(401, "INVALID_KEY", "Invalid API key")
        return key

    async def _check_session(
        self, sessions: SessionBindings, session_id: str | None, key: ApiKey
    ) -> str | None:
        """The key the session is bound to (None: no session, or one not bound)."""
        if session_id is None:
            return None
        owner = await sessions.owner(session_id)
        if owner is not None and owner != key.id:
            raise _Refused(403, "SESSION_KEY_MISMATCH", "This session belongs to another key")
        return owner

    def _check_scope(self, key: ApiKey, body: bytes) -> None:
        if key.scope == "cards:write" or not body:
            return
        for tool in _tools_called(body):
            if tool not in READ_TOOLS:
                raise _Refused(
                    403,
                    "INSUFFICIENT_SCOPE",
                    f"This key's scope is cards:read; {tool[:64]} needs cards:write",
                )

    async def _check_rate(self, rates: RateLimits, key: ApiKey) -> None:
        wait = await rates.take(key.id, key.rate)
        if wait is not None:
            raise _Refused(429, "RATE_LIMITED", "Rate limit exceeded", retry_after=wait)

    # -- serving ------------------------------------------------------------------------------

    def _binding_send(
        self, sessions: SessionBindings, send: Send, key: ApiKey, held: str | None
    ) -> Send:
        """Binds a session the response opens to the key that opened it: streamable HTTP's
        ``Mcp-Session-Id`` header, or the ``session_id`` in SSE's first (endpoint) event. The
        session the request named is not bound again when this key ``held`` it already."""
        bound = False

        async def bind_then_send(message: Message) -> None:
            nonlocal bound
            if not bound and message["type"] == "http.response.start":
                sid = _header_of(message.get("headers", []), b"mcp-session-id")
                if sid is not None:
                    if sid != held:
                        await sessions.bind(sid, key.id)
                    bound = True
            elif not bound and message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                at = chunk.find(b"session_id=")
                if at >= 0:
                    sid_bytes = chunk[at + len(b"session_id=") :].split(b"\r")[0].split(b"\n")[0]
                    await sessions.bind(_canonical(sid_bytes.decode("latin-1").strip()), key.id)
                    bound = True
            await send(message)

        return bind_then_send

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


def _storage(scope: Scope) -> Storage:
    storage = scope.get("state", {}).get("storage")
    if not isinstance(storage, Storage):
        raise RuntimeError("KeyAuth needs the app's lifespan to yield AuthState (see http_app)")
    return storage


def _header(scope: Scope, name: bytes) -> str | None:
    return _header_of(scope.get("headers", []), name)


def _header_of(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _session_id(scope: Scope) -> str | None:
    sid = _header(scope, b"mcp-session-id")
    if sid is not None:
        return sid
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "session_id":
            return _canonical(value)
    return None


def _canonical(sse_session_id: str) -> str:
    """SSE's ``session_id`` as the SDK reads it: a UUID in any spelling (case, dashes, braces)
    names the same session, so it is bound and looked up as 32 lowercase hex digits. Anything
    else is kept as it is (the SDK refuses it). Streamable HTTP's ``Mcp-Session-Id`` is matched
    exactly by the SDK, and so here."""
    try:
        return UUID(sse_session_id).hex
    except ValueError:
        return sse_session_id


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise _Refused(
                413, "BODY_TOO_LARGE", f"Request bodies are limited to {_MAX_BODY} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, already read for the scope check, handed to the app as if unread."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _tools_called(body: bytes) -> list[str]:
    """The tools a JSON-RPC body calls (one message or a batch). A body that is not JSON-RPC
    calls none; the MCP app answers it."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    messages = payload if isinstance(payload, list) else [payload]
    names = []
    for message in messages:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            names.append(name if isinstance(name, str) else "?")
    return names


async def _refuse(send: Send, refused: _Refused) -> None:
    body = json.dumps(
        {"error": refused.error, "code": refused.code, "status": refused.status}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="agentcard-mcp"'))
    if refused.retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(refused.retry_after))).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
