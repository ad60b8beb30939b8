"""Merchant categories: AgentCard's tag vocabulary and the ISO 18245 MCC codes behind it.

An agent may name a category by tag ("travel") or by 4-digit MCC ("4511", an airline); codes
are translated to tags because that is what AgentCard's ``mcc_allowlist`` holds.
"""

from __future__ import annotations

from .errors import InvalidParams

__all__ = ["TAGS", "normalize", "tag_for_mcc"]

# AgentCard's vocabulary (issuer-docs/agentcard-so.md, "MCC Mapping"), plus "food", which its
# ledger example uses.
TAGS: tuple[str, ...] = (
    "advertising", "b2b", "cloud", "data", "food", "groceries", "infra", "lodging",
    "restaurants", "saas", "subs", "transportation", "travel",
)  # fmt: skip

# ISO 18245 ranges (inclusive) and the tag each falls under.
_MCC_RANGES: tuple[tuple[int, int, str], ...] = (
    (3000, 3350, "travel"),  # airlines
    (3351, 3500, "transportation"),  # car rental
    (3501, 3999, "lodging"),  # hotels
    (4011, 4011, "transportation"),  # railroads
    (4111, 4131, "transportation"),  # commuter transport, taxis, buses
    (4411, 4411, "travel"),  # cruise lines
    (4511, 4511, "travel"),  # airlines
    (4582, 4582, "travel"),  # airports
    (4722, 4722, "travel"),  # travel agencies
    (4784, 4789, "transportation"),  # tolls, transportation services
    (4816, 4816, "cloud"),  # computer network and information services
    (5045, 5045, "b2b"),  # computers and software, wholesale
    (5111, 5111, "b2b"),  # office supplies, wholesale
    (5411, 5411, "groceries"),
    (5422, 5499, "food"),  # meat, bakeries, convenience and speciality food
    (5734, 5734, "saas"),  # computer software stores
    (5811, 5811, "food"),  # caterers
    (5812, 5814, "restaurants"),  # restaurants, bars, fast food
    (5815, 5818, "saas"),  # digital goods: media, games, applications
    (5968, 5968, "subs"),  # continuity and subscription merchants
    (7011, 7011, "lodging"),
    (7311, 7311, "advertising"),
    (7372, 7372, "infra"),  # computer programming, data processing
    (7374, 7374, "infra"),  # data processing services
    (7375, 7375, "data"),  # information retrieval services
    (7379, 7379, "infra"),  # computer services
    (7392, 7392, "b2b"),  # consulting
    (7512, 7512, "transportation"),  # car rental agencies
    (8999, 8999, "b2b"),  # professional services
)


def tag_for_mcc(code: str) -> str | None:
    """The tag for a 4-digit MCC, or None when the code is in no category we know."""
    number = int(code)
    for low, high, tag in _MCC_RANGES:
        if low <= number <= high:
            return tag
    return None


def normalize(categories: list[str], field: str = "mcc_allowlist") -> list[str]:
    """Tags for ``categories`` (tags or MCC codes), de-duplicated in order; unknown ones are
    ``invalid_params`` listing the valid tags."""
    tags: list[str] = []
    for raw in categories:
        item = raw.strip().lower()
        tag = tag_for_mcc(item) if len(item) == 4 and item.isascii() and item.isdigit() else item
        if tag is None or tag not in TAGS:
            shown = raw if len(raw) <= 40 else raw[:40] + "..."
            raise InvalidParams(
                f"unknown category {shown!r} in {field}; use tags from: "
                f"{', '.join(TAGS)} (or a 4-digit MCC code in one of them)."
            )
        if tag not in tags:
            tags.append(tag)
    return tags
