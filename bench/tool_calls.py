"""Benchmark (not a test): what the MCP tools cost, next to a bare MCP server doing nothing.

Measures, in one run:

- ``get_card`` and ``create_card`` calls per second and p50/p99 latency, sequentially from one
  client, in memory (``Client(create_server(...))``, no JSON-RPC framing in ``mode="auto"``)
  and over stdio (the real ``agentcard-mcp`` command, spawned with ``AGENTCARD_HOME`` in a
  temporary directory). Each is printed next to its floor: a bare ``MCPServer`` whose one tool,
  ``noop``, returns ``"ok"``, reached the same way (in memory, or as its own stdio process) and
  measured in the same rounds, interleaved, so load from elsewhere hits both alike.
- stdio cold start: from spawning the process to the first tool result (``initialize``,
  ``notifications/initialized``, one ``tools/call``: ``get_limits``, or ``noop`` on the floor),
  ``agentcard-mcp`` against the floor server process, alternated, median of the repetitions.
- the ``tools/list`` response exactly as it goes over the wire: the newline-delimited JSON-RPC
  line ``agentcard-mcp`` writes to stdout after the legacy ``initialize`` handshake.

Targets: in-memory ``get_card`` within 3x the floor (p50 and calls/s), cold start within 1.3x
the floor (median), ``tools/list`` under 12 KB (12288 bytes).

``--profile`` then shows where the time goes: the layers under an in-memory ``get_card``, a
cProfile of it grouped by package, the startup work of each server in a fresh interpreter, and
``python -X importtime`` of both, grouped by package.

Run from the repository root:  python bench/tool_calls.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would then shadow the
# standard library's http package (httpx, uvicorn and starlette import it): the repository root
# takes bench/'s place, which also makes bench/ and tests/ importable.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Only the SDK at module level: the floor server process (``--serve-floor``) runs this file,
# and it must import no more than a bare MCP server would. agentcard_mcp is imported lazily.
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.server import MCPServer  # noqa: E402
from mcp.types.version import LATEST_HANDSHAKE_VERSION  # noqa: E402

PERMISSIVE_POLICY = REPO / "tests" / "permissive_policy.toml"

from bench.machine import load_average, mcp_version, verdict  # noqa: E402
from bench.process_cpu import cpu_seconds  # noqa: E402

HERE = Path(__file__).resolve()

GET_TARGET = 3.0  # in-memory get_card: p50 and calls/s within 3x the floor
COLD_TARGET = 1.3  # stdio cold start: median within 1.3x the floor process
TOOLS_LIST_TARGET = 12 * 1024  # bytes

DEFAULT_N = {"memory": (5000, 800), "stdio": (2000, 500)}  # (get_card and noop, create_card)
QUICK_N = {"memory": (500, 100), "stdio": (200, 60)}
DEFAULT_COLD = 7
QUICK_COLD = 3
ROUNDS = 10  # cells are measured in this many interleaved rounds
CREATE_BATCH = 20  # cards created between two clean-ups (the sandbox holds 25 per account)

CREATE_ARGS: dict[str, Any] = {
    "purpose": "bench: conference flights",
    "daily_limit_cents": 50_000,
    "per_auth_max_cents": 40_000,
    "mcc_allowlist": ["travel", "lodging"],
}


# --- the floor: a bare MCPServer with one tool that does nothing ----------------------------


def floor_server() -> MCPServer[Any]:
    floor: MCPServer[Any] = MCPServer("floor")

    @floor.tool()
    async def noop() -> str:
        return "ok"

    return floor


def _serve_floor() -> None:
    """The floor as its own stdio process, as ``agentcard-mcp`` serves: logs on stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    floor_server().run("stdio")


# --- measuring ------------------------------------------------------------------------------


def _children() -> set[int]:
    """Process ids of this process's children (Linux), to find a spawned server."""
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def _pct_ms(latencies_ns: Sequence[int], q: float) -> float:
    ordered = sorted(latencies_ns)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


@dataclass
class Cell:
    """One tool reached one way: ``op(i)`` makes call ``i``; ``cleanup`` runs, untimed, after
    every ``batch`` calls (create_card closes the cards it made: the sandbox holds 25)."""

    name: str
    op: Callable[[int], Awaitable[None]]
    n: int
    warmup: int
    pid: int | None = None  # the serving process when it is not this one: its CPU counts too
    batch: int | None = None
    cleanup: Callable[[], Awaitable[None]] | None = None
    latencies_ns: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0
    _calls: int = 0

    async def run(self, count: int, *, record: bool = True) -> None:
        done = 0
        while done < count:
            k = min(count - done, self.batch or count)
            latencies = []
            cpu = cpu_seconds(self.pid)
            for _ in range(k):
                began = time.perf_counter_ns()
                await self.op(self._calls)
                latencies.append(time.perf_counter_ns() - began)
                self._calls += 1
            cpu = cpu_seconds(self.pid) - cpu
            if record:
                self.latencies_ns += latencies
                self.cpu_seconds += cpu
            if self.cleanup is not None:
                await self.cleanup()
            done += k

    @property
    def count(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        """Calls per second of one sequential client: 1 / mean latency."""
        return self.count / (sum(self.latencies_ns) / 1e9)

    @property
    def p50(self) -> float:
        return _pct_ms(self.latencies_ns, 0.5)

    @property
    def p99(self) -> float:
        return _pct_ms(self.latencies_ns, 0.99)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.count * 1e3


async def run_interleaved(cells: Sequence[Cell], rounds: int) -> None:
    """Warms every cell up, then measures them in ``rounds`` rounds, each cell in turn."""
    for cell in cells:
        await cell.run(cell.warmup, record=False)
    for r in range(rounds):
        for cell in cells:
            await cell.run(cell.n * (r + 1) // rounds - cell.n * r // rounds)
        print(f"    round {r + 1}/{rounds}", file=sys.stderr, flush=True)


def _text(result: Any) -> str:
    content = getattr(result, "content", None) or []
    return " ".join(str(getattr(c, "text", c)) for c in content)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool}: {_text(result)}")
    return result.structured_content or {}


def tool_cells(
    label: str, server: Client, floor: Client, card_id: str, n: tuple[int, int], *,
    server_pid: int | None = None, floor_pid: int | None = None,
) -> tuple[Cell, Cell, Cell]:  # fmt: skip
    """The floor's noop, get_card and create_card (closing what it made), on one transport."""
    created: list[str] = []

    async def noop(i: int) -> None:
        if (await call(floor, "noop", {})).get("result") != "ok":
            raise RuntimeError(f"{label} noop {i}: unexpected result")

    async def get_card(i: int) -> None:
        if (await call(server, "get_card", {"card_id": card_id})).get("id") != card_id:
            raise RuntimeError(f"{label} get_card {i}: another card came back")

    async def create_card(i: int) -> None:
        card = await call(server, "create_card", CREATE_ARGS)
        if card.get("status") != "active":
            raise RuntimeError(f"{label} create_card {i}: {card}")
        created.append(card["id"])

    async def close_created() -> None:
        while created:
            await call(server, "close_card", {"card_id": created.pop()})

    n_get, n_create = n
    warmup = max(30, n_get // 10)
    return (
        Cell("noop (floor)", noop, n_get, warmup, floor_pid),
        Cell("get_card", get_card, n_get, warmup, server_pid),
        Cell("create_card", create_card, n_create, min(CREATE_BATCH, max(5, n_create // 10)),
             server_pid, CREATE_BATCH, close_created),
    )  # fmt: skip


# --- in memory and over stdio ---------------------------------------------------------------


@dataclass
class Transport:
    label: str
    protocol: str
    floor: Cell
    get_card: Cell
    create_card: Cell


def _quiet_logging() -> None:
    """Logging as ``agentcard-mcp`` sets it up (cli.main: httpx at WARNING, so the embedded
    issuer's requests are not logged one line each), minus our start-up warning."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("agentcard_mcp").setLevel(logging.ERROR)


async def bench_memory(home: Path, n: tuple[int, int], mode: str) -> Transport:
    from agentcard_mcp.server import create_server
    from agentcard_mcp.settings import Settings

    server = create_server(Settings(issuer="sandbox", home=home))
    async with Client(server, mode=mode) as client, Client(floor_server(), mode=mode) as floor:
        card_id = (await call(client, "create_card", CREATE_ARGS))["id"]
        cells = tool_cells("in-memory", client, floor, card_id, n)
        await run_interleaved(cells, ROUNDS)
        return Transport("in-memory", client.protocol_version, *cells)


@contextlib.asynccontextmanager
async def stdio_session(
    command: str, args: list[str], env: dict[str, str], errlog: TextIO, mode: str
) -> AsyncIterator[tuple[Client, int | None]]:
    """A Client on a spawned stdio server; yields (client, server pid or None)."""
    before = _children()
    params = StdioServerParameters(command=command, args=args, env=env, cwd=env["AGENTCARD_HOME"])
    async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
        spawned = _children() - before
        yield client, (spawned.pop() if len(spawned) == 1 else None)


async def bench_stdio(home: Path, n: tuple[int, int], mode: str, errlog: TextIO) -> Transport:
    env = {
        "AGENTCARD_HOME": str(home),
        "AGENTCARD_ISSUER": "sandbox",
        "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
    }
    async with (
        stdio_session(sys.executable, [str(HERE), "--serve-floor"], env, errlog, mode) as (
            floor,
            floor_pid,
        ),
        stdio_session(agentcard_command(), [], env, errlog, mode) as (client, server_pid),
    ):
        if server_pid is None or floor_pid is None:
            print("  (server process not found: stdio cpu columns count this process only)",
                  file=sys.stderr)  # fmt: skip
        card_id = (await call(client, "create_card", CREATE_ARGS))["id"]
        cells = tool_cells(
            "stdio", client, floor, card_id, n, server_pid=server_pid, floor_pid=floor_pid
        )
        await run_interleaved(cells, ROUNDS)
        return Transport("stdio", client.protocol_version, *cells)


def _server_env(home: Path) -> dict[str, str]:
    """This environment without AGENTCARD_* settings, on the sandbox in ``home``. Spawned
    servers run in ``home``'s parent, so no .env file of ours is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCARD_")}
    return {**env, "AGENTCARD_HOME": str(home), "AGENTCARD_ISSUER": "sandbox"}


def agentcard_command() -> str:
    """The installed console script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("agentcard-mcp")
    return str(beside) if beside.exists() else "agentcard-mcp"


# --- raw JSON-RPC over stdio: cold start and the tools/list bytes ---------------------------


class RawStdio:
    """A server process spoken to in newline-delimited JSON-RPC, by hand."""

    def __init__(self, command: list[str], env: dict[str, str], errlog: TextIO) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=env,
            cwd=Path(env["AGENTCARD_HOME"]).parent,
        )  # fmt: skip
        self._next_id = 0

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False
    ) -> int:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not notify:
            self._next_id += 1
            message["id"] = self._next_id
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        return self._next_id

    def response(self, request_id: int) -> tuple[bytes, dict[str, Any]]:
        """The raw line (newline stripped) answering ``request_id``, and its decoded form;
        notifications and anything else on the way are skipped."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server closed stdout (exit code {self.process.poll()})")
            raw = line.rstrip(b"\r\n")
            message = json.loads(raw)
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"JSON-RPC error: {message['error']}")
                return raw, message["result"]

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[bytes, Any]:
        return self.response(self.send(method, params))

    def initialize(self) -> None:
        _, result = self.request(
            "initialize",
            {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "agentcard-bench", "version": "0"},
            },
        )
        if result.get("protocolVersion") != LATEST_HANDSHAKE_VERSION:
            raise RuntimeError(f"initialize answered {result.get('protocolVersion')!r}")
        self.send("notifications/initialized", notify=True)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def raw_stdio(
    command: list[str], env: dict[str, str], errlog: TextIO, timeout: float = 60.0
) -> Iterator[RawStdio]:
    server = RawStdio(command, env, errlog)
    watchdog = threading.Timer(timeout, server.process.kill)  # a hung server cannot hang us
    watchdog.start()
    try:
        yield server
    finally:
        watchdog.cancel()
        server.close()


def _first_result(command: list[str], env: dict[str, str], tool: str, errlog: TextIO) -> float:
    """Seconds from spawning ``command`` to the result of its first tools/call."""
    began = time.perf_counter()
    with raw_stdio(command, env, errlog) as server:
        server.initialize()
        _, result = server.request("tools/call", {"name": tool, "arguments": {}})
        elapsed = time.perf_counter() - began
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result}")
    return elapsed


@dataclass
class ColdStart:
    server: list[float]
    floor: list[float]
    first_ever: float  # agentcard-mcp on an empty AGENTCARD_HOME, with its tools/list on the way

    @property
    def ratio(self) -> float:
        return statistics.median(self.server) / statistics.median(self.floor)


@dataclass
class ToolsList:
    wire_bytes: int
    tools: list[dict[str, Any]]

    def per_tool(self) -> list[tuple[str, int]]:
        return sorted(((t["name"], _json_bytes(t)) for t in self.tools), key=lambda x: -x[1])

    def per_part(self) -> dict[str, int]:
        parts: dict[str, int] = {}
        for tool in self.tools:
            for key, value in tool.items():
                parts[key] = parts.get(key, 0) + len(json.dumps(key)) + 1 + _json_bytes(value)
        return dict(sorted(parts.items(), key=lambda x: -x[1]))


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def tools_list_and_cold_start(home: Path, reps: int, errlog: TextIO) -> tuple[ToolsList, ColdStart]:
    env = _server_env(home)
    server_cmd = [agentcard_command()]
    floor_cmd = [sys.executable, str(HERE), "--serve-floor"]

    # First spawn, on an empty home: provisions the sandbox, so later spawns start warm.
    began = time.perf_counter()
    with raw_stdio(server_cmd, env, errlog) as server:
        server.initialize()
        line, result = server.request("tools/list")
        server.request("tools/call", {"name": "get_limits", "arguments": {}})
        first_ever = time.perf_counter() - began
    tools = result["tools"]
    if len(tools) != 10:
        raise RuntimeError(f"tools/list listed {len(tools)} tools, not 10")
    listing = ToolsList(len(line), tools)

    server_times: list[float] = []
    floor_times: list[float] = []
    for i in range(reps):  # alternated, floor first, so drifting load hits both alike
        floor_times.append(_first_result(floor_cmd, env, "noop", errlog))
        server_times.append(_first_result(server_cmd, env, "get_limits", errlog))
        print(f"    cold start {i + 1}/{reps}", file=sys.stderr, flush=True)
    return listing, ColdStart(server_times, floor_times, first_ever)


# --- output ---------------------------------------------------------------------------------


def print_header(args: argparse.Namespace, n_memory: tuple[int, int], n_stdio: tuple[int, int],
                 reps: int) -> None:  # fmt: skip
    print("MCP tool-call benchmark: agentcard-mcp on the embedded sandbox issuer")
    print(
        f"  python {platform.python_version()}, mcp {mcp_version()}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; client mode={args.mode!r}"
    )
    print(f"  at the start: {load_average()} (other work on the machine inflates every number)")
    print(
        f"  in memory: n={n_memory[0]} get_card and noop, n={n_memory[1]} create_card; over "
        f"stdio: n={n_stdio[0]} / {n_stdio[1]}; {ROUNDS} interleaved rounds after warm-up; one "
        "sequential client"
    )
    print(
        "  floor: a bare MCPServer whose noop tool returns 'ok', reached the same way in the "
        "same rounds (over stdio: its own process)"
    )
    print(f"  cold start: {reps} spawns of each, alternated; tools/list: legacy initialize "
          f"({LATEST_HANDSHAKE_VERSION}), the raw response line")  # fmt: skip
    print()


def print_calls(transports: Sequence[Transport]) -> bool:
    head = (
        f"{'transport':<9} {'tool':<11} {'n':>5} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu ms':>6} | {'floor/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6} | "
        f"{'x p50':>6} {'x rate':>6} {'x cpu':>6} {'target':>7} {'result':>6}"
    )
    print("Tool calls (calls/s = 1 / mean latency of one sequential client; cpu = client + "
          "server CPU per call; x = tool / floor)")  # fmt: skip
    print(head)
    print("-" * len(head))
    passed = True
    for t in transports:
        f = t.floor
        for cell in (t.get_card, t.create_card):
            x_p50, x_rate, x_cpu = cell.p50 / f.p50, f.rate / cell.rate, cell.cpu_ms / f.cpu_ms
            target, result = "", ""
            if t.label == "in-memory" and cell.name == "get_card":
                ok = x_p50 <= GET_TARGET and x_rate <= GET_TARGET
                passed = passed and ok
                target, result = f"<= {GET_TARGET:g}x", verdict(ok)
            print(
                f"{t.label:<9} {cell.name:<11} {cell.count:>5} {cell.rate:>8.0f} "
                f"{cell.p50:>7.2f} {cell.p99:>7.2f} {cell.cpu_ms:>6.2f} | {f.rate:>7.0f} "
                f"{f.p50:>7.2f} {f.p99:>7.2f} {f.cpu_ms:>6.2f} | {x_p50:>5.1f}x {x_rate:>5.1f}x "
                f"{x_cpu:>5.1f}x {target:>7} {result:>6}"
            )
    print(
        "  protocol: "
        + ", ".join(f"{t.label} {t.protocol}" for t in transports)
        + "; create_card closes its cards between batches of "
        f"{CREATE_BATCH}, untimed (the sandbox holds 25 cards)"
    )
    return passed


def print_cold(cold: ColdStart) -> bool:
    ok = cold.ratio <= COLD_TARGET
    server, floor = statistics.median(cold.server), statistics.median(cold.floor)
    print("stdio cold start: spawn -> initialize -> first tools/call result (seconds)")
    print(f"  agentcard-mcp (get_limits): median {server:.3f}  min {min(cold.server):.3f}  "
          f"all {' '.join(f'{s:.3f}' for s in cold.server)}")  # fmt: skip
    print(f"  floor server  (noop):       median {floor:.3f}  min {min(cold.floor):.3f}  "
          f"all {' '.join(f'{s:.3f}' for s in cold.floor)}")  # fmt: skip
    print(
        f"  ratio {cold.ratio:.2f}x (+{(server - floor) * 1e3:.0f} ms), target <= "
        f"{COLD_TARGET:g}x: {verdict(ok)}"
    )
    print(f"  (first spawn on an empty AGENTCARD_HOME, provisioning the sandbox and listing the "
          f"tools on the way: {cold.first_ever:.3f} s; not counted)")  # fmt: skip
    return ok


def print_tools_list(listing: ToolsList) -> bool:
    ok = listing.wire_bytes < TOOLS_LIST_TARGET
    print(
        f"tools/list response on the wire: {listing.wire_bytes} bytes "
        f"({listing.wire_bytes / 1024:.1f} KiB; + 1 newline), {len(listing.tools)} tools, "
        f"target < {TOOLS_LIST_TARGET}: "
        f"{verdict(ok)}"
    )
    print("  per tool: " + ", ".join(f"{name} {size}" for name, size in listing.per_tool()))
    print("  by field, all tools: " + ", ".join(f"{k} {v}" for k, v in listing.per_part().items()))
    return ok


# --- profiling ------------------------------------------------------------------------------


async def profile_get_card(tmp: Path, n: int, top: int) -> None:
    """The layers under an in-memory get_card, measured interleaved, then cProfile of it."""
    import cProfile
    import pstats

    from agentcard_mcp.issuers.agentcard import AgentCardIssuer
    from agentcard_mcp.issuers.base import CardSpec
    from agentcard_mcp.issuers.connect import open_issuer
    from agentcard_mcp.server import create_server
    from agentcard_mcp.settings import Settings

    server = create_server(Settings(issuer="sandbox", home=tmp / "profile-mcp"))
    bare = floor_server()
    async with (
        Client(server) as client,
        Client(bare) as floor,
        open_issuer(Settings(issuer="sandbox", home=tmp / "profile-issuer")) as issuer,
    ):
        assert isinstance(issuer, AgentCardIssuer)
        card_id = (await call(client, "create_card", CREATE_ARGS))["id"]
        args = {"card_id": card_id}
        spec = CardSpec(await issuer.default_agent_id(), "bench", 50_000, None, [])
        direct_id = (await issuer.create_card(spec, "bench-profile")).id
        http = issuer.http.client
        card_result = await client.call_tool("get_card", args)
        noop_result = await floor.call_tool("noop", {})

        async def mcp_get(_: int) -> None:
            await call(client, "get_card", args)

        async def mcp_noop(_: int) -> None:
            await call(floor, "noop", {})

        async def server_get(_: int) -> None:
            await server.call_tool("get_card", args)

        async def server_noop(_: int) -> None:
            await bare.call_tool("noop", {})

        async def check_get(_: int) -> None:
            await client.session.validate_tool_result("get_card", card_result)

        async def check_noop(_: int) -> None:
            await floor.session.validate_tool_result("noop", noop_result)

        async def issuer_get(_: int) -> None:
            await issuer.get_card(direct_id)

        async def raw_get(_: int) -> None:
            response = await http.get(f"/v1/cards/{direct_id}")
            if response.status_code != 200:
                raise RuntimeError(response.text)
            response.json()

        warm = max(30, n // 10)

        def pair(get: Callable[[int], Awaitable[None]], noop: Callable[[int], Awaitable[None]]
                 ) -> tuple[Cell, Cell]:  # fmt: skip
            return Cell("get_card", get, n, warm), Cell("noop", noop, n, warm)

        whole, f_whole = pair(mcp_get, mcp_noop)
        direct, f_direct = pair(server_get, server_noop)
        check, f_check = pair(check_get, check_noop)
        alone, raw = Cell("issuer", issuer_get, n, warm), Cell("raw", raw_get, n, warm)
        await run_interleaved(
            [whole, f_whole, direct, f_direct, check, f_check, alone, raw], ROUNDS
        )

        def ms(cell: Cell | None) -> str:
            return "-" if cell is None else f"{cell.p50:.3f} ({cell.cpu_ms:.3f})"

        print(f"\nProfile 1: the layers under an in-memory get_card, n={n} each, interleaved; "
              "p50 ms (cpu ms per call)")  # fmt: skip
        print(f"  {'get_card':>15} {'noop (floor)':>15}  layer")
        for get, noop, name in (
            (whole, f_whole, "the whole call, through Client (in memory)"),
            (direct, f_direct, "server.call_tool() alone: no client, no dispatch"),
            (check, f_check, "client-side output-schema check (session.validate_tool_result)"),
            (alone, None, "issuer.get_card(): the embedded sandbox, JSON, Card model"),
            (raw, None, "GET /v1/cards/{id} through httpx.ASGITransport (raw)"),
        ):
            print(f"  {ms(get):>15} {ms(noop):>15}  {name}")
        sdk = whole.p50 - direct.p50 - check.p50
        f_sdk = f_whole.p50 - f_direct.p50 - f_check.p50
        print(
            f"  => SDK round trip (whole - server.call_tool - schema check): get_card {sdk:.3f}, "
            f"noop {f_sdk:.3f} ms; the tool on the server minus the issuer call: "
            f"{direct.p50 - alone.p50:.3f} ms; the issuer call alone: {alone.p50:.3f} ms "
            f"= {alone.p50 / f_whole.p50:.1f}x the whole floor call"
        )

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await call(client, "get_card", args)
        profiler.disable()
        floor_profiler = cProfile.Profile()
        floor_profiler.enable()
        for _ in range(n):
            await call(floor, "noop", {})
        floor_profiler.disable()
    stats = pstats.Stats(profiler)
    floor_stats = pstats.Stats(floor_profiler)
    print(f"\nProfile 2: cProfile of {n} in-memory get_card calls (and {n} floor noops), "
          "self time by package, ms per call (the profiler inflates everything)")  # fmt: skip
    mine, theirs = _by_package(stats, n), _by_package(floor_stats, n)
    print(f"  {'get_card':>9} {'noop':>9}  package")
    for package, cost in sorted(mine.items(), key=lambda x: -x[1])[:14]:
        print(f"  {cost:>9.3f} {theirs.get(package, 0.0):>9.3f}  {package}")
    print(f"  {sum(mine.values()):>9.3f} {sum(theirs.values()):>9.3f}  (all)")
    rows = _functions(stats, n)
    print(f"\n  get_card's top {top} functions by self time, ms per call (calls: per get_card; a "
          "coroutine counts once per resumption):")  # fmt: skip
    print(f"  {'self':>7} {'cum':>7} {'calls':>6}  function")
    for cum, own, calls, where in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"  {own:>7.3f} {cum:>7.3f} {calls:>6.1f}  {where}")
    print("\n  agentcard_mcp's own functions by cumulative time (what they include), ms per call:")
    for cum, own, calls, where in sorted((r for r in rows if r[3].startswith("src/")),
                                         key=lambda r: -r[0])[:12]:  # fmt: skip
        print(f"  {own:>7.3f} {cum:>7.3f} {calls:>6.1f}  {where}")


def _raw_stats(stats: Any) -> dict[tuple[str, int, str], tuple[int, int, float, float, Any]]:
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats
    return raw


def _package(filename: str) -> str:
    if filename.startswith(("~", "<")):
        return "builtins (C functions)"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if str(REPO / "src") in filename:
        return "agentcard_mcp"
    if "python3" in filename:
        return f"stdlib {path.stem if path.parent.name.startswith('python3') else path.parent.name}"
    return path.name


def _by_package(stats: Any, n: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _calls, tottime, _cum, _callers) in _raw_stats(
        stats
    ).items():
        package = _package(filename)
        if package.startswith("builtins") and "sqlite3" in name:
            package = "sqlite3 (C)"
        totals[package] = totals.get(package, 0.0) + tottime * 1e3 / n
    return totals


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _functions(stats: Any, n: int) -> list[tuple[float, float, float, str]]:
    skip = ("asyncio/events.py", "asyncio/base_events.py", "<frozen", "{method 'run'")
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cum, _c) in _raw_stats(stats).items():
        where = f"{_short(filename)}:{line} {name}" if filename != "~" else name
        if any(s in where for s in skip):
            continue
        rows.append((cum * 1e3 / n, tottime * 1e3 / n, calls / n, where))
    return rows


STARTUP_SERVER = """
import json, sys, time, asyncio
t0 = time.perf_counter()
import agentcard_mcp.cli
t1 = time.perf_counter()
from agentcard_mcp.server import create_server
t2 = time.perf_counter()
from agentcard_mcp.settings import Settings
settings = Settings()
t3 = time.perf_counter()
server = create_server(settings)
t4 = time.perf_counter()
# What the lifespan does (issuers.connect._embedded_sandbox), step by step.
import httpx
from agentcard_mcp.sandbox import Store, create_app, provision
async def lifespan():
    s0 = time.perf_counter()
    db = settings.ensure_home() / "sandbox.db"
    store = Store(db)
    s1 = time.perf_counter()
    provision(store, db)
    s2 = time.perf_counter()
    app = create_app(store)
    s3 = time.perf_counter()
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport):
        s4 = time.perf_counter()
    store.close()
    return s1 - s0, s2 - s1, s3 - s2, s4 - s3
before = {name.split(".")[0] for name in sys.modules}
store, prov, app, enter = asyncio.run(lifespan())
imported = sorted({name.split(".")[0] for name in sys.modules} - before)
import ssl
t5 = time.perf_counter()
ssl.create_default_context()
t6 = time.perf_counter()
print(json.dumps({"import agentcard_mcp.cli": t1 - t0, "import agentcard_mcp.server": t2 - t1,
                  "Settings()": t3 - t2, "create_server() (10 tools)": t4 - t3,
                  "lifespan: Store() (open, schema)": store, "provision()": prov,
                  "create_app()": app, "app lifespan + httpx client": enter,
                  "(after: one more ssl.create_default_context())": t6 - t5,
                  "imported during the lifespan": imported}))
"""


STARTUP_FLOOR = """
import json, time
t0 = time.perf_counter()
from mcp.server import MCPServer
t1 = time.perf_counter()
floor = MCPServer("floor")
@floor.tool()
async def noop() -> str:
    return "ok"
t2 = time.perf_counter()
print(json.dumps({"import mcp.server": t1 - t0, "MCPServer() + 1 tool": t2 - t1}))
"""


def _python(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], env=env, cwd=Path(env["AGENTCARD_HOME"]).parent,
        capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip


def _importtime(code: str, env: dict[str, str]) -> dict[str, float]:
    """Self import time in ms by top-level package, from ``python -X importtime``."""
    totals: dict[str, float] = {}
    for line in _python(code, env, "-X", "importtime").stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, module = line.removeprefix("import time:").split("|")
        package = module.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1e3
    return totals


def profile_startup(tmp: Path, reps: int) -> None:
    """Startup work of each server in a fresh interpreter, then import time by package."""
    home = tmp / "profile-startup"
    env = _server_env(home)
    _python(STARTUP_SERVER, env)  # provisions the home, so the runs below start warm
    server_runs: list[dict[str, Any]] = []
    floor_runs: list[dict[str, Any]] = []
    for _ in range(reps):
        floor_runs.append(json.loads(_python(STARTUP_FLOOR, env).stdout))
        server_runs.append(json.loads(_python(STARTUP_SERVER, env).stdout))
    print(f"\nProfile 3: startup work in a fresh interpreter, median of {reps}, ms")
    imported = server_runs[0].pop("imported during the lifespan", [])
    for run in server_runs[1:]:
        run.pop("imported during the lifespan", None)
    for label, runs in (("agentcard-mcp", server_runs), ("floor", floor_runs)):
        steps = {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}
        total = sum(v for k, v in steps.items() if not k.startswith("("))
        print(f"  {label}: " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
              + f"; total {total:.0f}")  # fmt: skip
    print(f"  packages first imported during the agentcard-mcp lifespan: {', '.join(imported)}")

    server_code = "import agentcard_mcp.cli, agentcard_mcp.server"
    floor_code = "import argparse, logging; from mcp.server import MCPServer"
    server_imports: list[dict[str, float]] = []
    floor_imports: list[dict[str, float]] = []
    for _ in range(reps):
        floor_imports.append(_importtime(floor_code, env))
        server_imports.append(_importtime(server_code, env))
    packages = set().union(*server_imports, *floor_imports)

    def best(runs: list[dict[str, float]], package: str) -> float:
        return min(r.get(package, 0.0) for r in runs)

    rows = sorted(
        ((best(server_imports, p), best(floor_imports, p), p) for p in packages),
        key=lambda r: -(r[0] - r[1]),
    )
    print(
        f"\nProfile 4: python -X importtime, self time by top-level package, ms (best of {reps}):"
        f"\n  `{server_code}` vs the floor's `{floor_code}`"
    )
    print(f"  {'server':>8} {'floor':>8} {'extra':>8}  package")
    for own, floor, package in rows[:16]:
        print(f"  {own:>8.1f} {floor:>8.1f} {own - floor:>+8.1f}  {package}")
    total_server = statistics.median(sum(r.values()) for r in server_imports)
    total_floor = statistics.median(sum(r.values()) for r in floor_imports)
    print(
        f"  all imports: server {total_server:.0f} ms, floor {total_floor:.0f} ms (median; "
        "-X importtime itself adds overhead)"
    )


# --- entry point ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/tool_calls.py",
        description="Benchmark agentcard-mcp's MCP tools on the embedded sandbox issuer: "
        "get_card and create_card calls/s and p50/p99 in memory and over stdio, each next to "
        "a bare MCPServer no-op tool (the floor) measured the same way in the same run; stdio "
        "cold start against the floor process; the tools/list response size on the wire. "
        f"Targets: in-memory get_card within {GET_TARGET:g}x the floor (p50 and calls/s), cold "
        f"start within {COLD_TARGET:g}x, tools/list < {TOOLS_LIST_TARGET} bytes. Run it from "
        "the repository root on an otherwise idle machine.",
        epilog="examples:\n"
        "  python bench/tool_calls.py              # the full run (75 s on a busy 2-core machine)\n"
        "  python bench/tool_calls.py --quick      # a smoke run (about 25 s)\n"
        "  python bench/tool_calls.py --quick --profile   # and where the time goes\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: fewer calls, 3 cold starts")  # fmt: skip
    parser.add_argument("--n", type=int, default=None,
                        help="get_card and noop calls per cell, in memory and over stdio; "
                        "create_card then gets n/8, at least 20 (default: 5000 and 800 in "
                        "memory, 2000 and 500 over stdio; --quick 500/100 and 200/60)")  # fmt: skip
    parser.add_argument("--cold", type=int, default=None,
                        help=f"cold starts of each server (default {DEFAULT_COLD}, "
                        f"{QUICK_COLD} with --quick)")  # fmt: skip
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto",
                        help="the Client's connect mode, in memory and over stdio (default "
                        "auto: 2026-07-28 where the server speaks it)")  # fmt: skip
    parser.add_argument("--skip", choices=["memory", "stdio", "cold"], action="append",
                        default=[], help="leave a part out (repeatable)")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, show where the time goes: get_card's layers and "
                        "cProfile, startup steps, import time by package")  # fmt: skip
    parser.add_argument("--profile-top", type=int, default=25,
                        help="functions in the cProfile listing (default 25)")  # fmt: skip
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 10:
        parser.error("--n must be at least 10")
    if args.cold is not None and args.cold < 1:
        parser.error("--cold must be at least 1")
    return args


async def measure_calls(
    tmp: Path, args: argparse.Namespace, n: dict[str, tuple[int, int]], errlog: TextIO
) -> list[Transport]:
    transports = []
    if "memory" not in args.skip:
        print("  in memory ...", file=sys.stderr, flush=True)
        transports.append(await bench_memory(tmp / "memory", n["memory"], args.mode))
    if "stdio" not in args.skip:
        print("  over stdio ...", file=sys.stderr, flush=True)
        transports.append(await bench_stdio(tmp / "stdio", n["stdio"], args.mode, errlog))
    return transports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_floor:
        _serve_floor()
        return 0
    _quiet_logging()
    n = dict(QUICK_N if args.quick else DEFAULT_N)
    if args.n is not None:
        n = {k: (args.n, max(20, args.n // 8)) for k in n}
    reps = args.cold or (QUICK_COLD if args.quick else DEFAULT_COLD)
    print_header(args, n["memory"], n["stdio"], reps)
    results: list[tuple[str, bool]] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as name:
        tmp = Path(name)
        (tmp / "stdio").mkdir()  # the stdio servers' home and working directory
        # The benchmark measures calls, not the operator's ceilings: a policy that stays out of
        # the way (read by in-memory servers from the environment, passed on to stdio ones).
        os.environ["AGENTCARD_POLICY_FILE"] = str(PERMISSIVE_POLICY)
        errlog_path = tmp / "servers.log"
        with errlog_path.open("w") as errlog:
            try:
                if "cold" not in args.skip:
                    print("  tools/list and cold starts ...", file=sys.stderr, flush=True)
                    listing, cold = tools_list_and_cold_start(tmp / "cold", reps, errlog)
                transports = asyncio.run(measure_calls(tmp, args, n, errlog))
            except Exception:
                errlog.flush()
                print(f"server stderr:\n{errlog_path.read_text()[-4000:]}", file=sys.stderr)
                raise
        if transports:
            results.append(("in-memory get_card within 3x floor", print_calls(transports)))
            print()
        if "cold" not in args.skip:
            results.append(("stdio cold start within 1.3x floor", print_cold(cold)))
            print()
            results.append(("tools/list under 12 KB", print_tools_list(listing)))
            print()
        print(
            "targets: "
            + ", ".join(f"{label}: {verdict(ok)}" for label, ok in results)
            + f"\n(measured in {time.perf_counter() - began:.0f} s; at the end: {load_average()})"
        )
        if args.profile:
            asyncio.run(profile_get_card(tmp, n["memory"][0] // 3, args.profile_top))
            profile_startup(tmp, reps)
            print(f"\n(profiled; at the end: {load_average()})")
        if not all(ok for _, ok in results) and not args.profile:
            print("a target was missed: run with --profile to see where the time goes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
