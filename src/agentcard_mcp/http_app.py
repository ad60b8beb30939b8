"""Kept for imports written before the ``http`` package: see ``agentcard_mcp.http.app``."""

from .http.app import (
    Alongside,
    HttpOptions,
    OpenStorage,
    check_bind,
    create_http_app,
    serve_http,
    serve_together,
)

__all__ = [
    "Alongside",
    "HttpOptions",
    "OpenStorage",
    "check_bind",
    "create_http_app",
    "serve_http",
    "serve_together",
]
