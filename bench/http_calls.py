"""Tool calls over streamable HTTP at 10 concurrent clients, next to a bare MCP server.

Two uvicorn servers on 127.0.0.1, each in its own process (the clients run here, so client
and server do not share a GIL):

- ``agentcard``: the app ``serve --transport http`` serves (``create_http_app``: Host/Origin
  checks, ``KeyAuth``, stateful streamable HTTP) on the embedded sandbox. Each client calls
  ``get_card`` with a ``cards:read`` key of its own. The rate limiter's buckets count every
  request but refuse none — a key's 300 a minute would otherwise be what is measured.
- ``bare``: the same server (``create_server``, the same sandbox home and card) on the SDK's own
  ``streamable_http_app()``: no Host/Origin check, no key, no session binding, no rate bucket.
- ``noop``: a bare ``MCPServer`` with one ``noop`` tool, ``streamable_http_app()``, no auth.

Each client has its own connection and session and calls back to back through a window; the
servers take turns window by window. Two figures:

- against ``bare``: what our HTTP layer costs, the tool's work being the same on both sides.
  Target: at least 80% of the floor's calls/s.
- against ``noop``: the whole cost of a ``get_card`` over HTTP, the HTTP layer and the tool's
  own work (an issuer read, the budget, redaction, the audit record) together, next to a tool
  that does nothing. No target of its own: the tool's work is held by the in-memory figure
  (``calls``: within 3x a no-op), and over HTTP the transport's own cost per call is what
  that work adds to.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from .core import REPO, Figure, clean_env, floor_server, served

BENCH = "http"
CLIENTS = 10
PROTOCOL = "2025-11-25"


class CountingRates:
    """The token bucket's work on every request; its verdict ignored."""

    def __init__(self, rates: Any) -> None:
        self.rates = rates

    async def take(self, key_id: str, rate_per_minute: int) -> float | None:
        await self.rates.take(key_id, rate_per_minute)
        return None


def agentcard_app(home: Path) -> Any:
    from agentcard_mcp.http_app import HttpOptions, create_http_app
    from agentcard_mcp.server import create_server
    from agentcard_mcp.storage import open_storage

    from .core import sandbox_settings

    settings = sandbox_settings(home)

    @contextlib.asynccontextmanager
    async def storage() -> AsyncIterator[Any]:
        async with open_storage(settings) as opened:
            yield dataclasses.replace(opened, rates=CountingRates(opened.rates))

    return create_http_app(create_server(settings), HttpOptions(), storage)


def bare_app(home: Path) -> Any:
    from agentcard_mcp.server import create_server

    from .core import sandbox_settings

    return create_server(sandbox_settings(home)).streamable_http_app()


def serve(which: str, home: Path) -> None:
    """One server on a free port of 127.0.0.1 (uvicorn logs which; ``served`` reads it)."""
    import uvicorn

    apps = {"agentcard": agentcard_app, "bare": bare_app}
    app = apps[which](home) if which in apps else floor_server().streamable_http_app()
    # As ``serve`` logs (cli._run): httpx's per-request INFO lines only at DEBUG. Without this
    # the bench timed one stderr line per issuer request that the served app never writes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info", access_log=False)
    uvicorn.Server(config).run()


class McpClient:
    """One agent over streamable HTTP, the protocol spoken by hand with httpx."""

    def __init__(self, url: str, key: str | None) -> None:
        headers = {"Accept": "application/json, text/event-stream"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self.url = url
        self.http = httpx.AsyncClient(headers=headers, timeout=60)
        self.session: dict[str, str] = {}
        self.next_id = 0

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        payload = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        response = await self.http.post(self.url, json=payload, headers=self.session)
        response.raise_for_status()
        if "mcp-session-id" in response.headers:
            self.session = {
                "mcp-session-id": response.headers["mcp-session-id"],
                "mcp-protocol-version": PROTOCOL,
            }
        for line in response.text.splitlines():
            if line.startswith("data:") and (message := json.loads(line[5:])).get("id"):
                if "error" in message or message["result"].get("isError"):
                    raise RuntimeError(f"{method}: {message}")
                return message["result"]
        return response.json()["result"]

    async def open(self) -> None:
        info = {"name": "bench", "version": "0"}
        await self.request(
            "initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": info}
        )
        notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        (await self.http.post(self.url, json=notice, headers=self.session)).raise_for_status()

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return await self.request("tools/call", {"name": tool, "arguments": arguments})


async def window(clients: list[McpClient], work: Callable[[McpClient], Awaitable[None]],
                 seconds: float) -> float:  # fmt: skip
    """Calls per second of ``clients`` calling back to back for ``seconds``."""
    done = 0
    end = time.perf_counter() + seconds

    async def agent(client: McpClient) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await work(client)
            done += 1

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(agent, client)
    return done / (time.perf_counter() - began)


async def make_keys(home: Path) -> tuple[str, list[str]]:
    from agentcard_mcp.storage import open_storage

    from .core import sandbox_settings

    async with open_storage(sandbox_settings(home)) as storage:
        writer, _ = await storage.keys.create("bench-writer", rate=300)
        readers = [
            (await storage.keys.create(f"bench-{i}", scope="cards:read", rate=300))[0]
            for i in range(CLIENTS)
        ]
    return writer, readers


async def measure(urls: dict[str, str], writer: str, readers: list[str],
                  quick: bool) -> dict[str, float]:  # fmt: skip
    """Mean calls/s of each server's clients, the servers taking turns window by window."""
    maker = McpClient(urls["agentcard"], writer)
    await maker.open()
    card = await maker.call("create_card", {"purpose": "bench: http", "daily_limit_cents": 500})
    card_id = card["structuredContent"]["id"]
    clients = {
        "agentcard": [McpClient(urls["agentcard"], key) for key in readers],
        "bare": [McpClient(urls["bare"], None) for _ in range(CLIENTS)],
        "noop": [McpClient(urls["noop"], None) for _ in range(CLIENTS)],
    }
    for client in [c for group in clients.values() for c in group]:
        await client.open()

    async def get_card(client: McpClient) -> None:
        result = await client.call("get_card", {"card_id": card_id})
        assert result["structuredContent"]["id"] == card_id

    async def noop(client: McpClient) -> None:
        await client.call("noop", {})

    work = {"agentcard": get_card, "bare": get_card, "noop": noop}
    names = list(work)
    seconds, rounds = (0.5, 3) if quick else (2.0, 5)
    for name in names:  # warm-up
        await window(clients[name], work[name], seconds)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            rates[name].append(await window(clients[name], work[name], seconds))
    for client in [c for group in clients.values() for c in group] + [maker]:
        await client.http.aclose()
    return {name: sum(values) / rounds for name, values in rates.items()}


async def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        home = Path(tmp) / "home"
        writer, readers = await make_keys(home)
        command = [sys.executable, "-m", "bench.http_calls", "--serve"]
        env = clean_env(PYTHONPATH=str(REPO))
        with (
            served([*command, "agentcard", str(home)], env, Path(tmp)) as agentcard,
            served([*command, "bare", str(home)], env, Path(tmp)) as bare,
            served([*command, "noop", str(home)], env, Path(tmp)) as noop,
        ):
            urls = {"agentcard": agentcard, "bare": bare, "noop": noop}
            rates = await measure(
                {name: f"{process.base_url}/mcp" for name, process in urls.items()},
                writer, readers, quick,
            )  # fmt: skip
    ours = rates["agentcard"]
    return [
        Figure(BENCH, f"get_card calls/s at {CLIENTS} clients (floor: same server, SDK app)",
               ours, "/s", rates["bare"], ">= 0.8x floor", ours >= 0.8 * rates["bare"]),
        Figure(BENCH, f"get_card calls/s at {CLIENTS} clients (floor: bare noop tool)",
               ours, "/s", rates["noop"]),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a benchmark's server (internal)")
    parser.add_argument("--serve", nargs=2, metavar=("WHICH", "HOME"), required=True)
    which, home = parser.parse_args().serve
    serve(which, Path(home))
