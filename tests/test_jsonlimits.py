"""JSON from the network parsed within its depth limit, whatever the text's brackets say."""

from __future__ import annotations

import json

import pytest

from agentcard_mcp.jsonlimits import MAX_DEPTH, JsonTooDeep, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_exactly_at_the_depth_limit_is_taken_and_one_level_more_is_refused() -> None:
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(JsonTooDeep):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(JsonTooDeep):
        loads(json.dumps({"a": [{"b": json.loads(nested(MAX_DEPTH - 2))}]}).encode())


def test_brackets_inside_strings_or_side_by_side_do_not_count_as_depth() -> None:
    shallow = {"text": "[{" * 500, "list": [[1]] * 200, "objects": [{"a": {}}] * 100}
    for raw in (json.dumps(shallow), json.dumps(shallow).encode()):
        assert loads(raw) == shallow


def test_deep_json_in_any_encoding_json_reads_is_refused() -> None:
    for encoding in ("utf-8", "utf-16", "utf-32-le"):
        with pytest.raises(JsonTooDeep):
            loads(nested(MAX_DEPTH + 1).encode(encoding))
    with pytest.raises(JsonTooDeep):
        loads(nested(100_000))  # past Python's own recursion limit: still this error
