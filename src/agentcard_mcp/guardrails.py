"""The operator's limits (DESIGN §5): the policy file, and the checks every write tool passes.

The policy is TOML (``AGENTCARD_POLICY_FILE``, else ``<home>/policy.toml``, else conservative
built-in defaults). The agent has no tool that changes it. A bad file stops the server at start
with a message naming the file and the key; ``agentcard-mcp policy check FILE`` says the same.

The checks are pure: they take the policy, the card(s) and the request, and either raise
(``guardrail_exceeded``, ``category_not_allowed``, ``merchant_blocked``) or return a
``Verdict`` saying whether the human must approve. Tightening is always allowed; loosening
beyond a ceiling is refused; loosening within the ceilings but above the approval threshold
needs approval.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from . import categories
from .errors import CategoryNotAllowed, GuardrailExceeded, InvalidParams, MerchantBlocked
from .models import Card
from .redaction import redact_text
from .sandbox.authorize import normalize_merchant

__all__ = [
    "ALLOWED",
    "BUILTIN_SOURCE",
    "LimitsView",
    "LoadedPolicy",
    "OperatorPolicy",
    "PolicyError",
    "Verdict",
    "check_close",
    "check_create",
    "check_merchant",
    "check_policy_change",
    "check_unfreeze",
    "committed_cards",
    "limits_view",
    "load_policy",
    "policy_command",
    "read_policy",
    "render",
    "usd",
]

BUILTIN_SOURCE = "built-in defaults"
POLICY_FILENAME = "policy.toml"

# Cards whose daily limit is (or will be, without another tool call) spendable. A pending card
# becomes active on its own at the issuer, so it must already count against the totals.
_COMMITTING_STATUSES = frozenset({"active", "pending"})

NonNegative = Annotated[int, Field(ge=0)]
Gate = Literal["allow", "approval", "deny"]


class PolicyError(InvalidParams):
    """The policy file cannot be used; the message names the file and the key."""


class OperatorPolicy(BaseModel):
    """The operator's ceilings. Strict: TOML ``100.0``, ``"100"`` or ``true`` is not a count."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    max_card_daily_limit_cents: NonNegative = 10_000
    max_per_auth_cents: NonNegative = 5_000
    max_total_daily_cents: NonNegative = 20_000
    max_active_cards: NonNegative = 5
    allowed_categories: tuple[str, ...] = ()
    blocked_merchants: tuple[str, ...] = ()
    max_ttl_minutes: NonNegative = 10_080
    require_approval_above_cents: NonNegative = 2_500
    unfreeze: Gate = "approval"
    close: Gate = "approval"

    @field_validator("allowed_categories", "blocked_merchants", mode="before")
    @classmethod
    def _array_to_tuple(cls, value: Any) -> Any:
        # TOML arrays arrive as lists; tuples keep a frozen policy really immutable.
        return tuple(value) if isinstance(value, list) else value

    @field_validator("allowed_categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tags: list[str] = []
        for item in value:
            try:
                tag = categories.normalize([item])[0]
            except InvalidParams:
                raise PydanticCustomError(
                    "unknown_category",
                    "unknown category {name}; use tags from: {tags} (or a 4-digit MCC code)",
                    {"name": repr(item[:40]), "tags": ", ".join(categories.TAGS)},
                ) from None
            if tag not in tags:
                tags.append(tag)
        return tuple(tags)

    @field_validator("blocked_merchants")
    @classmethod
    def _no_blank_merchants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A blank entry would block nothing real: it is a typo, not an intention.
        if any(not name.strip() for name in value):
            raise PydanticCustomError("blank_merchant", "entries must not be blank")
        return tuple(name.strip() for name in value)


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: OperatorPolicy
    source: str  # the file's path, or BUILTIN_SOURCE


@dataclass(frozen=True, slots=True)
class Verdict:
    """An allowed action; ``needs_approval`` when the human must confirm it, and why."""

    needs_approval: bool = False
    reasons: tuple[str, ...] = ()


ALLOWED = Verdict()


# --- loading ----------------------------------------------------------------------------------


def load_policy(settings_policy_file: Path | None, home: Path) -> LoadedPolicy:
    """The effective policy: the configured file (which must exist), else ``<home>/policy.toml``
    when present, else the built-in defaults."""
    if settings_policy_file is not None:
        if not settings_policy_file.exists():
            raise PolicyError(
                f"{settings_policy_file}: no such policy file; create it, or unset "
                "AGENTCARD_POLICY_FILE to use <home>/policy.toml or the built-in defaults."
            )
        return LoadedPolicy(read_policy(settings_policy_file), str(settings_policy_file))
    default = home / POLICY_FILENAME
    # exists(), not is_file(): a directory in its place is a mistake to report, not to skip.
    if default.exists():
        return LoadedPolicy(read_policy(default), str(default))
    return LoadedPolicy(OperatorPolicy(), BUILTIN_SOURCE)


def read_policy(path: Path) -> OperatorPolicy:
    """The policy in one TOML file, or ``PolicyError`` naming the file and what is wrong."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file.") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text; a policy file is TOML.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}.") from None  # names line and column
    try:
        return OperatorPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_explain(exc)}") from None


def _explain(exc: ValidationError) -> str:
    """Every problem once, in the operator's terms; the known keys when a key is unknown and
    not a near miss of one (a typo gets "did you mean")."""
    problems: list[str] = []
    lost = False
    for error in exc.errors(include_url=False):
        problem = _describe(error)
        if error["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(error["loc"][0]), _KEYS, n=1)
            problem += f" (did you mean {near[0]!r}?)" if near else ""
            lost = lost or not near
        if problem not in problems:
            problems.append(problem)
    if lost:
        problems.append(f"known keys: {', '.join(_KEYS)}")
    return "; ".join(problems)


def _describe(error: ErrorDetails) -> str:
    """One validation error: the key, then what it must be."""
    key = str(error["loc"][0]) if error["loc"] else "policy"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key!r}"
    if kind in ("unknown_category", "blank_merchant"):
        return f"{key}: {error['msg']}"
    if key in ("allowed_categories", "blocked_merchants"):
        return f"{key}: must be an array of strings"
    if key in ("unfreeze", "close"):
        return f'{key}: must be one of "allow", "approval", "deny"'
    return f"{key}: must be a non-negative integer"


_KEYS = list(OperatorPolicy.model_fields)


# --- showing ----------------------------------------------------------------------------------


def usd(cents: int) -> str:
    """``$1,234.56`` for 123456, exactly (no float rounding on large amounts)."""
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}.{rest:02d}"


def render(policy: OperatorPolicy, source: str) -> str:
    """The policy as the TOML file that would produce it, with amounts in dollars as comments."""
    p = policy
    rows: list[tuple[str, str, str]] = [
        ("max_card_daily_limit_cents", str(p.max_card_daily_limit_cents),
         f"{usd(p.max_card_daily_limit_cents)}: highest daily limit of one card"),
        ("max_per_auth_cents", str(p.max_per_auth_cents),
         f"{usd(p.max_per_auth_cents)}: largest single purchase a card may allow"),
        ("max_total_daily_cents", str(p.max_total_daily_cents),
         f"{usd(p.max_total_daily_cents)}: daily limits of all active cards together"),
        ("max_active_cards", str(p.max_active_cards), "cards active at the same time"),
        ("allowed_categories", _toml_array(p.allowed_categories),
         "every card limited to these" if p.allowed_categories else "empty: any category"),
        ("blocked_merchants", _toml_array(p.blocked_merchants),
         "refused on every card" if p.blocked_merchants else "none"),
        ("max_ttl_minutes", str(p.max_ttl_minutes),
         f"{_duration(p.max_ttl_minutes)}: longest card lifetime"),
        ("require_approval_above_cents", str(p.require_approval_above_cents),
         f"{usd(p.require_approval_above_cents)}: a limit above this asks the operator"),
        ("unfreeze", _toml_string(p.unfreeze), "allow | approval | deny"),
        ("close", _toml_string(p.close), "allow | approval | deny"),
    ]  # fmt: skip
    width = max(len(f"{key} = {value}") for key, value, _ in rows)
    lines = [f"# agentcard-mcp policy from {source}"]
    lines += [f"{f'{key} = {value}':<{width}}  # {note}" for key, value, note in rows]
    return "\n".join(lines) + "\n"


def _duration(minutes: int) -> str:
    for size, unit in ((1440, "day"), (60, "hour")):
        if minutes and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _toml_string(text: str) -> str:
    # TOML basic string: escape the quote, the backslash and control characters (tab aside).
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif (ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_array(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


def policy_command(
    action: str,
    file: Path | None,
    home: Path,
    settings_policy_file: Path | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """``policy check FILE`` and ``policy show [FILE]``: what the server would enforce, or the
    error it would stop with. Exit 0, or 2 on a bad file."""
    try:
        if action == "check":
            if file is None:
                raise PolicyError("policy check needs a FILE to check.")
            out.write(f"ok: {file}\n" + render(read_policy(file), str(file)))
            return 0
        if action == "show":
            # A FILE given here stands in for AGENTCARD_POLICY_FILE, as it would for the server.
            loaded = load_policy(file if file is not None else settings_policy_file, home)
            out.write(render(loaded.policy, loaded.source))
            return 0
        raise InvalidParams(f"unknown policy action {action!r}; use check or show.")
    except InvalidParams as exc:
        err.write(f"agentcard-mcp policy: {redact_text(str(exc))}\n")  # it may quote the file
        return 2


# --- enforcement ------------------------------------------------------------------------------


def committed_cards(cards: Iterable[Card]) -> list[Card]:
    """The cards that count against the totals: active ones (and pending, which become active)."""
    return [card for card in cards if card.status in _COMMITTING_STATUSES]


def check_create(
    policy: OperatorPolicy,
    *,
    daily_limit_cents: int,
    per_auth_max_cents: int | None = None,
    mcc_allowlist: Sequence[str] = (),
    ttl_minutes: int | None = None,
    active_cards: Sequence[Card],
) -> Verdict:
    """A new card: every ceiling, the totals with this card counted in, its categories and TTL.
    ``per_auth_max_cents`` None means the card's per-purchase cap is its daily limit."""
    per_auth = daily_limit_cents if per_auth_max_cents is None else per_auth_max_cents
    _within_daily_ceiling(policy, daily_limit_cents)
    _within_per_auth_ceiling(policy, per_auth, defaulted=per_auth_max_cents is None)
    _within_allowed_categories(policy, mcc_allowlist)
    if ttl_minutes is not None and ttl_minutes > policy.max_ttl_minutes:
        raise GuardrailExceeded(
            f"ttl_minutes {ttl_minutes} is above the operator's ceiling max_ttl_minutes = "
            f"{policy.max_ttl_minutes} ({_duration(policy.max_ttl_minutes)}); "
            f"use {policy.max_ttl_minutes} or less."
        )
    committed = committed_cards(active_cards)
    _within_card_count(policy, len(committed), "create a card")
    _within_total(policy, _sum_daily(committed), daily_limit_cents, "a new card")
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
    active_cards: Sequence[Card],
) -> Verdict:
    """A change to a card's limits. A field that does not grow is always allowed — even on a
    card already above a ceiling the operator lowered since — and a growing one is a new
    commitment: within its ceiling, within the total, and approved above the threshold."""
    reasons: list[str | None] = []
    if daily_limit_cents is not None and daily_limit_cents > card.daily_limit_cents:
        _within_daily_ceiling(policy, daily_limit_cents)
        if card.status in _COMMITTING_STATUSES:
            others = [c for c in committed_cards(active_cards) if c.id != card.id]
            _within_total(policy, _sum_daily(others), daily_limit_cents, f"card {card.id}")
        reasons.append(_above_threshold(policy, "daily limit", daily_limit_cents))
    if per_auth_max_cents is not None and per_auth_max_cents > card.per_auth_max_cents:
        _within_per_auth_ceiling(policy, per_auth_max_cents, defaulted=False)
        reasons.append(_above_threshold(policy, "per-purchase limit", per_auth_max_cents))
    if mcc_allowlist is not None and not _narrows(card.mcc_allowlist, mcc_allowlist):
        _within_allowed_categories(policy, mcc_allowlist)
    return _verdict(reasons)


def check_unfreeze(policy: OperatorPolicy, card: Card, active_cards: Sequence[Card]) -> Verdict:
    """Unfreezing as the operator set it (allow | approval | deny); a frozen card coming back
    must fit the card count and the total, since it commits its daily limit again."""
    if policy.unfreeze == "deny":
        raise GuardrailExceeded(
            f'the operator has disabled unfreezing (unfreeze = "deny"); card {card.id} stays '
            "frozen. Ask the operator, or create a new card within the limits."
        )
    if card.status == "frozen":
        others = [c for c in committed_cards(active_cards) if c.id != card.id]
        _within_card_count(policy, len(others), f"unfreeze card {card.id}")
        _within_total(policy, _sum_daily(others), card.daily_limit_cents, f"card {card.id}")
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
    """``merchant_blocked`` when the operator blocked this merchant (case and spacing ignored)."""
    wanted = _merchant_key(merchant)
    if any(_merchant_key(blocked) == wanted for blocked in policy.blocked_merchants):
        raise MerchantBlocked(
            f"merchant {merchant.strip()[:80]!r} is blocked by the operator (blocked_merchants); "
            "no card may be used there. Choose another merchant."
        )


class LimitsView(TypedDict):
    max_card_daily_limit_cents: int
    max_per_auth_cents: int
    max_total_daily_cents: int
    committed_daily_cents: int
    remaining_daily_cents: int
    active_cards: int
    max_active_cards: int
    max_ttl_minutes: int
    require_approval_above_cents: int
    allowed_categories: list[str]
    blocked_merchants: list[str]


def limits_view(policy: OperatorPolicy, active_cards: Sequence[Card]) -> LimitsView:
    """The ceilings and how much room is left under them, for ``get_limits``."""
    committed = committed_cards(active_cards)
    total = _sum_daily(committed)
    return LimitsView(
        max_card_daily_limit_cents=policy.max_card_daily_limit_cents,
        max_per_auth_cents=policy.max_per_auth_cents,
        max_total_daily_cents=policy.max_total_daily_cents,
        committed_daily_cents=total,
        # Floored: after the operator lowers the total, "negative room" means just "none".
        remaining_daily_cents=max(policy.max_total_daily_cents - total, 0),
        active_cards=len(committed),
        max_active_cards=policy.max_active_cards,
        max_ttl_minutes=policy.max_ttl_minutes,
        require_approval_above_cents=policy.require_approval_above_cents,
        allowed_categories=list(policy.allowed_categories),
        blocked_merchants=list(policy.blocked_merchants),
    )


# --- the individual rules ---------------------------------------------------------------------


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


def _within_total(policy: OperatorPolicy, others: int, daily: int, subject: str) -> None:
    ceiling = policy.max_total_daily_cents
    if others + daily > ceiling:
        room = max(ceiling - others, 0)
        raise GuardrailExceeded(
            f"a daily limit of {daily} ({usd(daily)}) for {subject} would bring the active "
            f"cards' daily limits to {usd(others + daily)}, above the operator's ceiling "
            f"max_total_daily_cents = {ceiling} ({usd(ceiling)}); other active cards commit "
            f"{usd(others)}, so at most {room} ({usd(room)}) fits. Use a lower daily limit, "
            "or lower, freeze or close another card first."
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


def _sum_daily(cards: Iterable[Card]) -> int:
    return sum(card.daily_limit_cents for card in cards)


def _merchant_key(name: str) -> str:
    return normalize_merchant(name)
