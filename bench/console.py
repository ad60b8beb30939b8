"""Benchmark (not a test): the operator console's pages with a large history (issue 11).

It builds 1 000 cards (through the tools, all but five closed), 100 000 ledger rows (bulk SQL
into the sandbox's database, spread over the last 59 days, as bench/budget.py does) and ten API
keys, then renders ``/`` (approvals), ``/cards``, ``/budget`` and ``/keys`` through the console's
ASGI app (httpx.ASGITransport, a logged-in session), interleaved with the floor: a bare
Starlette page of similar size (the same bytes, prebuilt) reached the same way in the same run.

Target (issue 11): each page's p99 under 100 ms.

Run from the repository root:  python bench/console.py [--quick] [--cards N] [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would shadow the standard
# library's http package: the repository root takes bench/'s place.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from agentcard_mcp.console import create_console_app, open_desks  # noqa: E402
from agentcard_mcp.settings import Settings  # noqa: E402
from agentcard_mcp.storage import open_storage  # noqa: E402
from bench.budget import Sample, _fill_ledger, _make_cards, _settings  # noqa: E402
from bench.machine import load_average, mcp_version, verdict  # noqa: E402

PORT = 8766
ORIGIN = f"http://127.0.0.1:{PORT}"
TOKEN = "bench-login-token"
PAGES = ("/", "/cards", "/budget", "/keys")
TARGET_MS = 100.0
KEYS = 10


async def build(settings_home: Path, cards: int, rows: int) -> tuple[Settings, float]:
    began = time.perf_counter()
    settings = _settings(settings_home, None)
    first = await _make_cards(settings, cards)
    _fill_ledger(settings.home, first, rows)
    async with open_storage(settings) as storage:
        for i in range(KEYS):
            await storage.keys.create(f"bench key {i}", scope="cards:read", rate=60)
    return settings, time.perf_counter() - began


def floor_app(sizes: dict[str, int]) -> Starlette:
    """One prebuilt HTML page per console page, of the same size."""
    bodies = {path: "<!doctype html><p>" + "x" * size + "</p>" for path, size in sizes.items()}

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(bodies[request.url.path])

    return Starlette(routes=[Route(path, page) for path in bodies])


async def timed_get(client: httpx.AsyncClient, path: str) -> int:
    began = time.perf_counter_ns()
    response = await client.get(path)
    elapsed = time.perf_counter_ns() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return elapsed


async def measure(
    settings: Settings, n: int, warmup: int
) -> tuple[dict[str, Sample], dict[str, int]]:
    app = create_console_app(partial(open_desks, settings), port=PORT, login_token=TOKEN)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client,
    ):
        assert (await client.get("/login", params={"token": TOKEN})).status_code == 303
        sizes = {path: len((await client.get(path)).content) for path in PAGES}
        floor = floor_app(sizes)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=floor), base_url=ORIGIN
        ) as bare:
            samples = {f"{kind} {p}": Sample([]) for p in PAGES for kind in ("page", "floor")}
            for i in range(warmup + n):
                order = PAGES[i % len(PAGES) :] + PAGES[: i % len(PAGES)]
                for path in order:
                    page_ns = await timed_get(client, path)
                    floor_ns = await timed_get(bare, path)
                    if i >= warmup:
                        samples[f"page {path}"].latencies_ns.append(page_ns)
                        samples[f"floor {path}"].latencies_ns.append(floor_ns)
    return samples, sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer renders (a smoke run)")
    parser.add_argument("--n", type=int, default=100, help="timed renders per page")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cards", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.warmup = 20, 2
    return args


async def main_async(args: argparse.Namespace) -> bool:
    print("console benchmark: the operator's pages through the console's ASGI app")
    print(
        f"python {platform.python_version()}, mcp {mcp_version()}, {os.cpu_count()} CPUs, "
        f"{load_average()}"
    )
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        settings, build_s = await build(Path(tmp) / "home", args.cards, args.rows)
        print(
            f"history: {args.cards} cards (all but 5 closed), {args.rows} ledger rows, {KEYS} keys;"
            f" built in {build_s:.1f} s"
        )
        print(f"{args.n} timed renders per page after {args.warmup} warm-up, interleaved")
        print()
        samples, sizes = await measure(settings, args.n, args.warmup)
    header = (
        f"{'page':8} {'bytes':>8} | {'p50 ms':>7} {'p99':>7} | {'floor p50':>9} {'p99':>7} | "
        f"{'target p99':>10}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for path in PAGES:
        page, floor = samples[f"page {path}"], samples[f"floor {path}"]
        passed = page.pct_ms(0.99) < TARGET_MS
        ok = ok and passed
        print(
            f"{path:8} {sizes[path]:8d} | {page.pct_ms(0.5):7.2f} {page.pct_ms(0.99):7.2f} | "
            f"{floor.pct_ms(0.5):9.3f} {floor.pct_ms(0.99):7.3f} | "
            f"< {TARGET_MS:.0f} ms {verdict(passed)}"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    logging.disable(logging.WARNING)  # the server's start-up notes, not figures
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return 0 if asyncio.run(main_async(args)) else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
