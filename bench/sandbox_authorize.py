"""Benchmark (not a test): how fast the embedded sandbox issuer decides an authorization.

Sends ``POST /v1/_test/swipe`` with a fresh Idempotency-Key per request to one card whose daily
limit is huge, so every swipe approves except a fixed share that exceeds the per-authorization
maximum and declines (``per_auth_limit_exceeded``). Each decision is a full sandbox call:
authenticate, idempotency lookup, body validation, the decision, the ledger row, the spend
update, the stored response and the commit (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL,
``synchronous = FULL``).

Every cell is measured next to its floor: a bare Starlette endpoint that reads the same
request and returns a fixed JSON body, reached the same way (same client, same transport, same
kind of server, same concurrency) in the same run, so the difference is what the decision
itself costs.

Modes:
  inprocess  httpx.ASGITransport straight into the app (no sockets)
  http       uvicorn on 127.0.0.1; by default the standalone ``agentcard-mcp sandbox serve``
             process (and the floor in its own uvicorn process too), so the client and the
             server do not share a GIL. ``--http-server thread`` serves both apps in a thread
             of this process instead (what the tests do).

Run from the repository root:  python bench/sandbox_authorize.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import platform
import pstats
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/http.py would then shadow the
# standard library's http package (httpx, uvicorn and starlette import it): the repository root
# takes bench/'s place, which also makes bench/ and tests/ importable.
if sys.path and Path(sys.path[0] or os.curdir).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
elif str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import anyio  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from tests.support import (  # noqa: E402
    FakeClock,
    listening_process,
    open_sandbox,
    serve_in_thread,
    standalone_server,
)

from bench.machine import load_average  # noqa: E402
from bench.process_cpu import cpu_seconds  # noqa: E402

SWIPE = "/v1/_test/swipe"
TARGET_MS = {"inprocess": 5.0, "http": 15.0}
DEFAULT_N = 2000
QUICK_N = 300
DEFAULT_CONCURRENCY = 8
DECLINE_EVERY = 10  # every 10th swipe declines: amount over the per-authorization maximum
APPROVED_CENTS = 125
PER_AUTH_MAX_CENTS = 1_000_000
DECLINED_CENTS = PER_AUTH_MAX_CENTS + 1
DAILY_LIMIT_CENTS = 1_000_000_000_000  # validation.MAX_CENTS: never reached by a run

# What the floor answers: about the size of a real swipe response.
FLOOR_BODY = (
    b'{"agentcard_outcome": {"auth_id": "auth_0123456789abcdef01234567", "decision": "approve", '
    b'"reason": "approved", "current_daily_spend_cents": 125, '
    b'"decided_at": "2026-05-11T07:00:00Z"}, "approved": true}'
)


# --- the floor: the same stack with nothing behind the route --------------------------------


async def _floor_endpoint(request: Request) -> Response:
    await request.body()
    return Response(FLOOR_BODY, 200, media_type="application/json")


def floor_app() -> Starlette:
    return Starlette(routes=[Route(SWIPE, _floor_endpoint, methods=["POST"])])


def _serve_floor() -> None:
    """The floor as its own process, configured like ``sandbox serve`` (runner.serve)."""
    config = uvicorn.Config(floor_app(), host="127.0.0.1", port=0, log_level="info")
    uvicorn.Server(config).run()


@contextlib.contextmanager
def floor_process(timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """Starts ``_serve_floor`` in a child process; yields its base URL and process id."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-floor"]
    with listening_process(command, env=dict(os.environ), timeout=timeout) as served:
        yield served.base_url, served.process.pid


# --- measuring ------------------------------------------------------------------------------

Send = Callable[[httpx.AsyncClient, int], Awaitable[None]]


@dataclass
class Sample:
    n: int
    seconds: float
    latencies_ns: list[int]
    cpu_seconds: float = math.nan  # client + server CPU over the run, all threads

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.n * 1e3

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


async def drive(clients: Sequence[httpx.AsyncClient], send: Send, start: int, n: int) -> Sample:
    """Sends requests ``start .. start+n-1``: one worker per client, each sending its next
    request as soon as its previous one is answered (closed loop)."""
    indices = iter(range(start, start + n))
    latencies: list[int] = []

    async def worker(client: httpx.AsyncClient) -> None:
        for i in indices:  # shared: each request is sent exactly once
            began = time.perf_counter_ns()
            await send(client, i)
            latencies.append(time.perf_counter_ns() - began)

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(worker, client)
    return Sample(n, time.perf_counter() - began, latencies)


class Swiper:
    """Sends swipe ``i`` with its own Idempotency-Key and checks the decision it gets."""

    def __init__(self, card_id: str) -> None:
        self.card_id = card_id
        self.prefix = uuid.uuid4().hex[:12]
        self.reset()

    def reset(self) -> None:
        self.approved = 0
        self.declined = 0

    async def __call__(self, client: httpx.AsyncClient, i: int) -> None:
        decline = i % DECLINE_EVERY == 0
        response = await client.post(
            SWIPE,
            json={
                "card_id": self.card_id,
                "amount_cents": DECLINED_CENTS if decline else APPROVED_CENTS,
                "merchant": "Bench Coffee Roasters",
                "mcc": "restaurants",
            },
            headers={"Idempotency-Key": f"bench-{self.prefix}-{i}"},
        )
        if response.status_code != 200 or response.headers.get("idempotent-replayed"):
            raise RuntimeError(f"swipe {i}: {response.status_code} {response.text}")
        outcome = response.json()["agentcard_outcome"]
        expected = "per_auth_limit_exceeded" if decline else "approved"
        if outcome["reason"] != expected:
            raise RuntimeError(f"swipe {i}: expected {expected}, got {outcome}")
        if decline:
            self.declined += 1
        else:
            self.approved += 1


async def floor_send(client: httpx.AsyncClient, i: int) -> None:
    """The same request as a swipe, to the floor app."""
    response = await client.post(
        SWIPE,
        json={
            "card_id": "card_floor",
            "amount_cents": DECLINED_CENTS if i % DECLINE_EVERY == 0 else APPROVED_CENTS,
            "merchant": "Bench Coffee Roasters",
            "mcc": "restaurants",
        },
        headers={"Idempotency-Key": f"bench-floor-{i}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"floor {i}: {response.status_code} {response.text}")
    response.json()


@dataclass
class Target:
    """One way of reaching an app: makes ``count`` clients for it. ``server_pid`` is the
    serving process when it is not this one, so its CPU time is counted too."""

    clients: Callable[[int], list[httpx.AsyncClient]]
    server_pid: int | None = None


def inprocess_target(app: Starlette, api_key: str) -> Target:
    headers = {"Authorization": f"Bearer {api_key}"}
    return Target(
        lambda count: [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=headers
            )
            for _ in range(count)
        ]
    )


def http_target(base_url: str, api_key: str, server_pid: int | None = None) -> Target:
    headers = {"Authorization": f"Bearer {api_key}"}
    # One connection per client, kept alive: N clients are N connections.
    return Target(
        lambda count: [
            httpx.AsyncClient(
                base_url=base_url,
                headers=headers,
                timeout=30,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            for _ in range(count)
        ],
        server_pid,
    )


async def run_cell(
    target: Target,
    send: Send,
    concurrency: int,
    n: int,
    warmup: int,
    measuring: Callable[[], None] = lambda: None,
) -> Sample:
    """Warms up, calls ``measuring``, then measures ``n`` requests."""
    clients = target.clients(concurrency)
    try:
        await drive(clients, send, 0, warmup)
        measuring()
        cpu = cpu_seconds(target.server_pid)
        sample = await drive(clients, send, warmup, n)
        sample.cpu_seconds = cpu_seconds(target.server_pid) - cpu
        return sample
    finally:
        for client in clients:
            await client.aclose()


async def make_card(client: httpx.AsyncClient, agent_id: str) -> str:
    response = await client.post(
        "/v1/cards",
        json={
            "agent_id": agent_id,
            "daily_limit_cents": DAILY_LIMIT_CENTS,
            "per_auth_max_cents": PER_AUTH_MAX_CENTS,
            "nickname": "bench",
        },
    )
    if response.status_code != 200:
        raise RuntimeError(f"card create: {response.status_code} {response.text}")
    return str(response.json()["id"])


# --- the run --------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    concurrency: int
    decision: Sample
    floor: Sample
    approved: int
    declined: int

    @property
    def target_ms(self) -> float:
        return TARGET_MS[self.mode]


@dataclass
class Options:
    n: int
    warmup: int
    concurrencies: tuple[int, ...]
    http_server: str
    modes: tuple[str, ...]


async def bench_mode(
    mode: str, decision: Target, floor: Target, card_id: str, opts: Options
) -> list[Row]:
    rows = []
    for concurrency in opts.concurrencies:
        swiper = Swiper(card_id)
        # Floor first, then the decision, each warmed up on its own.
        floor_sample = await run_cell(floor, floor_send, concurrency, opts.n, opts.warmup)
        decision_sample = await run_cell(
            decision, swiper, concurrency, opts.n, opts.warmup, swiper.reset
        )
        rows.append(
            Row(mode, concurrency, decision_sample, floor_sample, swiper.approved, swiper.declined)
        )
        print(f"  measured {mode:<9} c={concurrency}", file=sys.stderr, flush=True)
    return rows


async def run_inprocess(tmp: Path, opts: Options) -> list[Row]:
    async with open_sandbox(tmp / "inprocess.db", "inprocess", FakeClock()) as sandbox:
        card_id = await make_card(sandbox.client, sandbox.credentials.agent_id)
        key = sandbox.credentials.api_key
        return await bench_mode(
            "inprocess",
            inprocess_target(sandbox.app, key),
            inprocess_target(floor_app(), key),
            card_id,
            opts,
        )


async def run_http(tmp: Path, opts: Options) -> list[Row]:
    if opts.http_server == "thread":
        async with open_sandbox(tmp / "http.db", "http", FakeClock()) as sandbox:
            card_id = await make_card(sandbox.client, sandbox.credentials.agent_id)
            key = sandbox.credentials.api_key
            with serve_in_thread(floor_app()) as floor_url:
                return await bench_mode(
                    "http",
                    http_target(sandbox.base_url, key),
                    http_target(floor_url, key),
                    card_id,
                    opts,
                )
    home = tmp / "home"
    home.mkdir()
    with (
        standalone_server(tmp / "http.db", home) as server,
        floor_process() as (floor_url, floor_pid),
    ):
        key = server.api_key()
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            agents = (await client.get("/v1/agents")).json()["data"]
            card_id = await make_card(client, agents[0]["id"])
        return await bench_mode(
            "http",
            http_target(server.base_url, key, server.process.pid),
            http_target(floor_url, key, floor_pid),
            card_id,
            opts,
        )


def _filesystem(path: Path) -> str:
    """The filesystem type ``path`` lives on (fsync cost depends on it), from /proc/mounts."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def print_header(tmp: Path, opts: Options) -> None:
    server = (
        "standalone process (`agentcard-mcp sandbox serve`: uvicorn, access log on); the floor "
        "in its own uvicorn process configured the same way"
        if opts.http_server == "process"
        else "uvicorn in a thread of this process (tests.support.serve_in_thread, log "
        "level warning), for the sandbox and the floor alike"
    )
    print("Sandbox authorization benchmark — POST /v1/_test/swipe, fresh Idempotency-Key each")
    print(
        f"  python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"  database: {tmp} ({_filesystem(tmp)}), WAL, synchronous=FULL")
    print(f"  {load_average()} (other work on the machine inflates every number, the floor too)")
    if "http" in opts.modes:
        print(f"  http server: {server}")
    print(
        f"  n={opts.n} measured requests per cell after {opts.warmup} warm-up; 1 in "
        f"{DECLINE_EVERY} swipes declines (per_auth_limit_exceeded), the rest approve"
    )
    print(
        "  floor: a bare Starlette route returning fixed JSON, same request, same client, "
        "same transport and concurrency"
    )
    print()


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'mode':<9} {'conc':>4} {'n':>5} {'appr/decl':>9} {'decisions/s':>11} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'cpu ms':>6} | {'floor/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu ms':>6} | {'target p99':>10} {'result':>6}"
    )
    print(f"{'':<9} {'':>4} {'':>5} {'':>9} {'decision':>11} {'':>7} {'':>7} {'':>6}   floor")
    print(head)
    print("-" * len(head))
    floor_missed = False
    for row in rows:
        d, f = row.decision, row.floor
        p99 = d.pct_ms(0.99)
        result = "PASS" if p99 < row.target_ms else "MISS"
        if p99 >= row.target_ms and f.pct_ms(0.99) >= row.target_ms:
            result, floor_missed = "MISS*", True
        print(
            f"{row.mode:<9} {row.concurrency:>4} {d.n:>5} "
            f"{f'{row.approved}/{row.declined}':>9} {d.rate:>11.0f} {d.pct_ms(0.5):>7.2f} "
            f"{p99:>7.2f} {d.cpu_ms:>6.2f} | {f.rate:>7.0f} {f.pct_ms(0.5):>7.2f} "
            f"{f.pct_ms(0.99):>7.2f} {f.cpu_ms:>6.2f} | {f'< {row.target_ms:g} ms':>10} "
            f"{result:>6}"
        )
    if floor_missed:
        print(
            "* the floor misses the target too: in that cell the client, the server stack and "
            "the machine alone already take more than the target at p99"
        )
    if any(r.mode == "http" and r.concurrency == 1 and r.floor.pct_ms(0.5) > 20 for r in rows):
        print(
            "! a sequential HTTP floor p50 above 20 ms on loopback is the signature of Nagle's "
            "algorithm meeting delayed ACKs: the server's accepted sockets lack TCP_NODELAY. "
            "asyncio sets it only when the listening socket's proto is IPPROTO_TCP, and "
            "tests.support.serve_in_thread binds socket.socket(AF_INET, SOCK_STREAM) (proto 0)"
        )
    print()
    print(
        "decision cost over the floor (p50): "
        + ", ".join(
            f"{r.mode} c={r.concurrency}: {r.decision.pct_ms(0.5) - r.floor.pct_ms(0.5):+.2f} ms"
            for r in rows
        )
    )
    print(
        "decision CPU over the floor (client + server CPU per request, all threads; the "
        "number least moved by other load): "
        + ", ".join(
            f"{r.mode} c={r.concurrency}: {r.decision.cpu_ms - r.floor.cpu_ms:+.2f} ms"
            for r in rows
        )
    )
    print(
        "targets: p99 < 5 ms in process, < 15 ms over HTTP (2-core machine); latency is per "
        "request as its client sees it, so at concurrency > 1 it includes queueing behind the "
        "other clients (writes are serialized: one BEGIN IMMEDIATE at a time)"
    )


# --- profiling ------------------------------------------------------------------------------


class _TimedConnection:
    """Hands the handler the real connection, timing each statement it executes."""

    def __init__(self, conn: sqlite3.Connection, sql: dict[str, list[float]]) -> None:
        self._conn = conn
        self._sql = sql

    def execute(self, statement: str, parameters: Any = ()) -> sqlite3.Cursor:
        began = time.perf_counter()
        try:
            return self._conn.execute(statement, parameters)
        finally:
            label = " ".join(statement.split())
            self._sql.setdefault(label[:72], []).append(time.perf_counter() - began)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@dataclass
class _Phases:
    """One store call, as absolute perf_counter times: entered (then waits for the store's
    lock and runs BEGIN), handler started, handler ended, returned (after COMMIT); and the
    worker thread's CPU time over lock+BEGIN, the handler and COMMIT."""

    kind: str
    entered: float
    started: float
    ended: float
    returned: float
    cpu: tuple[float, float, float]


def _fsync_ms(directory: Path, rounds: int = 200) -> tuple[float, float]:
    """p50 and p99 of overwriting 4 KiB of a preallocated file and fdatasync'ing it: what a
    durable COMMIT pays the disk (a WAL commit rewrites frames of an existing file)."""
    path = directory / "fsync.probe"
    block = b"x" * 4096
    times = []
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, block * 256)
        os.fsync(fd)
        for i in range(rounds):
            began = time.perf_counter_ns()
            os.pwrite(fd, block, (i % 256) * len(block))
            os.fdatasync(fd)
            times.append(time.perf_counter_ns() - began)
    finally:
        os.close(fd)
        path.unlink()
    sample = Sample(rounds, 1.0, times)
    return sample.pct_ms(0.5), sample.pct_ms(0.99)


async def _thread_hop_ms(rounds: int = 500) -> tuple[float, float]:
    """p50 and p99 of ``anyio.to_thread.run_sync`` of a no-op: the hop every store call makes."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter_ns()
        await anyio.to_thread.run_sync(int)
        times.append(time.perf_counter_ns() - began)
    sample = Sample(rounds, 1.0, times)
    return sample.pct_ms(0.5), sample.pct_ms(0.99)


def _kind(fn: Callable[..., Any], write: bool) -> str:
    name = getattr(fn, "__qualname__", "")
    if ".endpoint.<locals>.run" in name:
        return "swipe" if write else "read"
    return f"dispatcher {'transaction' if write else 'read'} ({name.rsplit('.', 1)[-1]})"


async def profile_inprocess(tmp: Path, n: int, warmup: int, top: int) -> None:
    """Where a sequential in-process swipe spends its time: first a split of every store call
    with each SQL statement timed (no profiler, so the numbers are real), then cProfile of the
    event-loop thread and the worker threads, filtered to src/."""
    async with open_sandbox(tmp / "profile.db", "inprocess", FakeClock()) as sandbox:
        card_id = await make_card(sandbox.client, sandbox.credentials.agent_id)
        target = inprocess_target(sandbox.app, sandbox.credentials.api_key)
        swiper = Swiper(card_id)
        [client] = target.clients(1)
        await drive([client], swiper, 0, warmup)
        store = vars(sandbox.store)  # the bench wraps the instance's methods; src is untouched
        originals = {
            "transaction_sync": sandbox.store.transaction_sync,
            "read_sync": sandbox.store.read_sync,
        }

        # 1. Store calls and statements, unprofiled.
        phases: list[_Phases] = []
        sql: dict[str, list[float]] = {}
        requests: list[tuple[float, float]] = []

        def timed(method: str) -> Callable[[Callable[[Any], Any]], Any]:
            def call(fn: Callable[[Any], Any]) -> Any:
                marks: list[float] = []
                cpu: list[float] = []

                def inner(conn: sqlite3.Connection) -> Any:
                    marks.append(time.perf_counter())
                    cpu.append(time.thread_time())
                    try:
                        return fn(_TimedConnection(conn, sql))
                    finally:
                        marks.append(time.perf_counter())
                        cpu.append(time.thread_time())

                cpu.append(time.thread_time())
                entered = time.perf_counter()
                try:
                    return originals[method](inner)
                finally:
                    returned, cpu_returned = time.perf_counter(), time.thread_time()
                    if len(marks) == 2:
                        phases.append(
                            _Phases(
                                _kind(fn, method == "transaction_sync"),
                                entered,
                                marks[0],
                                marks[1],
                                returned,
                                (cpu[1] - cpu[0], cpu[2] - cpu[1], cpu_returned - cpu[2]),
                            )
                        )

            return call

        async def send(client: httpx.AsyncClient, i: int) -> None:
            began = time.perf_counter()
            await swiper(client, i)
            requests.append((began, time.perf_counter()))

        for method in originals:
            store[method] = timed(method)
        cpu_before = time.process_time()
        sample = await drive([client], send, warmup, n)
        sample.cpu_seconds = time.process_time() - cpu_before
        for method in originals:
            del store[method]
        hop = await _thread_hop_ms()

        # 2. cProfile, every thread that runs a store call plus the event loop.
        profilers: dict[int, cProfile.Profile] = {}

        def profiled(method: str) -> Callable[[Callable[[Any], Any]], Any]:
            def call(fn: Callable[[Any], Any]) -> Any:
                profiler = profilers.setdefault(threading.get_ident(), cProfile.Profile())
                profiler.enable()
                try:
                    return originals[method](fn)
                finally:
                    profiler.disable()

            return call

        for method in originals:
            store[method] = profiled(method)
        loop_profiler = cProfile.Profile()
        loop_profiler.enable()
        profiled_sample = await drive([client], swiper, warmup + n, n)
        loop_profiler.disable()
        for method in originals:
            del store[method]
        await client.aclose()

    _print_phases(sample, requests, phases, sql, hop, tmp)
    stats = pstats.Stats(loop_profiler, stream=io.StringIO())
    for profiler in profilers.values():
        stats.add(profiler)
    print(
        f"\ncProfile of {n} more sequential in-process swipes ({profiled_sample.pct_ms(0.5):.2f} "
        f"ms p50 under the profiler), event loop + {len(profilers)} worker thread(s) merged; "
        "wall-clock, per swipe; a coroutine counts once per resumption"
    )
    _print_stats(stats, n, top)


def _print_phases(
    sample: Sample,
    requests: list[tuple[float, float]],
    phases: list[_Phases],
    sql: dict[str, list[float]],
    hop: tuple[float, float],
    tmp: Path,
) -> None:
    n = len(requests)
    swipes = [p for p in phases if p.kind == "swipe"]
    if len(swipes) != n:
        print(f"(phase split skipped: {len(swipes)} swipe transactions for {n} requests)")
        return
    ms = 1e3
    columns: dict[str, Callable[[int], float]] = {
        "before store": lambda i: swipes[i].entered - requests[i][0],
        "lock+BEGIN": lambda i: swipes[i].started - swipes[i].entered,
        "handler": lambda i: swipes[i].ended - swipes[i].started,
        "COMMIT": lambda i: swipes[i].returned - swipes[i].ended,
        "after store": lambda i: requests[i][1] - swipes[i].returned,
        "request": lambda i: requests[i][1] - requests[i][0],
    }
    slowest = sorted(range(n), key=lambda i: requests[i][1] - requests[i][0])
    groups = {
        "mean, all": list(range(n)),
        "mean, fastest half": slowest[: n // 2],
        f"mean, slowest 1% ({max(1, n // 100)})": slowest[-max(1, n // 100) :],
    }
    print(
        f"\nProfile: {n} sequential in-process swipes, no profiler attached (p50 "
        f"{sample.pct_ms(0.5):.2f} ms, p99 {sample.pct_ms(0.99):.2f} ms). Per swipe, ms:"
    )
    print(f"  {'':<24}" + "".join(f"{name:>13}" for name in columns))
    for label, rows in groups.items():
        cells = "".join(
            f"{sum(column(i) for i in rows) / len(rows) * ms:>13.3f}" for column in columns.values()
        )
        print(f"  {label:<24}{cells}")
    print(
        "  before store = client + ASGI + Starlette + body read + fingerprint + handing the call "
        "to a worker thread;\n  after store = waking the event loop from the worker thread + "
        "the response back through Starlette and httpx"
    )
    swipe_cpu = [sum(p.cpu[k] for p in swipes) * ms / n for k in range(3)]
    other_cpu = sum(sum(p.cpu) for p in phases if p.kind != "swipe") * ms / n
    loop_cpu = sample.cpu_ms - sum(swipe_cpu) - other_cpu
    print(
        f"  CPU per swipe (all threads): {sample.cpu_ms:.3f} ms = event-loop thread "
        f"{loop_cpu:.3f} (client, ASGI, Starlette, fingerprint, thread hand-offs, response)"
        f"\n    + swipe transaction in its worker thread {sum(swipe_cpu):.3f} (lock+BEGIN "
        f"{swipe_cpu[0]:.3f}, handler {swipe_cpu[1]:.3f}, COMMIT {swipe_cpu[2]:.3f})"
        f" + other store calls {other_cpu:.3f}"
    )
    commits = Sample(n, 1.0, [int((p.returned - p.ended) * 1e9) for p in swipes])
    fsync_p50, fsync_p99 = _fsync_ms(tmp)
    print(
        f"  COMMIT p50 {commits.pct_ms(0.5):.3f} p99 {commits.pct_ms(0.99):.3f} ms; a bare "
        f"4 KiB overwrite+fdatasync in the same directory: p50 {fsync_p50:.3f} p99 "
        f"{fsync_p99:.3f} ms "
        "(WAL with synchronous=FULL fsyncs the WAL on every COMMIT)"
    )
    print(
        f"  a no-op anyio.to_thread.run_sync round trip on this machine now: p50 {hop[0]:.3f} "
        f"p99 {hop[1]:.3f} ms (every store call makes one)"
    )
    for kind in sorted({p.kind for p in phases} - {"swipe"}):
        calls = [p for p in phases if p.kind == kind]
        total = sum(p.returned - p.entered for p in calls) * ms / n
        print(f"  {kind}: {len(calls) / n:.2f} per swipe, {total:.3f} ms per swipe in all")
    print("  SQL statements run by handlers, by total time:")
    for label, times in sorted(sql.items(), key=lambda item: -sum(item[1]))[:12]:
        print(f"    {sum(times) * ms / n:6.3f} ms/swipe  {len(times) / n:4.2f}x  {label}")


def _print_stats(stats: pstats.Stats, n: int, top: int) -> None:
    entries: list[tuple[float, float, int, str]] = []
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    src = str(REPO / "src")
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        interesting = filename.startswith(src) or (
            filename == "~" and ("sqlite3" in name or "execute" in name or "fetch" in name)
        )
        if interesting:
            where = name if filename == "~" else f"{Path(filename).relative_to(REPO)}:{line} {name}"
            entries.append((cumtime, tottime, calls, where))
    entries.sort(reverse=True)
    print(f"{'cum ms/swipe':>12} {'self ms/swipe':>13} {'calls/swipe':>11}  function")
    for cumtime, tottime, calls, where in entries[:top]:
        print(f"{cumtime * 1e3 / n:>12.3f} {tottime * 1e3 / n:>13.3f} {calls / n:>11.1f}  {where}")


# --- entry point ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/sandbox_authorize.py",
        description="Benchmark the sandbox issuer's authorization decisions (POST "
        "/v1/_test/swipe): decisions per second and p50/p99 latency, sequential and "
        "concurrent, in process and over HTTP, each next to a bare Starlette endpoint (the "
        "floor) measured the same way in the same run. Prints a table with PASS/MISS against "
        "the targets: p99 < 5 ms in process, < 15 ms over HTTP (2-core machine). Run it from "
        "the repository root on an otherwise idle machine.",
        epilog="examples:\n"
        "  python bench/sandbox_authorize.py                 # the full run (about a minute)\n"
        "  python bench/sandbox_authorize.py --quick         # a smoke run (about 10 s)\n"
        "  python bench/sandbox_authorize.py --mode inprocess --n 1000 --profile\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--n", type=int, default=None, help=f"measured requests per cell (default {DEFAULT_N})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a fast smoke run: n={QUICK_N} unless --n is given, shorter warm-up",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests per cell, not measured (default n/10, at least 50; 30 with --quick)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="clients in the concurrent cells; the sequential cell (1) always runs "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--mode",
        choices=["all", "inprocess", "http"],
        default="all",
        help="which transports to measure (default all)",
    )
    parser.add_argument(
        "--http-server",
        choices=["process", "thread"],
        default="process",
        help="process (default): the standalone `agentcard-mcp sandbox serve` and the floor "
        "each in their own process, so client and server do not share a GIL; thread: "
        "uvicorn in a thread of this process, as tests.support.serve_in_thread serves it",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the table, show where a sequential in-process swipe spends its time: a "
        "split of every store call (lock+BEGIN, handler, COMMIT, outside) with each SQL "
        "statement timed, then cProfile filtered to src/",
    )
    parser.add_argument(
        "--profile-top",
        type=int,
        default=25,
        help="how many functions the cProfile listing shows (default 25)",
    )
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        parser.error("--n must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


async def main_async(args: argparse.Namespace) -> None:
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    warmup = args.warmup if args.warmup is not None else max(30 if args.quick else 50, n // 10)
    opts = Options(
        n=n,
        warmup=warmup,
        concurrencies=tuple(dict.fromkeys((1, args.concurrency))),
        http_server=args.http_server,
        modes=("inprocess", "http") if args.mode == "all" else (args.mode,),
    )
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as name:
        tmp = Path(name)
        print_header(tmp, opts)
        began = time.perf_counter()
        rows: list[Row] = []
        if "inprocess" in opts.modes:
            rows += await run_inprocess(tmp, opts)
        if "http" in opts.modes:
            rows += await run_http(tmp, opts)
        print_table(rows)
        print(f"(measured in {time.perf_counter() - began:.1f} s; at the end: {load_average()})")
        if args.profile:
            await profile_inprocess(tmp, n, warmup, args.profile_top)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_floor:
        _serve_floor()
        return 0
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
