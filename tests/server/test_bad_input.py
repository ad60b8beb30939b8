"""Bad input to every tool is a tool error whose text starts with its stable code, and changes
nothing at the issuer: the cards, the card's policy and the ledger are as they were.

Every case runs against one server per connection mode (module scope): each bad call must leave
the issuer exactly as it found it, which each test checks around its own call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from _pytest.mark import ParameterSet
from mcp import Client

from agentcard_mcp.categories import TAGS
from agentcard_mcp.server import create_server

from .conftest import Agent, hermetic_settings

pytestmark = pytest.mark.anyio

CARD = "<the card>"  # replaced by the id of the card every case runs against
UNKNOWN_CARD = "card_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
MALFORMED_CARDS = {"path": "../cards", "space": "card 1", "empty": "", "integer": 42}
BAD_CENTS = {"float": 50.5, "whole-float": 50.0, "string": "500", "bool": True, "negative": -100,
             "zero": 0, "over-max": 10**12, "null-required": None}  # fmt: skip
# The card the cases run against: daily 5000, per purchase 2000, travel only.
DAILY, PER_AUTH = 5000, 2000


@dataclass(frozen=True)
class World:
    agent: Agent
    card_id: str


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["auto", "legacy"])
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """One card with an approved and a declined purchase on a fresh sandbox, per mode."""
    scratch = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = hermetic_settings(scratch / "home", monkeypatch)
        async with Client(create_server(settings), mode=request.param) as client:
            listing = await client.list_tools()
            agent = Agent(client, {tool.name: tool for tool in listing.tools})
            card = await agent.call(
                "create_card",
                {"purpose": "flights", "daily_limit_cents": DAILY,
                 "per_auth_max_cents": PER_AUTH, "mcc_allowlist": ["travel"]},
            )  # fmt: skip
            swipe = {"card_id": card["id"], "merchant": "TAP Air", "mcc": "travel"}
            await agent.call("simulate_purchase", {**swipe, "amount_cents": 700})
            await agent.call("simulate_purchase", {**swipe, "amount_cents": 100, "mcc": "saas"})
            yield World(agent, card["id"])


def _fill(arguments: dict[str, Any], card_id: str) -> dict[str, Any]:
    return {key: card_id if value == CARD else value for key, value in arguments.items()}


def _without(arguments: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if k != key}


def case(tool: str, arguments: dict[str, Any], code: str, id: str, *mentions: str) -> ParameterSet:
    return pytest.param(tool, arguments, code, mentions, id=f"{tool}-{id}")


CREATE: dict[str, Any] = {"purpose": "hotel", "daily_limit_cents": 3000}
SWIPE: dict[str, Any] = {"card_id": CARD, "amount_cents": 100, "merchant": "TAP Air",
                         "mcc": "travel"}  # fmt: skip
CARD_TOOLS = ("get_card", "freeze_card", "unfreeze_card", "close_card")


def _cents_cases() -> list[ParameterSet]:
    cases = []
    amounts: list[tuple[str, dict[str, Any], str, bool]] = [
        ("create_card", CREATE, "daily_limit_cents", True),
        ("create_card", CREATE, "per_auth_max_cents", False),
        ("set_policy", {"card_id": CARD}, "daily_limit_cents", False),
        ("set_policy", {"card_id": CARD}, "per_auth_max_cents", False),
        ("simulate_purchase", SWIPE, "amount_cents", True),
    ]
    for tool, base, field, required in amounts:
        for name, value in BAD_CENTS.items():
            if value is not None or required:
                cases.append(
                    case(tool, {**base, field: value}, "invalid_params", f"{field}-{name}")
                )
        if required:
            cases.append(case(tool, _without(base, field), "invalid_params", f"{field}-missing"))
    return cases


def _card_id_cases() -> list[ParameterSet]:
    cases = []
    calls: list[tuple[str, dict[str, Any], str]] = [
        *((tool, {"card_id": CARD}, "") for tool in CARD_TOOLS),
        ("set_policy", {"card_id": CARD, "daily_limit_cents": 4000}, "-daily"),
        ("set_policy", {"card_id": CARD, "per_auth_max_cents": 100}, "-per-auth"),
        ("read_ledger", {"card_id": CARD}, ""),
        ("simulate_purchase", SWIPE, ""),
    ]
    for tool, base, label in calls:
        cases.append(case(tool, {**base, "card_id": UNKNOWN_CARD}, "not_found", "unknown" + label))
        for name, value in MALFORMED_CARDS.items():
            if tool == "read_ledger" and value == "":
                continue  # for read_ledger an empty card_id means "not given": the agent's ledger
            malformed = {**base, "card_id": value}
            cases.append(case(tool, malformed, "invalid_params", f"malformed-{name}{label}"))
        if tool != "read_ledger":  # read_ledger without card_id reads the agent's ledger
            missing = _without(base, "card_id")
            cases.append(case(tool, missing, "invalid_params", "missing" + label))
    return cases


CASES: list[ParameterSet] = [
    *_cents_cases(),
    *_card_id_cases(),
    # create_card
    case("create_card", {}, "invalid_params", "nothing"),
    case("create_card", _without(CREATE, "purpose"), "invalid_params", "purpose-missing"),
    case("create_card", {**CREATE, "purpose": "x" * 10_000}, "invalid_params", "purpose-10k"),
    case("create_card", {**CREATE, "purpose": ""}, "invalid_params", "purpose-empty"),
    case("create_card", {**CREATE, "purpose": "   "}, "invalid_params", "purpose-blank"),
    case("create_card", {**CREATE, "per_auth_max_cents": 3001}, "invalid_params",
         "per-auth-over-daily"),
    case("create_card", {**CREATE, "mcc_allowlist": ["casino"]}, "invalid_params",
         "category-unknown", *TAGS),
    case("create_card", {**CREATE, "mcc_allowlist": ["travel", "casino"]}, "invalid_params",
         "category-one-unknown", "travel"),
    case("create_card", {**CREATE, "mcc_allowlist": ["0000"]}, "invalid_params",
         "mcc-in-no-category", "travel"),
    case("create_card", {**CREATE, "mcc_allowlist": "travel"}, "invalid_params",
         "categories-not-a-list"),
    case("create_card", {**CREATE, "mcc_allowlist": ["travel"] * 51}, "invalid_params",
         "categories-51"),
    case("create_card", {**CREATE, "ttl_minutes": 60}, "not_supported", "ttl", "sandbox"),
    case("create_card", {**CREATE, "single_use": True}, "not_supported", "single-use", "sandbox"),
    case("create_card", {**CREATE, "ttl_minutes": 0}, "invalid_params", "ttl-zero"),
    case("create_card", {**CREATE, "ttl_minutes": 1.5}, "invalid_params", "ttl-float"),
    case("create_card", {**CREATE, "agent_id": "../agents"}, "invalid_params", "agent-malformed"),
    case("create_card", {**CREATE, "agent_id": "agt_nobody"}, "not_found", "agent-unknown"),
    case("create_card", {**CREATE, "idempotency_key": "k" * 256}, "invalid_params", "key-256"),
    # list_cards
    case("list_cards", {"status": "deleted"}, "invalid_params", "status-unknown"),
    case("list_cards", {"status": 1}, "invalid_params", "status-integer"),
    # freeze_card
    case("freeze_card", {"card_id": CARD, "reason": "r" * 501}, "invalid_params", "reason-501"),
    # set_policy
    case("set_policy", {"card_id": CARD}, "invalid_params", "nothing-to-change"),
    case("set_policy", {"card_id": CARD, "daily_limit_cents": None, "per_auth_max_cents": None,
                        "mcc_allowlist": None}, "invalid_params", "only-nulls"),
    case("set_policy", {"card_id": CARD, "daily_limit_cents": 3000, "per_auth_max_cents": 3001},
         "invalid_params", "per-auth-over-new-daily"),
    case("set_policy", {"card_id": CARD, "per_auth_max_cents": DAILY + 1}, "invalid_params",
         "per-auth-over-current-daily"),
    case("set_policy", {"card_id": CARD, "mcc_allowlist": ["casino"]}, "invalid_params",
         "category-unknown", *TAGS),
    case("set_policy", {"card_id": CARD, "mcc_allowlist": ["saas", "9999"]}, "invalid_params",
         "mcc-in-no-category"),
    # read_ledger
    case("read_ledger", {"limit": 0}, "invalid_params", "limit-0"),
    case("read_ledger", {"limit": 501}, "invalid_params", "limit-501"),
    case("read_ledger", {"limit": -1}, "invalid_params", "limit-negative"),
    case("read_ledger", {"limit": 10.5}, "invalid_params", "limit-float"),
    case("read_ledger", {"limit": 10.0}, "invalid_params", "limit-whole-float"),
    case("read_ledger", {"limit": "10"}, "invalid_params", "limit-string"),
    case("read_ledger", {"limit": True}, "invalid_params", "limit-bool"),
    case("read_ledger", {"card_id": CARD, "agent_id": "agt_x"}, "invalid_params",
         "card-and-agent"),
    case("read_ledger", {"decision": "maybe"}, "invalid_params", "decision-unknown"),
    case("read_ledger", {"cursor": "c" * 101}, "invalid_params", "cursor-101"),
    case("read_ledger", {"cursor": "not-a-cursor"}, "invalid_params", "cursor-unknown"),
    case("read_ledger", {"agent_id": "../agents"}, "invalid_params", "agent-malformed"),
    case("read_ledger", {"agent_id": "agt_nobody"}, "not_found", "agent-unknown"),
    # simulate_purchase
    case("simulate_purchase", _without(SWIPE, "merchant"), "invalid_params", "merchant-missing"),
    case("simulate_purchase", {**SWIPE, "merchant": ""}, "invalid_params", "merchant-empty"),
    case("simulate_purchase", {**SWIPE, "merchant": "m" * 201}, "invalid_params", "merchant-201"),
    case("simulate_purchase", _without(SWIPE, "mcc"), "invalid_params", "mcc-missing"),
    case("simulate_purchase", {**SWIPE, "mcc": ""}, "invalid_params", "mcc-empty"),
    case("simulate_purchase", {**SWIPE, "mcc": "casino"}, "invalid_params", "mcc-unknown",
         *TAGS),
    case("simulate_purchase", {**SWIPE, "mcc": "0000"}, "invalid_params", "mcc-in-no-category"),
]  # fmt: skip


def test_every_tool_that_takes_arguments_has_bad_input_cases() -> None:
    tools = {param.values[0] for param in CASES}
    assert tools == {"create_card", "list_cards", "get_card", "freeze_card", "unfreeze_card",
                     "set_policy", "close_card", "read_ledger", "simulate_purchase"}  # fmt: skip


@pytest.mark.parametrize(("tool", "arguments", "code", "mentions"), CASES)
async def test_bad_input_is_a_tool_error_with_its_code_and_changes_nothing(
    world: World, tool: str, arguments: dict[str, Any], code: str, mentions: tuple[str, ...]
) -> None:
    agent = world.agent
    before = await agent.snapshot(world.card_id)

    got, message = await agent.fail(tool, _fill(arguments, world.card_id))

    assert got == code, message
    for word in mentions:
        assert word in message, f"{word!r} not in {message!r}"
    assert await agent.snapshot(world.card_id) == before


async def test_the_card_the_bad_input_cases_use_is_as_created(world: World) -> None:
    """Guards the cases above: they would prove little against a card that is not there."""
    state = await world.agent.snapshot(world.card_id)
    card = state["card"]
    assert card["status"] == "active"
    assert (card["daily_limit_cents"], card["per_auth_max_cents"]) == (DAILY, PER_AUTH)
    assert card["mcc_allowlist"] == ["travel"]
    assert [c["id"] for c in state["cards"]] == [world.card_id]
    assert [e["reason"] for e in state["ledger"]] == [
        "category_not_in_allowlist",
        "approved",
    ]
