"""Test support shared by tests and benchmarks: a settable clock, the sandbox served in
process or by uvicorn on 127.0.0.1, and the standalone ``agentcard-mcp sandbox serve``."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from agentcard_mcp.sandbox import Credentials, Store, create_app, provision
from agentcard_mcp.sandbox.direct import InProcessTransport

__all__ = [
    "PERMISSIVE_POLICY",
    "FakeClock",
    "Sandbox",
    "ServedProcess",
    "Standalone",
    "listening_process",
    "open_sandbox",
    "serve_in_thread",
    "standalone_server",
]

# Fast retries so webhook tests never wait long; the production defaults are slower.
FAST_WEBHOOKS: dict[str, Any] = {
    "base_delay": 0.02,
    "max_delay": 0.2,
    "timeout": 2.0,
    "poll_interval": 0.05,
}


# For tests about tools, transports or issuers rather than the operator's guardrails.
PERMISSIVE_POLICY = Path(__file__).with_name("permissive_policy.toml")

# One CA bundle load per test process (~100 ms each) instead of one per client.
TLS = ssl.create_default_context()


@dataclass
class FakeClock:
    """A clock the test moves by hand: crossing 00:00 UTC takes no sleeping."""

    now: datetime = field(default_factory=lambda: datetime(2026, 5, 11, 7, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Sandbox:
    """A running sandbox and a client authenticated as its operator."""

    client: httpx.AsyncClient
    credentials: Credentials
    store: Store
    app: Starlette
    clock: FakeClock
    base_url: str
    db_path: Path

    def anonymous(self) -> httpx.AsyncClient:
        """A client with no API key, same transport and base URL."""
        return httpx.AsyncClient(transport=self.client._transport, base_url=self.base_url)


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Serves ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@asynccontextmanager
async def open_sandbox(
    db_path: Path,
    transport: str,
    clock: FakeClock | None = None,
    **app_options: Any,
) -> AsyncIterator[Sandbox]:
    """The sandbox on ``db_path``, reached in process (``"inprocess"``: ``InProcessTransport``,
    as the server embeds it) or over real HTTP (``"http"``, uvicorn on 127.0.0.1)."""
    clock = clock or FakeClock()
    store = Store(db_path)
    credentials = provision(store, db_path, clock)
    app = create_app(store, clock=clock, **{**FAST_WEBHOOKS, **app_options})
    headers = {"Authorization": f"Bearer {credentials.api_key}"}
    try:
        if transport == "inprocess":
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=InProcessTransport(app), base_url="http://sandbox", headers=headers
                ) as client,
            ):
                yield Sandbox(client, credentials, store, app, clock, "http://sandbox", db_path)
        else:
            with serve_in_thread(app) as base_url:
                async with httpx.AsyncClient(
                    base_url=base_url, headers=headers, timeout=30, verify=TLS
                ) as client:
                    yield Sandbox(client, credentials, store, app, clock, base_url, db_path)
    finally:
        store.close()


@dataclass
class ServedProcess:
    """A server running as its own OS process; its output is collected as it comes and is
    complete once the ``with`` block has exited."""

    process: subprocess.Popen[str]
    base_url: str
    stdout: list[str]
    stderr: list[str]


_LISTENING = re.compile(r"Uvicorn running on (http://\S+)")


@contextmanager
def listening_process(
    command: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 30.0
) -> Iterator[ServedProcess]:
    """Runs a uvicorn-based server ``command`` and waits until it says where it listens."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=cwd,
    )
    served = ServedProcess(process, "", [], [])
    listening = threading.Event()

    def drain_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            served.stderr.append(line)
            if not listening.is_set() and (match := _LISTENING.search(line)):
                served.base_url = match.group(1)
                listening.set()

    def drain_stdout() -> None:  # uvicorn's access log; read so that the pipe never fills
        assert process.stdout is not None
        served.stdout.extend(process.stdout)

    drainers = [threading.Thread(target=f, daemon=True) for f in (drain_stderr, drain_stdout)]
    for drainer in drainers:
        drainer.start()
    try:
        deadline = time.monotonic() + timeout
        while not listening.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start:\n" + "".join(served.stderr))
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for drainer in drainers:
            drainer.join(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class Standalone(ServedProcess):
    """``agentcard-mcp sandbox serve`` running as its own OS process."""

    db_path: Path = Path()

    def api_key(self) -> str:
        import json

        return str(json.loads(self.db_path.with_suffix(".key").read_text())["api_key"])


@contextmanager
def standalone_server(db_path: Path, home: Path, timeout: float = 30.0) -> Iterator[Standalone]:
    """Starts the standalone sandbox on a free port and waits until it listens."""
    command = [sys.executable, "-m", "agentcard_mcp", "sandbox", "serve"]
    env = {**os.environ, "AGENTCARD_HOME": str(home)}
    with listening_process(
        [*command, "--port", "0", "--db", str(db_path)], env=env, timeout=timeout
    ) as served:
        yield Standalone(served.process, served.base_url, served.stdout, served.stderr, db_path)
