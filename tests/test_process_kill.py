"""The MCP server killed mid-call under load (issue 14 item 3; DESIGN §5, §12).

Two real processes: the standalone sandbox issuer (``agentcard-mcp sandbox serve``) and the MCP
server (``agentcard-mcp serve --transport http --stateless``) configured against it as a remote
AgentCard issuer. Six agents create and freeze cards over HTTP, concurrently; while their calls
are in flight the server is SIGKILLed. Then:

- the audit trail stays valid: every line parses, but for at most one torn line, and every call
  an agent got an answer to is in it;
- a server restarted on the same home serves exactly the cards the issuer holds;
- its day's budget — reconciled at start against the issuer, the dead process's reservations
  included — commits exactly what the issuer's cards commit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from agentcard_mcp.audit import audit_path, scan_tail
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import open_storage
from tests.http_servers import ServerSpec, http_servers
from tests.support import Standalone, standalone_server

pytestmark = pytest.mark.anyio

AGENTS = 6
ANSWERS_BEFORE_KILL = 12  # answered calls, all agents together, before the kill
CARD = 100
POLICY = """\
max_card_daily_limit_cents = 100000
max_per_auth_cents = 100000
max_total_daily_cents = 100000000
max_active_cards = 1000
require_approval_above_cents = 100000000
unfreeze = "allow"
close = "allow"
"""
ACCEPT = "application/json, text/event-stream"


@dataclass
class McpProcess:
    process: subprocess.Popen[bytes]
    url: str


@contextmanager
def mcp_server(home: Path, env: dict[str, str], log: Path) -> Iterator[McpProcess]:
    """``agentcard-mcp serve --transport http --stateless`` on a free port, once /healthz says
    it is up."""
    with http_servers([ServerSpec(home, log, env, ("--stateless",))]) as [server]:
        yield McpProcess(server.process, server.mcp_url)


@dataclass
class Load:
    """What the agents saw."""

    answered: list[tuple[str, bool]] = field(default_factory=list)  # (tool, is_error)
    cut: int = 0  # calls whose answer never came (the server died under them)
    enough: anyio.Event = field(default_factory=anyio.Event)


class StatelessAgent:
    """A thin agent over stateless streamable HTTP: one JSON-RPC ``tools/call`` per POST."""

    def __init__(self, http: httpx.AsyncClient, url: str, load: Load) -> None:
        self.http, self.url, self.load = http, url, load
        self._ids = iter(range(1, 1_000_000))

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        ident = next(self._ids)
        body = {"jsonrpc": "2.0", "id": ident, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}}  # fmt: skip
        response = await self.http.post(self.url, json=body)
        response.raise_for_status()
        message = _message(response, ident)
        result: dict[str, Any] = message["result"]
        self.load.answered.append((tool, bool(result.get("isError"))))
        if len(self.load.answered) >= ANSWERS_BEFORE_KILL:
            self.load.enough.set()
        return result

    async def run(self, name: str) -> None:
        """Creates a card, freezes it, and again, until the server dies under a call."""
        try:
            for n in range(1_000):
                made = await self.call(
                    "create_card", {"purpose": f"{name} #{n}", "daily_limit_cents": CARD + n}
                )
                assert not made.get("isError"), made
                await self.call("freeze_card", {"card_id": made["structuredContent"]["id"]})
        except httpx.TransportError:
            self.load.cut += 1


def _message(response: httpx.Response, ident: int) -> dict[str, Any]:
    """The JSON-RPC answer: the body, or its SSE ``data:`` event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message: dict[str, Any] = json.loads(line[5:])
                if message.get("id") == ident:
                    return message
        raise AssertionError(f"no answer to {ident}: {response.text[:300]!r}")
    answer: dict[str, Any] = response.json()
    return answer


async def in_flight_at_the_issuer(settings: Settings) -> None:
    """Returns once the server has a card write reserved (its request on its way to the issuer,
    or back), so that the kill leaves a reservation for the restart to reconcile; or after 2 s
    (the kill then still cuts calls short, elsewhere in them)."""
    async with open_storage(settings) as storage:
        with anyio.move_on_after(2):
            while not await storage.budget.reservations():
                pass  # each read is a checkpoint (it runs in a worker thread)


def issuer_cards(issuer: Standalone) -> list[dict[str, Any]]:
    """The cards the issuer holds, read from its own API."""
    headers = {"Authorization": f"Bearer {issuer.api_key()}"}
    response = httpx.get(issuer.base_url + "/v1/cards", headers=headers, timeout=10)
    response.raise_for_status()
    cards: list[dict[str, Any]] = response.json()["data"]
    return cards


def commits(cards: list[dict[str, Any]]) -> int:
    """What the cards commit today (nothing was spent): an active card its daily limit."""
    return sum(0 if card["frozen"] else card["daily_limit_cents"] for card in cards)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.toml").write_text(POLICY)
    return tmp_path


async def test_a_server_killed_mid_call_under_load_loses_nothing(place: Path) -> None:
    issuer_home = place / "issuer"
    issuer_home.mkdir()
    home = place / "home"
    log = place / "server.log"
    with standalone_server(issuer_home / "sandbox.db", issuer_home) as issuer:
        env = {
            "AGENTCARD_ISSUER": "agentcard",
            "AGENTCARD_BASE_URL": issuer.base_url,
            "AGENTCARD_API_KEY": issuer.api_key(),
            "AGENTCARD_POLICY_FILE": str(place / "policy.toml"),
        }
        # The server's own settings, as its process reads them from ``env``.
        settings = Settings(
            issuer="agentcard",
            base_url=issuer.base_url,
            api_key=SecretStr(issuer.api_key()),
            home=home,
            policy_file=place / "policy.toml",
        )
        async with open_storage(settings) as storage:
            key, _ = await storage.keys.create("agents", scope="cards:write", rate=300)
        headers = {"Authorization": f"Bearer {key}", "Accept": ACCEPT}
        load = Load()

        with mcp_server(home, env, log) as server:
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                with anyio.fail_after(20):
                    async with anyio.create_task_group() as agents:
                        for n in range(AGENTS):
                            agent = StatelessAgent(http, server.url, load)
                            agents.start_soon(agent.run, f"agent {n}")
                        await load.enough.wait()
                        await in_flight_at_the_issuer(settings)
                        os.kill(server.process.pid, signal.SIGKILL)
            assert server.process.wait(timeout=10) == -signal.SIGKILL
        assert load.cut == AGENTS  # every agent had a call cut short by the kill
        assert all(not is_error for _, is_error in load.answered)

        # The audit trail: whole lines, but for at most the one torn by the kill; every
        # answered call is in it.
        trail = audit_path(home)
        lines = [line for line in trail.read_bytes().split(b"\n") if line.strip()]
        torn = 0
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                torn += 1
        assert torn <= 1
        tail = scan_tail(trail, 100_000)
        assert tail.skipped == torn
        ok = [(r["tool"], r["outcome"]) for r in tail.records]
        for tool in ("create_card", "freeze_card"):
            answered = sum(1 for t, _ in load.answered if t == tool)
            assert ok.count((tool, "ok")) >= answered

        # Restarted on the same home: the same cards, and a budget reconciled at start.
        with mcp_server(home, env, log) as server:
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                agent = StatelessAgent(http, server.url, Load())
                with anyio.fail_after(20):
                    listed = (await agent.call("list_cards", {}))["structuredContent"]["cards"]
                    limits = (await agent.call("get_limits", {}))["structuredContent"]
        held = issuer_cards(issuer)
    assert sorted(card["id"] for card in listed) == sorted(card["id"] for card in held)
    assert {c["id"]: c["status"] == "frozen" for c in listed} == {
        c["id"]: c["frozen"] for c in held
    }
    assert limits["committed_daily_cents"] == commits(held)
    assert limits["active_cards"] == sum(1 for card in held if not card["frozen"])
