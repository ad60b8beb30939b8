"""The front door's shortcut (http/door.py): a tool call reaches the SDK's streamable endpoint
straight from KeyAuth only where Starlette's router would have done nothing but forward it."""

from __future__ import annotations

from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentcard_mcp.http.door import endpoint
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.support import PERMISSIVE_POLICY


class Plain:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("plain")(scope, receive, send)


async def page(_: Request) -> PlainTextResponse:
    return PlainTextResponse("page")


def test_the_sdk_s_streamable_route_is_taken_straight_to_its_endpoint(tmp_path: Any) -> None:
    settings = Settings(issuer="sandbox", home=tmp_path / "home", policy_file=PERMISSIVE_POLICY)
    app = create_server(settings).streamable_http_app()

    assert isinstance(endpoint(app, "/mcp"), StreamableHTTPASGIApp)
    assert endpoint(app, "/elsewhere") is None


def test_a_route_that_does_more_than_forward_is_never_short_cut() -> None:
    plain = Plain()
    app = Starlette(
        routes=[
            Route("/plain", endpoint=plain),
            Route("/wrapped", endpoint=Plain(), middleware=[Middleware(GZipMiddleware)]),
            Route("/post-only", endpoint=Plain(), methods=["POST"]),
            Route("/function", endpoint=page),
        ]
    )

    assert endpoint(app, "/plain") is plain
    for path in ("/wrapped", "/post-only", "/function"):
        assert endpoint(app, path) is None, path
