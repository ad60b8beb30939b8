"""A request's body, read within bounds before the MCP app sees it (DESIGN §10).

Malformed input is refused here with a 400 and the refusal body: more than ``MAX_BODY`` bytes
(``BODY_TOO_LARGE``), or anything that is not JSON within ``jsonlimits.MAX_DEPTH`` levels. The
refusal is handed
back, not raised, so that the key's rate limit is charged for it first: a client that sends
garbage spends its tokens as any other does. The body read is then replayed to the app.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from ..jsonlimits import MAX_DEPTH, JsonTooDeep, loads
from .refusal import Refused

__all__ = ["MAX_BODY", "read_body", "replay"]

# Bytes: the largest JSON-RPC message (or batch) taken; a tool call needs a few kilobytes.
MAX_BODY = 1024 * 1024


async def read_body(
    receive: Receive, content_length: bytes | None = None
) -> tuple[bytes, Refused | None]:
    """The body of a POST, and why it is refused (None: it is JSON within the limits);
    ``content_length`` is the request's header, if it has one."""
    if _declared_size(content_length) > MAX_BODY:
        return b"", _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return b"", _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        loads(body)
    except JsonTooDeep:
        return body, Refused(
            400, "JSON_TOO_DEEP", f"Request JSON may nest at most {MAX_DEPTH} levels"
        )
    except ValueError:  # UnicodeDecodeError included
        return body, Refused(400, "INVALID_JSON", "The request body is not valid JSON")
    return body, None


def replay(body: bytes, receive: Receive) -> Receive:
    """The body, already read, handed to the app as if unread."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _declared_size(content_length: bytes | None) -> int:
    try:
        return 0 if content_length is None else int(content_length)
    except ValueError:
        return 0  # counted while reading instead


def _too_large() -> Refused:
    return Refused(400, "BODY_TOO_LARGE", f"Request bodies are limited to {MAX_BODY} bytes")
