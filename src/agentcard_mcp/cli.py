"""The ``agentcard-mcp`` command line: argument parsing only; the work lives in the modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from . import __version__
from .redaction import install_log_redaction, redact_text
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .server import CardServer
    from .storage import Storage

__all__ = ["main"]


def _cents(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive integer number of cents (e.g. 1500 for $15.00)"
        )
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentcard-mcp",
        description="Prepaid spending cards for LLM agents, under the operator's limits. "
        "State lives in AGENTCARD_HOME (default ~/.agentcard-mcp).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the MCP tools (default: stdio, on the embedded sandbox)",
        description="Serve the card tools to an MCP host. With no configuration it uses the "
        "embedded sandbox issuer (test mode) persisted in AGENTCARD_HOME. Settings come from "
        "AGENTCARD_* environment variables or a .env file.",
    )
    serve.add_argument(
        "--transport",
        choices=["stdio", "http", "sse"],
        default="stdio",
        help="stdio (default); http: streamable HTTP at /mcp; sse: legacy SSE at "
        "/sse. HTTP transports need an API key (`agentcard-mcp keys create`)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind for http/sse (default 127.0.0.1; any other address "
        "is refused until a key exists)",
    )
    serve.add_argument("--port", type=_port, default=8765, help="port for http/sse (default 8765)")
    serve.add_argument(
        "--stateless",
        action="store_true",
        help="streamable HTTP without sessions (approvals then go out of band)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a Host header to accept besides loopback, e.g. cards.example:8765 "
        "or cards.example:* (repeatable)",
    )
    serve.add_argument(
        "--console",
        action="store_true",
        help="also serve the operator's web console in this process, on its own port on "
        "127.0.0.1 (never on the agent's app), printing its one-time login URL on stdout "
        "as `agentcard-mcp console` does; http/sse only",
    )
    serve.add_argument(
        "--console-port",
        type=_port,
        default=8766,
        metavar="PORT",
        help="the console's port with --console (default 8766; 0 picks one; set "
        "AGENTCARD_CONSOLE_URL to match for the approval links)",
    )
    serve.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                       help="an Origin to accept besides loopback, e.g. https://app.example "
                       "(repeatable)")  # fmt: skip

    console = commands.add_parser(
        "console",
        help="the operator's web console on 127.0.0.1: approvals, cards, the day's budget",
        description="Serve the operator's web page on 127.0.0.1 (never on the agent's HTTP "
        "app) and print a one-time login URL. It opens the same state and issuer as `serve`.",
    )
    console.add_argument(
        "--port", type=_port, default=8766, help="port (default 8766; 0 picks one)"
    )

    keys = commands.add_parser(
        "keys",
        help="API keys for the HTTP transports: create, list, revoke",
        description="API keys for `serve --transport http|sse`: amcp_ + 32 characters, shown "
        "once, stored only as a SHA-256 digest in AGENTCARD_HOME/keys.db, or in the "
        "AGENTCARD_DATABASE_URL database that replicas share.",
    )
    key_actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = key_actions.add_parser("create", help="make a key and print it (once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'crewai-prod'")
    create.add_argument(
        "--rate",
        type=int,
        choices=[30, 60, 120, 300],
        default=60,
        help="requests per minute (default 60)",
    )
    create.add_argument(
        "--scope",
        choices=["cards:read", "cards:write"],
        default="cards:write",
        help="cards:read may only read (get_limits, list_cards, get_card, "
        "read_ledger); cards:write may call every tool (default)",
    )
    create.add_argument(
        "--allow-in-band-approval",
        action="store_true",
        help="let this key's MCP client answer approval forms in band under the policy's "
        'approval_channel = "auto" (off by default: over HTTP the client is code on the '
        "agent's side, so approvals go to the operator)",
    )
    key_actions.add_parser(
        "list",
        help="the keys: prefix, name, scope, rate, in-band approval, created, last used",
    )
    revoke = key_actions.add_parser("revoke", help="revoke a key: its next request is refused")
    revoke.add_argument("key_id", metavar="ID")  # fmt: skip

    commands.add_parser(
        "demo",
        help="a scripted first session: create a card, purchases, ledger, policy, freeze",
        description="Run a scripted session through the real MCP client against the server on a "
        "fresh, temporary sandbox, and print what the agent sees as tables.",
    )

    policy = commands.add_parser(
        "policy",
        help="check or show the operator's policy (guardrails)",
        description="The operator's policy: AGENTCARD_POLICY_FILE, else "
        "AGENTCARD_HOME/policy.toml, "
        "else the built-in defaults. A bad file stops the server at start; these commands say the "
        "same without starting it.",
    )
    policy_actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = policy_actions.add_parser("check", help="validate a policy file")
    check.add_argument("file", metavar="FILE", type=Path)
    show = policy_actions.add_parser("show", help="print the policy in effect")
    show.add_argument("file", metavar="FILE", type=Path, nargs="?")

    approvals = commands.add_parser(
        "approvals",
        help="list, approve or deny the agent's pending requests (the operator's side)",
        description="Requests that need the operator's approval when the MCP client could not ask "
        "the human. Approve one, then the agent repeats its call with approval_id. An approval "
        "is single-use, bound to the exact arguments, and expires after 10 minutes.",
    )
    approval_actions = approvals.add_subparsers(dest="action", metavar="ACTION", required=True)
    approval_actions.add_parser("list", help="pending approvals")
    for verb in ("approve", "deny"):
        decide = approval_actions.add_parser(verb, help=f"{verb} a pending approval")
        decide.add_argument("approval_id", metavar="ID")

    audit = commands.add_parser(
        "audit",
        help="read the audit log (every tool call, refused ones included)",
        description="The audit log, one record per tool call: AGENTCARD_HOME/audit.jsonl, or "
        "the audit_records table of AGENTCARD_DATABASE_URL.",
    )
    audit_actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = audit_actions.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")

    sandbox = commands.add_parser(
        "sandbox",
        help="run or use the embedded AgentCard sandbox issuer (test mode, no real money)",
        description="The embedded AgentCard v1 sandbox issuer (test mode, no real money).",
    )
    actions = sandbox.add_subparsers(dest="action", metavar="ACTION", required=True)

    serve = actions.add_parser(
        "serve",
        help="serve the sandbox API over HTTP",
        description="Serve the AgentCard v1 sandbox API over HTTP. On first start it creates an "
        "owner, a starter agent and a test API key, and writes the key to a 0600 file next to "
        "the database (sandbox.db -> sandbox.key).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8787, help="port (default 8787; 0 picks one)")
    serve.add_argument("--db", type=Path, help="database file (default AGENTCARD_HOME/sandbox.db)")

    swipe = actions.add_parser(
        "swipe",
        help="play a merchant: send one test authorization to a card",
        description="Play a merchant: ask the sandbox to authorize AMOUNT_CENTS on CARD_ID. "
        "Works on the database directly (safe while a server runs) or, with --url, through a "
        "running sandbox server.",
    )
    swipe.add_argument("card_id", metavar="CARD_ID")
    swipe.add_argument("amount_cents", metavar="AMOUNT_CENTS", type=_cents,
                       help="integer USD cents, e.g. 1500 for $15.00")  # fmt: skip
    swipe.add_argument("--merchant", required=True, help='merchant name, e.g. "Delta Airlines"')
    swipe.add_argument("--mcc", required=True, help="merchant category tag, e.g. travel, saas")
    swipe.add_argument("--currency", default="usd", help="ISO currency code (default usd)")
    swipe.add_argument("--db", type=Path, help="database file (default AGENTCARD_HOME/sandbox.db)")
    swipe.add_argument("--url", help="a running sandbox server, e.g. http://127.0.0.1:8787")
    swipe.add_argument("--json", action="store_true", help="print the full JSON response")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs go to stderr: on stdio, stdout carries protocol messages only.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()
    if args.command == "sandbox":
        from .errors import AgentCardError

        try:
            return _sandbox(args)
        except AgentCardError as exc:
            _fail("agentcard-mcp sandbox", exc)
            return 2
    if args.command == "demo":
        return _demo()
    if args.command == "console":
        return _console(args)
    if args.command in ("policy", "approvals", "audit", "keys"):
        return _operator_command(args)
    return _serve(args)


def _set_log_level(level: str) -> None:
    logging.getLogger().setLevel(level)
    if level == "DEBUG":  # httpx's per-request lines are noise unless asked for
        logging.getLogger("httpx").setLevel(level)


def _fail(prefix: str, exc: BaseException) -> None:
    """An error for the operator's terminal, masked: an issuer's message may quote card data."""
    print(f"{prefix}: {redact_text(str(exc))}", file=sys.stderr)


def _operator_command(args: argparse.Namespace) -> int:
    """policy, approvals and audit: the operator's commands, run in the operator's terminal."""
    from .errors import AgentCardError

    try:
        settings = load_settings()
    except AgentCardError as exc:
        _fail("agentcard-mcp", exc)
        return 2
    if args.command == "policy":
        from .policy import policy_command

        return policy_command(
            args.action, args.file, settings.home, settings.policy_file, sys.stdout, sys.stderr
        )
    if args.command == "approvals":
        from .approvals import approvals_command

        approval_id = getattr(args, "approval_id", None)
        return _with_storage(
            settings,
            f"agentcard-mcp approvals {args.action}",
            2,
            lambda storage: approvals_command(
                args.action,
                approval_id,
                storage.approvals,
                sys.stdout,
                sys.stderr,
                keys=storage.keys,
            ),
        )
    if args.command == "keys":
        from .keys import keys_command

        return _with_storage(
            settings,
            f"agentcard-mcp keys {args.action}",
            2,
            lambda storage: keys_command(
                args.action,
                storage.keys,
                sys.stdout,
                sys.stderr,
                name=getattr(args, "name", None),
                scope=getattr(args, "scope", "cards:write"),
                rate=getattr(args, "rate", 60),
                allow_in_band_approval=getattr(args, "allow_in_band_approval", False),
                key_id=getattr(args, "key_id", None),
            ),
        )
    from .audit import audit_command

    return _with_storage(
        settings,
        "agentcard-mcp audit",
        1,
        lambda storage: audit_command(args.action, args.n, storage.audit, sys.stdout, sys.stderr),
    )


def _with_storage(
    settings: Settings, prefix: str, failed: int, command: Callable[[Storage], Awaitable[int]]
) -> int:
    """Runs ``command`` on the state the settings name (SQLite files in the home, or the
    PostgreSQL database the replicas share); the backend's own failures (a disk error, a lock
    held too long, the database unreachable) exit ``failed``, saying where."""
    from .errors import AgentCardError
    from .storage import open_storage, storage_errors

    async def run() -> int:
        async with open_storage(settings) as storage:
            return await command(storage)

    try:
        errors = storage_errors(settings)  # refuses a malformed AGENTCARD_DATABASE_URL
    except AgentCardError as exc:
        _fail(prefix, exc)
        return 2
    try:
        return anyio.run(run)
    except errors as exc:
        _fail(f"{prefix}: {_where(settings)}", exc)
        return failed


async def _opened(_: Storage) -> int:
    return 0


def _where(settings: Settings) -> str:
    """The home, or the database URL without its user and password."""
    url = settings.database_url_text()
    if url is None:
        return str(settings.home)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _demo() -> int:
    from .demo import run_demo
    from .errors import AgentCardError

    logging.getLogger().setLevel(logging.ERROR)
    try:
        anyio.run(run_demo, sys.stdout, load_settings())
    except AgentCardError as exc:
        _fail("agentcard-mcp demo", exc)
        return 2
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serves MCP: on stdio by default (what an MCP host runs), or over HTTP."""
    from .errors import AgentCardError
    from .server import create_server

    transport = getattr(args, "transport", "stdio")
    if transport == "stdio" and getattr(args, "console", False):
        print(
            "agentcard-mcp: --console needs --transport http or sse; beside a stdio server, "
            "run `agentcard-mcp console` on its own",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_settings()
        settings.check()
        _set_log_level(settings.log_level)
        server = create_server(settings)  # a bad policy file stops it here, naming the key
        # A shared database opens before anything is served: one that cannot be reached is
        # said here in one line, not as a traceback from inside the transport.
        shared = settings.database_url_text() is not None
        if shared and _with_storage(settings, "agentcard-mcp", 2, _opened) != 0:
            return 2
        if transport != "stdio":
            return _serve_http(server, settings, args)
    except AgentCardError as exc:
        _fail("agentcard-mcp", exc)
        return 2
    if sys.stdin.isatty():
        print(
            "agentcard-mcp speaks MCP on stdin/stdout: connect an MCP host (Claude Desktop, the "
            "MCP Inspector) to it, or try `agentcard-mcp demo`. Ctrl-C to stop.",
            file=sys.stderr,
        )
    server.run("stdio")
    return 0


def _serve_http(server: CardServer, settings: Settings, args: argparse.Namespace) -> int:
    from .http_app import HttpOptions, serve_http

    options = HttpOptions(
        transport=args.transport,
        host=args.host,
        port=args.port,
        stateless=args.stateless,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
    )
    if not args.console:
        serve_http(server, settings, options)
        return 0
    from .console import console_listener

    try:
        console = console_listener(settings, args.console_port)
    except OSError as exc:  # the console's port is taken
        _fail("agentcard-mcp", exc)
        return 2
    try:
        serve_http(server, settings, options, [(console.server, [console.sock])])
    finally:
        console.sock.close()
    return 0


def _console(args: argparse.Namespace) -> int:
    """The operator's web console, on the state and issuer ``serve`` uses."""
    from .console import serve_console
    from .errors import AgentCardError

    try:
        settings = load_settings()
        settings.check()
        _set_log_level(settings.log_level)
        if _with_storage(settings, "agentcard-mcp console", 2, _opened) != 0:
            return 2
        serve_console(settings, args.port)
    except AgentCardError as exc:
        _fail("agentcard-mcp console", exc)
        return 2
    except OSError as exc:  # the port is taken
        _fail("agentcard-mcp console", exc)
        return 2
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from .sandbox import runner

    db: Path = args.db or load_settings().ensure_home() / "sandbox.db"
    if args.action == "serve":
        runner.serve(db, args.host, args.port)
        return 0
    status, payload = anyio.run(
        runner.swipe, db, args.card_id, args.amount_cents, args.merchant, args.mcc,
        args.currency, args.url,
    )  # fmt: skip
    if args.json:
        runner.print_json(payload)
    else:
        line = runner.describe(status, payload, args.amount_cents, args.merchant)
        print(line, file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else 1
