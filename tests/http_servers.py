"""``agentcard-mcp serve --transport http`` as real processes, for the tests about replicas and
crashes: each on a free port of 127.0.0.1 with its own home, started together, handed over once
every /healthz answers, and stopped (terminated, killed if it hangs) at the end."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.server.stdio_session import SCRIPT, clean_env

__all__ = ["HttpServer", "ServerSpec", "free_port", "http_servers", "stop"]


@dataclass(frozen=True)
class ServerSpec:
    home: Path
    log: Path  # stdout and stderr, appended (a restart adds to the same file)
    env: dict[str, str] = field(default_factory=dict)  # AGENTCARD_* beside AGENTCARD_HOME
    flags: tuple[str, ...] = ()  # e.g. ("--stateless",)


@dataclass(frozen=True)
class HttpServer:
    process: subprocess.Popen[bytes]
    base_url: str

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def http_servers(specs: Sequence[ServerSpec], timeout: float = 30.0) -> Iterator[list[HttpServer]]:
    with ExitStack() as stack:
        started = []
        for spec in specs:
            port = free_port()
            command = [str(SCRIPT), "serve", "--transport", "http", "--port", str(port),
                       *spec.flags]  # fmt: skip
            with spec.log.open("ab") as output:
                process = subprocess.Popen(
                    command,
                    env=clean_env(AGENTCARD_HOME=str(spec.home), **spec.env),
                    cwd=spec.home.parent,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            stack.callback(stop, process)
            started.append((HttpServer(process, f"http://127.0.0.1:{port}"), spec.log))
        deadline = time.monotonic() + timeout
        for server, log in started:
            _wait_healthy(server, log, deadline)
        yield [server for server, _ in started]


def _wait_healthy(server: HttpServer, log: Path, deadline: float) -> None:
    while True:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"agentcard-mcp serve did not start:\n{log.read_text()}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # not listening yet
