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

from agentcard_mcp.sandbox import Credentials, Store, create_app, provision

__all__ = [
    "FakeClock",
    "Sandbox",
    "Standalone",
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
def serve_in_thread(app: Starlette) -> Iterator[str]:
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
    """The sandbox on ``db_path``, reached in process (``"inprocess"``) or over real HTTP
    (``"http"``, uvicorn on 127.0.0.1)."""
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
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://sandbox",
                    headers=headers,
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
class Standalone:
    """``agentcard-mcp sandbox serve`` running as its own OS process."""

    process: subprocess.Popen[str]
    base_url: str
    stderr: list[str]
    db_path: Path

    def api_key(self) -> str:
        import json

        return str(json.loads(self.db_path.with_suffix(".key").read_text())["api_key"])


_LISTENING = re.compile(r"Uvicorn running on (http://\S+)")


@contextmanager
def standalone_server(db_path: Path, home: Path, timeout: float = 30.0) -> Iterator[Standalone]:
    """Starts the standalone sandbox on a free port and waits until it listens."""
    env = {**os.environ, "AGENTCARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "agentcard_mcp", "sandbox", "serve"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--db", str(db_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if not found.is_set() and (match := _LISTENING.search(line)):
                url.append(match.group(1))
                found.set()

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        if not found.wait(timeout):
            raise RuntimeError("standalone sandbox did not start:\n" + "".join(lines))
        yield Standalone(process, url[0], lines, db_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        drainer.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
