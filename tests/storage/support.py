"""Small helpers shared by the budget store's contract tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agentcard_mcp.models import CardStatus
from agentcard_mcp.storage.base import BudgetStore, CardRecord, Check, DayTotals, Hold, Reservation

YESTERDAY = "2025-06-01"
TODAY = "2025-06-02"
NOW = datetime(2025, 6, 2, 12, 30, tzinfo=UTC)
LEASE_S = 120.0
OWNER = "host-a:4242:cafe0001"


class Refused(Exception):
    """What a test's ceiling check raises to refuse a reservation."""


def card(
    card_id: str,
    status: CardStatus = "active",
    limit: int = 1000,
    spent: int = 0,
    day: str = TODAY,
) -> CardRecord:
    return CardRecord(card_id, status, limit, spent, day)


def allow(_: DayTotals, __: CardRecord | None) -> None:
    return None


def refuse(_: DayTotals, __: CardRecord | None) -> None:
    raise Refused


@dataclass
class Spy:
    """A check that lets every reservation through and remembers what it was shown."""

    calls: list[tuple[DayTotals, CardRecord | None]] = field(default_factory=list)

    def __call__(self, others: DayTotals, current: CardRecord | None) -> None:
        self.calls.append((others, current))


def ceiling(amount: int, *, max_active: int, max_total: int) -> Check:
    """The shape of the server's create_card check: one more active card of ``amount``."""

    def check(others: DayTotals, _: CardRecord | None) -> None:
        if others.active_cards + 1 > max_active or others.committed_cents + amount > max_total:
            raise Refused

    return check


async def reserve(
    store: BudgetStore,
    card_id: str | None,
    commits: int,
    *,
    active: bool = True,
    check: Check = allow,
    owner: str = OWNER,
    now: datetime = NOW,
) -> Reservation | None:
    return await store.reserve(
        Hold(card_id, commits, active), check, day=TODAY, owner=owner, now=now, lease_s=LEASE_S
    )


async def reserved(
    store: BudgetStore,
    card_id: str | None,
    commits: int,
    *,
    active: bool = True,
    check: Check = allow,
    owner: str = OWNER,
    now: datetime = NOW,
) -> Reservation:
    """A reservation that must be granted."""
    reservation = await reserve(
        store, card_id, commits, active=active, check=check, owner=owner, now=now
    )
    assert reservation is not None
    return reservation


def lease_end(now: datetime = NOW) -> datetime:
    return now + timedelta(seconds=LEASE_S)
