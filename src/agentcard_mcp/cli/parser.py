"""The ``agentcard-mcp`` argument parser: every command, option and its help."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from .. import __version__

__all__ = ["build_parser"]


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


def _settings_epilog() -> str:
    """The AGENTCARD_* variables, from the Settings fields themselves: a new setting is listed
    here without anyone writing it twice."""
    from ..settings import Settings

    fields = Settings.model_fields
    width = max(len(name) for name in fields) + len("AGENTCARD_") + 2
    lines = ["settings, from the environment or a .env file in the working directory:"]
    for name, field in fields.items():
        variable = f"AGENTCARD_{name.upper()}"
        said = textwrap.wrap(field.description or "", 78 - width - 2)
        lines.append(f"  {variable:<{width}}{said[0] if said else ''}")
        lines.extend(" " * (width + 2) + more for more in said[1:])
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentcard-mcp",
        description=textwrap.fill(
            "Prepaid spending cards for LLM agents, under the operator's limits. State lives in "
            "AGENTCARD_HOME (default ~/.agentcard-mcp).",
            78,
        ),
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's columns as made
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
    # --host and --port default to None, so that serve can tell them given (and refuse them
    # with stdio) from not; serve fills in the defaults the help names.
    serve.add_argument(
        "--host",
        help="address to bind for http/sse (default 127.0.0.1; any other address "
        "is refused until a key exists)",
    )
    serve.add_argument("--port", type=_port, help="port for http/sse (default 8765)")
    serve.add_argument(
        "--stateless",
        action="store_true",
        help="streamable HTTP without sessions (approvals then go out of band); http only",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a Host header to accept besides loopback at the served port, e.g. cards.example:8765 "
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
        default=None,
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

    commands.add_parser(
        "doctor",
        help="check the configured issuer (key, mode, capabilities, limits) and say what each "
        "tool does on it; creates nothing",
        description="Check the configured issuer without creating anything: the settings, the "
        "API key (by reading), test or live mode, its capabilities and its own limits; then "
        "print what each tool will do on it. Exit 0: ready; 1: the issuer refused or could not "
        "be reached; 2: the configuration is wrong.",
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
    revoke.add_argument("key_id", metavar="ID", help="the key's id, key_… (`keys list` shows it)")

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
        decide.add_argument(
            "approval_id",
            metavar="ID",
            help="the approval's id, apr_… (in the agent's approval_required error and in "
            "`approvals list`)",
        )

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
    swipe.add_argument(
        "--mcc",
        required=True,
        help="merchant category: a tag (travel, saas, ...) or a 4-digit MCC such as 4511, "
        "translated as simulate_purchase does",
    )
    swipe.add_argument("--currency", default="usd", help="ISO currency code (default usd)")
    swipe.add_argument("--db", type=Path, help="database file (default AGENTCARD_HOME/sandbox.db)")
    swipe.add_argument("--url", help="a running sandbox server, e.g. http://127.0.0.1:8787")
    swipe.add_argument("--json", action="store_true", help="print the full JSON response")
    return parser
