"""The embedded sandbox reached in process without ASGI: an ``httpx`` transport that finds the
request's route in the app's own table and calls its endpoint, as Starlette would.

``httpx.ASGITransport`` runs each request through the ASGI protocol and the app's middleware:
a task and events for the body, the error middlewares, the router's scan, ``send`` messages
gathered back into a response. For the embedded sandbox that was four fifths of a read's cost
(a card read is ~15 µs of SQLite inside ~85 µs of transport). Here a request that matches a
route fully is a direct call of that route's endpoint with a Starlette ``Request``; its errors
go to the app's own exception handlers, as ``ExceptionMiddleware`` would send them. Anything
else — no route, a wrong method (405 with its ``Allow``) — is handed to
``httpx.ASGITransport``, so every answer is the app's, byte for byte.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import Message

__all__ = ["InProcessTransport"]

_MATCHES_KEPT = 512  # (method, path) pairs whose route InProcessTransport keeps


class InProcessTransport(httpx.AsyncBaseTransport):
    """Calls ``app``'s endpoints directly (see the module's text); ``app`` is a sandbox app
    from ``create_app``, its lifespan entered by whoever embeds it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.fallback = httpx.ASGITransport(app=app)
        self._routes = [route for route in app.routes if isinstance(route, Route)]
        # (method, path) -> the matching route's endpoint and path parameters: a card's reads
        # repeat one path, and the table's patterns are tried in turn otherwise. Bounded.
        self._matched: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        # As Starlette splits them: a handler for 500 or Exception is the server error
        # middleware's, the others the exception middleware's.
        handlers = app.exception_handlers
        self._server_error = handlers.get(500) or handlers.get(Exception)
        self._handlers = {k: v for k, v in handlers.items() if k not in (500, Exception)}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = self._scope(request)
        endpoint = self._endpoint(scope)
        if endpoint is None:
            answer = await self.fallback.handle_async_request(request)
            answer.request = request  # as the client would set it
            return answer
        body = await request.aread()
        response = await self._call(endpoint, Request(scope, _receive_once(body)))
        return httpx.Response(
            response.status_code, headers=response.raw_headers, content=bytes(response.body),
            request=request,
        )  # fmt: skip

    def _scope(self, request: httpx.Request) -> dict[str, Any]:
        url = request.url
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "root_path": "",
            "query_string": url.query,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "server": (url.host, url.port),
            "client": ("127.0.0.1", 123),  # as httpx.ASGITransport says
            "app": self.app,
        }

    def _endpoint(self, scope: dict[str, Any]) -> Any:
        """The endpoint of the route that fully matches (``scope`` gains its path parameters);
        None when none does (the app then answers as it always would)."""
        key = (scope["method"], scope["path"])
        found = self._matched.get(key)
        if found is None:
            found = self._match(scope)
            if found is None:
                return None
            if len(self._matched) >= _MATCHES_KEPT:
                self._matched.clear()
            self._matched[key] = found
        endpoint, child = found
        scope.update(child, path_params=dict(child["path_params"]))  # each request its own
        return endpoint

    def _match(self, scope: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route.endpoint, dict(child)
            if match is Match.PARTIAL:
                return None
        return None

    async def _call(self, endpoint: Any, request: Request) -> Response:
        """The endpoint's response, or the app's exception handler's for what it raised. The
        sandbox's endpoints answer plain bodies; one that streamed could not be answered again
        through ASGI without acting twice, so it is an error here."""
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._handled(request, exc)
        if isinstance(response, StreamingResponse) or not isinstance(response, Response):
            raise TypeError(f"{request.url.path}: not a plain response ({type(response).__name__})")
        return response

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """What ``ExceptionMiddleware`` answers for ``exc``: the handler for an HTTP error's
        status, else for the nearest class of ``exc``. Any other exception is raised, as
        ``ServerErrorMiddleware`` and ``httpx.ASGITransport`` do (after the app's 500 handler,
        which logs it)."""
        handlers = self._handlers
        handler = handlers.get(exc.status_code) if isinstance(exc, HTTPException) else None
        if handler is None:
            kinds = (kind for kind in type(exc).__mro__ if kind in handlers)
            handler = handlers.get(next(kinds, None))
        if handler is None:
            if self._server_error is not None:
                await self._server_error(request, exc)
            raise exc
        response: Response = await handler(request, exc)
        return response


def _receive_once(body: bytes) -> Any:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
