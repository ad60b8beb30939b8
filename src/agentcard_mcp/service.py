"""CardService: the one thing tools call. Validate, then ask the issuer.

Arguments arrive already typed (the tool signatures are strict pydantic types); what a type
cannot say — a category's vocabulary, how two limits relate, what this issuer can do — is
checked here, before any request, so bad input changes nothing at the issuer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import categories
from .errors import InvalidParams, NotSupported, TestModeOnly
from .issuers.base import Capability, CardSpec, Issuer, PolicyChange
from .issuers.http import new_idempotency_key
from .models import Authorization, Card, CardList, CardStatus, LedgerPage, Limits

__all__ = ["CardService"]


class CardService:
    def __init__(self) -> None:
        self._issuer: Issuer | None = None

    def bind(self, issuer: Issuer | None) -> None:
        """Attach the issuer for the server's lifetime (the lifespan owns its HTTP client)."""
        self._issuer = issuer

    @property
    def issuer(self) -> Issuer:
        if self._issuer is None:
            raise RuntimeError("CardService used outside the server's lifespan")
        return self._issuer

    def _require(self, capability: Capability, what: str) -> None:
        if capability not in self.issuer.capabilities:
            if capability is Capability.SIMULATE and self.issuer.mode == "live":
                raise TestModeOnly(f"{what} works only in test mode; {self.issuer.name} is live.")
            raise NotSupported(f"{what} is not supported by the {self.issuer.name} issuer.")

    async def create_card(
        self,
        *,
        purpose: str,
        daily_limit_cents: int,
        per_auth_max_cents: int | None = None,
        mcc_allowlist: list[str] | None = None,
        ttl_minutes: int | None = None,
        single_use: bool = False,
        agent_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Card:
        self._require(Capability.CREATE_CARD, "create_card")
        if single_use:
            self._require(Capability.SINGLE_USE, "single_use cards")
        if ttl_minutes is not None:
            self._require(Capability.TTL, "ttl_minutes (card expiry)")
        _check_per_auth(per_auth_max_cents, daily_limit_cents)
        spec = CardSpec(
            agent_id=agent_id or await self.issuer.default_agent_id(),
            purpose=purpose,
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=categories.normalize(mcc_allowlist or []),
        )
        return await self.issuer.create_card(spec, idempotency_key or new_idempotency_key())

    async def list_cards(self, status: CardStatus | None = None) -> CardList:
        self._require(Capability.LIST_CARDS, "list_cards")
        cards = await self.issuer.list_cards()
        return CardList(cards=[c for c in cards if status is None or c.status == status])

    async def get_card(self, card_id: str) -> Card:
        return await self.issuer.get_card(card_id)

    async def freeze_card(self, card_id: str) -> Card:
        self._require(Capability.FREEZE, "freeze_card")
        return await self.issuer.freeze(card_id)

    async def unfreeze_card(self, card_id: str) -> Card:
        self._require(Capability.UNFREEZE, "unfreeze_card")
        return await self.issuer.unfreeze(card_id)

    async def set_policy(
        self,
        card_id: str,
        *,
        daily_limit_cents: int | None = None,
        per_auth_max_cents: int | None = None,
        mcc_allowlist: list[str] | None = None,
    ) -> Card:
        self._require(Capability.SET_POLICY, "set_policy")
        if daily_limit_cents is None and per_auth_max_cents is None and mcc_allowlist is None:
            raise InvalidParams(
                "set_policy needs at least one of daily_limit_cents, per_auth_max_cents, "
                "mcc_allowlist."
            )
        change = PolicyChange(
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=None if mcc_allowlist is None else categories.normalize(mcc_allowlist),
        )
        if per_auth_max_cents is not None:
            # Only a per-auth cap the agent asks for is checked: lowering the daily limit under
            # the current cap is tightening, and the daily limit bounds every purchase anyway.
            daily = daily_limit_cents or (await self.issuer.get_card(card_id)).daily_limit_cents
            _check_per_auth(per_auth_max_cents, daily)
        return await self.issuer.set_policy(card_id, change)

    async def close_card(self, card_id: str) -> Card:
        self._require(Capability.CLOSE, "close_card")
        return await self.issuer.close(card_id)

    async def read_ledger(
        self,
        *,
        card_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        decision: str | None = None,
    ) -> LedgerPage:
        if card_id is not None and agent_id is not None:
            raise InvalidParams("pass card_id or agent_id, not both.")
        if card_id is None:
            self._require(Capability.AGENT_LEDGER, "read_ledger by agent")
            agent_id = agent_id or await self.issuer.default_agent_id()
        else:
            self._require(Capability.LEDGER, "read_ledger")
        return await self.issuer.ledger(
            card_id=card_id, agent_id=agent_id, limit=limit, cursor=cursor, decision=decision
        )

    async def simulate_purchase(
        self, card_id: str, amount_cents: int, merchant: str, mcc: str
    ) -> Authorization:
        self._require(Capability.SIMULATE, "simulate_purchase")
        tag = categories.normalize([mcc], field="mcc")[0]
        return await self.issuer.simulate(card_id, amount_cents, merchant, tag)

    async def get_limits(self) -> Limits:
        cards = await self.issuer.list_cards()
        active = [c for c in cards if c.status == "active"]
        usage: dict[str, Any] = {}
        if Capability.USAGE in self.issuer.capabilities:
            usage = (await self.issuer.usage()).get("cards", {})
        return Limits(
            issuer=self.issuer.name,
            mode=self.issuer.mode,
            day=datetime.now(UTC).date().isoformat(),
            active_cards=len(active),
            committed_daily_cents=sum(c.daily_limit_cents for c in active),
            spent_today_cents=sum(c.current_daily_spend_cents for c in cards),
            issuer_card_limit=usage.get("limit"),
            issuer_cards_remaining=usage.get("remaining"),
        )


def _check_per_auth(per_auth_max_cents: int | None, daily_limit_cents: int) -> None:
    if per_auth_max_cents is not None and per_auth_max_cents > daily_limit_cents:
        raise InvalidParams(
            f"per_auth_max_cents ({per_auth_max_cents}) cannot exceed daily_limit_cents "
            f"({daily_limit_cents})."
        )
