"""The decision engine: which of AgentCard's 12 reasons an authorization gets, and why.

Pure: it sees the facts read inside the authorization's transaction and returns a reason.
Checks run in the order of ``CHECK_ORDER``; the first that fails decides. The order goes from
the widest scope to the narrowest (owner, agent, card, then this purchase) so that a
decline names the most fundamental problem, and the spend check comes last because only an
authorization that passed everything else may count against the day.

    1. idempotency_replay         the network sent an authorization id this card already decided
    2. owner_suspended            the owner account is suspended
    3. agent_not_active           the card's agent is suspended or deleted
    4. card_not_active            the card was deleted
    5. card_frozen                the card is frozen
    6. currency_unsupported       the owner has not enabled the currency
    7. merchant_blocked           the merchant is on the owner's blocklist (matched by
                                  ``agentcard_mcp.merchants.blocked_by``, the rule the
                                  server's guardrails use too: look-alikes, invisible
                                  characters and processor prefixes do not get through)
    8. category_not_in_allowlist  the allowlist is non-empty and lacks the MCC tag
    9. per_auth_limit_exceeded    amount > per_auth_max_cents
   10. daily_limit_exceeded       today's approved spend + amount > daily_limit_cents
   11. unknown                    the network declined for a reason AgentCard does not map
       approved                   otherwise
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CHECK_ORDER", "Reason", "SwipeFacts", "decide"]


class Reason(StrEnum):
    APPROVED = "approved"
    CARD_NOT_ACTIVE = "card_not_active"
    CARD_FROZEN = "card_frozen"
    DAILY_LIMIT_EXCEEDED = "daily_limit_exceeded"
    PER_AUTH_LIMIT_EXCEEDED = "per_auth_limit_exceeded"
    CATEGORY_NOT_IN_ALLOWLIST = "category_not_in_allowlist"
    MERCHANT_BLOCKED = "merchant_blocked"
    AGENT_NOT_ACTIVE = "agent_not_active"
    OWNER_SUSPENDED = "owner_suspended"
    CURRENCY_UNSUPPORTED = "currency_unsupported"
    IDEMPOTENCY_REPLAY = "idempotency_replay"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SwipeFacts:
    """Everything a decision depends on, read in the same transaction that records it."""

    amount_cents: int
    mcc: str
    merchant_blocked: bool
    currency_enabled: bool
    owner_suspended: bool
    agent_active: bool
    card_active: bool
    frozen: bool
    mcc_allowlist: tuple[str, ...]
    per_auth_max_cents: int
    daily_limit_cents: int
    spend_today_cents: int
    network_duplicate: bool = False
    network_decline: str | None = None


Check = Callable[[SwipeFacts], bool]

CHECK_ORDER: tuple[tuple[Reason, Check], ...] = (
    (Reason.IDEMPOTENCY_REPLAY, lambda f: f.network_duplicate),
    (Reason.OWNER_SUSPENDED, lambda f: f.owner_suspended),
    (Reason.AGENT_NOT_ACTIVE, lambda f: not f.agent_active),
    (Reason.CARD_NOT_ACTIVE, lambda f: not f.card_active),
    (Reason.CARD_FROZEN, lambda f: f.frozen),
    (Reason.CURRENCY_UNSUPPORTED, lambda f: not f.currency_enabled),
    (Reason.MERCHANT_BLOCKED, lambda f: f.merchant_blocked),
    (
        Reason.CATEGORY_NOT_IN_ALLOWLIST,
        lambda f: bool(f.mcc_allowlist) and f.mcc not in f.mcc_allowlist,
    ),
    (Reason.PER_AUTH_LIMIT_EXCEEDED, lambda f: f.amount_cents > f.per_auth_max_cents),
    (
        Reason.DAILY_LIMIT_EXCEEDED,
        lambda f: f.spend_today_cents + f.amount_cents > f.daily_limit_cents,
    ),
    (Reason.UNKNOWN, lambda f: f.network_decline is not None),
)


def decide(facts: SwipeFacts) -> Reason:
    """The reason for this authorization: the first failing check, else ``approved``."""
    for reason, failed in CHECK_ORDER:
        if failed(facts):
            return reason
    return Reason.APPROVED
