"""The checks every write tool passes against the operator's policy (DESIGN §5). Pure: no I/O.

They take the policy, the card, the request and — for the ceilings that sum over cards — the
day's figures of every *other* card and reservation (``DayTotals``, supplied by the budget's
store inside the transaction that reserves), and either raise (``guardrail_exceeded``,
``category_not_allowed``, ``merchant_blocked``) or return a ``Verdict`` saying whether the human
must approve. Tightening is always allowed; loosening beyond a ceiling is refused; loosening
within the ceilings but above the approval threshold needs approval.

A card commits, for the UTC day, the larger of its daily limit and today's spend while active,
and today's spend once frozen or closed; all cards together never commit more than
``max_total_daily_cents``, so churning cards cannot spend more than the budget in a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import CategoryNotAllowed, GuardrailExceeded, MerchantBlocked
from .invisible import escape
from .merchants import blocked_by
from .models import Card
from .policy import OperatorPolicy, duration, usd
from .storage.base import ACTIVE_STATUSES, DayTotals

__all__ = [
    "ALLOWED",
    "Verdict",
    "card_commits",
    "check_close",
    "check_create",
    "check_merchant",
    "check_policy_change",
    "check_unfreeze",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """An allowed action; ``needs_approval`` when the human must confirm it, and why."""

    needs_approval: bool = False
    reasons: tuple[str, ...] = ()


ALLOWED = Verdict()


def card_commits(status: str, daily_limit_cents: int, spent_today_cents: int) -> int:
    """What one card commits for the day (see the module docstring)."""
    if status in ACTIVE_STATUSES:
        return max(daily_limit_cents, spent_today_cents)
    return spent_today_cents


def check_create(
    policy: OperatorPolicy,
    *,
    daily_limit_cents: int,
    per_auth_max_cents: int | None = None,
    mcc_allowlist: Sequence[str] = (),
    ttl_minutes: int | None = None,
    others: DayTotals,
) -> Verdict:
    """A new card: every ceiling, the day's budget with this card counted in, its categories
    and TTL. ``per_auth_max_cents`` None means the per-purchase cap is the daily limit."""
    per_auth = daily_limit_cents if per_auth_max_cents is None else per_auth_max_cents
    _within_daily_ceiling(policy, daily_limit_cents)
    _within_per_auth_ceiling(policy, per_auth, defaulted=per_auth_max_cents is None)
    _within_allowed_categories(policy, mcc_allowlist)
    if ttl_minutes is not None and ttl_minutes > policy.max_ttl_minutes:
        raise GuardrailExceeded(
            f"ttl_minutes {ttl_minutes} is above the operator's ceiling max_ttl_minutes = "
            f"{policy.max_ttl_minutes} ({duration(policy.max_ttl_minutes)}); "
            f"use {policy.max_ttl_minutes} or less."
        )
    _within_card_count(policy, others.active_cards, "create a card")
    _within_total(policy, others.committed_cents, daily_limit_cents, "a new card")
    reasons = [_above_threshold(policy, "daily limit", daily_limit_cents)]
    if per_auth_max_cents is not None:
        reasons.append(_above_threshold(policy, "per-purchase limit", per_auth_max_cents))
    return _verdict(reasons)


def check_policy_change(
    policy: OperatorPolicy,
    card: Card,
    *,
    daily_limit_cents: int | None = None,
    per_auth_max_cents: int | None = None,
    mcc_allowlist: Sequence[str] | None = None,
    others: DayTotals,
) -> Verdict:
    """A change to a card's limits. A field that does not grow is always allowed — even on a
    card already above a ceiling the operator lowered since — and a growing one is a new
    commitment: within its ceiling, within the day's budget, approved above the threshold."""
    reasons: list[str | None] = []
    if daily_limit_cents is not None and daily_limit_cents > card.daily_limit_cents:
        _within_daily_ceiling(policy, daily_limit_cents)
        if card.status in ACTIVE_STATUSES:
            commits = max(daily_limit_cents, card.current_daily_spend_cents)
            _within_total(policy, others.committed_cents, commits, f"card {card.id}")
        reasons.append(_above_threshold(policy, "daily limit", daily_limit_cents))
    if per_auth_max_cents is not None and per_auth_max_cents > card.per_auth_max_cents:
        _within_per_auth_ceiling(policy, per_auth_max_cents, defaulted=False)
        reasons.append(_above_threshold(policy, "per-purchase limit", per_auth_max_cents))
    if mcc_allowlist is not None and not _narrows(card.mcc_allowlist, mcc_allowlist):
        _within_allowed_categories(policy, mcc_allowlist)
    return _verdict(reasons)


def check_unfreeze(policy: OperatorPolicy, card: Card, others: DayTotals) -> Verdict:
    """Unfreezing as the operator set it (allow | approval | deny). A frozen card coming back
    must itself fit today's ceilings — its own limits and categories, which may be wider than
    the policy (the operator lowered a ceiling, or the issuer widened the card and the
    read-back froze it) — and the card count and the day's budget, since it commits its daily
    limit again."""
    if policy.unfreeze == "deny":
        raise GuardrailExceeded(
            f'the operator has disabled unfreezing (unfreeze = "deny"); card {card.id} stays '
            "frozen. Ask the operator, or create a new card within the limits."
        )
    if card.status == "frozen":
        _card_fits_policy(policy, card)
        _within_card_count(policy, others.active_cards, f"unfreeze card {card.id}")
        commits = max(card.daily_limit_cents, card.current_daily_spend_cents)
        _within_total(policy, others.committed_cents, commits, f"card {card.id}")
    if policy.unfreeze == "approval":
        return Verdict(True, (f"the operator approves every unfreeze (card {card.id})",))
    return ALLOWED


def check_close(policy: OperatorPolicy, card: Card) -> Verdict:
    """Closing never loosens anything, but it is irreversible, so the operator may gate it."""
    if policy.close == "deny":
        raise GuardrailExceeded(
            f'the operator has disabled closing cards (close = "deny"); card {card.id} stays '
            "open. Freeze it instead, or ask the operator."
        )
    if policy.close == "approval":
        return Verdict(True, (f"the operator approves every close (card {card.id})",))
    return ALLOWED


def check_merchant(policy: OperatorPolicy, merchant: str) -> None:
    """``merchant_blocked`` when the operator blocked this merchant, however it is spelled
    (``merchants.blocked_by``: case, look-alike letters, invisible characters, punctuation and
    processor prefixes do not matter)."""
    entry = blocked_by(merchant, policy.blocked_merchants)
    if entry is not None:
        raise MerchantBlocked(
            f'merchant "{escape(merchant.strip()[:80])}" is blocked by the operator: it reads as '
            f'"{escape(entry[:80])}" (blocked_merchants); no card may be used there. Choose '
            "another merchant."
        )


# --- the individual rules ---------------------------------------------------------------------


def _card_fits_policy(policy: OperatorPolicy, card: Card) -> None:
    fix = f"tighten it first with set_policy(card_id={card.id!r}, ...), then unfreeze it."
    if card.daily_limit_cents > policy.max_card_daily_limit_cents:
        raise GuardrailExceeded(
            f"card {card.id} has a daily limit of {usd(card.daily_limit_cents)}, above the "
            f"operator's max_card_daily_limit_cents = {policy.max_card_daily_limit_cents} "
            f"({usd(policy.max_card_daily_limit_cents)}); it stays frozen. Lower its "
            f"daily_limit_cents: {fix}"
        )
    if card.per_auth_max_cents > policy.max_per_auth_cents:
        raise GuardrailExceeded(
            f"card {card.id} allows {usd(card.per_auth_max_cents)} per purchase, above the "
            f"operator's max_per_auth_cents = {policy.max_per_auth_cents} "
            f"({usd(policy.max_per_auth_cents)}); it stays frozen. Lower its "
            f"per_auth_max_cents: {fix}"
        )
    allowed = policy.allowed_categories
    outside = [tag for tag in card.mcc_allowlist if tag not in allowed]
    if allowed and (not card.mcc_allowlist or outside):
        shown = ", ".join(outside) if outside else "any category"
        raise GuardrailExceeded(
            f"card {card.id} allows {shown}, outside the operator's allowed_categories "
            f"({', '.join(allowed)}); it stays frozen. Narrow its mcc_allowlist: {fix}"
        )


def _within_daily_ceiling(policy: OperatorPolicy, daily: int) -> None:
    ceiling = policy.max_card_daily_limit_cents
    if daily > ceiling:
        raise GuardrailExceeded(
            f"daily_limit_cents {daily} ({usd(daily)}) is above the operator's per-card ceiling "
            f"max_card_daily_limit_cents = {ceiling} ({usd(ceiling)}); use {ceiling} or less."
        )


def _within_per_auth_ceiling(policy: OperatorPolicy, per_auth: int, *, defaulted: bool) -> None:
    ceiling = policy.max_per_auth_cents
    if per_auth <= ceiling:
        return
    what = (
        f"per_auth_max_cents defaults to the daily limit, {per_auth} ({usd(per_auth)}), which"
        if defaulted
        else f"per_auth_max_cents {per_auth} ({usd(per_auth)})"
    )
    raise GuardrailExceeded(
        f"{what} is above the operator's per-purchase ceiling max_per_auth_cents = {ceiling} "
        f"({usd(ceiling)}); pass per_auth_max_cents of {ceiling} or less."
    )


def _within_card_count(policy: OperatorPolicy, others: int, action: str) -> None:
    if others + 1 > policy.max_active_cards:
        raise GuardrailExceeded(
            f"cannot {action}: {others} card(s) already active and the operator allows "
            f"max_active_cards = {policy.max_active_cards}; close or freeze a card first."
        )


def _within_total(policy: OperatorPolicy, others: int, commits: int, subject: str) -> None:
    ceiling = policy.max_total_daily_cents
    if others + commits > ceiling:
        room = max(ceiling - others, 0)
        raise GuardrailExceeded(
            f"{usd(commits)} a day for {subject} would bring today's commitment to "
            f"{usd(others + commits)}, above the operator's day's budget max_total_daily_cents "
            f"= {ceiling} ({usd(ceiling)}); the other cards commit {usd(others)} today (active "
            f"cards their daily limits, frozen and closed ones what they spent), so at most "
            f"{room} ({usd(room)}) fits. Use a lower daily limit, or lower, freeze or close "
            "another card first; spending already made today counts until 00:00 UTC."
        )


def _within_allowed_categories(policy: OperatorPolicy, wanted: Sequence[str]) -> None:
    allowed = policy.allowed_categories
    if not allowed:
        return
    shown = ", ".join(allowed)
    if not wanted:
        raise CategoryNotAllowed(
            "an empty mcc_allowlist (any merchant) is not allowed: the operator limits every "
            f"card to these categories (allowed_categories): {shown}. Pass some of them."
        )
    outside = [tag for tag in wanted if tag not in allowed]
    if outside:
        raise CategoryNotAllowed(
            f"{', '.join(repr(tag) for tag in outside)} not allowed by the operator; "
            f"mcc_allowlist may only name these categories (allowed_categories): {shown}."
        )


def _narrows(current: Sequence[str], new: Sequence[str]) -> bool:
    """Whether ``new`` allows no merchant that ``current`` does not. An empty list means any
    merchant: the widest, so every non-empty list narrows it and nothing but [] equals it."""
    if not new:
        return not current
    return not current or set(new) <= set(current)


def _above_threshold(policy: OperatorPolicy, what: str, cents: int) -> str | None:
    threshold = policy.require_approval_above_cents
    if cents > threshold:
        return f"{what} {usd(cents)} is above the approval threshold {usd(threshold)}"
    return None


def _verdict(reasons: Iterable[str | None]) -> Verdict:
    found = tuple(reason for reason in reasons if reason is not None)
    return Verdict(bool(found), found)
