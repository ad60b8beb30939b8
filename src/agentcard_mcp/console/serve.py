"""Running the console: 127.0.0.1 only, and the one-time login URL on stdout once it listens."""

from __future__ import annotations

import secrets
import socket
import sys
from functools import partial
from typing import TextIO

import uvicorn

from ..settings import Settings
from .app import create_console_app, open_desks

__all__ = ["serve_console"]

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


def serve_console(settings: Settings, port: int, out: TextIO = sys.stdout) -> None:
    """Serves the console on 127.0.0.1:``port`` (0 picks a free one) until interrupted."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_console_app(partial(open_desks, settings), port=port, login_token=token)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    say = f"agentcard console: open http://{HOST}:{port}/login?token={token}"
    try:
        _Server(config, say, out).run(sockets=[sock])
    finally:
        sock.close()
