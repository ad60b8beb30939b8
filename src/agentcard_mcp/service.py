"""CardService: the one thing tools call. Validate, guardrails, approval, issuer, read-back.

Arguments arrive already typed (the tool signatures are strict pydantic types); what a type
cannot say — a category's vocabulary, how two limits relate, what this issuer can do — is
checked here, then the operator's guardrails, then the human's approval where the policy asks
for it; only then the issuer. So bad or refused input changes nothing at the issuer. After a
write, the card's policy is read back from the issuer and must be what was asked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from . import approvals, categories, consent, guardrails
from .approvals import Approval
from .budget import Budget, CardBusy, Landing
from .consent import CallConsent
from .errors import (
    AgentCardError,
    GuardrailExceeded,
    IdempotencyConflict,
    InvalidParams,
    IssuerRejected,
    IssuerUnavailable,
    TestModeOnly,
)
from .guardrails import Verdict
from .issuers import REGISTRY
from .issuers.base import Capability, CardSpec, Issuer, PolicyChange
from .issuers.http import new_idempotency_key
from .models import (
    Authorization,
    Card,
    CardList,
    CardStatus,
    CloseCard,
    CreateCard,
    IssuerLimits,
    LedgerPage,
    Limits,
    Policy,
    SetPolicy,
    UnfreezeCard,
    WriteRequest,
)
from .policy import OperatorPolicy
from .redaction import redact_text
from .settings import DEFAULT_CONSOLE_URL
from .storage.base import (
    ACTIVE_STATUSES,
    IDEMPOTENCY_WINDOW,
    ApprovalStore,
    CardRecord,
    DayTotals,
    Hold,
    KeyTaken,
)

__all__ = ["CardService"]

log = logging.getLogger("agentcard_mcp.service")

NOT_ASKED = CallConsent()
# How long freeze_card waits for another write to the card before freezing without it.
FREEZE_WAIT_S = 1.0


class CardService:
    def __init__(self, policy: OperatorPolicy, *, console_url: str = DEFAULT_CONSOLE_URL) -> None:
        self.policy = policy
        # The operator console, whose page of each approval approval_required names.
        self.console_url = console_url
        self._issuer: Issuer | None = None
        self._budget: Budget | None = None
        self._approvals: ApprovalStore | None = None
        self._notify: Callable[[Approval], None] | None = None

    @property
    def bound(self) -> bool:
        return self._issuer is not None

    def bind(
        self,
        issuer: Issuer | None,
        budget: Budget | None = None,
        approvals: ApprovalStore | None = None,
        notify: Callable[[Approval], None] | None = None,
    ) -> None:
        """Attach the issuer, the budget and the approvals for the server's lifetime (the
        lifespan owns the issuer's HTTP client and the stores' connections), and what to tell
        of each new pending approval (the operator's webhook)."""
        self._issuer = issuer
        self._budget = budget
        self._approvals = approvals
        self._notify = notify

    async def request_approval(self, request: WriteRequest, verdict: Verdict) -> Approval:
        """The pending approval of exactly ``request`` (made now, or the one already pending),
        for the operator to decide at ``approval_link`` (the resolvers' URL elicitation)."""
        return await consent.pending(self.approvals, request, verdict, self._notify)

    def approval_link(self, approval_id: str) -> str:
        return consent.console_link(self.console_url, approval_id)

    async def _settle(self, request: WriteRequest, verdict: Verdict, call: CallConsent) -> None:
        await consent.settle(
            self.approvals, request, verdict, call, self._notify, console_url=self.console_url
        )

    @property
    def budget(self) -> Budget:
        if self._budget is None:
            raise RuntimeError("CardService used outside the server's lifespan")
        return self._budget

    @property
    def approvals(self) -> ApprovalStore:
        if self._approvals is None:
            raise RuntimeError("CardService used outside the server's lifespan")
        return self._approvals

    @property
    def issuer(self) -> Issuer:
        if self._issuer is None:
            raise RuntimeError("CardService used outside the server's lifespan")
        return self._issuer

    def _require(self, capability: Capability, what: str) -> None:
        """Refuses, before any request, what the issuer cannot do (naming it, and what to do
        instead)."""
        if capability not in self.issuer.capabilities:
            known = REGISTRY.get(self.issuer.name)
            if known is not None and capability in known.capabilities - self.issuer.capabilities:
                # The issuer has it, with a test key: this key is live.
                raise TestModeOnly(f"{what} works only in test mode; {self.issuer.name} is live.")
            raise self.issuer.not_supported(what, capability)

    async def push_operator_settings(self) -> None:
        """Pushes the operator's merchant blocklist down to an issuer that enforces one, so a
        blocked merchant declines at the issuer too, not only in simulate_purchase."""
        if Capability.MERCHANT_BLOCKLIST in self.issuer.capabilities:
            await self.issuer.set_merchant_blocklist(list(self.policy.blocked_merchants))

    async def _others(self, card: Card | None = None) -> DayTotals:
        """The day's figures of every card but ``card`` (which is adopted if new to the budget)."""
        if card is None:
            return await self.budget.totals()
        await self.budget.observe(card)
        return await self.budget.totals(exclude=card.id)

    # --- reviews: validation, then the operator's guardrails (also run by the approval
    # resolvers, before the tool body, to decide whether to ask the human) -------------------

    async def review_create(
        self, request: CreateCard, idempotency_key: str | None = None
    ) -> Verdict:
        self._require(Capability.CREATE_CARD, "create_card")
        if idempotency_key is not None and await self._replayed(idempotency_key, request):
            return guardrails.ALLOWED  # the card exists: a retry checks and asks nothing again
        return await self._review_new(request, idempotency_key)

    async def _review_new(self, request: CreateCard, idempotency_key: str | None) -> Verdict:
        self._require(Capability.CREATE_CARD, "create_card")
        if request.single_use:
            self._require(Capability.SINGLE_USE, "a single_use card")
        if request.mcc_allowlist:
            self._require(Capability.CATEGORIES, "mcc_allowlist (merchant categories)")
        _check_per_auth(request.per_auth_max_cents, request.daily_limit_cents)
        verdict = await self._check_day(request, idempotency_key)
        if request.ttl_minutes is not None:
            self._require(Capability.TTL, "ttl_minutes (card expiry)")
        if verdict.needs_approval:
            # Only a call the issuer can carry out is put to the human, and uses an approval:
            # for an agent the issuer does not know, the create would fail after the approval
            # was spent — and the corrected call (another agent_id) needs an approval of its own.
            await self.issuer.check_agent(request.agent_id or await self.issuer.default_agent_id())
        return verdict

    async def _check_day(self, request: CreateCard, idempotency_key: str | None) -> Verdict:
        """The operator's ceilings with the day's other cards. A call with an idempotency key
        may be refused by the very card it is a retry of: made (replayed), still being made
        (issuer_unavailable), or lost to an unknown outcome — whose reservation the retry takes
        over (``BudgetStore.reserve``), adding nothing to the day."""
        try:
            return self._check_create(request, await self._others())
        except GuardrailExceeded:
            if idempotency_key is None:
                raise
            if await self._replayed(idempotency_key, request):
                return guardrails.ALLOWED
            if not self._asks_again_safely():
                raise
            if await self.budget.store.lost(_kept_as(idempotency_key)) != _digest(request):
                raise
            return self._check_create(request, DayTotals(self.budget.today(), 0, 0, 0))

    def _asks_again_safely(self) -> bool:
        """Whether a create whose outcome was lost may simply be asked again with its key (the
        issuer answers with the card it made, if it made one) — else the retry waits for the
        lost one to be reconciled (issuer_unavailable meanwhile)."""
        return Capability.IDEMPOTENT_CREATE in self.issuer.capabilities

    def _check_create(self, request: CreateCard, others: DayTotals) -> Verdict:
        return guardrails.check_create(
            self.policy,
            daily_limit_cents=request.daily_limit_cents,
            per_auth_max_cents=request.per_auth_max_cents,
            mcc_allowlist=categories.normalize(request.mcc_allowlist or []),
            ttl_minutes=request.ttl_minutes,
            others=others,
        )

    async def review_set_policy(self, request: SetPolicy) -> tuple[Verdict, Card]:
        self._require(Capability.SET_POLICY, "set_policy")
        if (request.daily_limit_cents, request.per_auth_max_cents, request.mcc_allowlist) == (
            None, None, None,
        ):  # fmt: skip
            raise InvalidParams(
                "set_policy needs at least one of daily_limit_cents, per_auth_max_cents, "
                "mcc_allowlist."
            )
        _tags(request.mcc_allowlist)  # an unknown category is refused before any request
        card = await self.issuer.get_card(request.card_id)
        if request.per_auth_max_cents is not None:
            # Only a per-auth cap the agent asks for is checked: lowering the daily limit under
            # the current cap is tightening, and the daily limit bounds every purchase anyway.
            _check_per_auth(
                request.per_auth_max_cents, request.daily_limit_cents or card.daily_limit_cents
            )
        return self._check_policy_change(request, card, await self._others(card)), card

    def _check_policy_change(self, request: SetPolicy, card: Card, others: DayTotals) -> Verdict:
        return guardrails.check_policy_change(
            self.policy,
            card,
            daily_limit_cents=request.daily_limit_cents,
            per_auth_max_cents=request.per_auth_max_cents,
            mcc_allowlist=_tags(request.mcc_allowlist),
            others=others,
        )

    async def review_unfreeze(self, request: UnfreezeCard) -> tuple[Verdict, Card]:
        self._require(Capability.UNFREEZE, "unfreeze_card")
        card = await self.issuer.get_card(request.card_id)
        if card.status != "frozen":
            return Verdict(needs_approval=False, reasons=()), card
        return guardrails.check_unfreeze(self.policy, card, await self._others(card)), card

    async def review_close(self, request: CloseCard) -> tuple[Verdict, Card]:
        self._require(Capability.CLOSE, "close_card")
        card = await self.issuer.get_card(request.card_id)
        return guardrails.check_close(self.policy, card), card

    # --- tools --------------------------------------------------------------------------------
    # Each write takes its request and how the call comes (``CallConsent``: the operator's
    # approval id, what the human answered in band, the audit note it fills in with the card and
    # the approval used).

    async def create_card(
        self,
        request: CreateCard,
        *,
        idempotency_key: str | None = None,
        call: CallConsent = NOT_ASKED,
    ) -> Card:
        if idempotency_key is None:
            return await self._create(request, None, call)
        if seen := await self._replayed(idempotency_key, request):
            return await self.get_card(seen)
        try:
            return await self._create(request, idempotency_key, call)
        except KeyTaken as taken:
            # A call with this key reserved first (found in the reservation's own transaction).
            return await self.get_card(_retry_of(taken.digest, taken.card_id, request))
        except GuardrailExceeded:
            # Refused counting the card a racing call with this key made or is making?
            if (seen := await self._replayed(idempotency_key, request)) is None:
                raise
            return await self.get_card(seen)

    async def _create(
        self, request: CreateCard, idempotency_key: str | None, call: CallConsent
    ) -> Card:
        verdict = await self._review_new(request, idempotency_key)
        spec = CardSpec(
            agent_id=request.agent_id or await self.issuer.default_agent_id(),
            # What the agent wrote is masked before it leaves for the issuer, which keeps it
            # (the embedded sandbox in this home): a card number pasted into a purpose is not.
            purpose=redact_text(request.purpose),
            daily_limit_cents=request.daily_limit_cents,
            per_auth_max_cents=request.per_auth_max_cents,
            mcc_allowlist=categories.normalize(request.mcc_allowlist or []),
            ttl_minutes=request.ttl_minutes,
            single_use=request.single_use,
        )

        def check(others: DayTotals, _: CardRecord | None) -> None:
            self._check_create(request, others)

        # The key goes into the reservation: while it is in flight, a retry with the key is
        # told so (KeyTaken) rather than counted as a second card.
        kept = None if idempotency_key is None else _kept_as(idempotency_key)
        digest = _digest(request)
        hold = Hold(None, request.daily_limit_cents, active=True, key=kept, digest=digest,
                    take_over=self._asks_again_safely())  # fmt: skip
        async with self.budget.hold(hold, self.issuer, check) as landing:
            # Approval after the reservation: one that the ceilings then refuse is not burnt.
            await self._settle(request, verdict, call)
            # A key holding a card number goes out masked (then hashed: no header carries the
            # mask's bullets); every other key goes as the agent sent it, retries included.
            sent_key = redact_text(idempotency_key) if idempotency_key else new_idempotency_key()
            card = await self.issuer.create_card(spec, sent_key)
            landing.card = card
            if call.note is not None:
                call.note.card_id = card.id  # recorded even if the read-back below refuses the card
            made = await self._read_back(card.id, self.issuer.enforced_policy(spec), landing)
            if kept is not None:
                # Only a card that passed its read-back: a retry of a refused one is refused
                # again. Remembered before the reservation is settled, so that the key is never
                # free in between.
                await self.budget.store.remember(kept, digest, made.id, self.budget.now())
            return made

    async def _replayed(self, idempotency_key: str, request: CreateCard) -> str | None:
        """The id of the card an earlier create_card with this idempotency key made (within the
        issuers' 24 hours), so that a retry neither reserves nor asks for approval again; see
        ``_retry_of`` for a key in flight or reused for another request."""
        since = self.budget.now() - IDEMPOTENCY_WINDOW
        seen = await self.budget.store.recall(_kept_as(idempotency_key), since)
        return None if seen is None else _retry_of(*seen, request)

    async def _read_back(self, card_id: str, expected: Policy, landing: Landing) -> Card:
        """The card as the issuer now reports it, which must carry exactly the policy the
        adapter says the issuer enforces for the request (``Issuer.enforced_policy``): an issuer
        that silently dropped a limit or a category would leave the agent with a wider card
        than the operator allowed. On a mismatch the card is frozen. What the issuer reports is
        what the budget records (``landing``)."""
        card = await self.issuer.get_card(card_id)
        landing.card = card
        actual = Policy(
            daily_limit_cents=card.daily_limit_cents,
            per_auth_max_cents=card.per_auth_max_cents,
            mcc_allowlist=card.mcc_allowlist,
        )
        if _same_policy(actual, expected):
            return card
        frozen = "it has been frozen"
        try:
            landing.card = await self.issuer.freeze(card_id)
        except AgentCardError as exc:
            frozen = f"freezing it failed too ({exc.code}); freeze it in the issuer's dashboard"
        raise IssuerRejected(
            f"{self.issuer.name} reports card {card_id} with {_show(actual)}, not the "
            f"{_show(expected)} asked for; {frozen}."
        )

    async def list_cards(self, status: CardStatus | None = None) -> CardList:
        self._require(Capability.LIST_CARDS, "list_cards")
        cards = await self.issuer.list_cards()
        await self.budget.observe(*cards)
        return CardList(cards=[c for c in cards if status is None or c.status == status])

    async def get_card(self, card_id: str) -> Card:
        self._require(Capability.GET_CARD, "get_card")
        card = await self.issuer.get_card(card_id)
        await self.budget.observe(card)
        return card

    async def freeze_card(self, card_id: str) -> Card:
        # Freezing only ever narrows what a card can do: never gated, only kept in order with
        # other writes to the card; the card then commits only what it spent today.
        self._require(Capability.FREEZE, "freeze_card")
        hold = Hold(card_id=card_id, commits_cents=0, active=False)
        try:
            async with self.budget.hold(hold, self.issuer, wait_s=FREEZE_WAIT_S) as landing:
                landing.card = await self.issuer.freeze(card_id)
                return landing.card
        except CardBusy:
            # Another write to the card is in flight (or died with its process): freeze now
            # anyway. The budget is left as it is, so the card keeps counting what it did —
            # never less than it may spend — until that write is settled or reconciled.
            log.warning("budget: card %s frozen while another write to it is in flight", card_id)
            return await self.issuer.freeze(card_id)

    async def unfreeze_card(
        self,
        request: UnfreezeCard,
        *,
        call: CallConsent = NOT_ASKED,
    ) -> Card:
        return await _again_if_moved(lambda: self._unfreeze_once(request, call))

    async def _unfreeze_once(self, request: UnfreezeCard, call: CallConsent) -> Card:
        verdict, card = await self.review_unfreeze(request)
        if card.status != "frozen":
            await self._settle(request, verdict, call)
            return card

        def check(others: DayTotals, _: CardRecord | None) -> None:
            guardrails.check_unfreeze(self.policy, card, others)

        commits = guardrails.card_commits("active", card.daily_limit_cents,
                                          card.current_daily_spend_cents)  # fmt: skip
        hold = Hold(card_id=card.id, commits_cents=commits, active=True)
        async with self.budget.hold(hold, self.issuer, check) as landing:
            await self._unchanged_since_review(card)
            await self._settle(request, verdict, call)
            landing.card = await self.issuer.unfreeze(card.id)
            return landing.card

    async def _unchanged_since_review(self, reviewed: Card) -> None:
        """Inside the card's hold: the card is still as it was reviewed. The checks were made
        against the card as read before the reservation, and another write to it may have
        landed in between (a raise while it was frozen, an unfreeze); writes to one card go
        one at a time, so a read now sees every earlier one."""
        current = await self.issuer.get_card(reviewed.id)
        if _state(current) != _state(reviewed):
            raise _CardMoved(
                f"card {reviewed.id} changed while this call ran (another change to it landed "
                "first); it was not changed. Read it again with get_card, then repeat the call."
            )

    async def set_policy(
        self,
        request: SetPolicy,
        *,
        call: CallConsent = NOT_ASKED,
    ) -> Card:
        return await _again_if_moved(lambda: self._set_policy_once(request, call))

    async def _set_policy_once(self, request: SetPolicy, call: CallConsent) -> Card:
        verdict, card = await self.review_set_policy(request)
        daily = request.daily_limit_cents or card.daily_limit_cents
        per_auth, note = _per_auth_within(request, card, daily)
        change = PolicyChange(
            daily_limit_cents=request.daily_limit_cents,
            per_auth_max_cents=per_auth,
            mcc_allowlist=_tags(request.mcc_allowlist),
        )

        def check(others: DayTotals, _: CardRecord | None) -> None:
            self._check_policy_change(request, card, others)

        commits = guardrails.card_commits(card.status, daily, card.current_daily_spend_cents)
        hold = Hold(card_id=card.id, commits_cents=commits, active=card.status in ACTIVE_STATUSES)
        async with self.budget.hold(hold, self.issuer, check) as landing:
            await self._unchanged_since_review(card)
            await self._settle(request, verdict, call)
            landing.card = await self.issuer.set_policy(card.id, change)
            expected = self.issuer.enforced_policy_change(card, change)
            changed = await self._read_back(card.id, expected, landing)
            return changed if note is None else changed.model_copy(update={"note": note})

    async def close_card(
        self,
        request: CloseCard,
        *,
        call: CallConsent = NOT_ASKED,
    ) -> Card:
        verdict, card = await self.review_close(request)
        hold = Hold(card_id=card.id, commits_cents=0, active=False)
        async with self.budget.hold(hold, self.issuer) as landing:
            await self._settle(request, verdict, call)
            landing.card = await self.issuer.close(card.id)
            return landing.card

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
        authorization = await self.issuer.simulate(card_id, amount_cents, merchant, tag)
        await self.budget.store.spent(
            card_id, authorization.current_daily_spend_cents, self.budget.today()
        )
        return authorization

    async def get_limits(self) -> Limits:
        """The day's budget from the store (no listing of cards: the cost does not grow with
        them; the active cards' spend read afresh), the ceilings, pending approvals, and what
        the issuer reports of itself."""
        await self.budget.reconcile(self.issuer)
        await self.budget.refresh_spend(self.issuer)
        day = await self.budget.totals()
        reported = IssuerLimits()
        if Capability.USAGE in self.issuer.capabilities:
            reported = await self.issuer.limits()
        return Limits(
            issuer=self.issuer.name,
            mode=self.issuer.mode,
            day=day.day,
            active_cards=day.active_cards,
            max_active_cards=self.policy.max_active_cards,
            committed_daily_cents=day.committed_cents,
            # Floored: after the operator lowers the budget, "negative room" means just "none".
            remaining_daily_cents=max(self.policy.max_total_daily_cents - day.committed_cents, 0),
            max_total_daily_cents=self.policy.max_total_daily_cents,
            max_card_daily_limit_cents=self.policy.max_card_daily_limit_cents,
            max_per_auth_cents=self.policy.max_per_auth_cents,
            require_approval_above_cents=self.policy.require_approval_above_cents,
            spent_today_cents=day.spent_cents,
            pending_approvals=[f"{a.id}: {a.summary}" for a in await self.approvals.pending()],
            issuer_limits=reported,
        )


def _kept_as(idempotency_key: str) -> str:
    """How an agent's idempotency key is stored: its SHA-256, never the text, which is the
    agent's to choose and may hold anything (a card number included)."""
    return "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def _digest(request: CreateCard) -> str:
    """What an idempotency key is remembered with: the digest an approval binds (DESIGN §5)."""
    return approvals.digest(request.tool, request.arguments())


def _retry_of(digest: str, card_id: str | None, request: CreateCard) -> str:
    """The card a create_card with the same idempotency key made (``card_id``), for ``request``
    repeating it. A key reused for another request is ``idempotency_conflict``; one whose card
    is still being made is ``issuer_unavailable`` — retry later with the same key — as the
    issuer's own "still in flight" is (issuers/http.py): idempotency_conflict says to use a
    new key, which here would ask for a second card."""
    if digest != _digest(request):
        raise IdempotencyConflict(
            "idempotency_key was already used for a create_card with other arguments; "
            "use a new key for a new card, or repeat the first request exactly."
        )
    if card_id is None:
        raise IssuerUnavailable(
            "a create_card with this idempotency_key is still in progress (or its outcome "
            "is still being checked with the issuer); repeat this exact call, with the same "
            "idempotency_key, in a few seconds to get its card, or call list_cards (a new key "
            "would ask for a second card)."
        )
    return card_id


# How often a write to a card is reviewed again when the card changed under it.
_ATTEMPTS = 3


class _CardMoved(AgentCardError):
    """The card changed between its review and its reservation. An AgentCardError (the issuer
    did nothing, so the reservation is released) that the caller retries; after the last
    attempt the agent is told to try again."""

    code = "issuer_unavailable"


async def _again_if_moved(attempt: Callable[[], Awaitable[Card]]) -> Card:
    for _ in range(_ATTEMPTS - 1):
        try:
            return await attempt()
        except _CardMoved:
            continue
    return await attempt()


def _state(card: Card) -> tuple[str, int, int, list[str]]:
    return card.status, card.daily_limit_cents, card.per_auth_max_cents, sorted(card.mcc_allowlist)


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


def _tags(mcc_allowlist: list[str] | None) -> list[str] | None:
    return None if mcc_allowlist is None else categories.normalize(mcc_allowlist)


def _per_auth_within(request: SetPolicy, card: Card, daily: int) -> tuple[int | None, str | None]:
    """The per-purchase limit to set, and a note when it is not what was asked: a daily limit
    lowered under the card's per-purchase limit takes that down with it, so the card never
    shows a purchase larger than its day allows. (create_card refuses a per_auth_max_cents
    above its daily limit instead: there the agent asked for both.)"""
    if request.per_auth_max_cents is not None or card.per_auth_max_cents <= daily:
        return request.per_auth_max_cents, None
    return daily, (
        f"per_auth_max_cents lowered from {card.per_auth_max_cents} to {daily} with the daily "
        "limit: no purchase can exceed the day's limit."
    )


def _check_per_auth(per_auth_max_cents: int | None, daily_limit_cents: int) -> None:
    if per_auth_max_cents is not None and per_auth_max_cents > daily_limit_cents:
        raise InvalidParams(
            f"per_auth_max_cents ({per_auth_max_cents}) cannot exceed daily_limit_cents "
            f"({daily_limit_cents})."
        )
