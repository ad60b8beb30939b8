"""Every tool fuzzed from its own advertised inputSchema (issue 14 item 4; DESIGN §4, §7).

Arguments are drawn from each tool's ``inputSchema`` as ``tools/list`` gives it — valid values
(unicode included, real card ids mixed in) and invalid ones made from them: a wrong JSON type,
a number out of range or fractional, a huge or pattern-breaking string (unicode, controls,
zero-width), deep JSON, a missing required argument, too many items, a value outside an enum.
Whether an example is invalid is decided by the schema itself (jsonschema), not by the
generator (an explicit null for an optional argument counts as not given, DESIGN §4).
Through the SDK's in-memory ``Client`` (both connection modes, tool by tool):

- the server never crashes: every answer is a result, never a protocol error, and an error
  result is ``code: message`` with one of the stable codes (never the SDK's bare "Error
  executing tool");
- input the schema refuses is ``invalid_params``, never a success, and changes nothing:
  list_cards, get_limits and the whole ledger read the same before and after;
- a success is checked against the tool's outputSchema (the ``Agent`` harness).

hypothesis-jsonschema 0.23.1 (the latest) fails on object schemas with this hypothesis
(``'many' object has no attribute 'more'``), so the few keywords our schemas use are turned
into strategies here. CI runs 30 examples a tool; ``pytest --hypothesis-profile=long`` many
more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.server.conftest import TOOL_NAMES, Agent, hermetic_settings, text_of

CI_EXAMPLES = 30
CODES = frozenset({
    "invalid_params", "guardrail_exceeded", "category_not_allowed", "merchant_blocked",
    "approval_required", "approval_denied", "not_found", "not_supported", "test_mode_only",
    "idempotency_conflict", "issuer_auth_failed", "issuer_rate_limited", "issuer_unavailable",
    "issuer_rejected",
})  # fmt: skip
WRITES = frozenset({"create_card", "freeze_card", "unfreeze_card", "set_policy", "close_card",
                    "simulate_purchase"})  # fmt: skip


def examples() -> int:
    """The chosen profile's count (``--hypothesis-profile``), else CI's small one."""
    chosen = settings().max_examples
    return CI_EXAMPLES if chosen == settings.get_profile("default").max_examples else chosen


FUZZ = settings(
    max_examples=examples(),
    deadline=None,
    # One server for all of a tool's examples: its state is compared around each one.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- strategies from a JSON schema --------------------------------------------------------------


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the property ``schema`` accepts."""
    types = _types(schema)
    options: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    for kind in types:
        if kind == "null":
            options.append(st.none())
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "integer":
            options.append(st.integers(schema.get("minimum"), schema.get("maximum")))
        elif kind == "string" and "enum" not in schema:
            options.append(_string(schema))
        elif kind == "array":
            items = valid(schema.get("items", {}))
            options.append(st.lists(items, max_size=min(schema.get("maxItems", 5), 5)))
    return st.one_of(options)


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 300)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= high
        )
    return st.text(min_size=low, max_size=min(high, 300))


def arguments(schema: dict[str, Any], card_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments: every required property, some optional ones; a card_id is often one of
    the real ``card_ids``, so that valid calls reach a card."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = {}
        for name, prop in properties.items():
            if name not in required and not draw(st.booleans()):
                continue
            value = valid(prop)
            if name == "card_id" and card_ids:
                value = st.one_of(st.sampled_from(card_ids), value)
            out[name] = draw(value)
        return out

    return build()


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


ODD_TEXT = [
    "x" * 50_000,  # huge
    "€" * 301,  # unicode, too long for any of our strings
    "card 1",  # a space
    "card\u200b1",  # zero-width space
    "кард_1",  # Cyrillic
    "card\x00",  # NUL
    "../../etc/passwd",
    "\u202ecard",  # right-to-left override
    "🃏" * 70,
    "",
]
OTHER_TYPES: list[Any] = [7, -1, 1.5, "7", "null", True, None, [1], {"a": 1}, _deep(3)]


def invalid(schema: dict[str, Any], card_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments with one thing broken (the result may still be valid; the caller asks
    the schema)."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = sorted(schema.get("required", []))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(arguments(schema, card_ids))
        how = draw(st.sampled_from(["value", "deep", "missing"] if required else ["value", "deep"]))
        if how == "missing" or not properties:
            if not required:
                return out
            for name in required[: draw(st.integers(1, len(required)))]:
                out.pop(name, None)
            return out
        name = draw(st.sampled_from(sorted(properties)))
        if how == "deep":
            out[name] = _deep(draw(st.sampled_from([40, 250])))  # the SDK client stops near 1000
            return out
        out[name] = draw(_broken(properties[name]))
        return out

    return build()


def _broken(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    types = _types(schema)
    options: list[st.SearchStrategy[Any]] = [st.sampled_from(OTHER_TYPES)]
    if "integer" in types:
        low, high = schema.get("minimum", 0), schema.get("maximum", 10**12)
        options.append(st.sampled_from([low - 1, 0, -(10**30), high + 1, 10**30, 2.5, 1e308]))
    if "string" in types:
        options.append(st.sampled_from(ODD_TEXT))
        if "enum" in schema:
            options.append(st.sampled_from([v.upper() for v in schema["enum"]] + [" active"]))
    if "array" in types:
        item = schema.get("items", {})
        options.append(st.lists(st.sampled_from(ODD_TEXT + OTHER_TYPES), min_size=1, max_size=3))
        options.append(st.just(["travel"] * (schema.get("maxItems", 50) + 1)))
        options.append(st.lists(valid(item), min_size=1, max_size=2).map(lambda v: [v]))
    return st.one_of(options)


# --- the server ---------------------------------------------------------------------------------


class Fuzzed:
    """The server under fuzzing, and what it held after the last call that may have changed it."""

    def __init__(self, portal: BlockingPortal, agent: Agent, card_ids: list[str]) -> None:
        self.portal = portal
        self.agent = agent
        self.card_ids = card_ids
        self.state: dict[str, Any] | None = None
        self._inputs: dict[str, Any] = {}  # each tool's compiled inputSchema

    async def snapshot(self) -> dict[str, Any]:
        return {
            "cards": await self.agent.call("list_cards"),
            "limits": await self.agent.call("get_limits"),
            "ledger": await self.agent.call("read_ledger", {"limit": 500}),
        }

    async def check(self, tool: str, args: dict[str, Any]) -> None:
        if tool not in self._inputs:
            self._inputs[tool] = jsonschema.Draft202012Validator(
                self.agent.tools[tool].input_schema
            )
        schema = self.agent.tools[tool].input_schema
        # An explicit null for an optional argument is "not given" (DESIGN §4).
        given = {k: v for k, v in args.items() if v is not None or k in schema.get("required", [])}
        refused = not self._inputs[tool].is_valid(given)
        # A read tool's whole run is compared at the end instead (fuzzed's teardown).
        compare = refused and tool in WRITES
        if compare and self.state is None:
            self.state = await self.snapshot()
        result = await self.agent.raw(tool, args)  # a protocol error would raise here
        text = text_of(result)
        shown = f"{tool}({json.dumps(args)[:300]}) -> {text[:300]}"
        if result.is_error:
            code, sep, _ = text.partition(": ")
            assert sep, shown
            assert code in CODES, shown
        if refused:
            assert result.is_error, f"invalid input succeeded: {shown}"
            assert text.startswith("invalid_params: "), shown
            if compare:
                assert await self.snapshot() == self.state, f"invalid input changed: {shown}"
            return
        if not result.is_error:
            self.agent.validator(tool).validate(result.structured_content)
        if tool in WRITES:
            self.state = None  # a valid write may have changed things


@pytest.fixture
def fuzzed(
    tool: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fuzzed]:
    """The server and two cards (one frozen), driven through a blocking portal: hypothesis
    draws in plain code (its StopTest must not cross an event loop's runner). A read tool,
    whatever it was sent, leaves everything as it was."""
    settings_: Settings = hermetic_settings(tmp_path / "home", monkeypatch)
    client = Client(create_server(settings_), mode=mode)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(client):

        async def opened() -> Fuzzed:
            agent = Agent(client, {tool.name: tool for tool in (await client.list_tools()).tools})
            active = await agent.call("create_card", {"purpose": "fuzz", "daily_limit_cents": 500})
            frozen = await agent.call("create_card", {"purpose": "fuzz", "daily_limit_cents": 500})
            await agent.call("freeze_card", {"card_id": frozen["id"]})
            return Fuzzed(portal, agent, [active["id"], frozen["id"]])

        fuzzed = portal.call(opened)
        before = portal.call(fuzzed.snapshot)
        yield fuzzed
        if tool not in WRITES:
            assert portal.call(fuzzed.snapshot) == before, f"{tool} changed the server's state"


# Each tool in one connection mode, the modes in turn.
@pytest.mark.parametrize(
    ("tool", "mode"),
    [(tool, ("auto", "legacy")[n % 2]) for n, tool in enumerate(sorted(TOOL_NAMES))],
)
@FUZZ
@given(data=st.data())
def test_any_input_gets_a_stable_answer_and_invalid_input_changes_nothing(
    fuzzed: Fuzzed, tool: str, mode: str, data: st.DataObject
) -> None:
    schema = fuzzed.agent.tools[tool].input_schema
    drawn = st.one_of(arguments(schema, fuzzed.card_ids), invalid(schema, fuzzed.card_ids))
    args = data.draw(drawn, label="arguments")
    fuzzed.portal.call(fuzzed.check, tool, args)


# --- what the fuzzer found, kept as examples -----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_string_the_sdk_would_read_as_json_is_refused_by_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """'null' for approval_id was read as None, and a card id padded past maxLength was taken
    once its whitespace was stripped: both are outside the advertised schema, so both are
    invalid_params and change nothing."""
    settings_ = hermetic_settings(tmp_path / "home", monkeypatch)
    async with Client(create_server(settings_), mode=mode) as client:
        agent = Agent(client, {tool.name: tool for tool in (await client.list_tools()).tools})
        card = await agent.call("create_card", {"purpose": "kept", "daily_limit_cents": 500})
        for arguments in (
            {"card_id": card["id"], "approval_id": "null"},
            {"card_id": card["id"] + " " * 64},  # over maxLength, under it once stripped
        ):
            code, message = await agent.fail("close_card", arguments)
            assert code == "invalid_params", message
            assert "close_card" not in message  # names the argument and the rule, not values
        assert (await agent.call("get_card", {"card_id": card["id"]}))["status"] == "active"
