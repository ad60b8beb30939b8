"""``sandbox serve`` and ``sandbox swipe`` (the embedded issuer, standalone), and ``demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import anyio

from .. import categories
from ..home import check_home
from ..settings import load_settings
from .common import fail

__all__ = ["demo", "sandbox"]


def demo() -> int:
    """Exit 0; 2 when the settings refuse to run it (a live key, an unsafe home); 1, in one
    line saying what went wrong, when the issuer refuses the key, cannot be reached, or a step
    fails."""
    from ..errors import AgentCardError

    logging.getLogger().setLevel(logging.ERROR)
    try:
        settings = load_settings()
        # The demo runs the sandbox in a scratch home, but an unsafe home of the operator's is
        # refused here as by every other command, so it is heard of at once.
        check_home(settings.home)
        from ..demo import run_demo

        anyio.run(run_demo, sys.stdout, settings)
    except AgentCardError as exc:
        fail("agentcard-mcp demo", exc)
        return 2
    except Exception as exc:  # the MCP client's task group wraps what stopped the session
        from ..demo import failure_of

        failure = failure_of(exc)
        if failure is None:
            raise
        fail("agentcard-mcp demo", failure)
        return 1
    return 0


def sandbox(args: argparse.Namespace) -> int:
    from ..sandbox import runner

    db: Path = args.db or load_settings().ensure_home() / "sandbox.db"
    if args.action == "serve":
        runner.serve(db, args.host, args.port)
        return 0
    # A tag or a 4-digit MCC, translated as simulate_purchase translates it ("4511": travel).
    (tag,) = categories.normalize([args.mcc], field="--mcc")
    status, payload = anyio.run(
        runner.swipe, db, args.card_id, args.amount_cents, args.merchant, tag,
        args.currency, args.url,
    )  # fmt: skip
    if args.json:
        runner.print_json(payload)
    else:
        line = runner.describe(status, payload, args.amount_cents, args.merchant)
        print(line, file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else 1
