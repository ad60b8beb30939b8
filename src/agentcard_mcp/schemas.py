"""Compact, portable JSON schemas for ``tools/list``: every agent pays for that text in its
context, and every host must accept it.

Pydantic's schemas carry a generated ``title`` on every property ("Daily Limit Cents" for
``daily_limit_cents``) and spell an optional value as ``anyOf: [{type: X}, {type: null}]``.
Hosts with single-type dialects (Gemini's function declarations, strict validators) reject a
``type`` array or an ``anyOf`` with null, or drop its constraints, so every property here has
one ``type`` (DESIGN §4): an optional argument is ``{type: X}`` and simply not required (the
server still takes an explicit null as "not given"), and a result leaves out a field that has
no value (``models._Model``) instead of sending null. (``anyOf`` folding skips a branch that
shares a keyword with its parent, such as a nested ``description``, so nothing is overwritten.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact", "one_line"]

_NOT_GIVEN: tuple[Any, ...] = (None, "")  # defaults that only say "not given"
# What a result's schema leaves out: a result is read, not written, so listing each field's
# name again (required) or its possible values (enum) costs more than it tells.
_READ_ONLY_KEYWORDS = frozenset({"required", "enum"})


def compact(schema: Any, *, output: bool = False) -> Any:
    """The same schema, portable and lean: generated titles dropped; ``$ref``s into ``$defs``
    written in place (single-type dialects have no references); ``default`` dropped where it
    only means "not given" (null, ""); an optional value given its one type; and, for a
    result (``output``), no ``required`` lists (a field with no value is left out) nor
    ``enum``s."""
    if not isinstance(schema, dict):
        return schema
    defs = schema.get("$defs", {})
    return _compact({k: v for k, v in schema.items() if k != "$defs"}, defs, output, ())


def _compact(schema: Any, defs: dict[str, Any], output: bool, seen: tuple[str, ...]) -> Any:
    if isinstance(schema, list):
        return [_compact(item, defs, output, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and len(schema) == 1:
        name = ref.removeprefix("#/$defs/")
        if name in seen:  # a model that contains itself cannot be written out
            raise ValueError(f"schema of {name} refers to itself; it cannot be inlined")
        return _compact(defs[name], defs, output, (*seen, name))
    out = {
        key: _compact(value, defs, output, seen)
        for key, value in schema.items()
        if not _generated_title(key, value)
        and not (key == "default" and value in _NOT_GIVEN)
        and not (output and key in _READ_ONLY_KEYWORDS and isinstance(value, list))
    }
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        # {"anyOf": [{"type": "integer", "maximum": 5}, {"type": "null"}]} is advertised as
        # {"type": "integer", "maximum": 5}: null is what leaving the field out means.
        if isinstance(other.get("type"), str) and not set(other) & set(out):
            del out["anyOf"]
            out.update(other)
    return out


def one_line(text: str | None) -> str | None:
    """A docstring as one line: its indentation is bytes in every agent's context."""
    return None if text is None else " ".join(text.split())


def _generated_title(key: str, value: Any) -> bool:
    # A property *named* "title" maps to a dict (its schema); a generated title is a string.
    return key == "title" and isinstance(value, str)
