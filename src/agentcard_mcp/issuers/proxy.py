"""Proxy (issuer-docs/proxy-create-card.txt, more-facts.md): per-agent cards, ``Api-Key`` auth.

Translation only:

- ``create_card`` → ``POST /v1/agents/{agentId}/cards`` with ``purpose``, ``type`` (``single``
  for a single-use card, else ``multi``), ``maxAmount`` (the per-purchase cap, cents),
  ``limits.perDay`` (cents) and, for an expiring card, ``ttlMinutes`` with ``onExpiry: close``.
  Proxy has no merchant-category allowlist, so one is refused (the registry gives Proxy no
  ``categories`` capability) rather than silently dropped.
- A card's policy (``GET /v1/cards/{id}/policy``: ``limits.perAuth``, ``perDay``,
  ``spentDay``, the expiry) is what ``get_card`` reports, so the read-back after a write sees
  what Proxy enforces, and the budget sees today's spend.
- Statuses: ``notActivated`` → pending, ``active``, ``frozen``, ``closed``; a status this
  version does not know is shown as pending (counted by the budget as live).
- Freezing a frozen card, or closing a closed one (409 ``card_already_*``), is the card as it
  is: both tools are idempotent.
- Proxy meters writes by a bucket of 10 refilled 30 a minute: we send at most 10 requests in
  any 20 s (reads included), so neither its write nor its read bucket ever runs dry.
- Lists follow ``nextCursor`` pages of 100; transactions (authorizations; settlements repeat
  them) are the ledger.
- A card created with ``credentialExposure: rawPan`` comes back with its number, CVV and expiry:
  they go only to the operator's card file (card_files), and the result names it. If that file
  cannot be written, the card is closed at once: nobody is left holding a card only the issuer
  could show.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    AgentCardError,
    InvalidParams,
    IssuerAuthFailed,
    IssuerRejected,
    IssuerUnavailable,
    NotFound,
)
from ..models import Card, CardStatus, LedgerEntry, LedgerPage, LedgerTotals, Policy
from . import card_files
from .base import Capability, CardSpec, ErrorOverrides, IssuerBase
from .pacing import Pace

__all__ = ["ProxyIssuer"]

log = logging.getLogger("agentcard_mcp.issuers")

_STATUS: dict[str, CardStatus] = {
    "notActivated": "pending", "active": "active", "frozen": "frozen", "closed": "closed",
}  # fmt: skip
_PAGE = 100  # Proxy's largest page
_BURST, _WINDOW = 10, 20.0  # Proxy's write bucket: 10, refilled in 20 s
_MAX_PAGES = 1000  # a cursor that never ends is the issuer's bug, not a reason to spin
# Transactions that are decisions on a purchase (a settlement repeats its authorization).
_DECISIONS = frozenset({"authorization", "force_capture"})


class _AlreadyFrozen(IssuerRejected):
    pass


class _AlreadyClosed(IssuerRejected):
    pass


class ProxyIssuer(IssuerBase):
    instead: ClassVar[Mapping[str, str]] = {
        "set_policy": "Proxy cannot change a card's limits; close it and create a new one",
        "simulate": "Proxy has no test purchases through the API",
        "categories": "Proxy cards cannot be limited to merchant categories; create the card "
        "without mcc_allowlist (the operator's allowed_categories then rule Proxy out)",
        "agent_ledger": "read the ledger of each card (read_ledger with card_id)",
    }
    error_overrides: ClassVar[ErrorOverrides] = {
        (409, "card_already_frozen"): (_AlreadyFrozen, "The card is frozen already."),
        (409, "card_already_closed"): (_AlreadyClosed, "The card is closed; create a new one."),
        (400, "card_not_active"): (IssuerRejected, "The card is not activated at Proxy yet "
                                   "(pending); the operator activates it in the dashboard."),
        (404, "agent_not_found"): (NotFound, "The operator must set AGENTCARD_AGENT_ID to an "
                                   "agent of this Proxy account."),
        (401, "expired_api_key"): (IssuerAuthFailed, "The Proxy key has expired; the operator "
                                   "must make a new one (AGENTCARD_API_KEY)."),
        (403, "insufficient_permissions"): (IssuerAuthFailed, "The Proxy key lacks the "
                                            "permission this needs; the operator must widen it."),
    }  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pace = self.http.pace
        if pace is not None and (pace.limit, pace.window) != (_BURST, _WINDOW):
            # 30 a minute, in a burst, would empty Proxy's write bucket (it holds 10 and refills
            # 30 a minute; reads: 20 and 100): at most 10 requests in any 20 s never empties
            # either. Same clock and sleep as the pace it replaces.
            self.http.pace = Pace(
                _BURST, _WINDOW, max_wait=pace.max_wait, clock=pace.clock, sleep=pace.sleep
            )

    async def default_agent_id(self) -> str:
        """The configured agent, else the account's first."""
        if self._agent_id is None:
            agents = (await self.http.request("GET", "/v1/agents"))["data"]
            if not agents:
                raise InvalidParams(
                    "this Proxy account has no agent; the operator must create one in the "
                    "Proxy dashboard (and may name it with AGENTCARD_AGENT_ID)."
                )
            self._agent_id = str(agents[0]["id"])
        return self._agent_id

    # -- translation -----------------------------------------------------------------------

    def enforced_policy(self, spec: CardSpec) -> Policy:
        if spec.mcc_allowlist:
            raise self.not_supported("mcc_allowlist (merchant categories)", Capability.CATEGORIES)
        return super().enforced_policy(spec)

    def _body(self, spec: CardSpec) -> dict[str, Any]:
        self.enforced_policy(spec)  # refuses what Proxy cannot enforce, before any request
        body: dict[str, Any] = {
            "purpose": spec.purpose,
            "type": "single" if spec.single_use else "multi",
            "maxAmount": spec.per_auth_max_cents or spec.daily_limit_cents,
            "limits": {"perDay": spec.daily_limit_cents},
        }
        if spec.ttl_minutes is not None:
            body |= {"ttlMinutes": spec.ttl_minutes, "onExpiry": "close"}
        return body

    def _card(self, raw: dict[str, Any], policy: dict[str, Any] | None = None) -> Card:
        limits = {**(raw.get("limits") or {}), **((policy or {}).get("limits") or {})}
        per_auth = _cents(limits.get("perAuth") or raw.get("maxAmount"))
        return Card(
            id=str(raw["id"]),
            agent_id=str(raw.get("agentId") or ""),
            issuer=self.name,
            status=_STATUS.get(str(raw.get("status")), "pending"),
            purpose=raw.get("purpose"),
            last4=raw.get("last4"),
            daily_limit_cents=_cents(limits.get("perDay")) or per_auth,
            per_auth_max_cents=per_auth,
            mcc_allowlist=[],
            current_daily_spend_cents=_cents(limits.get("spentDay")),
            single_use=raw.get("type") == "single",
            expires_at=_when((policy or {}).get("expiresAt")),
            created_at=_when(raw.get("createdAt")),
            note=_note(self.home, str(raw["id"]), raw.get("last4")),
        )

    # -- cards -----------------------------------------------------------------------------

    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card:
        body = self._body(spec)
        if self.home is not None:
            card_files.check_dir(self.home)  # a bad home fails before a card exists
        raw = await self.http.request(
            "POST", f"/v1/agents/{spec.agent_id}/cards", json=body,
            idempotency_key=idempotency_key,
        )  # fmt: skip
        details = card_files.take_details(raw, raw.get("last4"))
        try:
            card = self._card(raw)
            if not details.has_number:  # not a rawPan card: an expiry alone opens nothing
                return card
            path = await self._save(card, details)
        finally:
            details.clear()  # written or not, they are not kept
        return card.model_copy(update={"note": card_files.note(path, card.last4)})

    async def _save(self, card: Card, details: card_files.CardDetails) -> Path:
        """The card file written; else the card is closed, so that nobody holds a card whose
        details only the issuer has seen."""
        try:
            if self.home is None:
                raise InvalidParams("no home directory for card files")
            return card_files.write(self.home, card.id, self.name, details)
        except (OSError, InvalidParams) as exc:
            why = type(exc).__name__
        log.error("proxy: card %s made, its details not saved (%s); closing it", card.id, why)
        said = f"Proxy returned the details of card {card.id}, but they could not be written "
        try:
            await self.http.request("POST", f"/v1/cards/{card.id}/close")
        except AgentCardError as failed:
            # The card may still be live: an outcome the budget keeps counting until it is
            # reconciled with the issuer.
            raise IssuerUnavailable(
                f"{said}to the operator's card file ({why}), and closing it failed too "
                f"({failed.code}); the operator must close it in the Proxy dashboard."
            ) from None
        raise IssuerRejected(f"{said}to the operator's card file ({why}); it has been closed.")

    async def get_card(self, card_id: str) -> Card:
        raw = await self.http.request("GET", f"/v1/cards/{card_id}")
        return await self._with_policy(raw)

    async def _with_policy(self, raw: dict[str, Any]) -> Card:
        policy = await self.http.request("GET", f"/v1/cards/{raw['id']}/policy")
        return self._card(raw, policy)

    async def list_cards(self) -> list[Card]:
        return [self._card(raw) async for raw in self._every("/v1/cards")]

    async def check_agent(self, agent_id: str) -> None:
        """Proxy has no documented read of one agent: its list is searched."""
        async for raw in self._every("/v1/agents"):
            if str(raw.get("id")) == agent_id:
                return
        raise NotFound(
            f"{self.name} has no agent {agent_id!r}; nothing was created or asked. Omit "
            "agent_id to use your own agent, or pass the id of one of the account's agents."
        )

    async def _every(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list, page by page (``nextCursor``)."""
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"limit": _PAGE} | ({"cursor": cursor} if cursor else {})
            page = await self.http.request("GET", path, params=params)
            for raw in page.get("data") or []:
                yield raw
            following = page.get("nextCursor")
            if not following or following == cursor or page.get("hasMore") is False:
                return
            cursor = str(following)

    async def _write(self, card_id: str, action: str) -> Card:
        raw = await self.http.request("POST", f"/v1/cards/{card_id}/{action}")
        return await self._with_policy(raw)

    async def freeze(self, card_id: str) -> Card:
        try:
            return await self._write(card_id, "freeze")
        except _AlreadyFrozen:
            return await self.get_card(card_id)

    async def unfreeze(self, card_id: str) -> Card:
        return await self._write(card_id, "unfreeze")

    async def close(self, card_id: str) -> Card:
        try:
            return await self._write(card_id, "close")
        except _AlreadyClosed:
            return await self.get_card(card_id)

    # -- the ledger ------------------------------------------------------------------------

    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage:
        params: dict[str, Any] = {"limit": min(limit, _PAGE)}
        if card_id:
            params["cardId"] = card_id
        if cursor:
            params["cursor"] = cursor
        raw = await self.http.request("GET", "/v1/transactions", params=params)
        entries = [_entry(t) for t in raw.get("data") or [] if t.get("type") in _DECISIONS]
        entries = [e for e in entries if decision in (None, e.decision)]
        approved = [e for e in entries if e.decision == "approve"]
        following = raw.get("nextCursor")
        return LedgerPage(
            entries=entries,
            has_more=bool(following) and raw.get("hasMore") is not False,
            next_cursor=str(following) if following else None,
            totals=LedgerTotals(
                approved_cents=sum(e.amount_cents for e in approved),
                approved_count=len(approved),
                declined_count=len(entries) - len(approved),
            ),
        )


def _entry(raw: dict[str, Any]) -> LedgerEntry:
    merchant = raw.get("merchant") or {}
    declined = raw.get("status") == "declined"
    return LedgerEntry(
        id=str(raw["id"]),
        card_id=str(raw.get("cardId") or ""),
        decided_at=_when(raw.get("createdAt")) or "",
        decision="decline" if declined else "approve",
        reason="unknown" if declined else "approved",
        amount_cents=_cents(raw.get("amount")),
        merchant=str(merchant.get("name") or ""),
        mcc=str(merchant.get("mcc") or ""),
        current_daily_spend_cents_after=None,
    )


def _note(home: Path | None, card_id: str, last4: str | None) -> str | None:
    path = card_files.existing(home, card_id)
    return None if path is None else card_files.note(path, last4)


def _cents(value: Any) -> int:
    """Integer cents from Proxy (absent: 0); anything else is the issuer's error."""
    if value is None:
        return 0
    if type(value) is not int:
        raise IssuerUnavailable("Proxy answered an amount that is not integer cents.")
    return value


def _when(value: Any) -> str | None:
    """Proxy's times — milliseconds since the epoch (createdAt) or ISO 8601 — as ISO 8601."""
    if value is None or value == "":
        return None
    if type(value) is int:
        moment = datetime.fromtimestamp(value / 1000, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)
