"""``serve`` (stdio, or HTTP/SSE with an optional console beside it) and ``console``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from ..policy import load_policy
from ..settings import Settings, load_settings
from . import loading
from .common import fail, opened, set_log_level, with_storage

if TYPE_CHECKING:
    from ..server import CardServer

__all__ = ["console", "serve"]


def serve(args: argparse.Namespace) -> int:
    """Serves MCP: on stdio by default (what an MCP host runs), or over HTTP."""
    from ..errors import AgentCardError

    transport = getattr(args, "transport", "stdio")
    if transport == "stdio" and getattr(args, "console", False):
        print(
            "agentcard-mcp: --console needs --transport http or sse; beside a stdio server, "
            "run `agentcard-mcp console` on its own",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "console_port", None) is not None and not getattr(args, "console", False):
        print(
            "agentcard-mcp: --console-port applies only with --console (the console served "
            "beside the agent's app); add --console or leave it out.",
            file=sys.stderr,
        )
        return 2
    if (refused := _not_for(transport, args)) is not None:
        print(f"agentcard-mcp: {refused}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        settings.check()
        set_log_level(settings.log_level)
        # The home and the policy, checked as create_server checks them but before the
        # server's imports, so that a refusal is said at once.
        load_policy(settings.policy_file, settings.home)
        from ..server import create_server

        server = create_server(settings)
        # A shared database opens before anything is served: one that cannot be reached is
        # said here in one line, not as a traceback from inside the transport.
        shared = settings.database_url_text() is not None
        if shared and with_storage(settings, "agentcard-mcp", 2, opened) != 0:
            return 2
        if transport != "stdio":
            return _serve_http(server, settings, args)
    except AgentCardError as exc:
        fail("agentcard-mcp", exc)
        return 2
    if sys.stdin.isatty():
        signal.signal(signal.SIGINT, _stop_at_once)
        print(
            "agentcard-mcp speaks MCP on stdin/stdout: connect an MCP host (Claude Desktop, the "
            "MCP Inspector) to it, or try `agentcard-mcp demo`. Ctrl-C to stop.",
            file=sys.stderr,
        )
    loading.started(serving=True)
    server.run("stdio")
    return 0


def _stop_at_once(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C in a terminal: the process ends now, in one line. The SDK reads stdin in a worker
    thread that no cancellation reaches, so an orderly stop would wait for the next Enter. In a
    terminal only a person is connected, and a call they cut short ends as under a crash: the
    budget counts its reservation until the next start reconciles it against the issuer,
    SQLite keeps what was committed, and only that call has no audit record."""
    sys.stderr.write("agentcard-mcp: stopped (Ctrl-C).\n")
    sys.stderr.flush()
    os._exit(130)


# The transports each option of `serve` means something to; given with another, it is refused
# rather than silently ignored.
_APPLIES_TO = {
    "--host": ("http", "sse"),
    "--port": ("http", "sse"),
    "--stateless": ("http",),
    "--allowed-host": ("http", "sse"),
    "--allowed-origin": ("http", "sse"),
}
_WHY_NOT = {
    "stdio": "the MCP host starts this process and speaks to it on stdin/stdout",
    "sse": "an SSE stream is a session",
}


def _not_for(transport: str, args: argparse.Namespace) -> str | None:
    """Why the options given cannot go with ``transport``, or None when they all apply."""
    given = {
        "--host": getattr(args, "host", None) is not None,
        "--port": getattr(args, "port", None) is not None,
        "--stateless": getattr(args, "stateless", False),
        "--allowed-host": bool(getattr(args, "allowed_host", [])),
        "--allowed-origin": bool(getattr(args, "allowed_origin", [])),
    }
    misplaced = [
        option for option, on in given.items() if on and transport not in _APPLIES_TO[option]
    ]
    if not misplaced:
        return None
    # Those that apply where the first does, together (--host and --port); the rest next time.
    misplaced = [option for option in misplaced if _APPLIES_TO[option] == _APPLIES_TO[misplaced[0]]]
    needs = " or ".join(_APPLIES_TO[misplaced[0]])
    return (
        f"{', '.join(misplaced)} {'applies' if len(misplaced) == 1 else 'apply'} to "
        f"--transport {needs}, not {transport} ({_WHY_NOT[transport]}); leave "
        f"{'it' if len(misplaced) == 1 else 'them'} out."
    )


def _serve_http(server: CardServer, settings: Settings, args: argparse.Namespace) -> int:
    from ..http.app import HttpOptions, serve_http

    options = HttpOptions(
        transport=args.transport,
        host="127.0.0.1" if args.host is None else args.host,
        port=8765 if args.port is None else args.port,
        stateless=args.stateless,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
    )
    loading.started(serving=True)
    if not args.console:
        serve_http(server, settings, options)
        return 0
    from ..console import console_listener

    try:
        port = 8766 if args.console_port is None else args.console_port  # the console's own
        console = console_listener(settings, port)
    except OSError as exc:  # the console's port is taken
        fail("agentcard-mcp", exc)
        return 2
    try:
        serve_http(server, settings, options, [(console.server, [console.sock])])
    finally:
        console.sock.close()
    return 0


def console(args: argparse.Namespace) -> int:
    """The operator's web console, on the state and issuer ``serve`` uses."""
    from ..console import serve_console
    from ..errors import AgentCardError

    try:
        settings = load_settings()
        settings.check()
        set_log_level(settings.log_level)
        if with_storage(settings, "agentcard-mcp console", 2, opened) != 0:
            return 2
        serve_console(settings, args.port)
    except AgentCardError as exc:
        fail("agentcard-mcp console", exc)
        return 2
    except OSError as exc:  # the port is taken
        fail("agentcard-mcp console", exc)
        return 2
    return 0
