"""Running the console: 127.0.0.1 only, and the one-time login URL on stdout once it listens."""

from __future__ import annotations

import secrets
import socket
import sys
from dataclasses import dataclass
from functools import partial
from typing import TextIO

import uvicorn

from ..settings import Settings
from .app import create_console_app, open_desks

__all__ = ["ConsoleListener", "console_listener", "serve_console"]

HOST = "127.0.0.1"  # the operator's own machine only; never another address


class _Server(uvicorn.Server):
    """Says where to log in only once the socket accepts connections."""

    def __init__(self, config: uvicorn.Config, say: str, out: TextIO) -> None:
        super().__init__(config)
        self.say, self.out = say, out

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.say, file=self.out, flush=True)


@dataclass
class ConsoleListener:
    """The console's uvicorn server and the socket it serves on (bound, not yet listening):
    ``await server.serve(sockets=[sock])`` serves it in the running loop, beside another server
    (``serve --console``); close the socket afterwards."""

    server: uvicorn.Server
    sock: socket.socket


def console_listener(settings: Settings, port: int, out: TextIO = sys.stdout) -> ConsoleListener:
    """Binds 127.0.0.1:``port`` (0 picks a free one) and builds the console for it, with a fresh
    one-time login token; the login URL is printed on ``out`` once the socket accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_console_app(partial(open_desks, settings), port=port, login_token=token)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    say = f"agentcard console: open http://{HOST}:{port}/login?token={token}"
    return ConsoleListener(_Server(config, say, out), sock)


def serve_console(settings: Settings, port: int, out: TextIO = sys.stdout) -> None:
    """Serves the console on 127.0.0.1:``port`` (0 picks a free one) until interrupted."""
    listener = console_listener(settings, port, out)
    try:
        listener.server.run(sockets=[listener.sock])
    finally:
        listener.sock.close()
