"""AgentCard v1 (issuer-docs/agentcard-so.md): the remote API and the embedded sandbox alike.

Translation only: our models in, AgentCard's JSON out, and back. AgentCard has no card
"purpose" field; the purpose travels as the card's ``nickname``. It has no single-use cards
and no card expiry, so those capabilities are absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import NotFound
from ..models import (
    Authorization,
    Card,
    CardStatus,
    IssuerLimits,
    LedgerEntry,
    LedgerPage,
    LedgerTotals,
)
from .base import CardSpec, IssuerBase, PolicyChange

__all__ = ["AgentCardIssuer"]


class AgentCardIssuer(IssuerBase):
    instead: ClassVar[Mapping[str, str]] = {
        "simulate": "test purchases need an ac_test_ key",
        "merchant_blocklist": "set the blocklist in AgentCard's dashboard",
        "single_use": "create a card and close it (close_card) after its purchase",
        "ttl": "close the card (close_card) when it is no longer needed",
    }

    async def default_agent_id(self) -> str:
        """The configured agent, else the account's first active agent (the starter agent)."""
        if self._agent_id is None:
            agents = (await self.http.request("GET", "/v1/agents"))["data"]
            active = [a for a in agents if a.get("status", "active") == "active"]
            if not active:
                agent = await self.http.request(
                    "POST", "/v1/agents", json={"name": "agentcard-mcp"}
                )
                active = [agent]
            self._agent_id = str(active[0]["id"])
        return self._agent_id

    async def check_agent(self, agent_id: str) -> None:
        """A card can be made for any agent of the account, suspended ones included (their
        cards decline ``agent_not_active``): only an unknown or deleted one is refused."""
        try:
            await self.http.request("GET", f"/v1/agents/{agent_id}")
        except NotFound:
            raise NotFound(
                f"{self.name} has no agent {agent_id!r}; nothing was created or asked. Omit "
                "agent_id to use your own agent, or pass the id of one of the account's agents."
            ) from None

    def _card(self, raw: dict[str, Any], *, closed: bool = False) -> Card:
        status: CardStatus = "closed" if closed else ("frozen" if raw.get("frozen") else "active")
        return Card(
            id=raw["id"],
            agent_id=raw["agent_id"],
            issuer=self.name,
            status=status,
            purpose=raw.get("nickname"),
            last4=raw.get("last4"),
            daily_limit_cents=raw["daily_limit_cents"],
            per_auth_max_cents=raw.get("per_auth_max_cents") or raw["daily_limit_cents"],
            mcc_allowlist=list(raw.get("mcc_allowlist") or []),
            current_daily_spend_cents=raw.get("current_daily_spend_cents", 0),
            single_use=False,
            expires_at=None,
            created_at=raw.get("created_at"),
        )

    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card:
        body: dict[str, Any] = {
            "agent_id": spec.agent_id,
            "daily_limit_cents": spec.daily_limit_cents,
            "mcc_allowlist": spec.mcc_allowlist,
            "nickname": spec.purpose,
        }
        if spec.per_auth_max_cents is not None:
            body["per_auth_max_cents"] = spec.per_auth_max_cents
        raw = await self.http.request(
            "POST", "/v1/cards", json=body, idempotency_key=idempotency_key
        )
        return self._card(raw)

    async def get_card(self, card_id: str) -> Card:
        return self._card(await self.http.request("GET", f"/v1/cards/{card_id}"))

    async def list_cards(self) -> list[Card]:
        return [self._card(raw) for raw in (await self.http.request("GET", "/v1/cards"))["data"]]

    async def freeze(self, card_id: str) -> Card:
        return self._card(await self.http.request("POST", f"/v1/cards/{card_id}/freeze"))

    async def unfreeze(self, card_id: str) -> Card:
        return self._card(await self.http.request("POST", f"/v1/cards/{card_id}/unfreeze"))

    async def set_policy(self, card_id: str, change: PolicyChange) -> Card:
        body = {
            field: value
            for field, value in (
                ("daily_limit_cents", change.daily_limit_cents),
                ("per_auth_max_cents", change.per_auth_max_cents),
                ("mcc_allowlist", change.mcc_allowlist),
            )
            if value is not None
        }
        return self._card(await self.http.request("PATCH", f"/v1/cards/{card_id}", json=body))

    async def close(self, card_id: str) -> Card:
        # AgentCard's DELETE answers {"id", "deleted"}; the card as it was, marked closed, is
        # what the agent needs to see.
        before = await self.http.request("GET", f"/v1/cards/{card_id}")
        await self.http.request("DELETE", f"/v1/cards/{card_id}")
        return self._card(before, closed=True)

    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage:
        path = f"/v1/cards/{card_id}/ledger" if card_id else f"/v1/agents/{agent_id}/ledger"
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if decision:
            params["decision"] = decision
        raw = await self.http.request("GET", path, params=params)
        entries = [_entry(item, card_id) for item in raw["data"]]
        approved = [e for e in entries if e.decision == "approve"]
        return LedgerPage(
            entries=entries,
            has_more=bool(raw.get("has_more")),
            next_cursor=raw.get("next_cursor") or (entries[-1].id if raw.get("has_more") else None),
            totals=LedgerTotals(
                approved_cents=sum(e.amount_cents for e in approved),
                approved_count=len(approved),
                declined_count=len(entries) - len(approved),
            ),
        )

    async def _usage(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.http.request("GET", "/v1/usage")
        return result

    async def limits(self) -> IssuerLimits:
        cards = (await self._usage()).get("cards") or {}
        return IssuerLimits(card_limit=cards.get("limit"), cards_remaining=cards.get("remaining"))

    async def spend_by_day(self) -> list[tuple[str, str, int]] | None:
        counted = (await self._usage()).get("spend_by_day")
        if not isinstance(counted, list):
            return None
        return [(r["day"], r["mcc"], int(r["volume_cents"])) for r in counted]

    async def set_merchant_blocklist(self, merchants: list[str]) -> None:
        await self.http.request("PATCH", "/v1/owner", json={"merchant_blocklist": merchants})

    async def simulate(
        self, card_id: str, amount_cents: int, merchant: str, mcc: str
    ) -> Authorization:
        body = {"card_id": card_id, "amount_cents": amount_cents, "merchant": merchant, "mcc": mcc}
        raw = await self.http.request("POST", "/v1/_test/swipe", json=body)
        outcome = raw["agentcard_outcome"]
        return Authorization(
            id=outcome["auth_id"],
            card_id=card_id,
            approved=bool(raw.get("approved", outcome["decision"] == "approve")),
            decision=outcome["decision"],
            reason=outcome["reason"],
            amount_cents=amount_cents,
            merchant=merchant,
            mcc=mcc,
            current_daily_spend_cents=outcome["current_daily_spend_cents"],
            decided_at=outcome["decided_at"],
        )


def _entry(raw: dict[str, Any], card_id: str | None) -> LedgerEntry:
    return LedgerEntry(
        id=raw["id"],
        card_id=raw.get("card_id") or card_id or "",
        decided_at=raw["decided_at"],
        decision=raw["decision"],
        reason=raw["reason"],
        amount_cents=raw["amount_cents"],
        merchant=raw["merchant"],
        mcc=raw["mcc"],
        current_daily_spend_cents_after=raw.get("current_daily_spend_cents_after"),
    )
