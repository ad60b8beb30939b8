"""The console on a fresh home, reached through its ASGI app, beside the MCP server an agent
talks to on the same home (so both share the approvals, the budget and the sandbox)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from agentcard_mcp.console import OpenDesks, create_console_app, open_desks
from agentcard_mcp.settings import Settings

PORT = 8766
ORIGIN = f"http://127.0.0.1:{PORT}"
TOKEN = "one-time-login-token"

# Approvals always go to the operator, whatever the client could do in band.
POLICY = """
require_approval_above_cents = 2500
unfreeze = "approval"
close = "allow"
approval_channel = "console"
"""

_CSRF = re.compile(r'name="csrf" (?:value|content)="([^"]+)"')


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AGENTCARD_* variable from outside; the cwd (where .env is read) is tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return Settings(home=tmp_path / "home", policy_file=policy)


@dataclass
class Console:
    """A console app with a browser-like client that has not logged in yet."""

    app: Starlette
    client: httpx.AsyncClient

    async def login(self) -> None:
        response = await self.client.get("/login", params={"token": TOKEN})
        assert response.status_code == 303, response.text

    async def page(self, path: str = "/") -> str:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.text

    async def csrf(self) -> str:
        match = _CSRF.search(await self.page("/cards"))
        assert match is not None
        return match.group(1)

    async def post(self, path: str, csrf: str | None = None) -> httpx.Response:
        data = {} if csrf is None else {"csrf": csrf}
        return await self.client.post(path, data=data, headers={"Origin": ORIGIN})


def console_app(open_: OpenDesks) -> Starlette:
    return create_console_app(open_, port=PORT, login_token=TOKEN)


async def running(app: Starlette) -> AsyncIterator[Console]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client,
    ):
        yield Console(app, client)


def opened(settings: Settings, issuer: httpx.AsyncBaseTransport | None = None) -> OpenDesks:
    return partial(open_desks, settings, issuer)


@pytest.fixture
async def console(settings: Settings) -> AsyncIterator[Console]:
    async for running_console in running(console_app(opened(settings))):
        yield running_console
