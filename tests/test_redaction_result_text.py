"""A structured result's text at the boundary (server._redacted): when it is the SDK's own JSON
of the data, it follows the masked data — never masked on its own into something the data does
not say — and a card split over a key and its value is masked in both. Text that is not the
SDK's JSON of the data is still masked as text."""

from __future__ import annotations

import json
import random
from typing import Any

import pydantic_core
from mcp.types import CallToolResult, TextContent

from agentcard_mcp.redaction import MASK, redact
from agentcard_mcp.server import _redacted
from tests.card_corpus import survivors

VISA = "4111111111111111"


def sdk_result(data: Any) -> CallToolResult:
    """A tool's result as the SDK makes it from structured output: the data, and its JSON."""
    text = pydantic_core.to_json(data, indent=2).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def text_of(result: Any) -> str:
    assert isinstance(result, CallToolResult)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def test_a_list_of_numbers_is_not_masked_in_the_text_when_the_data_leaves_it_alone() -> None:
    """Neighbouring JSON numbers are amounts and counts, never pieces of one card; as text,
    "5814,\\n    6011,\\n    5812, ..." once read as a Mastercard number."""
    rng = random.Random(5)
    codes = [5411, 5812, 5999, 4111, 5814, 4511, 3000, 7011, 5311, 4121, 5541, 1111, 6011]
    for _ in range(300):
        data = {"id": "card_01JD", "amounts": rng.sample(codes, rng.randint(2, 6))}
        result = sdk_result(data)
        masked = _redacted(result)
        assert masked is result
        assert json.loads(text_of(masked)) == data


def test_the_text_is_the_json_of_the_masked_data_when_the_data_changed() -> None:
    data = {"id": "card_01JD", "card": {"number": VISA, "note": "ok"}, "amounts": [5814, 6011]}
    masked = _redacted(sdk_result(data))
    assert isinstance(masked, CallToolResult)
    assert masked.structured_content == {
        "id": "card_01JD",
        "card": {"number": f"{MASK} 1111", "note": "ok"},
        "amounts": [5814, 6011],
    }
    assert text_of(masked) == pydantic_core.to_json(masked.structured_content, indent=2).decode()


def test_a_card_split_over_a_key_and_its_value_is_masked_in_the_data_and_its_text() -> None:
    for data in ({"4111 1111": "1111 1111"}, {"entries": [{"id": "x", "4111 1111 1111": "1111"}]}):
        masked = _redacted(sdk_result(data))
        assert isinstance(masked, CallToolResult)
        assert survivors([VISA], masked.structured_content) == []
        assert survivors([VISA], text_of(masked)) == []
    assert redact({"a": "1", "2026": "1234"}) == {"a": "1", "2026": "1234"}


def test_text_that_is_not_the_sdk_json_of_the_data_is_masked_as_text() -> None:
    data = {"id": "card_01JD", "amounts": [5814, 6011]}
    result = CallToolResult(
        content=[TextContent(type="text", text=f"card {VISA} declined")], structured_content=data
    )
    masked = _redacted(result)
    assert text_of(masked) == f"card {MASK} 1111 declined"
    assert isinstance(masked, CallToolResult)
    assert masked.structured_content is data


def test_a_card_split_over_values_with_spaces_at_their_edges_is_masked_in_data_and_text() -> None:
    """The walk strips a piece's spaces; the quick check once wanted a digit right at the
    quote, so these passed it and came back whole (a review finding)."""
    groups = [VISA[i : i + 4] for i in range(0, 16, 4)]
    for data in (
        {"nickname": f"{groups[0]} {groups[1]} ", "memo": f"{groups[2]} {groups[3]}"},
        {"a": f"{groups[0]} {groups[1]}", "b": f"     {groups[2]} {groups[3]}"},
        {"a": f"{groups[0]} ", "b": f"{groups[1]} ", "c": f"{groups[2]} ", "d": groups[3]},
    ):
        out = _redacted(sdk_result(data))
        assert isinstance(out, CallToolResult)
        joined = "".join(str(v) for v in (out.structured_content or {}).values())
        assert VISA not in joined.replace(" ", "")
        assert VISA not in text_of(out).replace(" ", "").replace('"', "").replace(",", "")
        assert MASK in text_of(out)


def test_a_label_written_as_a_key_with_its_punctuation_is_a_card_field() -> None:
    for key, value in (("cvc:", "123"), ("exp.", "09/31"), ("Valid thru:", "09/31"),
                       ("Exp:", "0931"), (" CVV2 - ", "1234")):  # fmt: skip
        out = _redacted(sdk_result({"card": {key: value}}))
        assert isinstance(out, CallToolResult)
        assert value not in json.dumps(out.structured_content)
        assert value not in text_of(out)
    kept = _redacted(sdk_result({"_id": "card_12", "note:": "thanks"}))
    assert isinstance(kept, CallToolResult)
    assert kept.structured_content == {"_id": "card_12", "note:": "thanks"}
