"""Benchmark (not a test): MCP tool calls over streamable HTTP at 1, 10 and 50 concurrent
clients, next to a bare MCP server on the same transport, in the same run.

Two servers, each served by uvicorn on 127.0.0.1 in its own process (this one runs the
clients, so client and server do not share a GIL; on 2 cores each gets one):

- ``agentcard``: the app ``agentcard-mcp serve --transport http`` serves, built by
  ``create_http_app`` (stateful streamable HTTP at ``/mcp``, Host/Origin checks, ``KeyAuth``),
  on the embedded sandbox issuer with a permissive policy, logging as the CLI sets it up. The
  clients call ``get_card`` (or ``--tool get_limits``), each with a ``cards:read`` API key of
  its own.
- the floor: a bare ``MCPServer`` whose one tool, ``noop``, returns ``"ok"``, served by the SDK's
  ``streamable_http_app()`` the same way, with no auth.
- ``floor+auth``: the same floor behind our ``KeyAuth`` (the counting limiter below, keys from
  the same ``keys.db``, ``cards:write`` keys since ``noop`` is no read tool). Its gap to the
  floor is what the HTTP layer of ours costs; agentcard's gap beyond it is the tool's own work.

The rate limiter: every key has ClawHQ's top tier, 300 requests a minute, so one client would
be held to 5 calls a second and the benchmark would measure the limiter's sleep. The app is
built by ``create_http_app`` unchanged, on storage whose rate limits are the SQLite backend's
token buckets wrapped to count every request but never refuse one. Everything else ``KeyAuth``
does runs on every request: the key format, the SHA-256 lookup in ``keys.db``, the
session-to-key binding, the scope check (a ``cards:read`` key: the body is parsed for the tools
it calls), the last-used update.

Each client has its own connection and its own session (``initialize`` with 2025-11-25, then
``notifications/initialized``), opened before measuring, and speaks the protocol with plain
httpx: a POST per ``tools/call``, its answer read from the SSE response and checked. At each
concurrency every client makes calls back to back until the window closes. Windows alternate
between the two servers in rounds, so load from elsewhere hits both alike.

Target: at 10 clients, agentcard's calls/s at least 70% of the floor's.

Run from the repository root:  python bench/http.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
# Run as a script, this file's directory comes first on sys.path, and this file is http.py:
# "import http" (the standard library, httpx and uvicorn all do) would find it instead of the
# standard library's package. The repository root takes its place (for bench/ and tests/).
if sys.path and Path(sys.path[0] or os.curdir).resolve() == HERE.parent:
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import anyio  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from mcp.server import MCPServer  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.types import ASGIApp  # noqa: E402

from bench.machine import load_average, mcp_version, verdict  # noqa: E402
from bench.process_cpu import cpu_seconds  # noqa: E402

PERMISSIVE_POLICY = REPO / "tests" / "permissive_policy.toml"
PROTOCOL = "2025-11-25"
CONCURRENCY = (1, 10, 50)
TARGET_CLIENTS = 10
TARGET = 0.70  # agentcard calls/s / floor calls/s at TARGET_CLIENTS
RATE = 300  # requests a minute: every key's (counted, not enforced; see above)
DEFAULT = {"rounds": 5, "window": 2.0, "warmup": 1.0}
QUICK = {"rounds": 3, "window": 0.5, "warmup": 0.5}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as agentcard-mcp's CLI


# --- the servers (each runs in a child process: this file with --serve) ---------------------


def floor_app() -> Starlette:
    floor: MCPServer[Any] = MCPServer("floor")

    @floor.tool()
    async def noop() -> str:
        return "ok"

    return floor.streamable_http_app()


def floor_auth_app(home: Path) -> ASGIApp:
    """The floor behind KeyAuth, on the home's storage with rate limits that count but never
    refuse; the storage opened by the app's lifespan, as create_http_app does."""
    from starlette.routing import Mount

    from agentcard_mcp.http_auth import AuthState, KeyAuth
    from agentcard_mcp.settings import Settings

    floor = floor_app()
    storage = counting_storage(Settings(home=home))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[AuthState]:
        async with storage() as opened, floor.router.lifespan_context(floor):
            yield {"storage": opened}

    return Starlette(routes=[Mount("", app=KeyAuth(floor))], lifespan=lifespan)


class CountingRates:
    """The token bucket's work on every request; its verdict ignored."""

    def __init__(self, rates: Any) -> None:
        self._rates = rates

    async def take(self, key_id: str, rate_per_minute: int) -> float | None:
        await self._rates.take(key_id, rate_per_minute)
        return None


def counting_storage(settings: Any) -> Any:
    """Opens the storage ``settings`` name, its rate limits wrapped in ``CountingRates``."""
    import dataclasses

    from agentcard_mcp.storage import Storage, open_storage

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Storage]:
        async with open_storage(settings) as storage:
            yield dataclasses.replace(storage, rates=CountingRates(storage.rates))

    return opened


def agentcard_app(home: Path) -> ASGIApp:
    """``create_http_app`` as the CLI calls it, on storage whose rate limits count but never
    refuse."""
    from agentcard_mcp.http_app import HttpOptions, create_http_app
    from agentcard_mcp.server import create_server
    from agentcard_mcp.settings import Settings

    settings = Settings(issuer="sandbox", home=home, policy_file=PERMISSIVE_POLICY)
    return create_http_app(create_server(settings), HttpOptions(), counting_storage(settings))


def _serve(which: str, home: Path | None) -> None:
    """One server on 127.0.0.1, a free port; uvicorn says which (listening_process reads it)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if which == "agentcard":
        assert home is not None
        app = agentcard_app(home)
    elif which == "floor+auth":
        assert home is not None
        app = floor_auth_app(home)
    else:
        app = floor_app()
    # Port 0: uvicorn binds a free one and logs it. (Its own socket is made from getaddrinfo's
    # answer, IPPROTO_TCP, so asyncio sets TCP_NODELAY on every connection.)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="info", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


@dataclass
class Served:
    name: str
    url: str
    pid: int
    stderr: list[str]


@contextlib.contextmanager
def server_process(which: str, workdir: Path, home: Path | None = None) -> Iterator[Served]:
    from tests.support import listening_process

    command = [sys.executable, str(HERE), "--serve", which]
    if home is not None:
        command += ["--home", str(home)]
    # No AGENTCARD_* from this environment, and a working directory with no .env file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCARD_")}
    with listening_process(command, env=env, cwd=workdir) as served:
        yield Served(which, f"{served.base_url}/mcp", served.process.pid, served.stderr)


# --- the clients ----------------------------------------------------------------------------


class McpClient:
    """One agent: its own connection and session, the protocol spoken by hand."""

    def __init__(self, url: str, key: str | None) -> None:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        self.url = url
        self.http = httpx.AsyncClient(headers=headers, timeout=60, verify=_tls())
        self.session: dict[str, str] = {}
        self._next_id = 0

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(self.url, json=payload, headers=self.session)
        if not response.is_success:
            raise RuntimeError(f"{payload.get('method')}: {response.status_code} {response.text}")
        return response

    async def request(
        self, method: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any], httpx.Response]:
        """The result of one JSON-RPC request, and the HTTP response that carried it."""
        self._next_id += 1
        request_id = self._next_id
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        response = await self._post(payload)
        for message in _messages(response):
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result, response
        raise RuntimeError(f"{method}: no answer in {response.text[:300]!r}")

    async def open(self) -> None:
        info = {"name": "bench-http", "version": "0"}
        result, response = await self.request(
            "initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": info}
        )
        if result.get("protocolVersion") != PROTOCOL:
            raise RuntimeError(f"initialize answered {result.get('protocolVersion')!r}")
        session_id = response.headers["mcp-session-id"]
        self.session = {"mcp-session-id": session_id, "mcp-protocol-version": PROTOCOL}
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result, _ = await self.request("tools/call", {"name": tool, "arguments": arguments})
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result.get('content')}")
        return result

    async def close(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            if self.session:
                await self.http.delete(self.url, headers=self.session)
        await self.http.aclose()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One CA bundle load for all the clients (httpx loads one per client otherwise)."""
    return ssl.create_default_context()


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a response: a JSON body, or the ``data:`` lines of SSE."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
        ]
    body = response.json()
    return body if isinstance(body, list) else [body]


# --- measuring ------------------------------------------------------------------------------


def _pct_ms(latencies_ns: Sequence[int], q: float) -> float:
    ordered = sorted(latencies_ns)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


@dataclass
class Cell:
    """One server at one concurrency, over all rounds."""

    server: str
    clients: int
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    server_cpu: float = 0.0  # seconds, the server process, all threads
    client_cpu: float = 0.0  # seconds, this process

    @property
    def calls(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def p50(self) -> float:
        return _pct_ms(self.latencies_ns, 0.5)

    @property
    def p99(self) -> float:
        return _pct_ms(self.latencies_ns, 0.99)

    @property
    def server_ms(self) -> float:
        return self.server_cpu / self.calls * 1e3

    @property
    def client_ms(self) -> float:
        return self.client_cpu / self.calls * 1e3


def _server_cpu(pid: int) -> float:
    return cpu_seconds(pid) - time.process_time()


@dataclass
class Target:
    """A server, its clients (one session each), and the call they make."""

    served: Served
    clients: list[McpClient]
    call: Callable[[McpClient], Awaitable[None]]

    async def window(self, concurrency: int, seconds: float, cell: Cell | None) -> None:
        """``concurrency`` clients call back to back for ``seconds``; recorded into ``cell``."""
        latencies: list[int] = []
        deadline = time.perf_counter() + seconds

        async def worker(client: McpClient) -> None:
            while time.perf_counter() < deadline:
                began = time.perf_counter_ns()
                await self.call(client)
                latencies.append(time.perf_counter_ns() - began)

        client_cpu, server_cpu = time.process_time(), _server_cpu(self.served.pid)
        began = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for client in self.clients[:concurrency]:
                tasks.start_soon(worker, client)
        elapsed = time.perf_counter() - began  # to the last answer, past the deadline
        if cell is not None:
            cell.seconds += elapsed
            cell.latencies_ns += latencies
            cell.client_cpu += time.process_time() - client_cpu
            cell.server_cpu += _server_cpu(self.served.pid) - server_cpu


async def open_clients(url: str, keys: Sequence[str | None]) -> list[McpClient]:
    clients = [McpClient(url, key) for key in keys]
    for client in clients:  # one at a time: opening is not what is measured
        await client.open()
    return clients


async def create_card(url: str, writer: str) -> str:
    client = McpClient(url, writer)
    try:
        await client.open()
        card = await client.call(
            "create_card", {"purpose": "bench: http", "daily_limit_cents": 5000}
        )
    finally:
        await client.close()
    card_id: str = card["structuredContent"]["id"]
    return card_id


async def measure(
    floor: Served,
    floor_auth: Served,
    agentcard: Served,
    keys: tuple[str, Sequence[str], Sequence[str]],
    tool: str,
    args: argparse.Namespace,
) -> dict[tuple[str, int], Cell]:
    writer, readers, writers = keys
    card_id = await create_card(agentcard.url, writer)
    clients = max(CONCURRENCY)
    floor_clients = await open_clients(floor.url, [None] * clients)
    auth_clients = await open_clients(floor_auth.url, writers)
    card_clients = await open_clients(agentcard.url, readers)
    try:
        arguments = {"card_id": card_id} if tool == "get_card" else {}

        async def noop(client: McpClient) -> None:
            result = await client.call("noop", {})
            if result["content"][0]["text"] != "ok":
                raise RuntimeError(f"noop answered {result}")

        name, expected = ("id", card_id) if tool == "get_card" else ("issuer", "sandbox")

        async def agentcard_call(client: McpClient) -> None:
            result = (await client.call(tool, arguments))["structuredContent"]
            if result.get(name) != expected:
                raise RuntimeError(f"{tool} answered {result}")

        targets = [
            Target(floor, floor_clients, noop),
            Target(floor_auth, auth_clients, noop),
            Target(agentcard, card_clients, agentcard_call),
        ]
        print(f"  warm-up: {args.warmup:g} s at {clients} clients each ...", file=sys.stderr)
        for target in targets:
            await target.window(clients, args.warmup, None)
        cells = {(t.served.name, c): Cell(t.served.name, c) for t in targets for c in CONCURRENCY}
        for r in range(args.rounds):
            for concurrency in CONCURRENCY:
                for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                    cell = cells[target.served.name, concurrency]
                    await target.window(concurrency, args.window, cell)
            print(f"    round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        return cells
    finally:
        for client in floor_clients + auth_clients + card_clients:
            await client.close()


# --- output ---------------------------------------------------------------------------------


def print_header(args: argparse.Namespace) -> None:
    print("HTTP benchmark: MCP tool calls over streamable HTTP, agentcard-mcp next to a bare "
          "MCPServer")  # fmt: skip
    print(
        f"  python {platform.python_version()}, mcp {mcp_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}"
    )
    print(f"  at the start: {load_average()} (other work on the machine inflates every number)")
    print("  servers: uvicorn on 127.0.0.1, each in its own process (the clients run in this "
          "one); stateful sessions, SSE responses")  # fmt: skip
    print(f"  agentcard: create_http_app() on the sandbox issuer, permissive policy; {args.tool} "
          "(checked); one key per client, cards:read, rate 300")  # fmt: skip
    print("  rate limiter: KeyAuth's checks all run (format, SHA-256 lookup in keys.db, session "
          "binding, scope with the body parsed, last-used); its token bucket counts every "
          "request but never refuses, since 300 a minute would hold each client to 5 "
          "calls/s")  # fmt: skip
    print(
        "  floor: a bare MCPServer whose noop tool returns 'ok', streamable_http_app(), no "
        "auth, its own process, the same clients"
    )
    print("  floor+auth: that floor behind KeyAuth (the same counting limiter, keys.db, one "
          "cards:write key per client): what our HTTP layer costs on its own")  # fmt: skip
    print(
        f"  each client: its own connection and session (initialize {PROTOCOL}), plain httpx; "
        f"{args.rounds} rounds of {args.window:g} s per cell, the servers alternated, after "
        f"{args.warmup:g} s of warm-up"
    )
    print()


def print_cells(cells: dict[tuple[str, int], Cell]) -> bool:
    head = (
        f"{'clients':>7} {'server':<10} {'calls':>6} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv cpu ms':>10} {'cli cpu ms':>10} | {'x rate':>6} {'x p50':>6} {'x p99':>6}"
    )
    print(
        "calls/s = calls / wall time of the window; p50/p99 per call as the client saw it; "
        "cpu = per call, the server's process and this one's"
    )
    print("x = this server / floor")
    print(head)
    print("-" * len(head))
    for concurrency in CONCURRENCY:
        floor = cells["floor", concurrency]
        for cell in (floor, cells["floor+auth", concurrency], cells["agentcard", concurrency]):
            line = (
                f"{concurrency:>7} {cell.server:<10} {cell.calls:>6} {cell.rate:>8.0f} "
                f"{cell.p50:>7.2f} {cell.p99:>7.2f} {cell.server_ms:>10.2f} "
                f"{cell.client_ms:>10.2f} |"
            )
            if cell is not floor:
                line += (
                    f" {cell.rate / floor.rate:>5.2f}x {cell.p50 / floor.p50:>5.1f}x "
                    f"{cell.p99 / floor.p99:>5.1f}x"
                )
            print(line)
    floor, card = cells["floor", TARGET_CLIENTS], cells["agentcard", TARGET_CLIENTS]
    auth = cells["floor+auth", TARGET_CLIENTS]
    ratio = card.rate / floor.rate
    ok = ratio >= TARGET
    print(
        f"\ntarget: agentcard calls/s at {TARGET_CLIENTS} clients >= {TARGET:.0%} of the floor's: "
        f"{card.rate:.0f} / {floor.rate:.0f} = {ratio:.0%}: {verdict(ok)}"
    )
    print(
        f"the HTTP layer alone (KeyAuth in front of the floor): {auth.rate:.0f} / "
        f"{floor.rate:.0f} = {auth.rate / floor.rate:.0%} of the floor's calls/s, "
        f"{auth.server_ms - floor.server_ms:+.2f} ms server CPU a call; agentcard's tool adds "
        f"{card.server_ms - auth.server_ms:+.2f} ms more"
    )
    return ok


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="MCP tool calls over streamable HTTP at 1, 10 and 50 concurrent clients: "
        "agentcard-mcp (create_http_app, KeyAuth, sandbox issuer) next to a bare MCPServer "
        "noop tool, each served by uvicorn in its own process. Target: at 10 clients, at "
        f"least {TARGET:.0%} of the floor's calls/s.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK['rounds']} rounds of {QUICK['window']:g} s per "
                        "cell (default "
                        f"{DEFAULT['rounds']} of {DEFAULT['window']:g} s)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="rounds (each cell once a round)")
    parser.add_argument("--window", type=float, help="seconds per cell and round")
    parser.add_argument("--tool", choices=["get_card", "get_limits"], default="get_card",
                        help="agentcard's tool (default get_card; get_limits asks the issuer "
                        "twice)")  # fmt: skip
    parser.add_argument("--serve", choices=["floor", "floor+auth", "agentcard"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULT
    args.rounds = args.rounds or int(preset["rounds"])
    args.window = args.window or preset["window"]
    args.warmup = preset["warmup"]
    if args.rounds < 1 or args.window <= 0:
        parser.error("--rounds must be at least 1 and --window positive")
    return args


async def make_keys(home: Path) -> tuple[str, list[str], list[str]]:
    """One cards:write key that makes the card get_card reads, a cards:read key per agentcard
    client and a cards:write key per floor+auth client, in the home's keys.db."""
    from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore

    store = SqliteKeyStore(home)
    try:
        writer, _ = await store.create("bench-writer", rate=RATE)
        readers = [
            (await store.create(f"bench-{i}", scope="cards:read", rate=RATE))[0]
            for i in range(max(CONCURRENCY))
        ]
        writers = [
            (await store.create(f"bench-floor-{i}", rate=RATE))[0] for i in range(max(CONCURRENCY))
        ]
    finally:
        await store.aclose()
    return writer, readers, writers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        _serve(args.serve, args.home)
        return 0
    print_header(args)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-http-") as name:
        tmp = Path(name)
        home = tmp / "home"
        # The keys exist before the servers start.
        writer, readers, writers = anyio.run(make_keys, home)
        servers: list[Served] = []
        try:
            with (
                server_process("floor", tmp) as floor,
                server_process("floor+auth", tmp, home) as floor_auth,
                server_process("agentcard", tmp, home) as agentcard,
            ):
                servers = [floor, floor_auth, agentcard]
                print("  measuring ...", file=sys.stderr, flush=True)
                cells = anyio.run(
                    measure, floor, floor_auth, agentcard, (writer, readers, writers), args.tool,
                    args,
                )  # fmt: skip
        except Exception:
            for served in servers:
                print(f"{served.name} stderr:\n{''.join(served.stderr)[-3000:]}", file=sys.stderr)
            raise
    ok = print_cells(cells)
    print(f"(measured in {time.perf_counter() - began:.0f} s; at the end: {load_average()})")
    if not ok:
        print("the target was missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
