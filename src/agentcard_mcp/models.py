"""What tools return (structuredContent, described by outputSchema) and the argument types they
take. No model has a field for a card number, CVC or expiry: they cannot be returned."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    WithJsonSchema,
    model_serializer,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Authorization",
    "Card",
    "CardId",
    "CardList",
    "CardStatus",
    "Category",
    "Cents",
    "CloseCard",
    "CreateCard",
    "Decision",
    "IdempotencyKey",
    "IssuerLimits",
    "LedgerEntry",
    "LedgerPage",
    "LedgerTotals",
    "Limits",
    "Policy",
    "Purpose",
    "SetPolicy",
    "UnfreezeCard",
    "WriteRequest",
]

MAX_CENTS = 1_000_000_000_00  # $1bn: far beyond any card, far below integer trouble

# What tools/list advertises of an argument is what helps an agent choose it; the rest of its
# rule (the $1bn ceiling, an id's characters, which only matter for ids never issued) is checked
# here all the same, and costs no bytes in every agent's context.
Cents = Annotated[  # USD cents: 1500 is $15.00
    int,
    Field(strict=True, ge=1, le=MAX_CENTS),
    WithJsonSchema({"type": "integer", "minimum": 1}),
]
CardId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$"
    ),
    WithJsonSchema({"type": "string", "maxLength": 64}),
]
Purpose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# A merchant category as an agent may name it: a tag ("travel") or a 4-digit MCC ("4511");
# categories.normalize turns it into a tag.
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    WithJsonSchema({"type": "string"}),
]
CardStatus = Literal["pending", "active", "frozen", "closed"]

# An agent's idempotency key goes to the issuer as an HTTP header, so it must be a header-safe
# token: printable ASCII without spaces (0x21-0x7E; a space would be trimmed or folded by some
# HTTP stack, so two keys could become one), at most 255 characters (Stripe's limit). ""
# means "not given". Checked with the other arguments, before any approval is looked at.
MAX_IDEMPOTENCY_KEY = 255


def _header_safe(key: str) -> str:
    if len(key) > MAX_IDEMPOTENCY_KEY or not all("!" <= ch <= "~" for ch in key):
        raise PydanticCustomError(
            "idempotency_key",
            "must be at most {limit} printable ASCII characters (0x21-0x7E: letters, digits, "
            "punctuation; no spaces, accents or control characters), e.g. a UUID",
            {"limit": MAX_IDEMPOTENCY_KEY},
        )
    return key


IdempotencyKey = Annotated[
    str,
    AfterValidator(_header_safe),
    # The same rule for the client to see (as schema only: the check above words the error).
    Field(json_schema_extra={"maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[!-~]*$"}),
]
Decision = Literal["approve", "decline"]


class _Model(BaseModel):
    # Results are described in every agent's context (tools/list): keep their schemas lean —
    # no docstrings here (they would become schema descriptions), comments instead.
    model_config = ConfigDict(extra="ignore")

    # A field with no value is left out rather than sent as null: the outputSchema gives every
    # property one type (DESIGN §4; schemas.py) and requires none, so an absent field is valid
    # where a null would not be.
    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


# A card's spending rules, as the issuer enforces them.
class Policy(_Model):
    daily_limit_cents: int
    per_auth_max_cents: int
    mcc_allowlist: list[str]


# A card as the agent sees it: limits and state, never the card details themselves.
class Card(_Model):
    id: str
    agent_id: str
    issuer: str
    status: CardStatus
    purpose: str | None = None
    last4: str | None = None
    daily_limit_cents: int
    per_auth_max_cents: int
    mcc_allowlist: list[str]
    current_daily_spend_cents: int
    single_use: bool
    expires_at: str | None = None
    created_at: str | None = None
    # What to know beyond what was asked: what the call changed and why (set_policy lowering
    # the per-purchase limit with the daily one), or what the issuer needs (a human must
    # approve the card there; where its details were saved); left out when nothing.
    note: str | None = None


class CardList(_Model):
    cards: list[Card]


class LedgerEntry(_Model):
    id: str
    card_id: str
    decided_at: str
    decision: Decision
    reason: str
    amount_cents: int
    merchant: str
    mcc: str
    current_daily_spend_cents_after: int | None = None


# Totals over the entries of one page.
class LedgerTotals(_Model):
    approved_cents: int
    approved_count: int
    declined_count: int


class LedgerPage(_Model):
    entries: list[LedgerEntry]
    has_more: bool
    next_cursor: str | None = None
    totals: LedgerTotals


# The outcome of a simulated purchase (test mode).
class Authorization(_Model):
    id: str
    card_id: str
    approved: bool
    decision: Decision
    reason: str
    amount_cents: int
    merchant: str
    mcc: str
    current_daily_spend_cents: int
    decided_at: str


# What the issuer itself reports of its limits (None: it reports no such figure). Cents.
class IssuerLimits(_Model):
    card_limit: int | None = None  # cards the account may hold
    cards_remaining: int | None = None  # cards it may still make
    per_transaction_limit_cents: int | None = None
    monthly_limit_cents: int | None = None
    monthly_spent_cents: int | None = None
    monthly_remaining_cents: int | None = None


# What the agent may still do today, and what the issuer itself reports.
class Limits(_Model):
    issuer: str
    mode: Literal["test", "live"]
    day: str  # the UTC day; budgets reset at 00:00 UTC
    active_cards: int
    max_active_cards: int
    committed_daily_cents: int  # the sum of the active cards' daily limits
    remaining_daily_cents: int  # max_total_daily_cents - committed_daily_cents
    max_total_daily_cents: int
    max_card_daily_limit_cents: int
    max_per_auth_cents: int
    require_approval_above_cents: int
    spent_today_cents: int
    pending_approvals: list[str]
    issuer_limits: IssuerLimits  # what the issuer itself reports, where it does


# --- what a write tool asks for -------------------------------------------------------------
# One model per write tool: the server builds it once from the tool's (already validated)
# arguments, and the same object is reviewed against the policy, bound into the approval (its
# digest covers ``arguments()``) and carried out. ``approval_id`` and ``idempotency_key`` are
# not part of it: they say how the call is made, not what it does.


class WriteRequest(BaseModel):
    # Built on a write tool's first call (defer_build), not by every server start.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    tool: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        return self.model_dump()


class CreateCard(WriteRequest):
    tool: ClassVar[str] = "create_card"
    purpose: str
    daily_limit_cents: int
    per_auth_max_cents: int | None = None
    mcc_allowlist: list[str] | None = None
    ttl_minutes: int | None = None
    single_use: bool = False
    agent_id: str | None = None


class SetPolicy(WriteRequest):
    tool: ClassVar[str] = "set_policy"
    card_id: str
    daily_limit_cents: int | None = None
    per_auth_max_cents: int | None = None
    mcc_allowlist: list[str] | None = None


class UnfreezeCard(WriteRequest):
    tool: ClassVar[str] = "unfreeze_card"
    card_id: str


class CloseCard(WriteRequest):
    tool: ClassVar[str] = "close_card"
    card_id: str
