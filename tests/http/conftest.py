"""The server over real HTTP: uvicorn on 127.0.0.1 in a thread, keys in a fresh home, and the
SDK's client connected with a Bearer header."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from agentcard_mcp.http_app import HttpOptions, create_http_app
from agentcard_mcp.keys import KeyStore
from agentcard_mcp.server import CardServer, create_server
from agentcard_mcp.settings import Settings
from tests.support import PERMISSIVE_POLICY, serve_in_thread

ACCEPT = "application/json, text/event-stream"


@dataclass
class Served:
    base: str
    options: HttpOptions
    server: CardServer
    store: KeyStore
    home: Path

    @property
    def url(self) -> str:
        return self.base + self.options.path

    def key(self, name: str = "test", **kwargs: Any) -> str:
        key, _ = self.store.create(name, **kwargs)
        return key

    @asynccontextmanager
    async def client(self, key: str, mode: str = "auto", **kwargs: Any) -> AsyncIterator[Client]:
        """The SDK client with the key as a Bearer header, as an agent framework connects."""
        headers = {"Authorization": f"Bearer {key}"}
        if self.options.transport == "sse":
            transport = sse_client(self.url, headers=headers)
            async with Client(transport, mode=mode, **kwargs) as client:
                yield client
            return
        # The SDK leaves a client it was handed open: this one is closed here.
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(
                streamable_http_client(self.url, http_client=http), mode=mode, **kwargs
            ) as client,
        ):
            yield client


@contextmanager
def serving(home: Path, policy: Path = PERMISSIVE_POLICY, **options: Any) -> Iterator[Served]:
    store = KeyStore(home)
    server = create_server(Settings(issuer="sandbox", home=home, policy_file=policy))
    opts = HttpOptions(**options)
    try:
        with serve_in_thread(create_http_app(server, store, opts)) as base:
            yield Served(base, opts, server, store, home)
    finally:
        store.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    return tmp_path / "home"


@pytest.fixture
def served(home: Path) -> Iterator[Served]:
    with serving(home) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
