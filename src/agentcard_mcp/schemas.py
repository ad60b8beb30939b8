"""Compact JSON schemas for ``tools/list``: every agent pays for that text in its context.

Pydantic's schemas carry a generated ``title`` on every property ("Daily Limit Cents" for
``daily_limit_cents``) and spell an optional value as ``anyOf: [{type: X}, {type: null}]``.
Dropping the titles and writing ``type: [X, "null"]`` says the same in about a third less.
(``anyOf`` folding skips a branch that shares a keyword with its parent, such as a nested
``description``, so nothing is overwritten.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact", "one_line"]


def compact(schema: Any, *, output: bool = False) -> Any:
    """The same schema without generated titles, ``default: null`` (what an optional argument
    means anyway) and, for a result (``output``), the ``required`` lists: every field of a
    result is always present, and listing each name twice costs more than it tells."""
    if isinstance(schema, list):
        return [compact(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: compact(value, output=output)
        for key, value in schema.items()
        if not _generated_title(key, value)
        and not (key == "default" and value is None)
        and not (output and key == "required" and isinstance(value, list))
    }
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        # Keywords like maximum or maxItems apply only to their own type, so a null passes
        # them: {"anyOf": [{"type": "integer", "maximum": 5}, {"type": "null"}]} is
        # {"type": ["integer", "null"], "maximum": 5}.
        if isinstance(other.get("type"), str) and not set(other) & set(out):
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
    return out


def one_line(text: str | None) -> str | None:
    """A docstring as one line: its indentation is bytes in every agent's context."""
    return None if text is None else " ".join(text.split())


def _generated_title(key: str, value: Any) -> bool:
    # A property *named* "title" maps to a dict (its schema); a generated title is a string.
    return key == "title" and isinstance(value, str)
