"""Read-back (DESIGN §5, service._read_back): after create_card and set_policy the card is read
again from the issuer and must carry exactly the policy asked for. An issuer that quietly drops
or ignores a limit leaves a wider card than the operator allowed: the call fails
``issuer_rejected`` and the card is frozen at the issuer — and if the freeze fails too, the
error says so and is still ``issuer_rejected``, never a success.

The issuer is the fake AgentCard of tests/fakes/agentcard.py, subclassed to misbehave on
purpose, reached through the server's ``issuer_transport``; retries do not really sleep."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr
from starlette.requests import Request

from agentcard_mcp.issuers import connect
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.agentcard import FakeAgentCard, Recorded
from tests.support import PERMISSIVE_POLICY

pytestmark = pytest.mark.anyio

BASE_URL = "http://issuer.test"
MAX_ATTEMPTS = 4  # IssuerHTTP's default

ASKED = {
    "purpose": "conference travel",
    "daily_limit_cents": 2000,
    "per_auth_max_cents": 1000,
    "mcc_allowlist": ["travel", "lodging"],
}


class Unfaithful(FakeAgentCard):
    """The fake issuer, except that it quietly leaves out what it is told to: fields of a
    create (the card is stored and returned without them) or of a PATCH (ignored)."""

    def __init__(
        self,
        *,
        drop_on_create: frozenset[str] = frozenset(),
        ignore_on_patch: frozenset[str] = frozenset(),
        freeze_status: int | None = None,
    ) -> None:
        self.drop_on_create = drop_on_create
        self.ignore_on_patch = ignore_on_patch
        self.freeze_status = freeze_status  # every freeze of a new card answers this
        super().__init__()

    def _create_card(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in body.items() if k not in self.drop_on_create}
        card = super()._create_card(request, kept)
        if self.freeze_status is not None:
            self.fail_freezes(card["id"], self.freeze_status)
        return card

    def _patch(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in body.items() if k not in self.ignore_on_patch}
        return super()._patch(request, kept)

    def fail_freezes(self, card_id: str, status: int) -> None:
        self.force(status, method="POST", path=f"/v1/cards/{card_id}/freeze", times=10)

    def freezes(self, card_id: str) -> list[Recorded]:
        return self.requests_to("POST", f"/v1/cards/{card_id}/freeze")


@dataclass
class Sleeps:
    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorded = Sleeps()
    monkeypatch.setattr(connect, "IssuerHTTP", functools.partial(IssuerHTTP, sleep=recorded))
    return recorded


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@asynccontextmanager
async def connected(fake: FakeAgentCard, home: Path, mode: str = "auto") -> AsyncIterator[Client]:
    settings = Settings(
        issuer="agentcard",
        api_key=SecretStr(fake.api_key),
        base_url=BASE_URL,
        home=home,
        policy_file=PERMISSIVE_POLICY,
    )
    server = create_server(settings, issuer_transport=fake.transport())
    async with Client(server, mode=mode) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    assert result.structured_content is not None
    data: dict[str, Any] = result.structured_content
    return data


async def failed(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of a call that must fail — never a success, never a card in the result."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {text_of(result)}"
    assert result.structured_content is None
    code, sep, message = text_of(result).partition(": ")
    assert sep
    return code, message


def only_card(fake: FakeAgentCard) -> dict[str, Any]:
    assert len(fake.cards) == 1
    return next(iter(fake.cards.values()))


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- a faithful issuer ---------------------------------------------------------------------


async def test_a_faithful_issuer_creates_and_changes_a_card_with_no_freeze(
    home: Path, mode: str
) -> None:
    fake = Unfaithful()
    async with connected(fake, home, mode) as client:
        card = await ok(client, "create_card", ASKED)
        assert card["status"] == "active"
        assert (card["daily_limit_cents"], card["per_auth_max_cents"]) == (2000, 1000)
        assert card["mcc_allowlist"] == ["travel", "lodging"]
        # The card was read back from the issuer after it was made.
        writes = [(r.method, r.path) for r in fake.requests if r.method != "GET"]
        assert writes == [("POST", "/v1/cards")]
        assert ("GET", f"/v1/cards/{card['id']}") in [(r.method, r.path) for r in fake.requests]

        changed = await ok(client, "set_policy", {
            "card_id": card["id"], "daily_limit_cents": 1500, "mcc_allowlist": ["travel"],
        })  # fmt: skip
        assert changed["status"] == "active"
        assert (changed["daily_limit_cents"], changed["per_auth_max_cents"]) == (1500, 1000)
        assert changed["mcc_allowlist"] == ["travel"]
        listed = (await ok(client, "list_cards", {}))["cards"]
    stored = only_card(fake)
    assert stored["frozen"] is False
    assert (stored["daily_limit_cents"], stored["per_auth_max_cents"]) == (1500, 1000)
    assert stored["mcc_allowlist"] == ["travel"]
    assert fake.freezes(card["id"]) == []
    assert [c["status"] for c in listed] == ["active"]


# --- create_card ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dropped", "stored_as"),
    [
        ("mcc_allowlist", {"mcc_allowlist": []}),  # any merchant, although travel was asked
        ("per_auth_max_cents", {"per_auth_max_cents": 2000}),  # the whole daily limit per buy
    ],
)
async def test_a_create_the_issuer_widened_is_issuer_rejected_and_frozen(
    home: Path, mode: str, dropped: str, stored_as: dict[str, Any]
) -> None:
    fake = Unfaithful(drop_on_create=frozenset({dropped}))
    async with connected(fake, home, mode) as client:
        code, _ = await failed(client, "create_card", ASKED)
        assert code == "issuer_rejected"
        listed = (await ok(client, "list_cards", {}))["cards"]
    # The issuer was asked for the narrow card ...
    (create,) = fake.requests_to("POST", "/v1/cards")
    assert create.body[dropped] == ASKED[dropped]
    # ... made a wider one, and it was frozen at once.
    stored = only_card(fake)
    assert {k: stored[k] for k in stored_as} == stored_as
    assert stored["frozen"] is True
    assert len(fake.freezes(stored["id"])) == 1
    assert [(c["id"], c["status"]) for c in listed] == [(stored["id"], "frozen")]
    methods = [(r.method, r.path) for r in fake.requests if r.method != "GET"]
    assert methods == [("POST", "/v1/cards"), ("POST", f"/v1/cards/{stored['id']}/freeze")]


async def test_retrying_a_rejected_create_with_its_key_is_rejected_again(home: Path) -> None:
    fake = Unfaithful(drop_on_create=frozenset({"mcc_allowlist"}))
    call = {**ASKED, "idempotency_key": "retry-me-1"}
    async with connected(fake, home) as client:
        assert (await failed(client, "create_card", call))[0] == "issuer_rejected"
        # The replayed answer still describes the unfrozen, widened card: no success either.
        assert (await failed(client, "create_card", call))[0] == "issuer_rejected"
    stored = only_card(fake)
    assert stored["frozen"] is True
    keys = [r.idempotency_key for r in fake.requests_to("POST", "/v1/cards")]
    assert keys == ["retry-me-1", "retry-me-1"]


# --- set_policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "ignored"),
    [
        # (A daily limit still above the card's per-purchase limit of 1000: one below would
        # take that down with it, another change.)
        ({"daily_limit_cents": 1500}, "daily_limit_cents"),
        ({"per_auth_max_cents": 500}, "per_auth_max_cents"),
        ({"mcc_allowlist": ["travel"]}, "mcc_allowlist"),
        ({"daily_limit_cents": 1500, "mcc_allowlist": ["travel"]}, "daily_limit_cents"),
    ],
)
async def test_a_policy_change_the_issuer_ignored_is_issuer_rejected_and_frozen(
    home: Path, mode: str, change: dict[str, Any], ignored: str
) -> None:
    fake = Unfaithful(ignore_on_patch=frozenset({ignored}))
    async with connected(fake, home, mode) as client:
        card = await ok(client, "create_card", ASKED)
        code, _ = await failed(client, "set_policy", {"card_id": card["id"], **change})
        assert code == "issuer_rejected"
        after = await ok(client, "get_card", {"card_id": card["id"]})
    (patch,) = fake.requests_to("PATCH", f"/v1/cards/{card['id']}")
    assert patch.body == change  # asked for exactly the change
    stored = only_card(fake)
    assert stored[ignored] == card[ignored]  # which the issuer did not make
    assert stored["frozen"] is True
    assert len(fake.freezes(card["id"])) == 1
    assert after["status"] == "frozen"


# --- the freeze fails too ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "freeze_code", "attempts"),
    [(500, "issuer_unavailable", MAX_ATTEMPTS), (403, "issuer_auth_failed", 1)],
)
async def test_a_widened_create_whose_freeze_fails_is_still_issuer_rejected(
    home: Path, sleeps: Sleeps, status: int, freeze_code: str, attempts: int
) -> None:
    fake = Unfaithful(drop_on_create=frozenset({"mcc_allowlist"}), freeze_status=status)
    async with connected(fake, home) as client:
        code, message = await failed(client, "create_card", ASKED)
        listed = (await ok(client, "list_cards", {}))["cards"]
    assert code == "issuer_rejected"
    assert f"({freeze_code})" in message  # the error names the freeze's own failure
    stored = only_card(fake)
    assert stored["frozen"] is False
    assert len(fake.freezes(stored["id"])) == attempts
    assert len(sleeps.delays) == attempts - 1
    assert [c["status"] for c in listed] == ["active"]  # the agent can see it is not frozen


async def test_an_ignored_policy_change_whose_freeze_fails_is_still_issuer_rejected(
    home: Path, sleeps: Sleeps
) -> None:
    fake = Unfaithful(ignore_on_patch=frozenset({"daily_limit_cents"}))
    async with connected(fake, home) as client:
        card = await ok(client, "create_card", ASKED)
        fake.fail_freezes(card["id"], 500)
        code, message = await failed(
            client, "set_policy", {"card_id": card["id"], "daily_limit_cents": 800}
        )
        # Asking again does not turn it into a success either.
        again, _ = await failed(
            client, "set_policy", {"card_id": card["id"], "daily_limit_cents": 800}
        )
    assert (code, again) == ("issuer_rejected", "issuer_rejected")
    assert "(issuer_unavailable)" in message
    stored = only_card(fake)
    assert (stored["daily_limit_cents"], stored["frozen"]) == (2000, False)
    assert len(fake.freezes(card["id"])) == 2 * MAX_ATTEMPTS
    assert len(sleeps.delays) == 2 * (MAX_ATTEMPTS - 1)
