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
- :class:`AuditDesk` — the audit trail: the last records (``audit tail``), or filtered by tool,
  outcome and caller (the console's audit page).
- :class:`PolicyDesk` — the policy as the server would load it (``policy check`` and ``show``).
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .approvals import Approval, Clock, read_clock, utcnow
from .audit import Tail, record_of
from .consent import AuditNote, CallConsent
from .errors import AgentCardError, InvalidParams
from .issuers.base import Capability
from .keys import ApiKey
from .models import Card, CloseCard, LedgerPage, UnfreezeCard
from .policy import LoadedPolicy, PolicyError, load_policy, read_policy

if TYPE_CHECKING:
    from .service import CardService
    from .storage.base import ApprovalStore, AuditSink, KeyStore

__all__ = [
    "OPERATOR",
    "SPEND_DAYS",
    "ApprovalDesk",
    "ApprovalView",
    "AuditDesk",
    "AuditView",
    "BudgetView",
    "CardChange",
    "CardDesk",
    "CardState",
    "KeyDesk",
    "PolicyDesk",
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
    # Who asked, as the operator reads it: the HTTP key's name, "stdio", or None (not recorded).
    asked_by: str | None = None
    # What the approved call would do to the card (filled in where the issuer is open).
    change: CardChange | None = None

    @property
    def time_left(self) -> str:
        return f"{self.seconds_left // 60:02d}:{self.seconds_left % 60:02d}"


def seconds_left(approval: Approval, now: datetime) -> int:
    if approval.status not in ("pending", "approved"):
        return 0
    return max(0, int((approval.expires_at - now).total_seconds()))


class ApprovalDesk:
    """The operator's side of the approvals: the same store the server and its replicas use.
    With ``keys``, who asked is shown by the HTTP key's name rather than its id."""

    def __init__(
        self, store: ApprovalStore, clock: Clock = utcnow, keys: KeyStore | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.keys = keys

    async def _views(self, approvals: list[Approval]) -> list[ApprovalView]:
        now = read_clock(self.clock)
        names: dict[str, str] = {}
        for caller in {a.caller for a in approvals if a.caller is not None}:
            names[caller] = await self.who(caller)
        return [
            ApprovalView(a, seconds_left(a, now), None if a.caller is None else names[a.caller])
            for a in approvals
        ]

    async def _view(self, approval: Approval) -> ApprovalView:
        return (await self._views([approval]))[0]

    async def who(self, caller: str) -> str:
        """A caller as the operator reads it: an HTTP key by its name (its id when the key is
        unknown here), "stdio" and "operator" as they are."""
        if caller in ("stdio", OPERATOR) or self.keys is None:
            return caller
        try:
            key = await self.keys.get(caller)
        except AgentCardError:
            return caller
        return key.name

    async def pending(self) -> list[ApprovalView]:
        """Pending, unexpired requests, oldest first."""
        return await self._views(await self.store.pending())

    async def history(self, limit: int = 20) -> list[ApprovalView]:
        """Decided, used and expired approvals, newest first."""
        recent = await self.store.recent(limit)
        return await self._views([a for a in recent if a.status != "pending"])

    async def approve(self, approval_id: str) -> ApprovalView:
        """invalid_params unless pending and unexpired; not_found for an unknown id."""
        return await self._view(await self.store.approve(approval_id))

    async def deny(self, approval_id: str) -> ApprovalView:
        return await self._view(await self.store.deny(approval_id))


@dataclass(frozen=True, slots=True)
class CardState:
    """What the operator compares before approving: a card's status, limits and categories
    (an empty ``categories``: any)."""

    status: str
    daily_limit_cents: int
    per_auth_max_cents: int
    categories: tuple[str, ...]

    @classmethod
    def of(cls, card: Card) -> CardState:
        return cls(
            card.status, card.daily_limit_cents, card.per_auth_max_cents, tuple(card.mcc_allowlist)
        )


@dataclass(frozen=True, slots=True)
class CardChange:
    """A gated call's effect: the card as it is now (None for a new card, or one the issuer
    could not show: ``missing`` is the error code) and as the approved call would leave it."""

    card_id: str | None
    before: CardState | None
    after: CardState | None
    missing: str | None = None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _categories(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else default


@dataclass(frozen=True, slots=True)
class AuditView:
    """Audit records newest first, after the filters; ``tools``, ``outcomes`` and ``callers``:
    the values seen in the records read (the filters' choices)."""

    records: list[dict[str, Any]]
    skipped: int
    tools: list[str]
    outcomes: list[str]
    callers: list[str]


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
            rows = await issuer.spend_by_day()
            if rows is not None:
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

    async def change_of(self, approval: Approval) -> CardChange | None:
        """What ``approval``'s call would do: for create_card the new card's limits; for
        set_policy, unfreeze_card and close_card the card now and after. None for other tools."""
        args = approval.arguments
        if approval.tool == "create_card":
            daily = _int(args.get("daily_limit_cents"), 0)
            after = CardState(
                "active",
                daily,
                _int(args.get("per_auth_max_cents"), daily),
                _categories(args.get("mcc_allowlist"), ()),
            )
            return CardChange(None, None, after)
        if approval.tool not in ("set_policy", "unfreeze_card", "close_card"):
            return None
        card_id = str(args.get("card_id", ""))
        try:
            before = CardState.of(await self.service.get_card(card_id))
        except AgentCardError as exc:
            return CardChange(card_id, None, None, missing=exc.code)
        if approval.tool == "set_policy":
            after = CardState(
                before.status,
                _int(args.get("daily_limit_cents"), before.daily_limit_cents),
                _int(args.get("per_auth_max_cents"), before.per_auth_max_cents),
                _categories(args.get("mcc_allowlist"), before.categories),
            )
        else:
            status = "active" if approval.tool == "unfreeze_card" else "closed"
            after = CardState(
                status, before.daily_limit_cents, before.per_auth_max_cents, before.categories
            )
        return CardChange(card_id, before, after)

    async def ledger(
        self, card_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> LedgerPage:
        """One page of the card's ledger, as the issuer pages it."""
        return await self.service.read_ledger(card_id=card_id, cursor=cursor, limit=limit)

    async def audit_log(
        self,
        *,
        tool: str | None = None,
        outcome: str | None = None,
        caller: str | None = None,
        scan: int = 1000,
        limit: int = 200,
    ) -> AuditView:
        """The console's audit page: ``AuditDesk.log`` on the same sink."""
        return await AuditDesk(self.audit).log(
            tool=tool, outcome=outcome, caller=caller, scan=scan, limit=limit
        )

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


class AuditDesk:
    """The audit trail as the operator reads it: the ``audit tail`` command and the console's
    audit page both go through it."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    @property
    def where(self) -> str:
        return self.sink.where

    async def tail(self, n: int) -> Tail | None:
        """The last ``n`` records, oldest first (None: no log yet)."""
        if n < 1:
            raise InvalidParams(f"-n must be at least 1, not {n}")
        return await self.sink.tail(n)

    async def log(
        self,
        *,
        tool: str | None = None,
        outcome: str | None = None,
        caller: str | None = None,
        scan: int = 1000,
        limit: int = 200,
    ) -> AuditView:
        """Of the last ``scan`` audit records, newest first, those matching every filter given
        (at most ``limit``)."""
        tail = await self.sink.tail(scan)
        records = list(reversed(tail.records)) if tail is not None else []

        def seen(field: str) -> list[str]:
            return sorted({str(r[field]) for r in records if r.get(field) is not None})

        wanted = {"tool": tool, "outcome": outcome, "caller": caller}
        kept = [
            r
            for r in records
            if all(value in (None, "") or r.get(k) == value for k, value in wanted.items())
        ]
        skipped = 0 if tail is None else tail.skipped
        return AuditView(kept[:limit], skipped, seen("tool"), seen("outcome"), seen("caller"))


class PolicyDesk:
    """The operator's policy as the server would load it: ``policy check`` and ``policy show``.
    Errors are ``PolicyError`` (an ``InvalidParams``) naming the file and what is wrong."""

    def __init__(self, home: Path, configured: Path | None) -> None:
        self.home = home
        self.configured = configured

    def check(self, file: Path | None) -> LoadedPolicy:
        """The policy in ``file``, read as the server would read it."""
        if file is None:
            raise PolicyError("policy check needs a FILE to check.")
        return LoadedPolicy(read_policy(file), str(file))

    def show(self, file: Path | None = None) -> LoadedPolicy:
        """The effective policy; a ``file`` given stands in for ``AGENTCARD_POLICY_FILE``."""
        return load_policy(file if file is not None else self.configured, self.home)


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
