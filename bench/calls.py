"""Tool calls through the MCP client, next to a bare MCP server's no-op tool.

- In memory: ``get_card`` (and, in the full run, ``create_card``) through
  ``Client(create_server(...))`` on the embedded sandbox, interleaved call by call with the
  floor ``Client(floor_server())``. Target: ``get_card``'s p50 within 3x the floor's.
- Stdio cold start: from spawning the process to its first tool result, spoken by hand in
  newline-delimited JSON-RPC (``initialize``, ``notifications/initialized``, one
  ``tools/call``): ``agentcard-mcp`` (``get_limits``) against a bare server process (``noop``),
  spawned alternately, medians, our package's bytecode written first. Target: within 1.3x.
- ``tools/list``: the exact bytes of the response line on stdout. Target: under 10 KB.
"""

from __future__ import annotations

import compileall
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types.version import LATEST_HANDSHAKE_VERSION

import agentcard_mcp

from .core import Figure, Step, call, clean_env, floor_server, interleaved, pct_ms, sandbox_settings

BENCH = "calls"
FLOOR_PROCESS = (
    "from mcp.server import MCPServer\n"
    "floor = MCPServer('floor')\n"
    "@floor.tool()\n"
    "async def noop() -> str:\n"
    "    return 'ok'\n"
    "floor.run('stdio')\n"
)


async def in_memory(home: Path, quick: bool) -> list[Figure]:
    from agentcard_mcp.server import create_server

    n = 300 if quick else 3000
    settings = sandbox_settings(home)
    async with Client(create_server(settings)) as client, Client(floor_server()) as floor:
        card_id = (await call(client, "create_card", {"purpose": "bench", "daily_limit_cents": 1}))[
            "id"
        ]

        async def get_card() -> int:
            began = time.perf_counter_ns()
            card = await call(client, "get_card", {"card_id": card_id})
            assert card["id"] == card_id
            return time.perf_counter_ns() - began

        async def create_card() -> int:
            began = time.perf_counter_ns()
            card = await call(client, "create_card", {"purpose": "b", "daily_limit_cents": 100})
            elapsed = time.perf_counter_ns() - began
            await call(client, "close_card", {"card_id": card["id"]})  # untimed
            return elapsed

        async def noop() -> int:
            began = time.perf_counter_ns()
            result = await floor.call_tool("noop", {})
            assert not result.is_error
            return time.perf_counter_ns() - began

        steps: dict[str, Step] = {"get_card": get_card, "noop": noop}
        if not quick:
            steps["create_card"] = create_card
        samples = await interleaved(steps, n, warmup=n // 10)
    floor_p50 = pct_ms(samples["noop"], 0.5)
    get = pct_ms(samples["get_card"], 0.5)
    figures = [
        Figure(BENCH, "in-memory get_card p50", get, "ms", floor_p50, "<= 3x floor",
               get <= 3 * floor_p50),
    ]  # fmt: skip
    if "create_card" in samples:
        create = pct_ms(samples["create_card"], 0.5)
        figures.append(Figure(BENCH, "in-memory create_card p50", create, "ms", floor_p50))
    return figures


class RawStdio:
    """A server process spoken to in newline-delimited JSON-RPC, by hand."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=cwd,
        )  # fmt: skip
        self.next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        if method.startswith("notifications/"):
            del message["id"]
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        return self.next_id

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[bytes, Any]:
        """The raw response line (newline stripped) and its result; other lines skipped."""
        request_id = self.send(method, params)
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            message = json.loads(line)
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return line.rstrip(b"\r\n"), message["result"]
        raise RuntimeError(f"the server closed stdout (exit {self.process.poll()})")

    def initialize(self) -> None:
        info = {"name": "bench", "version": "0"}
        params = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}}
        self.request("initialize", {**params, "clientInfo": info})
        self.send("notifications/initialized")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def first_result(command: list[str], env: dict[str, str], cwd: Path, tool: str) -> float:
    """Seconds from spawning ``command`` to the result of its first tools/call."""
    began = time.perf_counter()
    server = RawStdio(command, env, cwd)
    try:
        server.initialize()
        _, result = server.request("tools/call", {"name": tool, "arguments": {}})
        if result.get("isError"):
            raise RuntimeError(f"{tool}: {result}")
        return time.perf_counter() - began
    finally:
        server.close()


def stdio(home: Path, quick: bool) -> list[Figure]:
    env = clean_env(AGENTCARD_HOME=str(home), AGENTCARD_ISSUER="sandbox")
    agentcard = [str(Path(sys.executable).with_name("agentcard-mcp"))]
    floor = [sys.executable, "-c", FLOOR_PROCESS]
    # Timed as a host runs an installed package, with its bytecode (pip writes it at install,
    # Python at the first start): a checkout run under PYTHONDONTWRITEBYTECODE=1 would compile
    # every module on every spawn, which the floor, the SDK as installed, never does.
    compileall.compile_dir(Path(agentcard_mcp.__file__).parent, quiet=1)
    first = RawStdio(agentcard, env, home.parent)  # provisions the home: later spawns are warm
    try:
        first.initialize()
        line, listed = first.request("tools/list")
    finally:
        first.close()
    size = len(line)
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(7 if quick else 15):  # alternated, floor first; a median of a few is noise
        bare.append(first_result(floor, env, home.parent, "noop"))
        ours.append(first_result(agentcard, env, home.parent, "get_limits"))
    cold, floor_cold = statistics.median(ours), statistics.median(bare)
    return [
        Figure(BENCH, "stdio cold start (median)", cold * 1e3, "ms", floor_cold * 1e3,
               "<= 1.3x floor", cold <= 1.3 * floor_cold),
        Figure(BENCH, f"tools/list bytes ({len(listed['tools'])} tools)", size, "B", None,
               "< 10240", size < 10240),
    ]  # fmt: skip


async def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as tmp:
        figures = await in_memory(Path(tmp) / "memory", quick)
        return figures + stdio(Path(tmp) / "stdio", quick)
