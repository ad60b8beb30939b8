"""``python -m bench``: every benchmark, one table.

Each figure is printed next to its floor — the same work with nothing of ours behind it (a bare
MCP server's no-op tool, a bare Starlette route), or the same figure on a small history —
measured in the same run, interleaved, so that load from elsewhere hits both alike; then the
ratio and the target it is held to. Benchmarks are not tests: nothing here runs in CI, and the
figures depend on the machine and on what else it is doing.

    python -m bench                    # quick: every benchmark, about two minutes
    python -m bench --full             # the long runs (larger n, 10 MB inputs, PostgreSQL)
    python -m bench --only calls http  # some of them
    python -m bench.soak --help        # the soak run, on its own
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio

from .core import Figure, machine

SUITES = ("calls", "http_calls", "redaction", "sandbox", "history", "console", "replicas")
FULL_ONLY = {"replicas"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run agentcard-mcp's benchmarks and print one table of figures, floors "
        "and targets.",
    )
    parser.add_argument("--full", action="store_true", help="the long runs (default: quick)")
    parser.add_argument("--only", nargs="+", choices=SUITES, metavar="NAME",
                        help=f"run only these: {', '.join(SUITES)}")  # fmt: skip
    return parser.parse_args(argv)


def cell(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def print_table(figures: Sequence[Figure]) -> None:
    rows = [("bench", "figure", "value", "floor", "ratio", "target", "")]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append((f.bench, f.name, cell(f.value, f.unit), cell(f.floor, f.unit), ratio,
                     f.target, verdict(f.ok)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(" | ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)))
        if i == 0:
            print("-+-".join("-" * width for width in widths))


async def run_suite(name: str, quick: bool) -> list[Figure]:
    module = importlib.import_module(f"bench.{name}")
    began = time.perf_counter()
    print(f"  {name} ...", file=sys.stderr, flush=True)
    try:
        figures: list[Figure] = await module.run(quick)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        return [Figure(name, f"failed: {type(exc).__name__}: {exc}"[:80], float("nan"), "",
                       ok=False)]  # fmt: skip
    print(f"  {name} done in {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    return figures


async def main_async(args: argparse.Namespace) -> list[Figure]:
    names = args.only or [s for s in SUITES if args.full or s not in FULL_ONLY]
    figures: list[Figure] = []
    for name in names:
        figures += await run_suite(name, quick=not args.full)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.disable(logging.WARNING)  # the servers' start-up notes are not figures
    began = datetime.now(UTC)
    print(f"agentcard-mcp benchmarks, {'full' if args.full else 'quick'} run, "
          f"{began:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"machine: {machine()}")
    figures = anyio.run(main_async, args)
    print()
    print_table(figures)
    print()
    print(f"took {(datetime.now(UTC) - began).total_seconds():.0f} s; at the end: {machine()}")
    missed = [f for f in figures if f.ok is False]
    if missed:
        print(f"{len(missed)} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
