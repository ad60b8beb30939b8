"""The server over real HTTP: uvicorn on 127.0.0.1 in a thread, keys in a fresh home (or a fresh
PostgreSQL database), and the SDK's client connected with a Bearer header."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from agentcard_mcp.http.app import HttpOptions, create_http_app
from agentcard_mcp.keys import ApiKey
from agentcard_mcp.server import CardServer, create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import Storage, open_storage
from tests.support import PERMISSIVE_POLICY, serve_in_thread

ACCEPT = "application/json, text/event-stream"


@dataclass
class Served:
    base: str
    options: HttpOptions
    server: CardServer
    settings: Settings
    home: Path

    @property
    def url(self) -> str:
        return self.base + self.options.path

    @asynccontextmanager
    async def storage(self) -> AsyncIterator[Storage]:
        """The server's storage opened again, as the operator's commands open it (their own
        connections, not the server's)."""
        async with open_storage(self.settings) as storage:
            yield storage

    async def create_key(self, name: str = "test", **kwargs: Any) -> tuple[str, ApiKey]:
        async with self.storage() as storage:
            return await storage.keys.create(name, **kwargs)

    async def key(self, name: str = "test", **kwargs: Any) -> str:
        key, _ = await self.create_key(name, **kwargs)
        return key

    async def record(self, key: str) -> ApiKey:
        async with self.storage() as storage:
            record = await storage.keys.find(key)
        assert record is not None
        return record

    async def revoke(self, key: str) -> None:
        record = await self.record(key)
        async with self.storage() as storage:
            await storage.keys.revoke(record.id)

    async def audited(self) -> list[dict[str, Any]]:
        """The audit trail's records, oldest first, wherever the backend keeps them."""
        async with self.storage() as storage:
            tail = await storage.audit.tail(10_000)
        return [] if tail is None else tail.records

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
def serving(
    home: Path,
    policy: Path = PERMISSIVE_POLICY,
    *,
    database_url: str | None = None,
    **options: Any,
) -> Iterator[Served]:
    """The app ``serve --transport http|sse`` serves, on SQLite files in ``home`` or on the
    PostgreSQL at ``database_url``."""
    settings = Settings(
        issuer="sandbox",
        home=home,
        policy_file=policy,
        database_url=None if database_url is None else SecretStr(database_url),
    )
    server = create_server(settings)
    opts = HttpOptions(**options)
    app = create_http_app(server, opts, partial(open_storage, settings))
    with serve_in_thread(app) as base:
        yield Served(base, opts, server, settings, home)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    return tmp_path / "home"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Where the server keeps its state: None for SQLite files in the home, else a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
def served(home: Path, database_url: str | None) -> Iterator[Served]:
    """The streamable HTTP app, on each backend."""
    with serving(home, database_url=database_url) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
