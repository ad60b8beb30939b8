"""Resource ids in AgentCard's style: a type prefix and a ULID (``card_01K...``).

ULIDs sort by creation time, which keeps ids readable in logs; the 80 random bits make them
unguessable, which matters because a card id is all an API call needs besides the key.
"""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A fresh id such as ``card_01K...`` for the given type prefix."""
    return f"{prefix}_{_ulid()}"
