"""A stdio MCP session by hand: the ``agentcard-mcp`` console script as a subprocess, and
newline-delimited JSON-RPC written and read over its pipes, every line kept."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.types.version import LATEST_HANDSHAKE_VERSION

__all__ = ["SCRIPT", "RawSession", "clean_env", "collect"]

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any AGENTCARD_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class RawSession:
    """Newline-delimited JSON-RPC written and read by hand; every stdout line is kept."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.lines: list[str] = []
        self.responses: dict[int, dict[str, Any]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def request(
        self, ident: int, method: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while ident not in self.responses:
            await self._read_line()
        return self.responses[ident]

    async def handshake(self, ident: int, client: str) -> dict[str, Any]:
        """``initialize`` (its response returned) and ``notifications/initialized``."""
        response = await self.request(ident, "initialize", {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client, "version": "0"},
        })  # fmt: skip
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    async def call(self, ident: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(ident, "tools/call", {"name": tool, "arguments": arguments})
        result: dict[str, Any] = response["result"]
        return result

    async def _read_line(self) -> None:
        raw = await self.stdout.receive_until(b"\n", 1 << 22)
        line = raw.decode()
        self.lines.append(line)
        message = json.loads(line)
        if isinstance(message, dict) and "id" in message and "method" not in message:
            self.responses[message["id"]] = message

    async def read_rest(self) -> None:
        """Everything the server writes after stdin has closed, up to end of file."""
        try:
            while True:
                await self._read_line()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            pass
        tail = self.stdout.buffer
        assert not tail, f"stdout ended with a partial line: {bytes(tail)!r}"


async def collect(stream: ByteReceiveStream, into: list[bytes]) -> None:
    async for chunk in stream:
        into.append(chunk)
