"""What the operator can see and do, as data (DESIGN §13): used by the ``approvals`` command and
the web console alike, so the two always agree. Nothing here prints or renders.

- :class:`ApprovalDesk` — pending approvals with their time left, the recent history, approve
  and deny. It needs only the approvals store (the terminal has no issuer open).
- :class:`CardDesk` — the cards with their limits and today's spend, the day's budget, and
  freeze / unfreeze / close by the operator. These go through ``CardService`` like the agent's
  calls, so the budget's reserve and confirm apply and unfreezing re-checks the ceilings; what
  differs is consent: the operator *is* the human the approval gate asks, so a gated action
  comes with their decision (recorded as an approval used at once). Every action is audited
  with the caller ``operator``.
- :class:`KeyDesk` — the API keys: list, create (the key returned once, never kept), revoke.
  The ``keys`` command and the console's keys page both go through it.
- ``CardDesk.spend`` — approved spend per UTC day (the last 14) and per category, from the
  issuer's counters (``spend_by_day`` of its usage), else from its ledger pages of the window
  only: bounded by the window, never by the history.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .approvals import Approval, Clock, read_clock, utcnow
from .audit import record_of
from .consent import AuditNote, CallConsent
from .errors import AgentCardError
from .issuers.base import Capability
from .keys import ApiKey
from .models import Card, CloseCard, UnfreezeCard

if TYPE_CHECKING:
    from .service import CardService
    from .storage.base import ApprovalStore, AuditSink, KeyStore

__all__ = [
    "OPERATOR",
    "SPEND_DAYS",
    "ApprovalDesk",
    "ApprovalView",
    "BudgetView",
    "CardDesk",
    "KeyDesk",
    "SpendView",
    "seconds_left",
]

# Days of approved spend the console charts (today included).
SPEND_DAYS = 14
# The ledger fallback reads at most this many pages (of 500 approved entries) for the window.
_SPEND_MAX_PAGES = 40
# The audit caller of everything the operator does (the agent's are "stdio" or a key id).
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """An approval as the operator sees it at ``now``: with the seconds it has left."""

    approval: Approval
    seconds_left: int

    @property
    def time_left(self) -> str:
        return f"{self.seconds_left // 60:02d}:{self.seconds_left % 60:02d}"


def seconds_left(approval: Approval, now: datetime) -> int:
    if approval.status not in ("pending", "approved"):
        return 0
    return max(0, int((approval.expires_at - now).total_seconds()))


class ApprovalDesk:
    """The operator's side of the approvals: the same store the server and its replicas use."""

    def __init__(self, store: ApprovalStore, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock

    def _view(self, approval: Approval) -> ApprovalView:
        return ApprovalView(approval, seconds_left(approval, read_clock(self.clock)))

    async def pending(self) -> list[ApprovalView]:
        """Pending, unexpired requests, oldest first."""
        return [self._view(a) for a in await self.store.pending()]

    async def history(self, limit: int = 20) -> list[ApprovalView]:
        """Decided, used and expired approvals, newest first."""
        return [self._view(a) for a in await self.store.recent(limit) if a.status != "pending"]

    async def approve(self, approval_id: str) -> ApprovalView:
        """invalid_params unless pending and unexpired; not_found for an unknown id."""
        return self._view(await self.store.approve(approval_id))

    async def deny(self, approval_id: str) -> ApprovalView:
        return self._view(await self.store.deny(approval_id))


@dataclass(frozen=True, slots=True)
class BudgetView:
    """The day's commitment of every card against the operator's ceiling (UTC day)."""

    day: str
    committed_cents: int
    max_total_daily_cents: int
    spent_cents: int
    active_cards: int
    max_active_cards: int

    @property
    def remaining_cents(self) -> int:
        return max(self.max_total_daily_cents - self.committed_cents, 0)


@dataclass(frozen=True, slots=True)
class SpendView:
    """Approved spend of the last ``len(days)`` UTC days, oldest first, and per category over
    them (largest first). ``complete`` is False when the ledger fallback stopped at its page
    bound before the window's start."""

    days: list[tuple[str, int]]
    categories: list[tuple[str, int]]
    complete: bool = True

    @property
    def total_cents(self) -> int:
        return sum(cents for _, cents in self.days)


def _spend_view(
    rows: list[tuple[str, str, int]], today: datetime, days: int, complete: bool = True
) -> SpendView:
    keys = [(today - timedelta(days=back)).strftime("%Y-%m-%d") for back in range(days - 1, -1, -1)]
    per_day = dict.fromkeys(keys, 0)
    per_category: dict[str, int] = {}
    for day, mcc, cents in rows:
        if day in per_day:
            per_day[day] += cents
            per_category[mcc] = per_category.get(mcc, 0) + cents
    ordered = sorted(per_category.items(), key=lambda item: (-item[1], item[0]))
    return SpendView(list(per_day.items()), ordered, complete)


class CardDesk:
    """The operator's cards, through the service the server's lifespan (or the console's)
    bound to the issuer, the budget and the approvals."""

    def __init__(self, service: CardService, audit: AuditSink) -> None:
        self.service = service
        self.audit = audit

    async def cards(self) -> list[Card]:
        """Every card the issuer has, newest first as the issuer lists them."""
        return (await self.service.list_cards()).cards

    async def budget(self) -> BudgetView:
        limits = await self.service.get_limits()
        return BudgetView(
            day=limits.day,
            committed_cents=limits.committed_daily_cents,
            max_total_daily_cents=limits.max_total_daily_cents,
            spent_cents=limits.spent_today_cents,
            active_cards=limits.active_cards,
            max_active_cards=limits.max_active_cards,
        )

    async def spend(self, days: int = SPEND_DAYS, now: datetime | None = None) -> SpendView:
        """Approved spend per UTC day (the last ``days``) and per category."""
        today = (now or datetime.now(UTC)).astimezone(UTC)
        issuer = self.service.issuer
        if Capability.USAGE in issuer.capabilities:
            counted = (await issuer.usage()).get("spend_by_day")
            if isinstance(counted, list):
                rows = [(r["day"], r["mcc"], int(r["volume_cents"])) for r in counted]
                return _spend_view(rows, today, days)
        return await self._spend_from_ledger(today, days)

    async def _spend_from_ledger(self, today: datetime, days: int) -> SpendView:
        """Approved entries, newest first, until the first one before the window."""
        since = (today - timedelta(days=days - 1)).strftime("%Y-%m-%d")
        rows: list[tuple[str, str, int]] = []
        cursor: str | None = None
        for _ in range(_SPEND_MAX_PAGES):
            page = await self.service.read_ledger(limit=500, cursor=cursor, decision="approve")
            for entry in page.entries:
                day = entry.decided_at[:10]
                if day < since:
                    return _spend_view(rows, today, days)
                rows.append((day, entry.mcc, entry.amount_cents))
            if not page.has_more:
                return _spend_view(rows, today, days)
            cursor = page.next_cursor
        return _spend_view(rows, today, days, complete=False)

    async def freeze(self, card_id: str) -> Card:
        return await self._audited(
            "freeze_card", card_id, lambda _: self.service.freeze_card(card_id)
        )

    async def unfreeze(self, card_id: str) -> Card:
        """Unfreezes within today's ceilings (guardrail_exceeded when the card no longer fits)."""
        return await self._audited(
            "unfreeze_card",
            card_id,
            lambda call: self.service.unfreeze_card(UnfreezeCard(card_id=card_id), call=call),
        )

    async def close(self, card_id: str) -> Card:
        return await self._audited(
            "close_card",
            card_id,
            lambda call: self.service.close_card(CloseCard(card_id=card_id), call=call),
        )

    async def _audited(
        self, tool: str, card_id: str, action: Callable[[CallConsent], Awaitable[Card]]
    ) -> Card:
        note = AuditNote(card_id=card_id)
        started = time.perf_counter()
        outcome = "internal_error"
        try:
            card = await action(CallConsent(human="approved", note=note))
            outcome = "ok"
            return card
        except AgentCardError as exc:
            outcome = exc.code
            raise
        finally:
            arguments: dict[str, Any] = {"card_id": card_id}
            await self.audit.write(
                record_of(
                    tool,
                    caller=OPERATOR,
                    arguments=arguments,
                    outcome=outcome,
                    card_id=card_id,
                    approval_id=note.approval_id,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )


class KeyDesk:
    """The operator's API keys, on the configured key store (the same the HTTP app reads on
    every request, so a revocation counts from the key's next request)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def keys(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""
        return await self.store.all()

    async def create(
        self, name: str, *, scope: str = "cards:write", rate: int = 60,
        allow_in_band_approval: bool = False,
    ) -> tuple[str, ApiKey]:  # fmt: skip
        """The new key (to be shown once, never stored or logged) and its record;
        invalid_params for a name, scope or rate it cannot have."""
        return await self.store.create(
            name, scope=scope, rate=rate, allow_in_band_approval=allow_in_band_approval
        )

    async def revoke(self, key_id: str) -> ApiKey:
        """not_found for an unknown id, invalid_params if already revoked."""
        return await self.store.revoke(key_id)
