"""ClawdCards (issuer-docs/clawdcards.txt, more-facts.md): single-use cards in dollars.

Translation, and what ClawdCards makes us do ourselves:

- **Amounts.** A card's ``amount`` is a JSON number of dollars; everything else (limits,
  transactions) is in cents. Cents become dollars exactly (``Decimal``, never a binary float's
  rounding) and an amount the issuer cannot take — not whole cents, above the per-transaction
  limit (the last ``GET /limits`` figure, else the documented $100) — is ``invalid_params``
  before any request.
- **One card, one purchase, one category.** Every card is single-use, with one
  ``merchant_category``; ``ttl_minutes`` is 1-1440 (default 1440). The card's ``amount`` is its
  one purchase: ``per_auth_max_cents`` when given, else ``daily_limit_cents``; the daily limit
  asked for stands as well, as one purchase of the amount never passes it (``enforced_policy``).
  Our category tags map onto ClawdCards' seven categories (``CATEGORY_OF``); an allowlist that
  spans two of them is refused naming them, so is one that covers only part of a category (the
  card would pay more merchants than asked), and a card without one gets ``other``.
- **Details once.** The create answer carries the card's number, CVV and expiry, which can never
  be read again: they go straight to the operator's card file (card_files) and the result names
  that file. There is no endpoint to read, list, freeze or close a card (no such capability);
  the read-back after create_card reads what this process made (nothing secret is kept). A card
  ends at its first purchase or its TTL.
- **1 request a minute per key.** Every request takes the key's one slot of the minute
  (``Pace``) and is never retried: a retry would wait a minute, and a create has no documented
  Idempotency-Key, so a retry could make a second card. A call within the minute is
  ``issuer_rate_limited`` with the wait.
- ``GET /limits`` is ``IssuerLimits`` (the last answer is reused while the key is resting);
  ``GET /transactions`` (the older API; it may be gone) is the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from ..categories import TAGS
from ..errors import (
    InvalidParams,
    IssuerAuthFailed,
    IssuerRateLimited,
    IssuerRejected,
    IssuerUnavailable,
    NotFound,
    NotSupported,
)
from ..models import Card, IssuerLimits, LedgerEntry, LedgerPage, LedgerTotals, Policy
from . import card_files
from .base import Capability, CardSpec, ErrorOverrides, IssuerBase

__all__ = ["CATEGORY_OF", "ClawdCardsIssuer", "cents_of", "dollars_of"]

log = logging.getLogger("agentcard_mcp.issuers")

# Our tags → ClawdCards' merchant_category (web_hosting, cloud_compute, api_services,
# saas_tools, domains, databases, other).
CATEGORY_OF: dict[str, str] = dict.fromkeys(TAGS, "other") | {
    "cloud": "cloud_compute",  # MCC 4816, network and information services
    "infra": "web_hosting",  # 7372/7374/7379, programming, data processing, computer services
    "data": "databases",  # 7375, information retrieval
    "saas": "saas_tools",  # 5734, 5815-5818, software and digital goods
}
DOCUMENTED_MAX_CENTS = 10_000  # "Max $100 (production)"
MAX_TTL_MINUTES = 1440
_ONE_CENT = Decimal("0.01")


def dollars_of(cents: int) -> Decimal:
    """Whole cents as dollars, exactly: 1999 → Decimal('19.99')."""
    if type(cents) is not int:
        raise InvalidParams(f"an amount must be integer cents, not {type(cents).__name__}.")
    return (Decimal(cents) / 100).quantize(_ONE_CENT)


def cents_of(dollars: Decimal | int | str) -> int:
    """Dollars as whole cents, exactly; an amount with a fraction of a cent is
    ``invalid_params`` (never rounded)."""
    value = Decimal(dollars) * 100
    if not value.is_finite() or value != value.to_integral_value():
        raise InvalidParams(f"${dollars} is not a whole number of cents.")
    return int(value)


def _json_number(dollars: Decimal) -> float:
    """The float whose JSON text is exactly ``dollars`` (Python writes the shortest text that
    reads back as the same float, which for whole cents below 2**53 is the decimal itself)."""
    number = float(dollars)
    if Decimal(repr(number)) != dollars:
        raise InvalidParams(f"${dollars} cannot be sent to ClawdCards exactly.")
    return number


class ClawdCardsIssuer(IssuerBase):
    instead: ClassVar[Mapping[str, str]] = {
        "get_card": "a ClawdCards card cannot be read back; its details are in the card file "
        "create_card named",
        "list_cards": "ClawdCards cannot list cards; each create_card result names its card",
        "freeze": "a ClawdCards card ends at its first purchase or at expires_at; create cards "
        "with a short ttl_minutes",
        "unfreeze": "create a new card",
        "close": "a ClawdCards card ends at its first purchase or at expires_at",
        "set_policy": "create a new card with the limit you need",
        "simulate": "ClawdCards issues only real cards",
    }
    error_overrides: ClassVar[ErrorOverrides] = {
        (400, "amount_exceeded"): (InvalidParams, "Ask for at most the per-transaction limit "
                                   "that get_limits shows."),
        (401, "invalid_key"): (IssuerAuthFailed, "The operator must check AGENTCARD_API_KEY "
                               "(ClawdCards keys are shown once; a revoked one stays dead)."),
        (403, "limit_exceeded"): (IssuerRejected, "The ClawdCards monthly spending limit is "
                                  "reached (get_limits shows it); no card can be made this month."),
        (429, "rate_limited"): (IssuerRateLimited, "ClawdCards allows 1 request a minute per "
                                "key; retry after 60 s."),
        (503, "no_cards_available"): (IssuerUnavailable, "The ClawdCards card pool is empty; "
                                      "retry later, when it is refilled."),
    }  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What this process made: no secrets, only what get_card and the budget need.
        self._cards: dict[str, Card] = {}
        self._limits: IssuerLimits | None = None
        self._no_transactions = False

    def _home(self) -> Path:
        if self.home is None:  # the card details would have nowhere to go: make no card
            raise InvalidParams("ClawdCards needs AGENTCARD_HOME for its card files.")
        return self.home

    # -- translation -----------------------------------------------------------------------

    def category_for(self, tags: list[str]) -> str:
        """ClawdCards' one merchant_category for our tags: tags spanning two are refused, and
        so are tags that leave out some of the one they map to (the card would be wider). No
        tags (any merchant) is ``other``, which is narrower."""
        found = sorted({CATEGORY_OF[tag] for tag in tags})
        if len(found) > 1:
            by = ", ".join(f"{tag} → {CATEGORY_OF[tag]}" for tag in tags)
            raise InvalidParams(
                f"a ClawdCards card has one merchant category, and mcc_allowlist maps to "
                f"{len(found)}: {', '.join(found)} ({by}); ask for tags of one of them."
            )
        category = found[0] if found else "other"
        wider = [tag for tag in TAGS if CATEGORY_OF[tag] == category and tag not in tags]
        if tags and wider:
            # The card would also pay merchants the agent (and maybe the operator) left out.
            raise InvalidParams(
                f"ClawdCards' category {category} also admits {', '.join(wider)}, which "
                "mcc_allowlist leaves out; ask for all of them, or for tags that map to one "
                "category exactly (cloud, infra, data, saas), or for no mcc_allowlist."
            )
        return category

    def enforced_policy(self, spec: CardSpec) -> Policy:
        """One purchase of at most the card's amount, at merchants of its one category."""
        amount = spec.per_auth_max_cents or spec.daily_limit_cents
        category = self.category_for(spec.mcc_allowlist)
        tags = [tag for tag in TAGS if CATEGORY_OF[tag] == category]
        return Policy(
            daily_limit_cents=spec.daily_limit_cents, per_auth_max_cents=amount, mcc_allowlist=tags
        )

    def _per_transaction_limit(self) -> int:
        known = self._limits.per_transaction_limit_cents if self._limits else None
        return known or DOCUMENTED_MAX_CENTS

    def _body(self, spec: CardSpec) -> dict[str, Any]:
        """The create body, or ``invalid_params`` for what ClawdCards would refuse."""
        amount = spec.per_auth_max_cents or spec.daily_limit_cents
        ceiling = self._per_transaction_limit()
        if amount > ceiling:
            raise InvalidParams(
                f"ClawdCards cards are limited to {ceiling} cents (${dollars_of(ceiling)}) per "
                f"transaction; ask for at most {ceiling} cents."
            )
        ttl = MAX_TTL_MINUTES if spec.ttl_minutes is None else spec.ttl_minutes
        if not 1 <= ttl <= MAX_TTL_MINUTES:
            raise InvalidParams(f"ClawdCards ttl_minutes must be 1 to {MAX_TTL_MINUTES}.")
        return {
            "amount": _json_number(dollars_of(amount)),
            "merchant_category": self.category_for(spec.mcc_allowlist),
            "ttl_minutes": ttl,
        }

    # -- cards -----------------------------------------------------------------------------

    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card:
        body = self._body(spec)
        home = self._home()
        card_files.check_dir(home)  # a bad home fails before a card exists
        try:
            raw = await self.http.request(
                "POST", "/v1/cards", json=body, retry=False, send_idempotency_key=False
            )
        except IssuerUnavailable as exc:
            raise IssuerUnavailable(
                f"{exc.message} A card may have been issued all the same: ClawdCards cannot "
                "show it again, so nobody can use it and it ends at its TTL."
            ) from exc
        details = card_files.take_details(raw.get("card") or {})
        try:
            card = self._card_of(raw, spec, body).model_copy(update={"last4": details.last4})
            self._cards[card.id] = card  # before the file: the budget counts the card whatever
            path = self._save(home, card, details, body["merchant_category"])
        finally:
            details.clear()  # written or not, they are not kept
        card = card.model_copy(update={"note": _note(path, card)})
        self._cards[card.id] = card
        return card

    def _save(self, home: Path, card: Card, details: card_files.CardDetails, category: str) -> Path:
        try:
            return card_files.write(
                home, card.id, self.name, details,
                [("spending_limit_cents", card.per_auth_max_cents), ("expires_at", card.expires_at),
                 ("merchant_category", category)],
            )  # fmt: skip
        except (OSError, InvalidParams) as exc:
            log.error("clawdcards: card %s made, its details not saved (%s)", card.id,
                      type(exc).__name__)  # fmt: skip
            raise IssuerUnavailable(
                f"ClawdCards made card {card.id}, but its details could not be written to "
                f"{home}/cards ({type(exc).__name__}); they cannot be read again, so the "
                "card is unusable and ends at its TTL. The operator must fix that directory."
            ) from None

    def _card_of(self, raw: dict[str, Any], spec: CardSpec, body: dict[str, Any]) -> Card:
        shown = raw.get("card") or {}
        card_id = raw.get("transaction_id")
        limit = shown.get("spending_limit", cents_of(str(body["amount"])))
        if not isinstance(card_id, str) or type(limit) is not int:
            raise IssuerUnavailable("ClawdCards answered a card without its id or limit.")
        now = datetime.now(UTC)
        expires = shown.get("expires_at") or _iso(now + timedelta(minutes=body["ttl_minutes"]))
        policy = self.enforced_policy(spec)
        return Card(
            id=card_id,
            agent_id=spec.agent_id,
            issuer=self.name,
            status="active",
            purpose=spec.purpose,
            last4=None,
            daily_limit_cents=spec.daily_limit_cents,
            per_auth_max_cents=limit,
            mcc_allowlist=policy.mcc_allowlist,
            current_daily_spend_cents=0,
            single_use=True,
            expires_at=str(expires),
            created_at=_iso(now),
        )

    async def get_card(self, card_id: str) -> Card:
        card = self._cards.get(card_id)
        if card is None:
            raise NotFound(
                f"card {card_id} is not one this server made since it started; ClawdCards "
                "cannot look cards up (the card file create_card named has what it had)."
            )
        return self._aged(card)

    def _aged(self, card: Card) -> Card:
        """Past its TTL the card is gone; whether it was spent is not known, so the budget
        counts it as spent in full."""
        if card.expires_at is None or _parse(card.expires_at) > datetime.now(UTC):
            return card
        return card.model_copy(
            update={"status": "closed", "current_daily_spend_cents": card.per_auth_max_cents}
        )

    # -- what the issuer reports -----------------------------------------------------------

    async def limits(self) -> IssuerLimits:
        try:
            raw = await self.http.request("GET", "/v1/limits", retry=False)
        except IssuerRateLimited:
            # The key is resting: the last answer, or none (the day's budget does not wait).
            log.info("clawdcards: limits not asked, the key's request this minute is used")
            return self._limits or IssuerLimits()
        self._limits = IssuerLimits(
            cards_remaining=_int(raw.get("cards_remaining")),
            per_transaction_limit_cents=_int(raw.get("per_transaction_limit")),
            monthly_limit_cents=_int(raw.get("monthly_limit")),
            monthly_spent_cents=_int(raw.get("monthly_spent")),
            monthly_remaining_cents=_int(raw.get("monthly_remaining")),
        )
        return self._limits

    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage:
        if self._no_transactions:
            raise self.not_supported("read_ledger", Capability.LEDGER)
        try:
            raw = await self.http.request("GET", "/v1/transactions", retry=False)
        except NotFound:
            self._no_transactions = True  # this API version has none: never ask again
            raise NotSupported(
                "read_ledger is not supported by this version of the ClawdCards API (it has no "
                "transactions endpoint); the ClawdCards dashboard shows purchases."
            ) from None
        entries = [_entry(item) for item in raw.get("transactions") or []]
        entries = [e for e in entries if card_id in (None, e.card_id)]
        entries = [e for e in entries if decision in (None, e.decision)]
        start = _offset(cursor)
        page = entries[start : start + limit]
        more = start + limit < len(entries)
        approved = [e for e in page if e.decision == "approve"]
        return LedgerPage(
            entries=page,
            has_more=more,
            next_cursor=str(start + limit) if more else None,
            totals=LedgerTotals(
                approved_cents=sum(e.amount_cents for e in approved),
                approved_count=len(approved),
                declined_count=len(page) - len(approved),
            ),
        )


def _entry(raw: dict[str, Any]) -> LedgerEntry:
    ok = raw.get("success") is True
    amount = raw.get("amount")
    if type(amount) is not int:
        raise IssuerUnavailable("ClawdCards answered a transaction amount that is not cents.")
    return LedgerEntry(
        id=str(raw["id"]),
        card_id=str(raw["id"]),  # a card is its issuing transaction
        decided_at=str(raw.get("created_at") or ""),
        decision="approve" if ok else "decline",
        reason="approved" if ok else "unknown",
        amount_cents=amount,
        merchant=str(raw.get("merchant_name") or ""),
        mcc="",
        current_daily_spend_cents_after=None,
    )


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise InvalidParams("that cursor is not one read_ledger gave; start without it.")
    return int(cursor)


def _note(path: Path, card: Card) -> str:
    return (
        card_files.note(path, card.last4)
        + " ClawdCards shows them once; the card ends at its first purchase or at expires_at."
    )


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
