"""agent-card.sh v1 (issuer-docs/agent-card-sh.txt, more-facts.md): translation only.

- Bodies are ``{"card": {...}}`` in, ``{"data": ...}`` out; errors ``{"errors": {"detail"}}``
  (issuers/http.py reads that shape). Keys are scoped (cards:read, cards:write,
  transactions:read): each request says which scope it needs, so a 403 names the missing one.
- The issuer enforces one limit, ``spend_limit_cents``, per transaction: our per-purchase
  limit. It knows no daily limit and no categories: the daily limit is kept by our budget (the
  card commits it to the day's total) and travels in the card's ``memo`` so that a read of the
  card reports it; a category allowlist is refused before any request, never dropped.
- A card is born ``pending_approval``: the human approves it on agent-card.sh (this server
  never calls ``approve``). Statuses: pending_approval → pending; approved → frozen (it cannot
  spend until activated); active; frozen; closed. Unfreeze is ``activate``, which is also how
  an approved card starts, so activating stays under the operator's unfreeze policy.
- No idempotency keys are documented: a create is sent once per attempt and, when its answer
  is lost, found again by a marker in its memo before it is sent again — one card, not two.
  State changes are idempotent by state: a refused transition to where the card already is,
  is success.
- Transactions are the ledger (per card; no pagination is documented, so pages are cut here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio

from ..errors import AgentCardError, IssuerRejected, IssuerUnavailable, NotFound
from ..models import Card, CardStatus, LedgerEntry, LedgerPage, LedgerTotals, Policy
from .base import Capability, CardSpec, IssuerBase

__all__ = ["AgentCardShIssuer"]

READ, WRITE, TRANSACTIONS = "cards:read", "cards:write", "transactions:read"
_STATUS: dict[str, CardStatus] = {
    "pending_approval": "pending",
    "approved": "frozen",
    "active": "active",
    "frozen": "frozen",
    "closed": "closed",
}
_NOTES = {
    "pending_approval": "awaiting the human's approval on agent-card.sh; it cannot be used "
    "until then. Once approved, unfreeze_card activates it.",
    "approved": "approved on agent-card.sh; unfreeze_card activates it.",
}
_MEMO = "agentcard-mcp"  # the memo's first word marks the cards this server made
_REASONS = frozenset({"approved", "card_not_active", "card_frozen", "per_auth_limit_exceeded"})


def _marker(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


def _memo(spec: CardSpec, idempotency_key: str) -> str:
    return (
        f"{_MEMO} daily_limit_cents={spec.daily_limit_cents} agent={spec.agent_id} "
        f"op={_marker(idempotency_key)}"
    )


def _memo_fields(memo: object) -> dict[str, str]:
    words = memo.split() if isinstance(memo, str) else []
    if not words or words[0] != _MEMO:
        return {}
    return dict(w.split("=", 1) for w in words[1:] if "=" in w)


class AgentCardShIssuer(IssuerBase):
    instead: ClassVar[Mapping[str, str]] = {
        "set_policy": "agent-card.sh cannot change a card's limits: close it (close_card) and "
        "create a new one with the limits you need",
        "agent_ledger": "read each card's ledger with card_id (agent-card.sh has no agents)",
        "categories": "omit mcc_allowlist (agent-card.sh limits each purchase, not categories)",
        "simulate": "agent-card.sh has no test mode; make a real purchase within the limits",
        "merchant_blocklist": "block merchants in the agent-card.sh dashboard",
        "single_use": "create a card and close it (close_card) after its purchase",
        "ttl": "close the card (close_card) when it is no longer needed",
    }

    # --- translation ---------------------------------------------------------------------

    def enforced_policy(self, spec: CardSpec) -> Policy:
        # The issuer enforces the per-purchase limit; the daily one is ours (kept in the memo).
        return Policy(
            daily_limit_cents=spec.daily_limit_cents,
            per_auth_max_cents=spec.per_auth_max_cents or spec.daily_limit_cents,
            mcc_allowlist=[],
        )

    def _card(self, raw: dict[str, Any], spent_today: int) -> Card:
        memo = _memo_fields(raw.get("memo"))
        per_purchase = int(raw["spend_limit_cents"])
        daily = memo.get("daily_limit_cents", "")
        status = str(raw.get("status", ""))
        return Card(
            id=str(raw["id"]),
            agent_id=memo.get("agent") or self._agent_id or "default",
            issuer=self.name,
            status=_STATUS.get(status, "frozen"),  # an unknown state is not spendable here
            purpose=raw.get("name"),
            last4=raw.get("last4") or raw.get("last_four"),
            # A card made elsewhere has no daily limit of ours: its per-purchase limit bounds
            # nothing per day, so it counts as that much per purchase, at least.
            daily_limit_cents=int(daily) if daily.isdigit() else per_purchase,
            per_auth_max_cents=per_purchase,
            mcc_allowlist=[],
            current_daily_spend_cents=spent_today,
            single_use=False,
            expires_at=None,
            created_at=raw.get("inserted_at") or raw.get("created_at"),
            note=_NOTES.get(status),
        )

    async def _spent_today(self, card_id: str) -> int:
        today = datetime.now(UTC).date().isoformat()
        return sum(
            int(t.get("amount_cents") or 0)
            for t in await self._transactions(card_id)
            if _approved(t) and str(_when(t)).startswith(today)
        )

    async def _transactions(self, card_id: str) -> list[dict[str, Any]]:
        raw = await self.http.request(
            "GET", f"/v1/cards/{card_id}/transactions", scope=TRANSACTIONS
        )
        return list(raw["data"])

    async def _with_spend(self, raw: dict[str, Any]) -> Card:
        spent = 0 if raw.get("status") == "pending_approval" else await self._spent_today(raw["id"])
        return self._card(raw, spent)

    async def probe(self) -> list[str]:
        # Each read scope once; cards:write cannot be checked without making a card.
        cards = (await self.http.request("GET", "/v1/cards", scope=READ))["data"]
        said = [f"{READ}: accepted ({len(cards)} card(s))"]
        if cards:
            await self._transactions(str(cards[0]["id"]))
            said.append(f"{TRANSACTIONS}: accepted")
        else:
            said.append(f"{TRANSACTIONS}: not checked (no card to read)")
        said.append(f"{WRITE}: not checked (that would take creating a card)")
        return said

    # --- cards ---------------------------------------------------------------------------

    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card:
        body = {
            "card": {
                "name": spec.purpose,
                "spend_limit_cents": spec.per_auth_max_cents or spec.daily_limit_cents,
                "memo": _memo(spec, idempotency_key),
            }
        }
        marker = f"op={_marker(idempotency_key)}"
        lost: IssuerUnavailable | None = None
        for attempt in range(1, self.http.max_attempts + 1):
            if lost is not None:
                # The answer was lost: the card may exist. Look before sending it again.
                for raw in (await self.http.request("GET", "/v1/cards", scope=READ))["data"]:
                    if marker in str(raw.get("memo") or "").split():
                        return self._card(raw, 0)
                await self.http.backoff(attempt - 1, "lost answer to a create")
            try:
                raw = await self.http.request(
                    "POST", "/v1/cards", json=body, scope=WRITE, retry=False,
                    send_idempotency_key=False,
                )  # fmt: skip
            except IssuerUnavailable as exc:
                lost = exc
                continue
            return self._card(raw["data"], 0)
        assert lost is not None
        raise lost

    async def get_card(self, card_id: str) -> Card:
        raw = await self.http.request("GET", f"/v1/cards/{card_id}", scope=READ)
        return await self._with_spend(raw["data"])

    async def list_cards(self) -> list[Card]:
        raws = (await self.http.request("GET", "/v1/cards", scope=READ))["data"]
        cards: dict[int, Card] = {}
        failed: list[AgentCardError] = []

        async def one(index: int, raw: dict[str, Any]) -> None:
            try:
                cards[index] = (
                    self._card(raw, 0)  # a closed card's spend stays as the budget recorded it
                    if raw.get("status") == "closed"
                    else await self._with_spend(raw)
                )
            except AgentCardError as exc:  # raised below as itself, not in an exception group
                failed.append(exc)

        async with anyio.create_task_group() as group:
            for index, raw in enumerate(raws):
                group.start_soon(one, index, raw)
        if failed:
            raise failed[0]
        return [cards[i] for i in range(len(raws))]

    async def _transition(self, card_id: str, action: str, done: frozenset[str]) -> Card:
        """POST /v1/cards/:id/<action>; a refusal because the card is already where the action
        leads (``done``: a retry after a lost answer, or a repeated call) is success."""
        try:
            raw = await self.http.request(
                "POST", f"/v1/cards/{card_id}/{action}", scope=WRITE, send_idempotency_key=False
            )
        except (IssuerRejected, NotFound) as exc:
            current = (await self.http.request("GET", f"/v1/cards/{card_id}", scope=READ))["data"]
            if current.get("status") in done:
                return await self._with_spend(current)
            raise exc
        return await self._with_spend(raw["data"])

    async def freeze(self, card_id: str) -> Card:
        # A card not yet active cannot spend: it is as good as frozen, and only unfreeze_card
        # (activate) makes it spend.
        return await self._transition(
            card_id, "freeze", frozenset({"frozen", "pending_approval", "approved", "closed"})
        )

    async def unfreeze(self, card_id: str) -> Card:
        return await self._transition(card_id, "activate", frozenset({"active"}))

    async def close(self, card_id: str) -> Card:
        return await self._transition(card_id, "close", frozenset({"closed"}))

    async def fund(self, card_id: str, amount_cents: int) -> Card:
        """Adds ``amount_cents`` from the operator's default payment method (agent-card.sh
        charges a 5.9% + 30¢ fee on top). Not a tool: funding moves the operator's money."""
        if type(amount_cents) is not int or amount_cents <= 0:
            raise ValueError("amount_cents must be a positive integer")
        raw = await self.http.request(
            "POST", f"/v1/cards/{card_id}/fund", json={"amount_cents": amount_cents},
            scope=WRITE, send_idempotency_key=False, retry=False,
        )  # fmt: skip
        return await self._with_spend(raw["data"])

    # --- the ledger ----------------------------------------------------------------------

    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage:
        if card_id is None:
            raise self.not_supported("read_ledger by agent", Capability.AGENT_LEDGER)
        entries = [_entry(t, card_id) for t in await self._transactions(card_id)]
        entries.sort(key=lambda e: e.decided_at, reverse=True)  # newest first, as AgentCard
        if decision is not None:
            entries = [e for e in entries if e.decision == decision]
        if cursor is not None:
            ids = [e.id for e in entries]
            entries = entries[ids.index(cursor) + 1 :] if cursor in ids else []
        page, more = entries[:limit], len(entries) > limit
        approved = [e for e in page if e.decision == "approve"]
        return LedgerPage(
            entries=page,
            has_more=more,
            next_cursor=page[-1].id if more else None,
            totals=LedgerTotals(
                approved_cents=sum(e.amount_cents for e in approved),
                approved_count=len(approved),
                declined_count=len(page) - len(approved),
            ),
        )


def _approved(raw: dict[str, Any]) -> bool:
    return str(raw.get("status", "")).lower() in ("approved", "settled", "pending", "completed")


def _when(raw: dict[str, Any]) -> str:
    return str(raw.get("inserted_at") or raw.get("created_at") or "")


def _entry(raw: dict[str, Any], card_id: str) -> LedgerEntry:
    approved = _approved(raw)
    reason = str(raw.get("decline_reason") or "")
    return LedgerEntry(
        id=str(raw["id"]),
        card_id=str(raw.get("card_id") or card_id),
        decided_at=_when(raw),
        decision="approve" if approved else "decline",
        reason="approved" if approved else (reason if reason in _REASONS else "unknown"),
        amount_cents=int(raw.get("amount_cents") or 0),
        merchant=str(raw.get("merchant_name") or raw.get("merchant") or ""),
        mcc=str(raw.get("mcc") or ""),
        current_daily_spend_cents_after=None,
    )
