"""The operator's web console (DESIGN §13): ``agentcard-mcp console``."""

from .app import COOKIE, Desks, OpenDesks, create_console_app, open_desks
from .serve import ConsoleListener, console_listener, serve_console

__all__ = [
    "COOKIE",
    "ConsoleListener",
    "Desks",
    "OpenDesks",
    "console_listener",
    "create_console_app",
    "open_desks",
    "serve_console",
]
