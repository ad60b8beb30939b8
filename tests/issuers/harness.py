"""One way to run the server on each issuer for the contract suite (test_contract.py).

A ``Harness`` is the issuer as the operator configures it — AGENTCARD_* variables and nothing
else — plus what a test needs from the world outside the server: the issuer app behind the
network (``transport``), how many requests it has seen, a human approving a card on the
issuer's side, a merchant charging a card.

To add an issuer: write a ``def _<name>(tmp: Path) -> Harness`` and add it to ``HARNESSES``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from agentcard_mcp.issuers import connect
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.issuers.pacing import Pace
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.agentcard import FakeAgentCard
from tests.fakes.agentcard_sh import FakeAgentCardSh
from tests.fakes.clawdcards import FakeClawdCards
from tests.fakes.proxy import FakeProxy
from tests.support import PERMISSIVE_POLICY, FakeClock

__all__ = ["HARNESSES", "Harness", "Sleeps", "call", "connected", "text_of"]

BASE_URL = "http://issuer.test"


@dataclass
class Harness:
    issuer: str
    env: dict[str, str]  # AGENTCARD_* variables besides the home and the policy
    transport: httpx.AsyncBaseTransport | None = None  # None: the embedded sandbox
    # How many requests the issuer has seen (None: not observable, the embedded sandbox).
    seen: Callable[[], int] | None = None
    # The human approves a new card at the issuer (where the issuer asks for that).
    approve: Callable[[str], None] | None = None
    # A merchant charges the card at the issuer; None: simulate_purchase does it.
    purchase: Callable[[str, int, str], None] | None = None
    fake: Any = None
    # The issuer's clock, which the server's Pace then reads too (its waits move it rather than
    # sleep); None: real time.
    clock: FakeClock | None = None
    # How much time passes between two tool calls of the walk: an issuer allowing 1 request a
    # minute (ClawdCards) is called as a patient agent would.
    between_calls: timedelta = timedelta(0)
    # What create_card answers when its answer was lost after the issuer acted: "ok" where a
    # retry replays it; an error code where it cannot (ClawdCards shows a card only once).
    lost_create: str = "ok"
    # A category the issuer enforces exactly (for the categories test).
    category: str = "travel"


def _sandbox(tmp: Path) -> Harness:
    return Harness("sandbox", {"AGENTCARD_ISSUER": "sandbox"})


def _agentcard(tmp: Path) -> Harness:
    fake = FakeAgentCard()
    return Harness(
        "agentcard",
        {"AGENTCARD_ISSUER": "agentcard", "AGENTCARD_API_KEY": fake.api_key,
         "AGENTCARD_BASE_URL": BASE_URL},
        transport=fake.transport(),
        seen=lambda: len(fake.requests),
        fake=fake,
    )  # fmt: skip


def _agentcard_sh(tmp: Path) -> Harness:
    fake = FakeAgentCardSh()

    def purchase(card_id: str, cents: int, merchant: str) -> None:
        fake.purchase(card_id, cents, merchant)

    return Harness(
        "agentcard-sh",
        # Every agent-card.sh key moves real money: it runs only with AGENTCARD_LIVE=1.
        {"AGENTCARD_ISSUER": "agentcard-sh", "AGENTCARD_API_KEY": fake.api_key,
         "AGENTCARD_BASE_URL": BASE_URL, "AGENTCARD_LIVE": "1"},
        transport=fake.transport(),
        seen=lambda: len(fake.requests),
        approve=fake.approve,
        purchase=purchase,
        fake=fake,
    )  # fmt: skip


def _ignore(_: object) -> None:
    return None


def _clawdcards(tmp: Path) -> Harness:
    clock = FakeClock(datetime.now(UTC))  # card expiries are compared with the real time
    # The production limits ($100 a card), and the transactions endpoint of the older API.
    fake = FakeClawdCards(clock=clock, per_transaction_limit=10_000, transactions=True)
    return Harness(
        "clawdcards",
        # ClawdCards issues only real cards: its keys run only with AGENTCARD_LIVE=1.
        {"AGENTCARD_ISSUER": "clawdcards", "AGENTCARD_API_KEY": fake.api_key,
         "AGENTCARD_BASE_URL": BASE_URL, "AGENTCARD_LIVE": "1"},
        transport=fake.transport(),
        seen=lambda: len(fake.requests),
        purchase=lambda card_id, cents, merchant: _ignore(fake.use(card_id, cents, merchant)),
        fake=fake,
        clock=clock,
        between_calls=timedelta(seconds=61),
        lost_create="issuer_unavailable",
        category="saas",  # "travel" is ClawdCards' "other", which admits more than travel
    )  # fmt: skip


def _proxy(tmp: Path) -> Harness:
    clock = FakeClock(datetime.now(UTC))
    fake = FakeProxy(clock=clock)
    return Harness(
        "proxy",
        {"AGENTCARD_ISSUER": "proxy", "AGENTCARD_API_KEY": fake.api_key,
         "AGENTCARD_BASE_URL": BASE_URL},
        transport=fake.transport(),
        seen=lambda: len(fake.requests),
        purchase=lambda card_id, cents, merchant: _ignore(
            fake.swipe(card_id, cents, merchant, "5734")
        ),
        fake=fake,
        clock=clock,
        between_calls=timedelta(seconds=21),  # a burst of one call's requests at most
    )  # fmt: skip


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "sandbox": _sandbox,
    "agentcard": _agentcard,
    "agentcard-sh": _agentcard_sh,
    "clawdcards": _clawdcards,
    "proxy": _proxy,
}


@dataclass
class Sleeps:
    """IssuerHTTP's backoff, recorded instead of slept."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def settings_from_env(harness: Harness, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the operator gives them: environment variables only."""
    env = {
        "AGENTCARD_HOME": str(tmp / "home"),
        "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
        **harness.env,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@asynccontextmanager
async def connected(
    harness: Harness,
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: Sleeps,
    mode: str = "auto",
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Client]:
    monkeypatch.setattr(connect, "IssuerHTTP", functools.partial(IssuerHTTP, sleep=sleeps))
    if (clock := harness.clock) is not None:

        async def sleep(seconds: float) -> None:
            clock.advance(seconds=seconds)

        monkeypatch.setattr(connect, "Pace", functools.partial(
            Pace, clock=lambda: clock.now.timestamp(), sleep=sleep
        ))  # fmt: skip
    settings = settings_from_env(harness, tmp, monkeypatch)
    server = create_server(settings, issuer_transport=transport or harness.transport)
    async with Client(server, mode=mode) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
    """("ok", structured result) or (error code, message)."""
    result = await client.call_tool(tool, arguments)
    if not result.is_error:
        return "ok", result.structured_content
    code, _, message = text_of(result).partition(": ")
    return code, message
