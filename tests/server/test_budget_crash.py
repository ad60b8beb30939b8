"""The day's budget across a crash (DESIGN §5: "a reservation whose outcome is unknown counts
until it is reconciled against the issuer").

The ``agentcard-mcp`` console script runs as a stdio server process against a remote issuer:
the fake AgentCard of tests/fakes/agentcard.py served over real HTTP by uvicorn in a thread.
The fake holds the server's ``POST /v1/cards`` open — after making the card, or before — while
the test SIGKILLs the server. The killed process leaves its reservation in ``<home>/budget.db``;
a server restarted on the same home must see that its owner's process is gone and reconcile it
with the issuer when it starts: a card that was made counts (once), one that was not frees its
share of the day's budget.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import pytest
from anyio.abc import Process
from pydantic import SecretStr

from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import account_of
from agentcard_mcp.storage.base import Reservation
from agentcard_mcp.storage.sqlite.budget import SqliteBudget
from tests.fakes.agentcard import FakeAgentCard, Recorded
from tests.server.stdio_session import SCRIPT, RawSession, clean_env, collect
from tests.support import serve_in_thread

pytestmark = pytest.mark.anyio

BUDGET = 10_000
POLICY = f"""\
max_card_daily_limit_cents = {BUDGET}
max_per_auth_cents = {BUDGET}
max_total_daily_cents = {BUDGET}
max_active_cards = 5
require_approval_above_cents = 1000000000
unfreeze = "allow"
close = "allow"
"""


class HeldCreate:
    """Holds the first ``POST /v1/cards`` at the fake issuer, which runs in uvicorn's thread,
    until the test releases it: ``"after"`` the card was made (the answer is lost), or
    ``"before"`` (and, when ``drop`` is set by then, the card is never made)."""

    def __init__(self, fake: FakeAgentCard, phase: Literal["before", "after"]) -> None:
        self.phase = phase
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.drop = False
        self._armed = True
        if phase == "before":
            fake.before = self._before
        else:
            fake.after = self._after

    def _mine(self, request: Recorded) -> bool:
        if self._armed and (request.method, request.path) == ("POST", "/v1/cards"):
            self._armed = False
            return True
        return False

    async def _hold(self) -> None:
        self.arrived.set()
        await anyio.to_thread.run_sync(self.released.wait)

    async def _before(self, request: Recorded) -> bool:
        if not self._mine(request):
            return True
        await self._hold()
        return not self.drop

    async def _after(self, request: Recorded) -> None:
        if self._mine(request):
            await self._hold()

    async def wait_arrived(self) -> None:
        await anyio.to_thread.run_sync(self.arrived.wait, abandon_on_cancel=True)


@pytest.fixture
def fake() -> FakeAgentCard:
    return FakeAgentCard()


@pytest.fixture
def issuer_url(fake: FakeAgentCard) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.toml").write_text(POLICY)
    return tmp_path / "home"


def server_env(home: Path, issuer_url: str, fake: FakeAgentCard) -> dict[str, str]:
    return clean_env(
        AGENTCARD_ISSUER="agentcard",
        AGENTCARD_BASE_URL=issuer_url,
        AGENTCARD_API_KEY=fake.api_key,
        AGENTCARD_HOME=str(home),
        AGENTCARD_POLICY_FILE=str(home.parent / "policy.toml"),
    )


async def reservations(home: Path, issuer_url: str, fake: FakeAgentCard) -> list[Reservation]:
    """The reservations in the home's budget, as the server's own store reads them."""
    settings = Settings(
        issuer="agentcard", base_url=issuer_url, api_key=SecretStr(fake.api_key), home=home
    )
    store = SqliteBudget(home, account_of(settings))
    try:
        return await store.reservations()
    finally:
        await store.aclose()


class Server:
    """One stdio server process, initialized, spoken to by hand-written JSON-RPC lines."""

    def __init__(self, process: Process, session: RawSession) -> None:
        self.process = process
        self.session = session
        self._ids = iter(range(2, 1_000))

    async def send_call(self, tool: str, arguments: dict[str, Any]) -> int:
        """Sends a tools/call without waiting for its answer; returns its id."""
        ident = next(self._ids)
        params = {"name": tool, "arguments": arguments}
        await self.session.send(
            {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}
        )
        return ident

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.session.call(next(self._ids), tool, arguments)

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, arguments)
        assert result["isError"] is False, result["content"][0]["text"]
        data: dict[str, Any] = result["structuredContent"]
        return data

    async def code(self, tool: str, arguments: dict[str, Any]) -> str:
        result = await self.call(tool, arguments)
        assert result["isError"] is True, result
        text: str = result["content"][0]["text"]
        code, sep, _ = text.partition(": ")
        assert sep, text
        return code

    async def kill(self) -> None:
        """SIGKILL, and reaped: a zombie's pid would still look alive."""
        self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def stdio_server(env: dict[str, str], cwd: Path) -> AsyncIterator[Server]:
    stderr: list[bytes] = []
    async with (
        await anyio.open_process([str(SCRIPT)], env=env, cwd=cwd) as process,
        anyio.create_task_group() as tasks,
    ):
        assert process.stderr is not None
        tasks.start_soon(collect, process.stderr, stderr)
        session = RawSession(process)
        init = await session.handshake(1, "crash-test")
        assert "result" in init, b"".join(stderr).decode()
        server = Server(process, session)
        try:
            yield server
        finally:
            if process.returncode is None:
                assert process.stdin is not None
                await process.stdin.aclose()
                await process.wait()


async def killed_mid_create(
    home: Path, issuer_url: str, fake: FakeAgentCard, held: HeldCreate, daily: int
) -> None:
    """A server sends create_card(daily) to the issuer and is SIGKILLed while the issuer holds
    the request; the request is then let go (into a closed connection)."""
    env = server_env(home, issuer_url, fake)
    try:
        async with stdio_server(env, home.parent) as server:
            await server.send_call("create_card", {"purpose": "doomed", "daily_limit_cents": daily})
            await held.wait_arrived()
            (reservation,) = await reservations(home, issuer_url, fake)
            assert reservation.card_id is None
            assert reservation.commits_cents == daily
            assert f":{server.process.pid}:" in reservation.owner
            await server.kill()
    finally:
        held.released.set()
    # The dead process's reservation is still there: nothing settled it.
    assert len(await reservations(home, issuer_url, fake)) == 1


async def test_a_card_made_before_the_server_was_killed_counts_after_a_restart(
    home: Path, issuer_url: str, fake: FakeAgentCard
) -> None:
    held = HeldCreate(fake, "after")
    with anyio.fail_after(30):
        await killed_mid_create(home, issuer_url, fake, held, 6_000)
        (card_id,) = fake.cards  # the issuer made it; the server never heard
        async with stdio_server(server_env(home, issuer_url, fake), home.parent) as server:
            # Reconciled at start, before any tool call: the card adopted, the reservation gone.
            assert await reservations(home, issuer_url, fake) == []
            limits = await server.ok("get_limits", {})
            assert limits["committed_daily_cents"] == 6_000  # counted once
            assert limits["active_cards"] == 1
            assert limits["remaining_daily_cents"] == BUDGET - 6_000
            # Further creates are checked against it.
            assert (
                await server.code(
                    "create_card", {"purpose": "too much", "daily_limit_cents": 5_000}
                )
                == "guardrail_exceeded"
            )
            fits = await server.ok("create_card", {"purpose": "fits", "daily_limit_cents": 4_000})
            limits = await server.ok("get_limits", {})
    assert sorted(fake.cards) == sorted([card_id, fits["id"]])
    assert (limits["committed_daily_cents"], limits["active_cards"]) == (BUDGET, 2)


async def test_a_create_the_issuer_never_made_frees_its_reservation_after_a_restart(
    home: Path, issuer_url: str, fake: FakeAgentCard
) -> None:
    held = HeldCreate(fake, "before")
    held.drop = True  # once let go, the request is dropped: the card is never made
    with anyio.fail_after(30):
        await killed_mid_create(home, issuer_url, fake, held, 6_000)
        assert fake.cards == {}
        async with stdio_server(server_env(home, issuer_url, fake), home.parent) as server:
            assert await reservations(home, issuer_url, fake) == []
            limits = await server.ok("get_limits", {})
            assert (limits["committed_daily_cents"], limits["active_cards"]) == (0, 0)
            # The whole budget is free again.
            card = await server.ok(
                "create_card", {"purpose": "all of it", "daily_limit_cents": BUDGET}
            )
            limits = await server.ok("get_limits", {})
    assert list(fake.cards) == [card["id"]]
    assert (limits["committed_daily_cents"], limits["active_cards"]) == (BUDGET, 1)
