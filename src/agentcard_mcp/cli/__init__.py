"""The ``agentcard-mcp`` command line: argument parsing and rendering only; the work lives in
the modules (the operator's side in ``operator``, the server in ``server``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import loading
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command. Whatever stops it reaches the terminal as one line (a traceback only
    with AGENTCARD_LOG_LEVEL=DEBUG): exit 2 for what the operator must change, 1 for a
    failure, 130 for Ctrl-C."""
    # The command's modules load with the cyclic collector paused, until it starts its work
    # (loading.py): so _run imports each command's module only when that command runs.
    loading.pause()
    try:
        args = build_parser().parse_args(argv)
        try:
            return _run(args)
        except KeyboardInterrupt:
            print("agentcard-mcp: stopped (Ctrl-C).", file=sys.stderr)
            return 130
        except Exception as exc:
            from .common import debugging, unexpected

            if debugging():
                raise
            unexpected(exc)
            return 1
    finally:
        loading.started()


def _run(args: argparse.Namespace) -> int:
    # Logs go to stderr: on stdio, stdout carries protocol messages only.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from ..redaction import install_log_redaction

    install_log_redaction()
    if args.command not in (None, "serve"):
        loading.started()  # serve goes on loading the server first
    if args.command == "sandbox":
        from ..errors import AgentCardError
        from . import sandbox
        from .common import fail

        try:
            return sandbox.sandbox(args)
        except AgentCardError as exc:
            fail("agentcard-mcp sandbox", exc)
            return 2
    if args.command == "doctor":
        from .doctor import doctor

        return doctor(args)
    if args.command == "demo":
        from .sandbox import demo

        return demo()
    if args.command == "console":
        from .serve import console

        return console(args)
    if args.command in ("policy", "approvals", "audit", "keys"):
        from .operator_commands import operator_command

        return operator_command(args)
    from .serve import serve

    return serve(args)
