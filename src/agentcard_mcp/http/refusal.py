"""The one shape of every refusal the HTTP layer answers (DESIGN §10):
``{"error": "...", "code": "...", "status": N}``, as JSON, with the headers the status needs."""

from __future__ import annotations

import json
import math

from starlette.types import Send

__all__ = ["Refused", "refuse"]


class Refused(Exception):
    """A request refused before it reaches the MCP app."""

    def __init__(
        self, status: int, code: str, error: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(error)
        self.status, self.code, self.error, self.retry_after = status, code, error, retry_after


async def refuse(send: Send, refused: Refused) -> None:
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
