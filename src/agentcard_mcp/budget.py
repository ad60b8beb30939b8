"""The day's commitments (DESIGN §5): reserve, confirm, release, reconcile — through storage/.

Every write that can widen what may be spent — and every other write to a card, so that writes
to one card are serialized across processes and replicas — runs inside ``Budget.hold``:

1. stale reservations are reconciled against the issuer first (see below);
2. one store transaction checks the operator's ceilings (the pure check from ``guardrails``)
   against the commitments of every other card and reservation, of every process and replica,
   and writes the reservation — or refuses, writing nothing;
3. the body calls the issuer and reports the card it got back (``Landing.card``);
4. the reservation is settled: confirmed with the card as the issuer reported it, or released
   when the body failed with an error that means the issuer did nothing.

A failure whose outcome is unknown (the issuer timed out or answered 5xx after retries, the
call was cancelled) leaves the reservation counting, disowned, until it is reconciled. So does a
crash: a reservation whose process is gone (on this host) or whose lease ran out (on any) is
stale. Reconciling asks the issuer: a card write is settled with the card as the issuer now
reports it; a card creation is settled by adopting every card the issuer has that the budget
does not know — so a card that was made counts, and one that was not frees its reservation.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import anyio

from .errors import AgentCardError, IssuerUnavailable, NotFound
from .issuers.base import Capability, Issuer
from .models import Card
from .storage.base import BudgetStore, CardRecord, Check, DayTotals, Hold, Reservation

__all__ = ["Budget", "CardBusy", "Landing", "record_of"]

log = logging.getLogger("agentcard_mcp.budget")

Clock = Callable[[], datetime]

# Longer than the issuer client can take over one call with all its retries (4 attempts of at
# most 10 s, backoff capped at 5 s): a live owner has always settled or disowned by then.
LEASE_S = 120.0
# After an unknown outcome, how long the request might still land at the issuer.
GRACE_S = 60.0
# How long a write waits for another write to the same card to finish.
WAIT_S = 30.0
_POLL_S = 0.02


def _utcnow() -> datetime:
    return datetime.now(UTC)


def record_of(card: Card, day: str) -> CardRecord:
    return CardRecord(
        card.id, card.status, card.daily_limit_cents, card.current_daily_spend_cents, day
    )


@dataclass
class Landing:
    """What the issuer reported after the write: set by the body of ``Budget.hold``."""

    card: Card | None = None


class CardBusy(IssuerUnavailable):
    """Another write to the card is still in flight (nothing was reserved)."""


def _no_check(_: DayTotals, __: CardRecord | None) -> None:
    return None


class SeenSpend:
    """The highest (day, spend) this process has handed the store for each card, the most
    recently seen ``LIMIT`` cards only: memory stays bounded however many cards there were."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._spend: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def is_news(self, record: CardRecord) -> bool:
        seen = self._spend.get(record.card_id)
        return seen is None or (record.spent_day, record.spent_cents) > seen

    def remember(self, records: list[CardRecord]) -> None:
        for record in records:
            self._spend[record.card_id] = (record.spent_day, record.spent_cents)
            self._spend.move_to_end(record.card_id)
        while len(self._spend) > self.LIMIT:
            self._spend.popitem(last=False)


class Budget:
    def __init__(
        self,
        store: BudgetStore,
        *,
        clock: Clock = _utcnow,
        lease_s: float = LEASE_S,
        grace_s: float = GRACE_S,
        wait_s: float = WAIT_S,
    ) -> None:
        self.store = store
        self._clock = clock
        self._lease_s = lease_s
        self._grace_s = grace_s
        self._wait_s = wait_s
        self._host = socket.gethostname()
        self.owner = f"{self._host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._synced = False
        self._seen = SeenSpend()

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def today(self) -> str:
        return self.now().date().isoformat()

    async def totals(self, *, exclude: str | None = None) -> DayTotals:
        return await self.store.totals(self.today(), exclude=exclude)

    async def observe(self, *cards: Card) -> None:
        """Cards as the issuer reported them on a read (see ``BudgetStore.observe``). A read
        that shows no more spend than this process already handed the store is not written
        again: the store's record of a card only ever grows and is never deleted, so it
        already holds at least that, and every get_card is spared a write transaction."""
        day = self.today()
        news = [r for r in (record_of(card, day) for card in cards) if self._seen.is_news(r)]
        if news:
            await self.store.observe(news)
            self._seen.remember(news)

    async def refresh_spend(self, issuer: Issuer) -> None:
        """Today's spend of every active card as the issuer reports it now (purchases happen
        at the issuer, unseen by the server). Bounded by the operator's max_active_cards, not
        by history; frozen and closed cards keep the spend recorded when they stopped."""
        found: list[Card] = []
        if Capability.GET_CARD not in issuer.capabilities:
            return  # the issuer reports no card's spend: the budget keeps what it recorded

        async def read(card_id: str) -> None:
            try:
                found.append(await issuer.get_card(card_id))
            except NotFound:
                return

        async with anyio.create_task_group() as group:
            for card_id in await self.store.active_cards():
                group.start_soon(read, card_id)
        await self.observe(*found)

    @asynccontextmanager
    async def hold(
        self, hold: Hold, issuer: Issuer, check: Check = _no_check, *, wait_s: float | None = None
    ) -> AsyncIterator[Landing]:
        """Reserves ``hold`` (see the module docstring); ``CardBusy`` when another write to the
        card is still in flight after ``wait_s`` (default ``WAIT_S``)."""
        await self.reconcile(issuer)
        reservation = await self._reserve(hold, check, issuer, wait_s)
        landing = Landing()
        try:
            yield landing
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._after_failure(reservation, landing, exc)
            raise
        with anyio.CancelScope(shield=True):
            await self._settle(reservation.id, landing.card)

    async def _reserve(
        self, hold: Hold, check: Check, issuer: Issuer, wait_s: float | None
    ) -> Reservation:
        deadline = anyio.current_time() + (self._wait_s if wait_s is None else wait_s)
        while True:
            reservation = await self.store.reserve(
                hold, check, day=self.today(), owner=self.owner, now=self.now(),
                lease_s=self._lease_s,
            )  # fmt: skip
            if reservation is not None:
                return reservation
            if anyio.current_time() > deadline:
                raise CardBusy(
                    f"another change to card {hold.card_id} is still in progress; "
                    "try again in a minute."
                )
            await anyio.sleep(_POLL_S)
            await self.reconcile(issuer)  # the other change may have died with its process

    async def _after_failure(
        self, reservation: Reservation, landing: Landing, exc: BaseException
    ) -> None:
        if landing.card is not None:
            await self._settle(reservation.id, landing.card)  # it landed, then a later step failed
        elif isinstance(exc, AgentCardError) and not isinstance(exc, IssuerUnavailable):
            await self.store.settle(reservation.id, None)  # refused: the issuer did nothing
        else:
            settle_after = self.now() + timedelta(seconds=self._grace_s)
            log.warning(
                "budget: outcome of a write to %s unknown (%s); it keeps counting until it is "
                "reconciled with the issuer",
                reservation.card_id or "a new card",
                type(exc).__name__,
            )
            await self.store.disown(reservation.id, settle_after)

    async def _settle(self, reservation_id: str, card: Card | None) -> None:
        record = None if card is None else record_of(card, self.today())
        await self.store.settle(reservation_id, record)

    # --- reconciliation -------------------------------------------------------------------

    async def sync(self, issuer: Issuer) -> None:
        """At start: adopt every card the issuer has that the budget does not know yet (cards
        made before this version, or by another tool), then reconcile what a crash left. An
        issuer that cannot be reached now does not stop the server: the next call tries
        again (and fails with the issuer's error code until it can)."""
        try:
            await self._sync(issuer)
        except AgentCardError as exc:
            log.warning("budget: cannot reach the issuer to sync the budget yet (%s)", exc.code)

    async def _sync(self, issuer: Issuer) -> None:
        await self.observe(*await _all_cards(issuer))
        self._synced = True
        await self.reconcile(issuer)

    async def reconcile(self, issuer: Issuer) -> None:
        """Settles every stale reservation against the issuer; cheap when there is none."""
        if not self._synced:
            await self._sync(issuer)
            return
        now = self.now()
        stale = [r for r in await self.store.reservations() if self._stale(r, now)]
        if not stale:
            return
        log.warning("budget: reconciling %d stale reservation(s) with the issuer", len(stale))
        if any(r.card_id is None for r in stale):
            # An issuer that cannot list its cards (ClawdCards) cannot say whether a lost
            # creation landed: its reservation is released with the others below.
            await self.observe(*await _all_cards(issuer))
        # Each is settled only as found: a retry may take one over while this looks at the issuer.
        for found in stale:
            if found.card_id is None:
                await self.store.settle(found.id, None, found=found)
                continue
            try:
                card = await issuer.get_card(found.card_id)
            except NotFound:
                # Gone at the issuer (a close that landed): it commits only what it spent.
                closed = await self._closed(found.card_id)
                await self.store.settle(found.id, closed, found=found)
                continue
            await self.store.settle(found.id, record_of(card, self.today()), found=found)

    async def _closed(self, card_id: str) -> CardRecord | None:
        known = await self.store.record(card_id)
        return None if known is None else replace(known, status="closed")

    def _stale(self, reservation: Reservation, now: datetime) -> bool:
        if reservation.settle_after <= now:
            return True
        host, _, rest = reservation.owner.partition(":")
        if host != self._host or not rest:
            return False
        pid = int(rest.split(":", 1)[0])
        if pid == os.getpid():
            # Ours, or an earlier process's that had our pid (a container's pid 1 restarted).
            return reservation.owner != self.owner
        return not _alive(pid)


async def _all_cards(issuer: Issuer) -> list[Card]:
    """Every card the issuer has, or none where it cannot list them."""
    if Capability.LIST_CARDS not in issuer.capabilities:
        return []
    return await issuer.list_cards()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
