"""The server's own state, as async interfaces (DESIGN §12). Backends: ``sqlite`` (default,
files in the home) and ``postgres`` (``AGENTCARD_DATABASE_URL``, shared by replicas).

Budget vocabulary (DESIGN §5):

- A **card record** is what the budget knows of one card: its status, daily limit and the spend
  last seen on it, for the UTC day it was seen.
- A card **commits** for the day: an active (or pending) card the larger of its daily limit and
  today's spend; a frozen or closed card today's spend.
- A **reservation** holds a write that is in flight at the issuer: what the card will commit and
  whether it will count as active once the write lands. It counts (the larger of it and the
  card's record) until it is settled: confirmed with the card as the issuer then reported it,
  or released. One card has at most one reservation at a time, so writes to one card are
  serialized across processes and replicas.
- A reservation whose owner died or whose outcome is unknown is **stale** once ``settle_after``
  has passed (or, on the owner's host, once its process is gone); it keeps counting until the
  budget reconciles it against the issuer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..approvals import Approval, Requested
from ..audit import AuditRecord, Tail
from ..keys import ApiKey
from ..models import CardStatus

__all__ = [
    "ACTIVE_STATUSES",
    "IDEMPOTENCY_WINDOW",
    "ApprovalStore",
    "AuditSink",
    "BudgetStore",
    "CardRecord",
    "DayTotals",
    "Hold",
    "KeyStore",
    "KeyTaken",
    "RateLimits",
    "Reservation",
    "SessionBindings",
]

# Cards whose daily limit is (or will be, without another tool call) spendable. A pending card
# becomes active on its own at the issuer, so it already counts.
ACTIVE_STATUSES: frozenset[str] = frozenset({"active", "pending"})
# How long an agent's idempotency key for create_card is remembered (as issuers keep theirs).
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class CardRecord:
    card_id: str
    status: CardStatus
    daily_limit_cents: int
    spent_cents: int
    spent_day: str  # the UTC day (ISO date) spent_cents belongs to

    def commits(self, day: str) -> int:
        spent = self.spent_cents if self.spent_day == day else 0
        if self.status in ACTIVE_STATUSES:
            return max(self.daily_limit_cents, spent)
        return spent

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One UTC day's figures over the cards and reservations counted."""

    day: str
    committed_cents: int
    active_cards: int
    spent_cents: int


@dataclass(frozen=True, slots=True)
class Hold:
    """A write about to be made: to ``card_id`` (None: a new card), after which the card
    commits ``commits_cents`` and counts as active when ``active``."""

    card_id: str | None
    commits_cents: int
    active: bool
    # A new card asked for with an agent's idempotency key (as stored: its hash), and the
    # digest of the request: one key makes at most one card, so while a write with the key is
    # in flight, or once it made its card, no other may start (``KeyTaken``).
    key: str | None = None
    digest: str = ""
    # Whether a retry may take over the reservation of a write with the same key and digest
    # whose outcome was left unknown: only where the issuer makes one card for one key however
    # often it is asked (else asking again could make a second card the budget never counts).
    take_over: bool = False


class KeyTaken(Exception):
    """``reserve`` found the hold's idempotency key already taken: by a write in flight
    (``card_id`` None) or by the card it made (within ``IDEMPOTENCY_WINDOW``), for a request
    of ``digest``. Nothing was written."""

    def __init__(self, digest: str, card_id: str | None) -> None:
        super().__init__(digest, card_id)
        self.digest = digest
        self.card_id = card_id


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    card_id: str | None
    commits_cents: int
    active: bool
    owner: str
    settle_after: datetime


# The ceiling check run inside the reservation's transaction: the totals of every other card
# and reservation, and the card's own record (None for a new card). Raises to refuse.
Check = Callable[[DayTotals, CardRecord | None], None]


class BudgetStore(Protocol):
    """The day's commitments of one issuer account, shared by every process and replica."""

    async def totals(self, day: str, *, exclude: str | None = None) -> DayTotals:
        """The day's figures over all cards and open reservations (without card ``exclude``)."""
        ...

    async def record(self, card_id: str) -> CardRecord | None: ...

    async def reserve(
        self, hold: Hold, check: Check, *, day: str, owner: str, now: datetime, lease_s: float
    ) -> Reservation | None:
        """In one transaction: the totals without the card, ``check``, then the reservation.
        None (nothing written) while the card already has a reservation in flight. With a
        ``hold.key`` (checked first: a retry is not a new card): the reservation of a write
        with that key and digest whose outcome was left unknown (disowned) is taken over when
        ``hold.take_over``, unchecked, as it already counts; a key otherwise taken is
        ``KeyTaken``."""
        ...

    async def settle(
        self, reservation_id: str, card: CardRecord | None, *, found: Reservation | None = None
    ) -> None:
        """In one transaction: the card's record replaced by ``card`` (when given; a day's spend
        never goes down, whatever the issuer reports of a closed card) and the
        reservation removed. ``settle(id, None)`` releases it. ``found``: a reconciler settles
        the reservation only as it found it stale — nothing if it has since changed hands (a
        retry took it over) or been disowned anew."""
        ...

    async def disown(self, reservation_id: str, settle_after: datetime) -> None:
        """The outcome is unknown: the reservation stays, counted, until it is reconciled."""
        ...

    async def observe(self, cards: Sequence[CardRecord]) -> None:
        """What the issuer reported of these cards, outside any write of ours: unknown cards are
        adopted whole; of a known card only its spend is taken, when it is higher for the same
        day or of a newer day (a snapshot read before a concurrent write landed must not undo
        that write's status or limit)."""
        ...

    async def spent(self, card_id: str, cents: int, day: str) -> None:
        """A known card's spend as an authorization reported it (same rule as ``observe``)."""
        ...

    async def active_cards(self) -> list[str]:
        """The ids of the cards recorded active (or pending)."""
        ...

    async def reservations(self) -> list[Reservation]: ...

    async def remember(self, key: str, digest: str, card_id: str, now: datetime) -> None:
        """An agent's idempotency key, the digest of the request it came with, and the card it
        made (the first one recorded for the key stays)."""
        ...

    async def recall(self, key: str, since: datetime) -> tuple[str, str | None] | None:
        """(digest, card id) recorded for ``key`` at or after ``since``; else (digest, None)
        while a reservation holding ``key`` is in flight and owned (a disowned one, whose
        outcome is unknown, is for a retry to take over: see ``reserve``); else None."""
        ...

    async def lost(self, key: str) -> str | None:
        """The digest of the request whose reservation holding ``key`` was disowned (its
        outcome unknown), which a retry of that request takes over (``reserve``); else None."""
        ...

    async def aclose(self) -> None: ...


class ApprovalStore(Protocol):
    """The operator's approvals, shared by every process and replica; the rules (digest,
    single use, expiry, the refusals) are approvals.py's, applied the same by every backend.

    Expiry is computed on read, by the store's clock, read once the write's lock is held."""

    async def request(
        self, tool: str, arguments: Mapping[str, Any], summary: str, *, caller: str | None = None
    ) -> Requested:
        """A pending approval for this exact call: the one already pending (unexpired) for the
        same digest, else a new one valid ``APPROVAL_TTL`` (``new`` says which), recording who
        asked (``caller``: "stdio" or an HTTP key's id)."""
        ...

    async def consume(self, approval_id: str, tool: str, arguments: Mapping[str, Any]) -> Approval:
        """In one transaction holding the approval: it must approve exactly this call, then it
        is marked used. Of calls racing with one approval, exactly one succeeds; a mismatch
        leaves it untouched. Raises not_found, approval_required or approval_denied."""
        ...

    async def record_elicited(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        summary: str,
        accepted: bool,
        *,
        caller: str | None = None,
    ) -> Approval:
        """A decision the human made in band, for the record: ``used`` if accepted (the call
        goes ahead at once), else ``denied``."""
        ...

    async def approve(self, approval_id: str) -> Approval:
        """The operator's yes to a pending, unexpired request (else invalid_params)."""
        ...

    async def deny(self, approval_id: str) -> Approval: ...

    async def get(self, approval_id: str) -> Approval: ...

    async def pending(self) -> list[Approval]:
        """Pending, unexpired approvals, oldest first (the order the agent asked in), found
        through an index on (status, expires_at), not by reading every approval ever made."""
        ...

    async def recent(self, limit: int = 50) -> list[Approval]:
        """The most recent approvals of any status, newest first."""
        ...

    async def aclose(self) -> None: ...


class AuditSink(Protocol):
    """Where the audit records of tool calls go (audit.py): each record scrubbed and capped by
    ``audit.prepare`` with the sink's ``scrub``, then appended; never changed afterwards."""

    @property
    def where(self) -> str:
        """The trail's place, for the operator's messages (a file, or a database table)."""
        ...

    @property
    def inline(self) -> bool:
        """Whether ``write`` finishes without yielding to the event loop (one ``write()`` to a
        file): then nothing can cancel it half way, and it needs no shield nor timeout."""
        ...

    async def write(self, record: AuditRecord) -> None:
        """Appends one record; raises if it could not be written."""
        ...

    async def tail(self, n: int) -> Tail | None:
        """The last ``n`` records, newest last, and how many unreadable ones were passed over;
        None when there is no trail yet."""
        ...

    async def aclose(self) -> None: ...


# --- who may use the HTTP transports (DESIGN §10) ---------------------------------------------


class KeyStore(Protocol):
    """The operator's API keys (keys.py), shared by every replica: a key made or revoked
    through any of them (or the ``keys`` command) counts on all of them from their next request.
    Only a key's SHA-256 digest is kept."""

    async def create(
        self,
        name: str,
        *,
        scope: str = "cards:write",
        rate: int = 60,
        allow_in_band_approval: bool = False,
    ) -> tuple[str, ApiKey]:
        """A new key and its record; the key itself is returned once and never stored.
        invalid_params for a name, scope or rate it cannot have. ``allow_in_band_approval``
        lets this key's client be asked for approvals in band under the ``auto`` channel."""
        ...

    async def get(self, key_id: str) -> ApiKey:
        """The key's record, revoked or not; not_found for an unknown id."""
        ...

    async def find(self, key: str) -> ApiKey | None:
        """The active key whose digest matches the presented ``key``, or None. Looked up by
        digest, then compared in constant time. Never remembers an answer past a change."""
        ...

    async def is_active(self, key_id: str) -> bool: ...

    async def touch(self, key_id: str) -> None:
        """Records that the key was used (written at most once a minute per key)."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every key, oldest first."""
        ...

    async def any_active(self) -> bool: ...

    async def revoke(self, key_id: str) -> ApiKey:
        """Revokes the key; not_found for an unknown id, invalid_params if already revoked."""
        ...

    async def aclose(self) -> None: ...


class RateLimits(Protocol):
    """A token bucket per key: ``rate_per_minute`` requests a minute, in bursts of at most that
    many. Every replica sharing the store shares each key's one bucket."""

    async def take(self, key_id: str, rate_per_minute: int) -> float | None:
        """None if the request may go ahead (a token is used), else seconds until it may."""
        ...


class SessionBindings(Protocol):
    """Session id -> the key that opened it, seen by every replica sharing the store."""

    async def bind(self, session_id: str, key_id: str) -> None:
        """Binds the session to ``key_id``; a session already bound keeps its first key."""
        ...

    async def owner(self, session_id: str) -> str | None:
        """The key that opened the session, or None for one never bound (or long forgotten)."""
        ...
