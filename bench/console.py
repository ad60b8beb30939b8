"""The operator console's pages with a large history (DESIGN §13).

1 000 cards (all but five closed), 100 000 ledger rows over 59 days and ten API keys (a fifth
of the cards and rows in the quick run); then ``/`` (approvals), ``/cards``, ``/budget`` and
``/keys`` through the console's ASGI app, logged in, interleaved with a bare Starlette page of
the same size reached the same way. Target: each page's p99 under 100 ms.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .core import Figure, fill_ledger, interleaved, make_cards, pct_ms, sandbox_settings

BENCH = "console"
ORIGIN, TOKEN = "http://127.0.0.1:8766", "bench-login-token"
PAGES = ("/", "/cards", "/budget", "/keys")


def floor_app(sizes: dict[str, int]) -> Starlette:
    bodies = {path: "<!doctype html><p>" + "x" * size + "</p>" for path, size in sizes.items()}

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(bodies[request.url.path])

    return Starlette(routes=[Route(path, page) for path in bodies])


async def get_ns(client: httpx.AsyncClient, path: str) -> int:
    import time

    began = time.perf_counter_ns()
    response = await client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code}"
    return time.perf_counter_ns() - began


async def run(quick: bool) -> list[Figure]:
    from agentcard_mcp.console import create_console_app, open_desks
    from agentcard_mcp.storage import open_storage

    cards, rows, n = (200, 20_000, 20) if quick else (1000, 100_000, 100)
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        settings = sandbox_settings(Path(tmp) / "home")
        fill_ledger(settings.home / "sandbox.db", await make_cards(settings, cards), rows)
        async with open_storage(settings) as storage:
            for i in range(10):
                await storage.keys.create(f"bench key {i}", scope="cards:read", rate=60)
        app = create_console_app(partial(open_desks, settings), port=8766, login_token=TOKEN)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client,
        ):
            assert (await client.get("/login", params={"token": TOKEN})).status_code == 303
            sizes = {path: len((await client.get(path)).content) for path in PAGES}
            floor = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=floor_app(sizes)), base_url=ORIGIN
            )
            async with floor:
                steps = {}
                for path in PAGES:
                    steps[path] = partial(get_ns, client, path)
                    steps[f"floor {path}"] = partial(get_ns, floor, path)
                samples = await interleaved(steps, n, 2)
    return [
        Figure(BENCH, f"{path} p99, {cards} cards, {rows:,} rows", pct_ms(samples[path], 0.99),
               "ms", pct_ms(samples[f"floor {path}"], 0.99), "< 100 ms",
               pct_ms(samples[path], 0.99) < 100)
        for path in PAGES
    ]  # fmt: skip
