"""What PostgreSQL text cannot hold: NUL (U+0000), in a text column or anywhere in jsonb.

An agent may send one (a card's purpose is free text). It is stored as the six characters
``\\u0000``, as JSON shows it, rather than refused: a refused audit row would hide the call,
and a refused approval request would turn a refusal into an internal error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["storable"]

_NUL = "\x00"
_SHOWN = "\\u0000"


def storable(value: Any) -> Any:
    """``value`` (JSON-shaped data) with every NUL in its strings and keys spelled out."""
    if isinstance(value, str):
        return value.replace(_NUL, _SHOWN)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
