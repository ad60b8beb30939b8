"""JSON from the network, parsed within limits: the HTTP layer's request bodies and the
sandbox's. Python's parser recurses once per level and raises RecursionError (no ValueError)
somewhere near a thousand; anything that deep, or merely deeper than any request we take, is
refused here as a ValueError the caller already handles as "not valid JSON"."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "JsonTooDeep", "loads"]

# Levels of arrays and objects; an MCP request needs fewer than ten.
MAX_DEPTH = 64


class JsonTooDeep(ValueError):
    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ValueError (JsonTooDeep for nesting beyond ``max_depth``)
    for anything it cannot take, and never RecursionError."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    # Each level opens with a bracket of its own, so text with few brackets (inside strings
    # or not) cannot nest deeper than their count: a C-speed count spares the walk.
    if _brackets(raw) > max_depth and _deeper_than(data, max_depth):
        raise JsonTooDeep(max_depth)
    return data


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels: one level at a time, with
    no recursion, in time linear in the number of containers."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend(c for c in children if isinstance(c, (dict, list)))
        level, depth = below, depth + 1
    return False
