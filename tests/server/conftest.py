"""Shared fixtures for the MCP server tests: the server on a fresh embedded sandbox, reached
through the SDK's ``Client`` in both connection modes, and a checked way to call its tools."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool
from pydantic import BaseModel

from agentcard_mcp.models import Authorization, Card, CardList, LedgerPage, Limits
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.support import PERMISSIVE_POLICY

TOOL_NAMES = frozenset(
    {
        "get_limits",
        "create_card",
        "list_cards",
        "get_card",
        "freeze_card",
        "unfreeze_card",
        "set_policy",
        "close_card",
        "read_ledger",
        "simulate_purchase",
    }
)

RESULT_MODELS: dict[str, type[BaseModel]] = {
    "get_limits": Limits,
    "create_card": Card,
    "list_cards": CardList,
    "get_card": Card,
    "freeze_card": Card,
    "unfreeze_card": Card,
    "set_policy": Card,
    "close_card": Card,
    "read_ledger": LedgerPage,
    "simulate_purchase": Authorization,
}

# Card details that must never reach an agent, under any spelling an issuer might use.
SECRET_KEYS = frozenset(
    {
        "number",
        "pan",
        "card_number",
        "cvc",
        "cvv",
        "cvc2",
        "exp",
        "exp_month",
        "exp_year",
        "expiry",
        "expiration",
        "expiry_date",
    }
)


def secret_keys_in(value: Any) -> set[str]:
    """Every key anywhere in ``value`` that names a card detail."""
    if isinstance(value, dict):
        found = {key for key in value if key.lower() in SECRET_KEYS}
        for item in value.values():
            found |= secret_keys_in(item)
        return found
    if isinstance(value, list):
        found = set()
        for item in value:
            found |= secret_keys_in(item)
        return found
    return set()


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


class ToolFailed(AssertionError):
    """A tool call that was expected to succeed returned an error result."""


class Agent:
    """The server as an agent sees it: every result is checked against the tool's advertised
    outputSchema and its pydantic model, and for card details it must never carry."""

    def __init__(self, client: Client, tools: dict[str, Tool]) -> None:
        self.client = client
        self.tools = tools
        self._validators: dict[str, Any] = {}

    def validator(self, name: str) -> Any:
        """The compiled validator of a tool's advertised outputSchema (compiling is the slow
        part of validating, so it happens once per tool)."""
        if name not in self._validators:
            schema = self.tools[name].output_schema
            assert schema is not None, f"{name} advertises no outputSchema"
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validators[name] = cls(schema)
        return self._validators[name]

    async def raw(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        return await self.client.call_tool(name, arguments or {})

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The structured result of a call that must succeed."""
        result = await self.raw(name, arguments)
        text = text_of(result)
        if result.is_error:
            raise ToolFailed(f"{name}({arguments}) -> {text}")
        data = result.structured_content
        assert data is not None, f"{name} returned no structured content"
        self.validator(name).validate(data)
        RESULT_MODELS[name].model_validate(data, strict=True)
        assert json.loads(text) == data, "the text content is not the structured content"
        assert not secret_keys_in(data), f"{name} returned card details"
        checked: dict[str, Any] = data
        return checked

    async def fail(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[str, str]:
        """(code, message) of a call that must be a tool error with ``code: message`` text."""
        result = await self.raw(name, arguments)
        text = text_of(result)
        assert result.is_error, f"{name}({arguments}) succeeded: {text}"
        assert result.structured_content is None
        code, sep, message = text.partition(": ")
        assert sep, f"error text is not 'code: message': {text!r}"
        return code, message

    async def card_ids(self) -> list[str]:
        return [card["id"] for card in (await self.call("list_cards"))["cards"]]

    async def snapshot(self, card_id: str | None = None) -> dict[str, Any]:
        """What the issuer holds: every card, one card's policy, and the agent's whole ledger."""
        state: dict[str, Any] = {
            "cards": (await self.call("list_cards"))["cards"],
            "ledger": (await self.call("read_ledger", {"limit": 500}))["entries"],
        }
        if card_id is not None:
            state["card"] = await self.call("get_card", {"card_id": card_id})
        return state


def hermetic_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Sandbox settings in ``home``: no AGENTCARD_* variable and no .env file can leak in."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(home.parent)
    settings = Settings(issuer="sandbox", home=home, policy_file=PERMISSIVE_POLICY)
    assert (settings.api_key, settings.agent_id) == (None, None)
    return settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return hermetic_settings(tmp_path / "home", monkeypatch)


@pytest.fixture(params=["auto", "legacy"])
async def agent(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Agent]:
    """The server over the SDK client, once per connection mode."""
    async with Client(create_server(settings), mode=request.param) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})
