"""``sandbox serve`` and ``sandbox swipe`` (the embedded issuer, standalone), and ``demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import anyio

from ..home import check_home
from ..settings import load_settings
from .common import fail

__all__ = ["demo", "sandbox"]


def demo() -> int:
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
    return 0


def sandbox(args: argparse.Namespace) -> int:
    from ..sandbox import runner

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
