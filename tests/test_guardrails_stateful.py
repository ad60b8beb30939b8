"""The operator's limits hold under any sequence of calls (DESIGN §5, §7).

A hypothesis state machine drives the real server (embedded sandbox, in process, through the
SDK's ``Client``) with random create_card / set_policy / freeze_card / unfreeze_card /
close_card calls — valid and invalid amounts and categories, real, closed and bogus card ids,
forged and replayed approval ids — while the human answers each approval form at random
(accept, accept-but-say-no, decline, cancel). The policy has small ceilings so they are hit
often; the unfreeze/close gates and the connection mode are drawn per run.

After every step, the cards the issuer reports must respect the policy: active cards' daily
limits sum to at most ``max_total_daily_cents``, at most ``max_active_cards`` are active, and
every card is within the per-card ceilings and limited to a non-empty subset of
``allowed_categories`` (no card ever starts outside them, so tightening cannot explain one that
is). ``get_limits`` must report the same totals.

Each call is also checked against a small oracle written from DESIGN §5: a refused call is a
tool error whose text starts with a stable code from §7 (one of those that apply), asks the
human nothing and changes nothing at the issuer; a call that needs approval asks exactly once
and succeeds only when the human approves (a declined one changes nothing), and never goes
ahead on a forged or replayed approval id; every other call succeeds with exactly the effect
asked for and touches no other card.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, ErrorData, TextContent

from agentcard_mcp.approvals import Approval
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals

# --- the operator's policy: small ceilings, so that every one of them is hit often ------------

MAX_CARD_DAILY = 5_000
MAX_PER_AUTH = 3_000
MAX_TOTAL_DAILY = 9_000
MAX_ACTIVE = 3
ALLOWED = frozenset({"travel", "saas"})
APPROVAL_ABOVE = 2_000

Gate = Literal["allow", "approval", "deny"]


def policy_toml(unfreeze: Gate, close: Gate) -> str:
    return (
        f"max_card_daily_limit_cents = {MAX_CARD_DAILY}\n"
        f"max_per_auth_cents = {MAX_PER_AUTH}\n"
        f"max_total_daily_cents = {MAX_TOTAL_DAILY}\n"
        f"max_active_cards = {MAX_ACTIVE}\n"
        'allowed_categories = ["travel", "saas"]\n'
        f"require_approval_above_cents = {APPROVAL_ABOVE}\n"
        f'unfreeze = "{unfreeze}"\n'
        f'close = "{close}"\n'
    )


# --- the stable error codes (DESIGN §7) -------------------------------------------------------

INVALID = "invalid_params"
GUARDRAIL = "guardrail_exceeded"
CATEGORY = "category_not_allowed"
DENIED = "approval_denied"
NOT_FOUND = "not_found"
STABLE_CODES = frozenset(
    {
        INVALID, GUARDRAIL, CATEGORY, "merchant_blocked", "approval_required", DENIED, NOT_FOUND,
        "not_supported", "test_mode_only", "idempotency_conflict", "issuer_auth_failed",
        "issuer_rate_limited", "issuer_unavailable", "issuer_rejected",
    }
)  # fmt: skip
# What an approval id that is not a live approval of this exact call may be refused with.
BAD_APPROVAL = frozenset({DENIED, NOT_FOUND, "approval_required"})

# --- inputs -----------------------------------------------------------------------------------

MAX_CENTS = 1_000_000_000_00


def valid_cents(value: Any) -> bool:
    """Whether the tools' ``Cents`` type accepts ``value`` (a strict positive integer)."""
    return type(value) is int and 0 < value <= MAX_CENTS


_GOOD_CENTS = st.one_of(
    st.sampled_from([1, 1_999, 2_000, 2_001, 2_999, 3_000, 3_001, 4_500, 5_000, 5_001, 9_001]),
    st.integers(min_value=1, max_value=6_000),
)
_BAD_CENTS = st.sampled_from([0, -1, -2_500, 1_500.0, 2_500.5, "1500", True, MAX_CENTS + 1])
# Mostly integers around the ceilings; one in ten is not a valid amount at all.
CENTS = st.integers(min_value=0, max_value=9).flatmap(
    lambda n: _BAD_CENTS if n == 9 else _GOOD_CENTS
)

# What each category name means: its tag, None for a name no category has, and "" for a
# name the tools' type refuses (blank after stripping).
CATEGORY_TAGS: dict[str, str | None] = {
    "travel": "travel",
    "saas": "saas",
    "TRAVEL": "travel",
    " saas ": "saas",
    "4511": "travel",  # an airline's MCC
    "5734": "saas",  # computer software stores
    "food": "food",  # a real category the operator does not allow
    "5812": "restaurants",
    "bogus": None,
    "9999": None,
    "": "",
    "   ": "",
}
ALLOWED_LISTS = st.lists(
    st.sampled_from(["travel", "saas", "4511", "5734"]), min_size=1, max_size=2
)
CATEGORY_LISTS = st.one_of(
    st.none(),
    ALLOWED_LISTS,
    st.lists(st.sampled_from(list(CATEGORY_TAGS)), max_size=3),
)
# Amounts a careful agent would ask for: within the per-card ceiling, around the threshold.
PLAUSIBLE_DAILY = st.one_of(
    st.sampled_from([500, 1_000, 2_000, 2_001, 2_500, 3_000, 4_000, 4_500, 4_999, 5_000]),
    st.integers(min_value=500, max_value=MAX_CARD_DAILY),
)
PLAUSIBLE_PER_AUTH = st.sampled_from([500, 1_000, 2_000, 2_001, 3_000, 3_001])

# Answers to the approval form: approve, accept the form but say no, decline, cancel.
Answer = Literal["approve", "say_no", "decline", "cancel"]
ANSWERS: st.SearchStrategy[Answer] = st.sampled_from(["approve", "say_no", "decline", "cancel"])
MOSTLY_APPROVE: st.SearchStrategy[Answer] = st.sampled_from(
    ["approve", "approve", "approve", "decline"]
)

# An approval id the agent passes: none, the newest one the human has decided (so used or
# denied: replaying it must never work), or one it made up.
REPLAY = "replay"
APPROVAL_IDS = st.sampled_from([None, None, None, None, REPLAY, "apr_forged0"])

BOGUS_IDS: dict[str, str] = {
    "card_00000000000000000000000000": NOT_FOUND,
    "not a card!": INVALID,
    "   ": INVALID,
}

# --- the oracle -------------------------------------------------------------------------------

# A card as the checks see it: status, daily limit, per-purchase limit, sorted categories.
View = tuple[str, int, int, tuple[str, ...]]


def view_of(card: dict[str, Any]) -> View:
    return (
        card["status"],
        card["daily_limit_cents"],
        card["per_auth_max_cents"],
        tuple(sorted(card["mcc_allowlist"])),
    )


@dataclass(frozen=True)
class Expect:
    """What DESIGN §5 says a call must do, given the issuer's state before it."""

    refused: frozenset[str] = frozenset()  # non-empty: a tool error with one of these codes
    approval: bool = False  # allowed, but only with the human's approval
    effect: dict[str, View] = field(default_factory=dict)  # the changed cards, when it succeeds
    creates: View | None = None  # the new card, when it succeeds
    closes: str | None = None  # the card that is gone when it succeeds


def refused(*codes: str) -> Expect:
    return Expect(refused=frozenset(codes))


def tags_of(names: list[str]) -> list[str] | None:
    """The de-duplicated tags for category names, or None when one of them is unknown."""
    tags: list[str] = []
    for name in names:
        tag = CATEGORY_TAGS[name]
        if tag is None:
            return None
        if tag not in tags:
            tags.append(tag)
    return tags


def blank_category(names: list[str] | None) -> bool:
    return names is not None and any(CATEGORY_TAGS[name] == "" for name in names)


def categories_refused(tags: list[str]) -> bool:
    return not tags or not set(tags) <= ALLOWED


def narrows(current: tuple[str, ...], new: list[str]) -> bool:
    """Whether ``new`` allows no merchant ``current`` does not ([] means any merchant)."""
    if not new:
        return not current
    return not current or set(new) <= set(current)


@dataclass(frozen=True)
class Outcome:
    tool: str
    ok: bool
    code: str | None
    text: str
    data: dict[str, Any] | None
    asked: list[str]


class GuardrailMachine(RuleBasedStateMachine):
    cards = Bundle("cards")

    def __init__(self) -> None:
        super().__init__()
        self._stack = ExitStack()
        self.home = Path(self._stack.enter_context(tempfile.TemporaryDirectory())) / "home"
        self.portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
        self.client: Client | None = None
        self.answer: Answer = "approve"
        self.asked: list[str] = []
        self.unfreeze_gate: Gate = "approval"
        self.close_gate: Gate = "approval"
        # The issuer's cards after the last step, by id (closed cards are gone from it).
        self.state: dict[str, dict[str, Any]] = {}

    def teardown(self) -> None:
        self._stack.close()

    # --- plumbing -----------------------------------------------------------------------------

    async def _elicit(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        self.asked.append(params.message)
        if self.answer == "approve":
            return ElicitResult(action="accept", content={"approve": True})
        if self.answer == "say_no":
            return ElicitResult(action="accept", content={"approve": False})
        return ElicitResult(action=self.answer)

    def _call(self, tool: str, arguments: dict[str, Any], answer: Answer = "approve") -> Outcome:
        assert self.client is not None
        self.answer = answer
        self.asked = []
        result: CallToolResult = self.portal.call(self.client.call_tool, tool, arguments)
        assert len(result.content) == 1, result
        content = result.content[0]
        assert isinstance(content, TextContent), content
        text = content.text
        if not result.is_error:
            assert result.structured_content is not None, f"{tool} returned no structured content"
            return Outcome(tool, True, None, text, result.structured_content, list(self.asked))
        code, sep, _ = text.partition(": ")
        unstable = f"{tool}({arguments}) failed without a stable code (DESIGN §7): {text!r}"
        assert sep, unstable
        assert code in STABLE_CODES, unstable
        return Outcome(tool, False, code, text, None, list(self.asked))

    def _read_state(self) -> dict[str, dict[str, Any]]:
        outcome = self._call("list_cards", {})
        assert outcome.ok, outcome.text
        assert outcome.data is not None
        cards: list[dict[str, Any]] = outcome.data["cards"]
        return {card["id"]: card for card in cards}

    def _approval_id(self, choice: str | None) -> str | None:
        if choice != REPLAY:
            return choice
        decided = self.portal.call(self._latest_approvals)
        return decided[0].id if decided else "apr_nothingdecided"

    async def _latest_approvals(self) -> list[Approval]:
        async with SqliteApprovals(self.home) as store:
            return await store.recent(limit=1)

    def _active(self) -> list[dict[str, Any]]:
        return [card for card in self.state.values() if card["status"] == "active"]

    def _check(
        self,
        tool: str,
        arguments: dict[str, Any],
        expect: Expect,
        answer: Answer = "approve",
    ) -> Outcome:
        """Makes the call and holds it, and the issuer's state after it, to ``expect``."""
        note(f"{tool}({arguments}) answer={answer} expect={expect}")
        before = {card_id: view_of(card) for card_id, card in self.state.items()}
        outcome = self._call(tool, arguments, answer)
        self.state = self._read_state()
        after = {card_id: view_of(card) for card_id, card in self.state.items()}
        event(f"{tool}: {outcome.code or 'ok'}")
        shown = f"{tool}({arguments}) with answer {answer!r} -> {outcome.text[:300]!r}"

        goes_ahead = True
        if expect.refused:
            wanted = f"expected a refusal with one of {sorted(expect.refused)}: {shown}"
            assert not outcome.ok, wanted
            assert outcome.code in expect.refused, wanted
            assert not outcome.asked, f"a refused call asked the human: {shown}"
            goes_ahead = False
        elif expect.approval and arguments.get("approval_id") is not None:
            # Only the human approves: a made-up or already decided id never lets it through.
            assert not outcome.ok, f"went ahead on an approval id that approves nothing: {shown}"
            assert outcome.code in BAD_APPROVAL, shown
            assert not outcome.asked, shown
            goes_ahead = False
        elif expect.approval:
            assert len(outcome.asked) == 1, f"asked the human {len(outcome.asked)} times: {shown}"
            assert tool in outcome.asked[0], f"the form does not name the action: {outcome.asked}"
            if answer != "approve":
                assert not outcome.ok, f"went ahead though the human said no: {shown}"
                assert outcome.code == DENIED, shown
                goes_ahead = False
        else:
            assert not outcome.asked, (
                f"asked the human about a call that needs no approval: {shown}"
            )

        if not goes_ahead:
            assert after == before, f"a refused call changed the cards: {shown}\n{before}\n{after}"
            return outcome
        assert outcome.ok, f"expected success: {shown}"
        assert outcome.data is not None
        predicted = dict(before)
        predicted.update(expect.effect)
        if expect.closes is not None:
            predicted.pop(expect.closes)
        if expect.creates is not None:
            new_id = outcome.data["id"]
            assert new_id not in before, shown
            predicted[new_id] = expect.creates
        assert after == predicted, f"unexpected effect: {shown}\n{before}\n{predicted}\n{after}"
        return outcome

    # --- setup --------------------------------------------------------------------------------

    @initialize(
        unfreeze=st.sampled_from(["approval", "allow", "deny"]),
        close=st.sampled_from(["approval", "allow", "deny"]),
        mode=st.sampled_from(["auto", "legacy"]),
    )
    def start(self, unfreeze: Gate, close: Gate, mode: str) -> None:
        self.unfreeze_gate, self.close_gate = unfreeze, close
        self.home.mkdir()
        policy_file = self.home / "policy.toml"
        policy_file.write_text(policy_toml(unfreeze, close), encoding="utf-8")
        # Every setting given: nothing from AGENTCARD_* or a .env file can leak in.
        settings_ = Settings(
            issuer="sandbox",
            home=self.home,
            policy_file=policy_file,
            api_key=None,
            base_url=None,
            agent_id=None,
            live=False,
        )
        client = Client(create_server(settings_), mode=mode, elicitation_callback=self._elicit)
        self.client = self._stack.enter_context(self.portal.wrap_async_context_manager(client))
        self.state = self._read_state()
        assert self.state == {}

    # --- oracle for each tool -----------------------------------------------------------------

    def expect_create(self, daily: Any, per_auth: Any | None, names: list[str] | None) -> Expect:
        tags = tags_of(names or [])
        if (
            not valid_cents(daily)
            or (per_auth is not None and not valid_cents(per_auth))
            or blank_category(names)
            or tags is None
            or (per_auth is not None and per_auth > daily)
        ):
            return refused(INVALID)
        effective_per_auth = daily if per_auth is None else per_auth
        active = self._active()
        codes = set()
        if daily > MAX_CARD_DAILY or effective_per_auth > MAX_PER_AUTH:
            codes.add(GUARDRAIL)
        if categories_refused(tags):
            codes.add(CATEGORY)
        if len(active) + 1 > MAX_ACTIVE:
            codes.add(GUARDRAIL)
        if sum(card["daily_limit_cents"] for card in active) + daily > MAX_TOTAL_DAILY:
            codes.add(GUARDRAIL)
        if codes:
            return refused(*codes)
        card: View = ("active", daily, effective_per_auth, tuple(sorted(tags)))
        return Expect(approval=daily > APPROVAL_ABOVE, creates=card)

    def expect_set_policy(
        self, card_id: str, daily: Any | None, per_auth: Any | None, names: list[str] | None
    ) -> Expect:
        tags = None if names is None else tags_of(names)
        if (
            (daily is not None and not valid_cents(daily))
            or (per_auth is not None and not valid_cents(per_auth))
            or blank_category(names)
            or (daily is None and per_auth is None and names is None)
            or (names is not None and tags is None)
        ):
            return refused(INVALID)
        card = self.state.get(card_id)
        if card is None:
            return refused(NOT_FOUND)
        status, old_daily, old_per_auth, old_tags = view_of(card)
        if per_auth is not None and per_auth > (daily or old_daily):
            return refused(INVALID)
        codes = set()
        approval = False
        if daily is not None and daily > old_daily:
            if daily > MAX_CARD_DAILY:
                codes.add(GUARDRAIL)
            others = sum(c["daily_limit_cents"] for c in self._active() if c["id"] != card_id)
            if status == "active" and others + daily > MAX_TOTAL_DAILY:
                codes.add(GUARDRAIL)
            approval = approval or daily > APPROVAL_ABOVE
        if per_auth is not None and per_auth > old_per_auth:
            if per_auth > MAX_PER_AUTH:
                codes.add(GUARDRAIL)
            approval = approval or per_auth > APPROVAL_ABOVE
        if tags is not None and not narrows(old_tags, tags) and categories_refused(tags):
            codes.add(CATEGORY)
        if codes:
            return refused(*codes)
        if per_auth is None and daily is not None and daily < old_per_auth:
            per_auth = daily  # a daily limit lowered under the per-purchase limit takes it down
        new: View = (
            status,
            daily or old_daily,
            per_auth or old_per_auth,
            old_tags if tags is None else tuple(sorted(tags)),
        )
        return Expect(approval=approval, effect={card_id: new})

    def expect_unfreeze(self, card_id: str) -> Expect:
        card = self.state.get(card_id)
        if card is None:
            return refused(NOT_FOUND)
        if card["status"] != "frozen":
            return Expect()  # nothing to do, nothing to approve
        if self.unfreeze_gate == "deny":
            return refused(GUARDRAIL)
        active = self._active()
        if len(active) + 1 > MAX_ACTIVE or (
            sum(c["daily_limit_cents"] for c in active) + card["daily_limit_cents"]
            > MAX_TOTAL_DAILY
        ):
            return refused(GUARDRAIL)
        _, daily, per_auth, tags = view_of(card)
        return Expect(
            approval=self.unfreeze_gate == "approval",
            effect={card_id: ("active", daily, per_auth, tags)},
        )

    def expect_close(self, card_id: str) -> Expect:
        if card_id not in self.state:
            return refused(NOT_FOUND)
        if self.close_gate == "deny":
            return refused(GUARDRAIL)
        return Expect(approval=self.close_gate == "approval", closes=card_id)

    def expect_freeze(self, card_id: str) -> Expect:
        card = self.state.get(card_id)
        if card is None:
            return refused(NOT_FOUND)
        _, daily, per_auth, tags = view_of(card)
        return Expect(effect={card_id: ("frozen", daily, per_auth, tags)})

    # --- rules --------------------------------------------------------------------------------

    def _create(
        self,
        daily: Any,
        per_auth: Any | None,
        names: list[str] | None,
        answer: Answer,
        approval: str | None,
    ) -> str | MultipleResults[str]:
        arguments: dict[str, Any] = {"purpose": "stateful test", "daily_limit_cents": daily}
        if per_auth is not None:
            arguments["per_auth_max_cents"] = per_auth
        if names is not None:
            arguments["mcc_allowlist"] = names
        approval_id = self._approval_id(approval)
        if approval_id is not None:
            arguments["approval_id"] = approval_id
        outcome = self._check(
            "create_card", arguments, self.expect_create(daily, per_auth, names), answer
        )
        if outcome.ok and outcome.data is not None:
            card_id: str = outcome.data["id"]
            return card_id
        return multiple()

    @rule(
        target=cards,
        daily=CENTS,
        per_auth=st.none() | CENTS,
        names=CATEGORY_LISTS,
        answer=ANSWERS,
        approval=APPROVAL_IDS,
    )
    def create_card(
        self,
        daily: Any,
        per_auth: Any | None,
        names: list[str] | None,
        answer: Answer,
        approval: str | None,
    ) -> str | MultipleResults[str]:
        return self._create(daily, per_auth, names, answer, approval)

    @rule(
        target=cards,
        daily=PLAUSIBLE_DAILY,
        per_auth=st.one_of(st.just(MAX_PER_AUTH), st.none(), PLAUSIBLE_PER_AUTH),
        names=ALLOWED_LISTS,
        answer=MOSTLY_APPROVE,
    )
    def create_plausible_card(
        self, daily: int, per_auth: int | None, names: list[str], answer: Answer
    ) -> str | MultipleResults[str]:
        # Mostly allowed, so that the count and total ceilings fill up and get hit. A per-auth
        # cap left out defaults to the daily limit, which may be above max_per_auth_cents.
        capped = None if per_auth is None else min(per_auth, daily)
        return self._create(daily, capped, names, answer, None)

    @rule(target=cards, offset=st.sampled_from([0, 1, -1]), answer=MOSTLY_APPROVE)
    def create_at_the_edge(self, offset: int, answer: Answer) -> str | MultipleResults[str]:
        # Exactly the room left under max_total_daily_cents, a cent more, or a cent less.
        room = MAX_TOTAL_DAILY - sum(card["daily_limit_cents"] for card in self._active())
        daily = max(1, min(room + offset, MAX_CARD_DAILY))
        return self._create(daily, min(daily, MAX_PER_AUTH), ["travel"], answer, None)

    @rule(card_id=cards, offset=st.sampled_from([0, 1, -1]), answer=MOSTLY_APPROVE)
    def raise_to_the_edge(self, card_id: str, offset: int, answer: Answer) -> None:
        # A card's daily limit raised to exactly what the others leave, a cent more, or less.
        others = sum(c["daily_limit_cents"] for c in self._active() if c["id"] != card_id)
        daily = max(1, min(MAX_TOTAL_DAILY - others + offset, MAX_CARD_DAILY + offset))
        self._set_policy(card_id, daily, None, None, answer, None)

    @rule(
        card_id=cards,
        daily=st.none() | CENTS,
        per_auth=st.none() | CENTS,
        names=CATEGORY_LISTS,
        answer=ANSWERS,
        approval=APPROVAL_IDS,
    )
    def set_policy(
        self,
        card_id: str,
        daily: Any | None,
        per_auth: Any | None,
        names: list[str] | None,
        answer: Answer,
        approval: str | None,
    ) -> None:
        self._set_policy(card_id, daily, per_auth, names, answer, approval)

    def _set_policy(
        self,
        card_id: str,
        daily: Any | None,
        per_auth: Any | None,
        names: list[str] | None,
        answer: Answer,
        approval: str | None,
    ) -> None:
        arguments: dict[str, Any] = {"card_id": card_id}
        for key, value in (
            ("daily_limit_cents", daily),
            ("per_auth_max_cents", per_auth),
            ("mcc_allowlist", names),
            ("approval_id", self._approval_id(approval)),
        ):
            if value is not None:
                arguments[key] = value
        expect = self.expect_set_policy(card_id, daily, per_auth, names)
        self._check("set_policy", arguments, expect, answer)

    @rule(
        card_id=cards,
        daily=st.none() | PLAUSIBLE_DAILY,
        per_auth=st.none() | PLAUSIBLE_PER_AUTH,
        names=st.none() | ALLOWED_LISTS | st.sampled_from([[], ["food"], ["travel", "food"]]),
        answer=MOSTLY_APPROVE,
    )
    def set_plausible_policy(
        self,
        card_id: str,
        daily: int | None,
        per_auth: int | None,
        names: list[str] | None,
        answer: Answer,
    ) -> None:
        # Raising and lowering within (and just past) the ceilings, and narrowing or widening.
        if daily is None and per_auth is None and names is None:
            daily = 1_000
        self._set_policy(card_id, daily, per_auth, names, answer, None)

    @rule(card_id=cards, reason=st.none() | st.just("looks wrong"))
    def freeze_card(self, card_id: str, reason: str | None) -> None:
        arguments: dict[str, Any] = {"card_id": card_id}
        if reason is not None:
            arguments["reason"] = reason
        self._check("freeze_card", arguments, self.expect_freeze(card_id))

    @rule(card_id=cards, answer=ANSWERS, approval=APPROVAL_IDS)
    def unfreeze_card(self, card_id: str, answer: Answer, approval: str | None) -> None:
        self._unfreeze(card_id, answer, approval)

    @precondition(lambda self: any(c["status"] == "frozen" for c in self.state.values()))
    @rule(pick=st.integers(min_value=0, max_value=9), answer=MOSTLY_APPROVE, approval=APPROVAL_IDS)
    def unfreeze_a_frozen_card(self, pick: int, answer: Answer, approval: str | None) -> None:
        # Most cards drawn from the bundle are active or closed; this one is surely frozen, so
        # that the count/total re-check and the unfreeze gate are exercised often.
        frozen = sorted(id_ for id_, card in self.state.items() if card["status"] == "frozen")
        self._unfreeze(frozen[pick % len(frozen)], answer, approval)

    @precondition(lambda self: bool(self._active()))
    @rule(pick=st.integers(min_value=0, max_value=9), answer=MOSTLY_APPROVE)
    def freeze_refill_unfreeze(self, pick: int, answer: Answer) -> None:
        # The way round the totals an agent would try: freeze a card, spend its room on a new
        # one, then bring the frozen card back. The unfreeze must fit the count and total.
        active = sorted(card["id"] for card in self._active())
        card_id = active[pick % len(active)]
        self._check("freeze_card", {"card_id": card_id}, self.expect_freeze(card_id))
        self.create_at_the_edge(0, answer)
        self._unfreeze(card_id, answer, None)

    def _unfreeze(self, card_id: str, answer: Answer, approval: str | None) -> None:
        arguments: dict[str, Any] = {"card_id": card_id}
        approval_id = self._approval_id(approval)
        if approval_id is not None:
            arguments["approval_id"] = approval_id
        self._check("unfreeze_card", arguments, self.expect_unfreeze(card_id), answer)

    @rule(card_id=cards, answer=ANSWERS, approval=APPROVAL_IDS)
    def close_card(self, card_id: str, answer: Answer, approval: str | None) -> None:
        arguments: dict[str, Any] = {"card_id": card_id}
        approval_id = self._approval_id(approval)
        if approval_id is not None:
            arguments["approval_id"] = approval_id
        outcome = self._check("close_card", arguments, self.expect_close(card_id), answer)
        if outcome.ok:
            assert outcome.data is not None
            assert outcome.data["status"] == "closed", outcome.text

    @precondition(lambda self: bool(self.state))  # not crowding out the real cards
    @rule(
        tool=st.sampled_from(["freeze_card", "unfreeze_card", "close_card", "set_policy"]),
        card_id=st.sampled_from(list(BOGUS_IDS)),
        answer=ANSWERS,
    )
    def bogus_card(self, tool: str, card_id: str, answer: Answer) -> None:
        arguments: dict[str, Any] = {"card_id": card_id}
        if tool == "set_policy":
            arguments["daily_limit_cents"] = 1_000
        self._check(tool, arguments, refused(BOGUS_IDS[card_id]), answer)

    # --- the policy, as the issuer reports the cards --------------------------------------------

    @invariant()
    def within_the_operators_limits(self) -> None:
        active = self._active()
        total = sum(card["daily_limit_cents"] for card in active)
        assert total <= MAX_TOTAL_DAILY, f"active cards commit {total} > {MAX_TOTAL_DAILY}"
        assert len(active) <= MAX_ACTIVE, f"{len(active)} active cards > {MAX_ACTIVE}"
        for card in self.state.values():
            # Every card, frozen ones too: unfreezing one must not bring back a wider card.
            assert card["daily_limit_cents"] <= MAX_CARD_DAILY, card
            assert card["per_auth_max_cents"] <= MAX_PER_AUTH, card
            tags = card["mcc_allowlist"]
            assert tags, f"a card open to any category: {card}"
            assert set(tags) <= ALLOWED, f"categories outside the policy: {card}"
        limits = self._call("get_limits", {})
        assert limits.ok, limits.text
        assert limits.data is not None
        assert limits.data["committed_daily_cents"] == total, limits.data
        assert limits.data["active_cards"] == len(active), limits.data
        assert limits.data["remaining_daily_cents"] == MAX_TOTAL_DAILY - total, limits.data


def test_the_operators_limits_hold_under_any_sequence_of_calls() -> None:
    run_state_machine_as_test(
        GuardrailMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
