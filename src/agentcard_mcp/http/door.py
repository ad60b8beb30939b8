"""The agent's app as few ASGI hops as its checks need (DESIGN §10).

The app is a Starlette app (its lifespan, ``/healthz``, and ``KeyAuth`` mounted over the MCP
transport's own Starlette app), but a tool call -- a request to the transport's path -- does not
walk Starlette's layers twice: ``HostGuard`` admits it, ``KeyAuth`` checks it, and the SDK's
endpoint serves it, straight from uvicorn. Starlette's layers there only ever forwarded it (the
route matches every path; the endpoint answers its own errors), and the server's main thread
spends a share of every call on each layer and on every wrapper of ``send`` they add.

Everything else -- ``/healthz``, a wrong path, a ``root_path``, the lifespan -- still goes
through the whole Starlette stack, behind ``HostGuard`` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .hosts import HostGuard

__all__ = ["FrontDoor", "endpoint"]


def endpoint(transport: Starlette, path: str) -> ASGIApp | None:
    """The ASGI app the transport's own router would hand a request to ``path`` (any method),
    if that is all the router would do with it: a plain ASGI endpoint, no route middleware."""
    if transport.user_middleware:
        return None  # the transport's own middleware (the SDK's auth, if configured) must run
    for route in transport.routes:
        if isinstance(route, Route) and route.path == path:
            plain = route.methods is None and route.app is route.endpoint
            return route.app if plain else None
    return None


class FrontDoor(Starlette):
    """A Starlette app with ``HostGuard`` first on every path and ``shortcuts`` (exact path ->
    ASGI app) taken straight from there for HTTP requests; ``guard`` makes the HostGuard."""

    def __init__(
        self,
        *,
        guard: Callable[[ASGIApp], HostGuard],
        shortcuts: Mapping[str, ASGIApp],
        **starlette: Any,
    ) -> None:
        super().__init__(**starlette)
        self._guard = guard
        self._shortcuts = dict(shortcuts)

    def build_middleware_stack(self) -> ASGIApp:
        return _Shortcuts(self._guard(super().build_middleware_stack()), self._shortcuts)


class _Shortcuts:
    def __init__(self, guard: HostGuard, shortcuts: dict[str, ASGIApp]) -> None:
        self.guard = guard
        self.shortcuts = shortcuts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.guard(scope, receive, send)
            return
        shortcut = self.shortcuts.get(scope["path"])
        if shortcut is None:
            await self.guard(scope, receive, send)
        elif await self.guard.admit(scope, send):
            await shortcut(scope, receive, send)
