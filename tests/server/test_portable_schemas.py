"""Tool schemas every host accepts (DESIGN §4): one JSON ``type`` per property, optional
arguments simply not required, no references, and ``tools/list`` under 10 KB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Agent

pytestmark = pytest.mark.anyio

TOOLS_LIST_LIMIT = 10 * 1024  # bytes of the tools/list result as the SDK writes it on the wire


def property_schemas(schema: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """Every schema that describes a value, at any depth: the properties and list items."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{where}.{name}", sub
        yield from property_schemas(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield f"{where}[]", schema["items"]
        yield from property_schemas(schema["items"], f"{where}[]")


def schemas_of(agent: Agent) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, tool in agent.tools.items():
        yield f"{name}.input", tool.input_schema
        assert tool.output_schema is not None, name
        yield f"{name}.output", tool.output_schema


async def test_every_property_of_every_schema_has_exactly_one_type(agent: Agent) -> None:
    checked = 0
    for where, schema in schemas_of(agent):
        assert schema["type"] == "object", where
        for path, sub in property_schemas(schema, where):
            assert isinstance(sub, dict), path
            assert isinstance(sub.get("type"), str), f"{path}: {sub}"
            assert not {"anyOf", "oneOf", "allOf", "$ref"} & set(sub), f"{path}: {sub}"
            checked += 1
    assert checked > 100  # the walk reached the nested results (cards, ledger entries)


async def test_no_schema_mentions_null_or_refers_elsewhere(agent: Agent) -> None:
    for where, schema in schemas_of(agent):
        text = repr(schema)
        assert "'null'" not in text, where
        assert "None" not in text, where
        assert "$defs" not in schema, where
        assert "$ref" not in text, where


async def test_only_the_arguments_a_tool_cannot_do_without_are_required(agent: Agent) -> None:
    required = {
        name: set(tool.input_schema.get("required", [])) for name, tool in agent.tools.items()
    }
    assert required == {
        "get_limits": set(),
        "create_card": {"purpose", "daily_limit_cents"},
        "list_cards": set(),
        "get_card": {"card_id"},
        "freeze_card": {"card_id"},
        "unfreeze_card": {"card_id"},
        "set_policy": {"card_id"},
        "close_card": {"card_id"},
        "read_ledger": set(),
        "simulate_purchase": {"card_id", "amount_cents", "merchant", "mcc"},
    }


async def test_tools_list_is_under_10_kb_on_the_wire(agent: Agent) -> None:
    listing = await agent.client.list_tools()
    wire = listing.model_dump_json(by_alias=True, exclude_none=True)
    assert len(wire.encode()) < TOOLS_LIST_LIMIT, len(wire.encode())


async def test_a_result_leaves_out_a_field_with_no_value_instead_of_sending_null(
    agent: Agent,
) -> None:
    # Agent.call validates the result against the advertised one-type outputSchema.
    card = await agent.call("create_card", {"purpose": "books", "daily_limit_cents": 1500})
    assert "expires_at" not in card
    assert None not in card.values()
    page = await agent.call("read_ledger", {"card_id": card["id"]})
    assert "next_cursor" not in page


async def test_an_explicit_null_for_an_optional_argument_still_means_not_given(
    agent: Agent,
) -> None:
    card = await agent.call(
        "create_card",
        {"purpose": "books", "daily_limit_cents": 1500, "per_auth_max_cents": None,
         "ttl_minutes": None, "mcc_allowlist": None, "approval_id": None},
    )  # fmt: skip
    assert card["per_auth_max_cents"] == 1500
    assert card["mcc_allowlist"] == []
