"""CardService: the one thing tools call. Validate, guardrails, approval, issuer, read-back.

Arguments arrive already typed (the tool signatures are strict pydantic types); what a type
cannot say — a category's vocabulary, how two limits relate, what this issuer can do — is
checked here, then the operator's guardrails, then the human's approval where the policy asks
for it; only then the issuer. So bad or refused input changes nothing at the issuer. After a
write, the card's policy is read back from the issuer and must be what was asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp.server.elicitation import ElicitationResult

from . import categories, consent, guardrails
from .approvals import ApprovalStore
from .consent import ApprovalForm
from .errors import AgentCardError, InvalidParams, IssuerRejected, NotSupported, TestModeOnly
from .guardrails import OperatorPolicy, Verdict
from .issuers.base import Capability, CardSpec, Issuer, PolicyChange
from .issuers.http import new_idempotency_key
from .models import Authorization, Card, CardList, CardStatus, LedgerPage, Limits, Policy

__all__ = ["Answer", "CardService"]

# The human's answer to an approval form, or what the resolver passed when it did not ask.
Answer = ElicitationResult[ApprovalForm] | None


class CardService:
    def __init__(self, policy: OperatorPolicy, approvals: ApprovalStore) -> None:
        self.policy = policy
        self.approvals = approvals
        self._issuer: Issuer | None = None

    @property
    def bound(self) -> bool:
        return self._issuer is not None

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

    async def push_operator_settings(self) -> None:
        """Pushes the operator's merchant blocklist down to an issuer that enforces one, so a
        blocked merchant declines at the issuer too, not only in simulate_purchase."""
        if Capability.MERCHANT_BLOCKLIST in self.issuer.capabilities:
            await self.issuer.set_merchant_blocklist(list(self.policy.blocked_merchants))

    async def _active_cards(self) -> list[Card]:
        return [card for card in await self.issuer.list_cards() if card.status == "active"]

    # --- reviews: validation, then the operator's guardrails (also run by the approval
    # resolvers, before the tool body, to decide whether to ask the human) -------------------

    async def review_create(
        self,
        *,
        daily_limit_cents: int,
        per_auth_max_cents: int | None,
        mcc_allowlist: list[str] | None,
        ttl_minutes: int | None,
        single_use: bool,
    ) -> Verdict:
        self._require(Capability.CREATE_CARD, "create_card")
        if single_use:
            self._require(Capability.SINGLE_USE, "single_use cards")
        _check_per_auth(per_auth_max_cents, daily_limit_cents)
        tags = categories.normalize(mcc_allowlist or [])
        verdict = guardrails.check_create(
            self.policy,
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=tags,
            ttl_minutes=ttl_minutes,
            active_cards=await self._active_cards(),
        )
        if ttl_minutes is not None:
            self._require(Capability.TTL, "ttl_minutes (card expiry)")
        return verdict

    async def review_set_policy(
        self,
        card_id: str,
        *,
        daily_limit_cents: int | None,
        per_auth_max_cents: int | None,
        mcc_allowlist: list[str] | None,
    ) -> tuple[Verdict, Card]:
        self._require(Capability.SET_POLICY, "set_policy")
        if daily_limit_cents is None and per_auth_max_cents is None and mcc_allowlist is None:
            raise InvalidParams(
                "set_policy needs at least one of daily_limit_cents, per_auth_max_cents, "
                "mcc_allowlist."
            )
        tags = None if mcc_allowlist is None else categories.normalize(mcc_allowlist)
        card = await self.issuer.get_card(card_id)
        if per_auth_max_cents is not None:
            # Only a per-auth cap the agent asks for is checked: lowering the daily limit under
            # the current cap is tightening, and the daily limit bounds every purchase anyway.
            _check_per_auth(per_auth_max_cents, daily_limit_cents or card.daily_limit_cents)
        verdict = guardrails.check_policy_change(
            self.policy,
            card,
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=tags,
            active_cards=await self._active_cards(),
        )
        return verdict, card

    async def review_unfreeze(self, card_id: str) -> tuple[Verdict, Card]:
        self._require(Capability.UNFREEZE, "unfreeze_card")
        card = await self.issuer.get_card(card_id)
        if card.status != "frozen":
            return Verdict(needs_approval=False, reasons=()), card
        return guardrails.check_unfreeze(self.policy, card, await self._active_cards()), card

    async def review_close(self, card_id: str) -> tuple[Verdict, Card]:
        self._require(Capability.CLOSE, "close_card")
        card = await self.issuer.get_card(card_id)
        return guardrails.check_close(self.policy, card), card

    # --- tools --------------------------------------------------------------------------------

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
        approval_id: str | None = None,
        answer: Answer = None,
    ) -> Card:
        arguments = {
            "purpose": purpose, "daily_limit_cents": daily_limit_cents,
            "per_auth_max_cents": per_auth_max_cents, "mcc_allowlist": mcc_allowlist,
            "ttl_minutes": ttl_minutes, "single_use": single_use, "agent_id": agent_id,
            "approval_id": approval_id,
        }  # fmt: skip
        verdict = await self.review_create(
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=mcc_allowlist,
            ttl_minutes=ttl_minutes,
            single_use=single_use,
        )
        consent.settle(self.approvals, "create_card", arguments, verdict, answer)
        spec = CardSpec(
            agent_id=agent_id or await self.issuer.default_agent_id(),
            purpose=purpose,
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=categories.normalize(mcc_allowlist or []),
        )
        card = await self.issuer.create_card(spec, idempotency_key or new_idempotency_key())
        if (note := consent.audit_note.get()) is not None:
            note.card_id = card.id  # recorded even if the read-back below refuses the card
        expected = Policy(
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents or daily_limit_cents,
            mcc_allowlist=spec.mcc_allowlist,
        )
        return await self._read_back(card.id, expected)

    async def _read_back(self, card_id: str, expected: Policy) -> Card:
        """The card as the issuer now reports it, which must carry exactly the policy asked
        for: an issuer that silently dropped a limit or a category would leave the agent with
        a wider card than the operator allowed. On a mismatch the card is frozen."""
        card = await self.issuer.get_card(card_id)
        actual = Policy(
            daily_limit_cents=card.daily_limit_cents,
            per_auth_max_cents=card.per_auth_max_cents,
            mcc_allowlist=card.mcc_allowlist,
        )
        if _same_policy(actual, expected):
            return card
        frozen = "it has been frozen"
        try:
            await self.issuer.freeze(card_id)
        except AgentCardError as exc:
            frozen = f"freezing it failed too ({exc.code}); freeze it in the issuer's dashboard"
        raise IssuerRejected(
            f"{self.issuer.name} reports card {card_id} with {_show(actual)}, not the "
            f"{_show(expected)} asked for; {frozen}."
        )

    async def list_cards(self, status: CardStatus | None = None) -> CardList:
        self._require(Capability.LIST_CARDS, "list_cards")
        cards = await self.issuer.list_cards()
        return CardList(cards=[c for c in cards if status is None or c.status == status])

    async def get_card(self, card_id: str) -> Card:
        return await self.issuer.get_card(card_id)

    async def freeze_card(self, card_id: str) -> Card:
        # Freezing only ever narrows what a card can do: never gated.
        self._require(Capability.FREEZE, "freeze_card")
        return await self.issuer.freeze(card_id)

    async def unfreeze_card(
        self, card_id: str, *, approval_id: str | None = None, answer: Answer = None
    ) -> Card:
        verdict, card = await self.review_unfreeze(card_id)
        arguments = {"card_id": card_id, "approval_id": approval_id}
        consent.settle(self.approvals, "unfreeze_card", arguments, verdict, answer)
        if card.status != "frozen":
            return card
        return await self.issuer.unfreeze(card_id)

    async def set_policy(
        self,
        card_id: str,
        *,
        daily_limit_cents: int | None = None,
        per_auth_max_cents: int | None = None,
        mcc_allowlist: list[str] | None = None,
        approval_id: str | None = None,
        answer: Answer = None,
    ) -> Card:
        verdict, card = await self.review_set_policy(
            card_id,
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=mcc_allowlist,
        )
        arguments = {
            "card_id": card_id, "daily_limit_cents": daily_limit_cents,
            "per_auth_max_cents": per_auth_max_cents, "mcc_allowlist": mcc_allowlist,
            "approval_id": approval_id,
        }  # fmt: skip
        consent.settle(self.approvals, "set_policy", arguments, verdict, answer)
        change = PolicyChange(
            daily_limit_cents=daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents,
            mcc_allowlist=None if mcc_allowlist is None else categories.normalize(mcc_allowlist),
        )
        await self.issuer.set_policy(card_id, change)
        expected = Policy(
            daily_limit_cents=daily_limit_cents or card.daily_limit_cents,
            per_auth_max_cents=per_auth_max_cents or card.per_auth_max_cents,
            mcc_allowlist=card.mcc_allowlist
            if change.mcc_allowlist is None
            else change.mcc_allowlist,
        )
        return await self._read_back(card_id, expected)

    async def close_card(
        self, card_id: str, *, approval_id: str | None = None, answer: Answer = None
    ) -> Card:
        verdict, _ = await self.review_close(card_id)
        arguments = {"card_id": card_id, "approval_id": approval_id}
        consent.settle(self.approvals, "close_card", arguments, verdict, answer)
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
        guardrails.check_merchant(self.policy, merchant)
        return await self.issuer.simulate(card_id, amount_cents, merchant, tag)

    async def get_limits(self) -> Limits:
        cards = await self.issuer.list_cards()
        active = [c for c in cards if c.status == "active"]
        usage: dict[str, Any] = {}
        if Capability.USAGE in self.issuer.capabilities:
            usage = (await self.issuer.usage()).get("cards", {})
        view = guardrails.limits_view(self.policy, active)
        return Limits(
            issuer=self.issuer.name,
            mode=self.issuer.mode,
            day=datetime.now(UTC).date().isoformat(),
            active_cards=len(active),
            max_active_cards=self.policy.max_active_cards,
            committed_daily_cents=view["committed_daily_cents"],
            remaining_daily_cents=view["remaining_daily_cents"],
            max_total_daily_cents=self.policy.max_total_daily_cents,
            max_card_daily_limit_cents=self.policy.max_card_daily_limit_cents,
            max_per_auth_cents=self.policy.max_per_auth_cents,
            require_approval_above_cents=self.policy.require_approval_above_cents,
            spent_today_cents=sum(c.current_daily_spend_cents for c in cards),
            pending_approvals=[f"{a.id}: {a.summary}" for a in self.approvals.pending()],
            issuer_card_limit=usage.get("limit"),
            issuer_cards_remaining=usage.get("remaining"),
        )


def _same_policy(actual: Policy, expected: Policy) -> bool:
    return (
        actual.daily_limit_cents == expected.daily_limit_cents
        and actual.per_auth_max_cents == expected.per_auth_max_cents
        and sorted(actual.mcc_allowlist) == sorted(expected.mcc_allowlist)
    )


def _show(policy: Policy) -> str:
    categories_ = ", ".join(policy.mcc_allowlist) or "any category"
    return (
        f"daily {policy.daily_limit_cents}, per purchase {policy.per_auth_max_cents}, {categories_}"
    )


def _check_per_auth(per_auth_max_cents: int | None, daily_limit_cents: int) -> None:
    if per_auth_max_cents is not None and per_auth_max_cents > daily_limit_cents:
        raise InvalidParams(
            f"per_auth_max_cents ({per_auth_max_cents}) cannot exceed daily_limit_cents "
            f"({daily_limit_cents})."
        )
