"""The day's budget and approvals across three ``serve --transport http --stateless`` replicas
(DESIGN §5, §12): each replica is its own OS process with its own home, all on one PostgreSQL
and one remote issuer — the standalone sandbox (``agentcard-mcp sandbox serve``), its own process
too — so nothing reaches from one replica to another but the database and the issuer. Agents
connect with the SDK's streamable HTTP client and one key made by ``agentcard-mcp keys create``.

- 30 agents at once, round-robin over the replicas, each asking for a $10 card under a $50 day
  and 5 active cards: exactly 5 cards are made, the other 25 calls fail ``guardrail_exceeded``,
  and every replica reports the same books.
- Two cards are frozen through one replica while ten unfreeze and create calls race on the
  others: the issuer's own cards — read directly, all along — never commit more than the day's
  budget nor hold more than 5 active cards.
- An approval asked through one replica, approved by the operator's command, is used once on a
  second replica and refused on the third.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from agentcard_mcp.keys import KEY_PATTERN
from tests.http_servers import ServerSpec, http_servers
from tests.server.conftest import text_of
from tests.server.stdio_session import SCRIPT, clean_env
from tests.support import Standalone, standalone_server

pytestmark = pytest.mark.anyio

REPLICAS = 3
AGENTS = 30
MAX_ACTIVE = 5
BUDGET = 5000  # max_total_daily_cents
CARD = 1000  # max_card_daily_limit_cents, and what each agent of the first round asks for
POLICY = """\
max_card_daily_limit_cents = 1000
max_per_auth_cents = 1000
max_total_daily_cents = 5000
max_active_cards = 5
require_approval_above_cents = {approval_above}
unfreeze = "allow"
close = "allow"
"""
NO_APPROVAL = 100_000_000
APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")


# --- the processes ------------------------------------------------------------------------


def run_cli(operator: Path, database_url: str, *args: str) -> str:
    """The operator's command in its own process and home: it shares only the database."""
    operator.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(SCRIPT), *args],
        env=clean_env(AGENTCARD_HOME=str(operator), AGENTCARD_DATABASE_URL=database_url),
        cwd=operator,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def replicas(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    """``count`` ``agentcard-mcp serve --transport http --stateless`` processes, each with a home
    of its own, started together; yields their /mcp URLs once every /healthz answers."""
    specs = []
    for n in range(count):
        home = tmp_path / f"replica-{n}"
        home.mkdir()
        specs.append(ServerSpec(home, tmp_path / f"replica-{n}.log", env, ("--stateless",)))
    with http_servers(specs) as servers:
        yield [server.mcp_url for server in servers]


@dataclass
class Cluster:
    urls: list[str]  # the replicas' /mcp
    homes: list[Path]  # each replica's AGENTCARD_HOME
    key: str  # cards:write, rate 300, made by the keys command
    issuer: Standalone
    operator: Path
    database_url: str

    @asynccontextmanager
    async def agent(self, replica: int) -> AsyncIterator[Client]:
        """An agent framework's connection to one replica: the SDK's streamable HTTP client
        with the key as a Bearer header."""
        headers = {"Authorization": f"Bearer {self.key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(self.urls[replica], http_client=http)) as client,
        ):
            yield client

    async def call(self, replica: int, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        async with self.agent(replica) as client:
            return await client.call_tool(tool, arguments)

    @asynccontextmanager
    async def issuer_api(self) -> AsyncIterator[httpx.AsyncClient]:
        """The standalone sandbox's own API, with its key: what the issuer really holds."""
        headers = {"Authorization": f"Bearer {self.issuer.api_key()}"}
        async with httpx.AsyncClient(
            base_url=self.issuer.base_url, headers=headers, timeout=30
        ) as client:
            yield client


@contextmanager
def cluster(tmp_path: Path, database_url: str, approval_above: int) -> Iterator[Cluster]:
    issuer_home = tmp_path / "issuer"
    issuer_home.mkdir()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(approval_above=approval_above))
    operator = tmp_path / "operator"
    with standalone_server(issuer_home / "sandbox.db", issuer_home) as issuer:
        key = run_cli(operator, database_url, "keys", "create", "--name", "agents",
                      "--scope", "cards:write", "--rate", "300").strip()  # fmt: skip
        assert KEY_PATTERN.fullmatch(key)
        env = {
            "AGENTCARD_DATABASE_URL": database_url,
            "AGENTCARD_ISSUER": "agentcard",
            "AGENTCARD_BASE_URL": issuer.base_url,
            "AGENTCARD_API_KEY": issuer.api_key(),
            "AGENTCARD_POLICY_FILE": str(policy),
        }
        with replicas(tmp_path, env, REPLICAS) as urls:
            homes = [tmp_path / f"replica-{n}" for n in range(REPLICAS)]
            yield Cluster(urls, homes, key, issuer, operator, database_url)


# --- what the issuer holds ----------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The issuer's cards at one moment, counted as the day's budget counts them."""

    cards: tuple[dict[str, Any], ...]

    @property
    def active(self) -> int:
        return sum(not card["frozen"] for card in self.cards)

    @property
    def committed(self) -> int:
        # Active: the larger of its daily limit and today's spend; frozen: today's spend. (The
        # sandbox lists no deleted card, and no card is closed here.)
        return sum(
            card["current_daily_spend_cents"]
            if card["frozen"]
            else max(card["daily_limit_cents"], card["current_daily_spend_cents"])
            for card in self.cards
        )

    @property
    def spent(self) -> int:
        return sum(card["current_daily_spend_cents"] for card in self.cards)


async def snapshot(issuer: httpx.AsyncClient) -> Snapshot:
    response = await issuer.get("/v1/cards")
    response.raise_for_status()
    return Snapshot(tuple(response.json()["data"]))


class Gate:
    """Opens once ``count`` tasks have arrived, so that their calls go at once (each agent has
    connected by then: connecting is not what races)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.opened = anyio.Event()

    async def arrive(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.opened.set()
        await self.opened.wait()


class Watch:
    """Reads the issuer's cards back to back until stopped: every state it saw, in order."""

    def __init__(self, issuer: httpx.AsyncClient) -> None:
        self.issuer = issuer
        self.seen: list[Snapshot] = []
        self.stopped = anyio.Event()

    async def run(self) -> None:
        while not self.stopped.is_set():
            self.seen.append(await snapshot(self.issuer))
        self.seen.append(await snapshot(self.issuer))  # after the last call returned

    def assert_within_the_ceilings(self) -> None:
        assert self.seen
        over = [s for s in self.seen if s.committed > BUDGET or s.active > MAX_ACTIVE]
        assert not over, [(s.committed, s.active) for s in over]


async def limits(cluster: Cluster, replica: int) -> dict[str, Any]:
    result = await cluster.call(replica, "get_limits", {})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def outcome(result: CallToolResult) -> str:
    """``ok``, or the error's code (the text up to its first colon)."""
    return "ok" if not result.is_error else text_of(result).split(":", 1)[0]


# --- the tests ----------------------------------------------------------------------------


async def test_thirty_agents_on_three_replicas_get_five_cards_and_the_day_holds_under_a_race(
    tmp_path: Path, postgres_url: str
) -> None:
    with anyio.fail_after(35), cluster(tmp_path, postgres_url, NO_APPROVAL) as running:
        async with running.issuer_api() as issuer:
            # Round 1: every agent connects, then all ask at once.
            results: list[CallToolResult | None] = [None] * AGENTS
            gate = Gate(AGENTS)

            async def ask(n: int) -> None:
                async with running.agent(n % REPLICAS) as client:
                    await gate.arrive()
                    results[n] = await client.call_tool(
                        "create_card", {"purpose": f"agent {n}", "daily_limit_cents": CARD}
                    )

            watch = Watch(issuer)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch.run)
                async with anyio.create_task_group() as agents:
                    for n in range(AGENTS):
                        agents.start_soon(ask, n)
                watch.stopped.set()
            watch.assert_within_the_ceilings()

            done = [r for r in results if r is not None]
            outcomes = [outcome(r) for r in done]
            assert len(done) == AGENTS
            assert outcomes.count("ok") == MAX_ACTIVE, outcomes
            assert outcomes.count("guardrail_exceeded") == AGENTS - MAX_ACTIVE, outcomes
            made = [
                r.structured_content["id"] for r in done if r.structured_content and not r.is_error
            ]
            held = await snapshot(issuer)
            assert sorted(card["id"] for card in held.cards) == sorted(made)
            assert (held.active, held.committed) == (MAX_ACTIVE, BUDGET)
            for replica in range(REPLICAS):
                books = await limits(running, replica)
                assert (books["committed_daily_cents"], books["active_cards"]) == (BUDGET, 5)
                assert books["remaining_daily_cents"] == 0

            # Round 2: two cards spend $6 each at a merchant (the issuer's own swipe, unseen by
            # the replicas), then are frozen through replica 0 — each then commits only its
            # $6 — while ten calls race on replicas 1 and 2 for the room that frees: unfreezing
            # those two cards (each $4 more: its $10 limit over its $6 spend) and $4 new cards.
            first, second = made[:2]
            for card_id in (first, second):
                swiped = await issuer.post("/v1/_test/swipe", json={
                    "card_id": card_id, "amount_cents": 600, "merchant": "Corner Shop",
                    "mcc": "food",
                })  # fmt: skip
                assert swiped.status_code == 200, swiped.text
                assert swiped.json()["approved"] is True, swiped.text

            racing: list[tuple[str, dict[str, Any]]] = [
                *[("unfreeze_card", {"card_id": card_id}) for card_id in (first, second) * 2],
                *[("create_card", {"purpose": f"racer {n}", "daily_limit_cents": 400})
                  for n in range(6)],
            ]  # fmt: skip
            raced: list[tuple[str, str]] = []
            gate = Gate(len(racing) + 1)
            first_frozen = anyio.Event()

            async def freeze() -> None:
                async with running.agent(0) as client:
                    await gate.arrive()
                    for card_id in (first, second):
                        frozen = await client.call_tool("freeze_card", {"card_id": card_id})
                        assert not frozen.is_error, text_of(frozen)
                        assert frozen.structured_content is not None
                        assert frozen.structured_content["status"] == "frozen"
                        first_frozen.set()

            async def race(n: int, tool: str, arguments: dict[str, Any]) -> None:
                async with running.agent(1 + n % 2) as client:
                    await gate.arrive()
                    await first_frozen.wait()  # the second freeze races with these calls
                    raced.append((tool, outcome(await client.call_tool(tool, arguments))))

            watch = Watch(issuer)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch.run)
                async with anyio.create_task_group() as calls:
                    calls.start_soon(freeze)
                    for n, (tool, arguments) in enumerate(racing):
                        calls.start_soon(race, n, tool, arguments)
                watch.stopped.set()
            watch.assert_within_the_ceilings()

            assert len(raced) == len(racing)
            assert {code for _, code in raced} <= {"ok", "guardrail_exceeded"}, raced
            held = await snapshot(issuer)
            frozen_ids = {card["id"] for card in held.cards if card["frozen"]}
            # The room the first freeze freed was taken by someone: $4 and one card a call.
            assert held.active - (MAX_ACTIVE - 2) in (1, 2), (held, raced)
            assert held.committed == 3 * CARD + 2 * 600 + 400 * (held.active - 3), held
            assert frozen_ids <= {first, second}
            assert held.spent == 1200
            created = sum(1 for tool, code in raced if tool == "create_card" and code == "ok")
            assert len(held.cards) == MAX_ACTIVE + created
            for replica in range(REPLICAS):  # every replica's books agree with the issuer
                books = await limits(running, replica)
                assert books["committed_daily_cents"] == held.committed, (books, held)
                assert books["active_cards"] == held.active
                assert books["spent_today_cents"] == held.spent
        # Nothing went through a replica's home: every book was kept in PostgreSQL.
        assert not [path for home in running.homes for path in home.iterdir()]


async def test_an_approval_asked_on_one_replica_is_used_once_on_another_and_refused_on_the_third(
    tmp_path: Path, postgres_url: str
) -> None:
    asking = {"purpose": "needs a yes", "daily_limit_cents": 800}
    with anyio.fail_after(25), cluster(tmp_path, postgres_url, approval_above=500) as running:
        # Stateless HTTP has no channel back to the agent's host: the operator decides.
        asked = await running.call(0, "create_card", asking)
        assert text_of(asked).startswith("approval_required: "), text_of(asked)
        (approval_id,) = set(APPROVAL_ID.findall(text_of(asked)))
        pending = (await limits(running, 2))["pending_approvals"]
        assert [line.split(":")[0] for line in pending] == [approval_id]

        approved = await anyio.to_thread.run_sync(
            run_cli, running.operator, running.database_url, "approvals", "approve", approval_id
        )
        assert approved.startswith(f"approved {approval_id}: "), approved

        made = await running.call(1, "create_card", {**asking, "approval_id": approval_id})
        assert not made.is_error, text_of(made)
        assert made.structured_content is not None
        again = await running.call(2, "create_card", {**asking, "approval_id": approval_id})
        assert text_of(again).startswith("approval_denied: "), text_of(again)
        assert "single-use" in text_of(again)

        async with running.issuer_api() as issuer:
            held = await snapshot(issuer)
        assert [card["id"] for card in held.cards] == [made.structured_content["id"]]
        assert (held.active, held.committed) == (1, 800)
