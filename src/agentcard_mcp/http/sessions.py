"""Which session a request names, and whether its key may use it (DESIGN §10).

A session answers only the key that opened it — every message into it, JSON-RPC responses to
the server's elicitations included. The session id is read exactly where the SDK reads it and
compared in the form the SDK gives it:

- SSE: the ``session_id`` query parameter (Starlette's ``query_params``: the last one wins),
  which the SDK parses with ``UUID(hex=...)`` — so upper case, dashes anywhere, braces and
  ``urn:uuid:`` all name the same session;
- streamable HTTP: the ``Mcp-Session-Id`` header (the first one), which the SDK matches as
  text against its own ``uuid4().hex``; compared canonically here too, so no spelling of
  another key's session gets past this check to the SDK.

Bindings are kept as ``UUID(...).hex`` (32 lowercase hex digits). An id that is no UUID is
refused (400); one bound to no key (never issued, or forgotten by the store) is refused (404),
never served to whoever names it; one bound to another key is refused (403).
"""

from __future__ import annotations

import logging
import re
from uuid import UUID

from starlette.datastructures import Headers, QueryParams
from starlette.types import Message, Scope, Send

from ..consent import Reach
from ..storage.base import SessionBindings
from .refusal import Refused

__all__ = ["binding_send", "canonical", "check_session", "named_session"]

log = logging.getLogger("agentcard_mcp.http")

# The endpoint event SSE sends first: "data: /messages/?session_id=<32 hex digits>".
_SSE_ENDPOINT = re.compile(rb"[?&]session_id=([0-9a-fA-F]{32})\b")
_CANONICAL = re.compile(r"[0-9a-f]{32}")


def canonical(session_id: str) -> str:
    """The session id as the SDK reads it, as 32 lowercase hex digits; 400 if it is none."""
    if _CANONICAL.fullmatch(session_id):
        return session_id  # what UUID(hex=...).hex makes of it: the spelling the SDK issues
    try:
        return UUID(hex=session_id).hex
    except ValueError:
        raise Refused(400, "INVALID_SESSION_ID", "The session id is not a UUID") from None


def named_session(scope: Scope, reach: Reach, header: bytes | None = None) -> str | None:
    """The canonical id of the session the request names, where the app's transport reads it
    (None: no session named, or a transport without sessions). ``header`` is the request's
    first ``Mcp-Session-Id`` (KeyAuth has read the headers once for everything it needs)."""
    if not reach.session:
        return None  # stateless HTTP: the SDK ignores any session header
    if reach.transport == "sse":
        named = QueryParams(scope.get("query_string", b"")).get("session_id")
    else:
        named = None if header is None else header.decode("latin-1")
    return None if named is None else canonical(named)


async def check_session(sessions: SessionBindings, session_id: str | None, key_id: str) -> None:
    """Refuses a session that is not this key's."""
    if session_id is None:
        return
    owner = await sessions.owner(session_id)
    if owner is None:
        raise Refused(404, "UNKNOWN_SESSION", "No such session: open a new one")
    if owner != key_id:
        log.warning("refused key %s a session another key opened", key_id)
        raise Refused(403, "SESSION_KEY_MISMATCH", "This session belongs to another key")


def binding_send(
    sessions: SessionBindings, send: Send, key_id: str, named: str | None, reach: Reach
) -> Send:
    """``send`` that binds a session the response opens to the key that opened it, before the
    client can learn its id: streamable HTTP's ``Mcp-Session-Id`` header, or the ``session_id``
    in the endpoint event that opens an SSE stream (only there: later events carry tool
    results, whose text is not ours to trust). A request that ``named`` a session (already this
    key's) opens none -- the SDK answers an unknown id with 404, never with a new session -- so
    its messages go out untouched: one write per session, no wrapper on every request. (Were
    a transport to open one there anyway, it would be bound to no key: refused to all.)"""
    if not reach.session or named is not None:
        return send
    bound = False

    async def bind_then_send(message: Message) -> None:
        nonlocal bound
        if bound:
            pass
        elif reach.transport != "sse" and message["type"] == "http.response.start":
            sid = Headers(raw=message.get("headers", [])).get("mcp-session-id")
            if sid is not None:
                await _bind(sessions, sid, key_id)
            bound = True  # the header comes with the response's start, or not at all
        elif reach.transport == "sse" and message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            found = _SSE_ENDPOINT.search(chunk)
            if found is not None:
                await _bind(sessions, found[1].decode(), key_id)
            bound = bool(chunk)  # the endpoint event is the stream's first
        await send(message)

    return bind_then_send


async def _bind(sessions: SessionBindings, session_id: str, key_id: str) -> None:
    try:
        sid = canonical(session_id)
    except Refused:
        # Not an id the SDK makes; left unbound, the session answers no key at all.
        log.error("the transport opened a session whose id is no UUID; it will answer no key")
        return
    await sessions.bind(sid, key_id)
