"""The operator's limits (DESIGN §5): the policy file — where it comes from, how a bad one is
reported (naming the file and the key), ``policy check`` / ``policy show`` — and the pure checks
every write tool passes: exactly at a ceiling is allowed, one cent over is refused, tightening
is always allowed, and loosening above the approval threshold asks the human."""

from __future__ import annotations

import io
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentcard_mcp.categories import TAGS
from agentcard_mcp.errors import (
    CategoryNotAllowed,
    GuardrailExceeded,
    InvalidParams,
    MerchantBlocked,
)
from agentcard_mcp.guardrails import (
    ALLOWED,
    Verdict,
    check_close,
    check_create,
    check_merchant,
    check_policy_change,
    check_unfreeze,
)
from agentcard_mcp.models import Card, CardStatus
from agentcard_mcp.policy import (
    BUILTIN_SOURCE,
    OperatorPolicy,
    PolicyError,
    load_policy,
    policy_command,
    read_policy,
    render,
    usd,
)
from agentcard_mcp.storage.base import DayTotals

DEFAULTS = OperatorPolicy()
STATUSES: tuple[CardStatus, ...] = ("active", "pending", "frozen", "closed")


def card(
    id: str = "card_1",
    *,
    status: CardStatus = "active",
    daily: int = 1000,
    per_auth: int | None = None,
    mcc: Sequence[str] = (),
    spent: int = 0,
) -> Card:
    return Card(
        id=id,
        agent_id="agent_1",
        issuer="sandbox",
        status=status,
        purpose=None,
        last4="4242",
        daily_limit_cents=daily,
        per_auth_max_cents=daily if per_auth is None else per_auth,
        mcc_allowlist=list(mcc),
        current_daily_spend_cents=spent,
        single_use=False,
        expires_at=None,
        created_at=None,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- where the policy comes from --------------------------------------------------------------


def test_without_a_file_the_built_in_defaults_apply(tmp_path: Path) -> None:
    loaded = load_policy(None, tmp_path / "home")
    assert loaded.source == BUILTIN_SOURCE
    assert loaded.policy == DEFAULTS
    assert DEFAULTS.model_dump() == {
        "max_card_daily_limit_cents": 10000,
        "max_per_auth_cents": 5000,
        "max_total_daily_cents": 20000,
        "max_active_cards": 5,
        "allowed_categories": (),
        "blocked_merchants": (),
        "max_ttl_minutes": 10080,
        "require_approval_above_cents": 2500,
        "unfreeze": "approval",
        "close": "approval",
        "approval_channel": "auto",
    }


def test_policy_toml_in_home_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.toml", "max_active_cards = 2\n")
    loaded = load_policy(None, tmp_path)
    assert loaded.source == str(path)
    assert loaded.policy.max_active_cards == 2
    assert loaded.policy.max_per_auth_cents == 5000  # keys left out keep their defaults


def test_a_configured_file_wins_over_home(tmp_path: Path) -> None:
    write(tmp_path / "policy.toml", "max_active_cards = 2\n")
    explicit = write(tmp_path / "ops.toml", 'close = "deny"\n')
    loaded = load_policy(explicit, tmp_path)
    assert loaded.source == str(explicit)
    assert loaded.policy.close == "deny"
    assert loaded.policy.max_active_cards == 5


def test_a_configured_file_that_does_not_exist_stops_the_server(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    write(tmp_path / "policy.toml", "")  # no silent fallback to home or the defaults
    with pytest.raises(PolicyError, match=r"nope\.toml: no such policy file") as caught:
        load_policy(missing, tmp_path)
    assert isinstance(caught.value, InvalidParams)
    assert str(caught.value).startswith("invalid_params: ")


def test_a_directory_in_place_of_home_policy_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").mkdir()
    with pytest.raises(PolicyError, match=r"policy\.toml: cannot read"):
        load_policy(None, tmp_path)


def test_categories_are_normalized_to_tags(tmp_path: Path) -> None:
    path = write(tmp_path / "p.toml", 'allowed_categories = ["4511", " Travel ", "saas"]\n')
    assert read_policy(path).allowed_categories == ("travel", "saas")


def test_the_policy_is_immutable() -> None:
    with pytest.raises(ValidationError):
        DEFAULTS.max_active_cards = 50


# --- a bad file names the file and the key ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max_foo = 1", "unknown key 'max_foo'"),
        ("max_per_auth = 1", "unknown key 'max_per_auth' (did you mean 'max_per_auth_cents'?)"),
        ("[limits]\nx = 1", "unknown key 'limits'"),
        ("max_per_auth_cents = 50.0", "max_per_auth_cents: must be a non-negative integer"),
        ('max_per_auth_cents = "5000"', "max_per_auth_cents: must be a non-negative integer"),
        ("max_active_cards = true", "max_active_cards: must be a non-negative integer"),
        ("max_total_daily_cents = -1", "max_total_daily_cents: must be a non-negative integer"),
        ("max_ttl_minutes = 1.5", "max_ttl_minutes: must be a non-negative integer"),
        (
            'allowed_categories = ["travel", "casino"]',
            "allowed_categories: unknown category 'casino'",
        ),
        ('allowed_categories = "travel"', "allowed_categories: must be an array of strings"),
        ("blocked_merchants = [1]", "blocked_merchants: must be an array of strings"),
        ('blocked_merchants = ["  "]', "blocked_merchants: entries must not be blank"),
        ('unfreeze = "maybe"', 'unfreeze: must be one of "allow", "approval", "deny"'),
        ("close = false", 'close: must be one of "allow", "approval", "deny"'),
        (
            'approval_channel = "web"',
            'approval_channel: must be one of "auto", "console", "elicit"',
        ),
        ("approval_channel = 1", 'approval_channel: must be one of "auto", "console", "elicit"'),
        ("max_active_cards = 5\nmax_per_auth_cents = ", "not valid TOML: Invalid value (at line 2"),
    ],
)
def test_a_bad_file_names_its_key(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "policy.toml", text + "\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(None, tmp_path)
    assert f"{path}: {problem}" in caught.value.message


def test_every_problem_is_reported_once_and_unknown_keys_list_the_known_ones(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "p.toml", 'max_foo = 1\nmax_active_cards = -1\nclose = "no"\n')
    with pytest.raises(PolicyError) as caught:
        read_policy(path)
    message = caught.value.message
    assert "max_active_cards: must be a non-negative integer" in message
    assert "close: must be one of" in message
    assert "unknown key 'max_foo'" in message
    assert message.count("known keys: max_card_daily_limit_cents, max_per_auth_cents") == 1


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b"close = '\xff'\n")
    with pytest.raises(PolicyError, match=r"p\.toml: not UTF-8"):
        read_policy(path)


# --- policy check / policy show ---------------------------------------------------------------


def run_policy(
    action: str, file: Path | None, home: Path, configured: Path | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = policy_command(action, file, home, configured, out, err)
    return code, out.getvalue(), err.getvalue()


def test_policy_check_ok(tmp_path: Path) -> None:
    path = write(tmp_path / "p.toml", "max_per_auth_cents = 1234\n")
    code, out, err = run_policy("check", path, tmp_path)
    assert (code, err) == (0, "")
    assert out.startswith(f"ok: {path}\n")
    assert "max_per_auth_cents = 1234" in out
    assert "$12.34" in out


def test_policy_check_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path / "p.toml", "max_per_auth_cents = 12.5\n")
    code, out, err = run_policy("check", path, tmp_path)
    assert (code, out) == (2, "")
    assert f"{path}: max_per_auth_cents: must be a non-negative integer" in err


@pytest.mark.parametrize("file", [None, Path("missing.toml")])
def test_policy_check_without_a_readable_file(tmp_path: Path, file: Path | None) -> None:
    code, out, err = run_policy("check", file, tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith("agentcard-mcp policy: invalid_params: ")


def test_policy_show_defaults(tmp_path: Path) -> None:
    code, out, err = run_policy("show", None, tmp_path)
    assert (code, err) == (0, "")
    assert out == render(DEFAULTS, BUILTIN_SOURCE)
    assert "built-in defaults" in out


def test_policy_show_the_configured_file(tmp_path: Path) -> None:
    write(tmp_path / "policy.toml", "max_active_cards = 2\n")
    configured = write(tmp_path / "ops.toml", "max_active_cards = 3\n")
    code, out, _ = run_policy("show", None, tmp_path, configured)
    assert code == 0
    assert str(configured) in out
    assert "max_active_cards = 3" in out


def test_policy_show_a_bad_home_file(tmp_path: Path) -> None:
    write(tmp_path / "policy.toml", "max_active_cards = -2\n")
    code, out, err = run_policy("show", None, tmp_path)
    assert (code, out) == (2, "")
    assert "policy.toml: max_active_cards: must be a non-negative integer" in err


def test_policy_unknown_action(tmp_path: Path) -> None:
    assert run_policy("edit", None, tmp_path)[0] == 2


def test_render_lists_every_key_with_dollars() -> None:
    text = render(DEFAULTS, BUILTIN_SOURCE)
    for key in OperatorPolicy.model_fields:
        assert f"\n{key} = " in text
    for amount in ("$100.00", "$50.00", "$200.00", "$25.00", "7 days"):
        assert amount in text


@pytest.mark.parametrize("channel", ["auto", "console", "elicit"])
def test_the_approval_channel_is_read_and_shown_with_its_choices(
    tmp_path: Path, channel: str
) -> None:
    path = write(tmp_path / "policy.toml", f'approval_channel = "{channel}"\n')
    assert read_policy(path).approval_channel == channel
    line = next(
        row for row in render(read_policy(path), str(path)).splitlines()
        if row.startswith("approval_channel")
    )  # fmt: skip
    assert line.startswith(f'approval_channel = "{channel}"')
    assert "# auto | console | elicit" in line


def test_usd() -> None:
    assert [usd(0), usd(5), usd(2500), usd(123456789)] == [
        "$0.00",
        "$0.05",
        "$25.00",
        "$1,234,567.89",
    ]


amounts = st.integers(min_value=0, max_value=10**12)
merchant_names = st.text(min_size=1, max_size=12).map(str.strip).filter(bool)
policies = st.builds(
    OperatorPolicy,
    max_card_daily_limit_cents=amounts,
    max_per_auth_cents=amounts,
    max_total_daily_cents=amounts,
    max_active_cards=st.integers(0, 100),
    allowed_categories=st.lists(st.sampled_from(TAGS), max_size=4).map(tuple),
    blocked_merchants=st.lists(merchant_names, max_size=3).map(tuple),
    max_ttl_minutes=amounts,
    require_approval_above_cents=amounts,
    unfreeze=st.sampled_from(["allow", "approval", "deny"]),
    close=st.sampled_from(["allow", "approval", "deny"]),
    approval_channel=st.sampled_from(["auto", "console", "elicit"]),
)


@given(policies)
@settings(max_examples=50, deadline=None)
def test_render_is_the_toml_of_the_policy(policy: OperatorPolicy) -> None:
    assert OperatorPolicy.model_validate(tomllib.loads(render(policy, "x"))) == policy


def committed_cards(cards: Sequence[Card]) -> list[Card]:
    return [c for c in cards if c.status in ("active", "pending")]


def day_of(cards: Sequence[Card], exclude: str | None = None) -> DayTotals:
    """The day's figures of ``cards`` but ``exclude``, by DESIGN §5's rule, written out here
    apart from the store's SQL: active and pending cards commit the larger of their limit and
    their spend, frozen and closed ones their spend."""
    counted = [c for c in cards if c.id != exclude]
    active = committed_cards(counted)
    commits = sum(max(c.daily_limit_cents, c.current_daily_spend_cents) for c in active) + sum(
        c.current_daily_spend_cents for c in counted if c not in active
    )
    spent = sum(c.current_daily_spend_cents for c in counted)
    return DayTotals("2026-05-11", commits, len(active), spent)


# --- create -----------------------------------------------------------------------------------


def create(policy: OperatorPolicy = DEFAULTS, **request: Any) -> Verdict:
    request.setdefault("daily_limit_cents", 1000)
    request["others"] = day_of(request.pop("active_cards", []))
    return check_create(policy, **request)


def test_create_within_everything_needs_nothing() -> None:
    assert create(daily_limit_cents=2500) == ALLOWED


def test_create_daily_ceiling() -> None:
    strict = OperatorPolicy(max_per_auth_cents=10000)
    create(strict, daily_limit_cents=10000)
    with pytest.raises(GuardrailExceeded) as caught:
        create(strict, daily_limit_cents=10001)
    assert caught.value.message == (
        "daily_limit_cents 10001 ($100.01) is above the operator's per-card ceiling "
        "max_card_daily_limit_cents = 10000 ($100.00); use 10000 or less."
    )


def test_create_per_auth_ceiling() -> None:
    create(daily_limit_cents=8000, per_auth_max_cents=5000)
    with pytest.raises(GuardrailExceeded, match=r"per_auth_max_cents 5001 \(\$50.01\) is above"):
        create(daily_limit_cents=8000, per_auth_max_cents=5001)


def test_create_per_auth_defaults_to_the_daily_limit() -> None:
    create(daily_limit_cents=5000)
    with pytest.raises(GuardrailExceeded, match="defaults to the daily limit") as caught:
        create(daily_limit_cents=5001)
    assert "pass per_auth_max_cents of 5000 or less" in caught.value.message


def test_create_total_of_active_cards() -> None:
    cards = [card("a", daily=9000), card("b", daily=6000), card("f", status="frozen", daily=9000)]
    # 15000 + 5000 is the ceiling exactly
    create(daily_limit_cents=5000, per_auth_max_cents=100, active_cards=cards)
    with pytest.raises(GuardrailExceeded) as caught:
        create(daily_limit_cents=5001, per_auth_max_cents=100, active_cards=cards)
    message = caught.value.message
    assert "max_total_daily_cents = 20000 ($200.00)" in message
    assert "at most 5000 ($50.00) fits" in message


def test_create_counts_pending_cards_as_committed() -> None:
    cards = [card("a", daily=15000), card("p", status="pending", daily=5000)]
    with pytest.raises(GuardrailExceeded, match="max_total_daily_cents"):
        create(daily_limit_cents=1, active_cards=cards)


def test_create_active_card_count() -> None:
    policy = OperatorPolicy(max_active_cards=2)
    closed = [card("c", status="closed"), card("f", status="frozen")]
    create(policy, active_cards=[card("a"), *closed])
    with pytest.raises(GuardrailExceeded, match="max_active_cards = 2; close or freeze"):
        create(policy, active_cards=[card("a"), card("b"), *closed])


def test_create_with_zero_cards_allowed() -> None:
    with pytest.raises(GuardrailExceeded, match="0 card"):
        create(OperatorPolicy(max_active_cards=0))


def test_create_categories() -> None:
    policy = OperatorPolicy(allowed_categories=("travel", "saas"))
    assert create(policy, mcc_allowlist=["travel"]) == ALLOWED
    create(policy, mcc_allowlist=["saas", "travel"])
    with pytest.raises(CategoryNotAllowed, match="'food' not allowed") as caught:
        create(policy, mcc_allowlist=["travel", "food"])
    assert "travel, saas" in caught.value.message
    with pytest.raises(CategoryNotAllowed, match="empty mcc_allowlist"):
        create(policy, mcc_allowlist=[])
    create(DEFAULTS, mcc_allowlist=[])  # no allowed_categories: any merchant is fine


def test_create_ttl() -> None:
    create(ttl_minutes=10080)
    create(ttl_minutes=None)
    with pytest.raises(GuardrailExceeded, match="max_ttl_minutes = 10080 \\(7 days\\)"):
        create(ttl_minutes=10081)


def test_create_approval_threshold() -> None:
    assert create(daily_limit_cents=2500) == ALLOWED
    verdict = create(daily_limit_cents=2501)
    assert verdict.needs_approval
    assert verdict.reasons == ("daily limit $25.01 is above the approval threshold $25.00",)
    both = create(daily_limit_cents=5000, per_auth_max_cents=3000)
    assert both.reasons == (
        "daily limit $50.00 is above the approval threshold $25.00",
        "per-purchase limit $30.00 is above the approval threshold $25.00",
    )


def test_a_refusal_beats_an_approval() -> None:
    with pytest.raises(GuardrailExceeded):
        create(daily_limit_cents=10001)


# --- set_policy -------------------------------------------------------------------------------


def change(current: Card, policy: OperatorPolicy = DEFAULTS, **request: Any) -> Verdict:
    request["others"] = day_of(request.pop("active_cards", [current]), exclude=current.id)
    return check_policy_change(policy, current, **request)


def test_tightening_an_over_ceiling_card_is_allowed() -> None:
    # The operator lowered the ceilings after this card was made.
    over = card(daily=50000, per_auth=40000, mcc=["travel", "food"])
    policy = OperatorPolicy(allowed_categories=("saas",), max_total_daily_cents=100)
    assert change(over, policy, daily_limit_cents=49999) == ALLOWED
    assert change(over, policy, per_auth_max_cents=39999) == ALLOWED
    assert change(over, policy, mcc_allowlist=["food"]) == ALLOWED
    assert change(over, policy, daily_limit_cents=50000, per_auth_max_cents=40000) == ALLOWED


def test_raising_daily_up_to_the_ceiling() -> None:
    current = card(daily=1000)
    verdict = change(current, daily_limit_cents=10000, per_auth_max_cents=1000)
    assert verdict.reasons == ("daily limit $100.00 is above the approval threshold $25.00",)
    with pytest.raises(GuardrailExceeded, match="max_card_daily_limit_cents = 10000"):
        change(current, daily_limit_cents=10001)


def test_raising_per_auth_up_to_the_ceiling() -> None:
    current = card(daily=9000, per_auth=1000)
    assert change(current, per_auth_max_cents=2500) == ALLOWED
    assert change(current, per_auth_max_cents=5000).needs_approval
    with pytest.raises(GuardrailExceeded, match="max_per_auth_cents = 5000"):
        change(current, per_auth_max_cents=5001)


def test_raising_daily_keeps_the_total() -> None:
    current = card("me", daily=4000)
    others = [card("a", daily=8000), card("b", daily=6000), card("f", status="frozen", daily=9999)]
    cards = [current, *others]
    change(current, daily_limit_cents=6000, active_cards=cards)  # 14000 + 6000 = 20000
    with pytest.raises(GuardrailExceeded, match="at most 6000") as caught:
        change(current, daily_limit_cents=6001, active_cards=cards)
    assert "card me" in caught.value.message


def test_raising_daily_on_a_frozen_card_leaves_the_total_to_unfreeze() -> None:
    frozen = card("me", status="frozen", daily=1000)
    full = [card("a", daily=10000), card("b", daily=10000)]
    assert change(frozen, daily_limit_cents=2000, active_cards=full) == ALLOWED


def test_categories_narrowing_and_widening() -> None:
    policy = OperatorPolicy(allowed_categories=("travel", "saas"))
    current = card(mcc=["travel", "saas"])
    assert change(current, policy, mcc_allowlist=["saas"]) == ALLOWED
    assert change(current, policy, mcc_allowlist=["saas", "travel"]) == ALLOWED
    with pytest.raises(CategoryNotAllowed, match="empty mcc_allowlist"):
        change(current, policy, mcc_allowlist=[])
    with pytest.raises(CategoryNotAllowed, match="'food'"):
        change(current, policy, mcc_allowlist=["travel", "food"])
    # Widening within allowed_categories is fine, and without a list anything goes.
    assert change(card(mcc=["saas"]), policy, mcc_allowlist=["travel", "saas"]) == ALLOWED
    assert change(current, DEFAULTS, mcc_allowlist=[]) == ALLOWED


def test_any_list_narrows_a_card_that_allowed_any_merchant() -> None:
    policy = OperatorPolicy(allowed_categories=("saas",))
    anywhere = card(mcc=[])
    assert change(anywhere, policy, mcc_allowlist=["food"]) == ALLOWED
    assert change(anywhere, policy, mcc_allowlist=[]) == ALLOWED  # unchanged


# --- unfreeze, close, merchants ---------------------------------------------------------------


def unfreeze(policy: OperatorPolicy, current: Card, cards: Sequence[Card]) -> Verdict:
    return check_unfreeze(policy, current, day_of(cards, exclude=current.id))


def test_unfreeze_gates() -> None:
    frozen = card("me", status="frozen")
    assert unfreeze(OperatorPolicy(unfreeze="allow"), frozen, []) == ALLOWED
    verdict = unfreeze(DEFAULTS, frozen, [])
    assert verdict.needs_approval
    assert verdict.reasons == ("the operator approves every unfreeze (card me)",)
    with pytest.raises(GuardrailExceeded, match='disabled unfreezing \\(unfreeze = "deny"\\)'):
        unfreeze(OperatorPolicy(unfreeze="deny"), frozen, [])


def test_unfreeze_must_fit_the_count_and_the_total() -> None:
    policy = OperatorPolicy(unfreeze="allow", max_active_cards=2)
    frozen = card("me", status="frozen", daily=5000)
    fits = [frozen, card("a", daily=15000)]
    assert unfreeze(policy, frozen, fits) == ALLOWED
    with pytest.raises(GuardrailExceeded, match="max_total_daily_cents"):
        unfreeze(policy, frozen, [frozen, card("a", daily=15001)])
    with pytest.raises(GuardrailExceeded, match="cannot unfreeze card me: 2 card"):
        unfreeze(policy, frozen, [card("a"), card("b")])
    # An active card "unfrozen" again is counted once, not twice.
    assert unfreeze(policy, card("me"), [card("me"), card("a")]) == ALLOWED


def test_frozen_cards_count_what_they_spent_today() -> None:
    policy = OperatorPolicy(unfreeze="allow")
    spent = [card("a", status="frozen", daily=10000, spent=9000),
             card("b", status="closed", daily=10000, spent=6000)]  # fmt: skip
    create(policy, daily_limit_cents=5000, per_auth_max_cents=100, active_cards=spent)
    with pytest.raises(GuardrailExceeded, match="day's budget max_total_daily_cents"):
        create(policy, daily_limit_cents=5001, per_auth_max_cents=100, active_cards=spent)
    # An active card that spent more than its (since lowered) limit commits its spend.
    over = card("c", daily=1000, spent=14000)
    with pytest.raises(GuardrailExceeded, match=r"other cards commit \$140\.00"):
        create(policy, daily_limit_cents=6001, per_auth_max_cents=100, active_cards=[over])


@pytest.mark.parametrize(
    ("wide", "what"),
    [
        (card("me", status="frozen", daily=10001), "max_card_daily_limit_cents"),
        (card("me", status="frozen", daily=5000, per_auth=5001), "max_per_auth_cents"),
        (card("me", status="frozen", daily=100, mcc=["travel", "saas"]), "allowed_categories"),
        (card("me", status="frozen", daily=100), "allowed_categories"),  # any category
    ],
)
def test_unfreeze_refuses_a_card_wider_than_the_policy(wide: Card, what: str) -> None:
    policy = OperatorPolicy(unfreeze="allow", allowed_categories=("travel",))
    with pytest.raises(GuardrailExceeded, match=f"{what}.*stays frozen.*set_policy"):
        unfreeze(policy, wide, [wide])
    assert unfreeze(policy, card("me", status="frozen", daily=100, mcc=["travel"]), []) == ALLOWED


def test_close_gates() -> None:
    current = card("me")
    assert check_close(OperatorPolicy(close="allow"), current) == ALLOWED
    assert check_close(DEFAULTS, current).needs_approval
    with pytest.raises(GuardrailExceeded, match='close = "deny"'):
        check_close(OperatorPolicy(close="deny"), current)


def test_blocked_merchants_ignore_case_and_spacing() -> None:
    policy = OperatorPolicy(blocked_merchants=("Evil  Corp",))
    check_merchant(policy, "Evil Corporation")  # another word, not the blocked name
    check_merchant(DEFAULTS, "Evil Corp")
    for spelling in ("evil corp", " EVIL\tCORP ", "Evil Corp", "EvilCorp", "Evil Corp Ltd"):
        with pytest.raises(MerchantBlocked, match="blocked by the operator"):
            check_merchant(policy, spelling)


# --- properties -------------------------------------------------------------------------------

# Ceilings mostly above the requests, so that both sides of every boundary are reached.
small = st.integers(min_value=0, max_value=600)
small_policies = st.builds(
    OperatorPolicy,
    max_card_daily_limit_cents=small,
    max_per_auth_cents=small,
    max_total_daily_cents=st.integers(0, 2000),
    max_active_cards=st.integers(0, 8),
    allowed_categories=st.just(()) | st.lists(st.sampled_from(TAGS[:4]), max_size=3).map(tuple),
    max_ttl_minutes=small,
    require_approval_above_cents=st.integers(0, 300),
)
tag_lists = st.lists(st.sampled_from(TAGS[:5]), max_size=3, unique=True)


@st.composite
def card_sets(draw: st.DrawFn) -> list[Card]:
    statuses: st.SearchStrategy[CardStatus] = st.sampled_from(STATUSES)
    size = draw(st.integers(0, 7))
    return [
        card(f"c{i}", status=draw(statuses), daily=draw(st.integers(1, 300)), mcc=draw(tag_lists))
        for i in range(size)
    ]


@given(
    policy=small_policies,
    cards=card_sets(),
    daily=st.integers(1, 300),
    per_auth=st.none() | st.integers(1, 300),
    mcc=tag_lists,
    ttl=st.none() | st.integers(1, 400),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_create_allows_exactly_what_fits(
    policy: OperatorPolicy,
    cards: list[Card],
    daily: int,
    per_auth: int | None,
    mcc: list[str],
    ttl: int | None,
) -> None:
    committed = committed_cards(cards)
    effective_per_auth = daily if per_auth is None else per_auth
    after = [*committed, card("new", daily=daily)]
    fits = (
        len(after) <= policy.max_active_cards
        and sum(c.daily_limit_cents for c in after) <= policy.max_total_daily_cents
        and daily <= policy.max_card_daily_limit_cents
        and effective_per_auth <= policy.max_per_auth_cents
        and (ttl is None or ttl <= policy.max_ttl_minutes)
        and (not policy.allowed_categories
             or (bool(mcc) and set(mcc) <= set(policy.allowed_categories)))
    )  # fmt: skip
    try:
        verdict = check_create(
            policy,
            daily_limit_cents=daily,
            per_auth_max_cents=per_auth,
            mcc_allowlist=mcc,
            ttl_minutes=ttl,
            others=day_of(cards),
        )
    except (GuardrailExceeded, CategoryNotAllowed):
        assert not fits
        return
    assert fits
    threshold = policy.require_approval_above_cents
    assert verdict.needs_approval == (daily > threshold or effective_per_auth > threshold)
    assert verdict.needs_approval == bool(verdict.reasons)


@given(
    policy=small_policies,
    cards=card_sets(),
    which=st.integers(0, 6),
    daily=st.none() | st.integers(1, 400),
    per_auth=st.none() | st.integers(1, 400),
    mcc=st.none() | tag_lists,
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_change_never_loosens_past_a_ceiling(
    policy: OperatorPolicy,
    cards: list[Card],
    which: int,
    daily: int | None,
    per_auth: int | None,
    mcc: list[str] | None,
) -> None:
    current = cards[which % len(cards)] if cards else card("solo")
    committing = current.status in ("active", "pending")
    others = sum(c.daily_limit_cents for c in committed_cards(cards) if c.id != current.id)
    raised_daily = daily is not None and daily > current.daily_limit_cents
    raised_per_auth = per_auth is not None and per_auth > current.per_auth_max_cents
    # [] is "any merchant": only [] stays within it; any list stays within [].
    narrowing = mcc is not None and (
        not current.mcc_allowlist or (bool(mcc) and set(mcc) <= set(current.mcc_allowlist))
    )
    fits = (
        (not raised_daily or (
            daily is not None
            and daily <= policy.max_card_daily_limit_cents
            and (not committing or others + daily <= policy.max_total_daily_cents)
        ))
        and (not raised_per_auth or (per_auth or 0) <= policy.max_per_auth_cents)
        and (mcc is None or narrowing or not policy.allowed_categories
             or (bool(mcc) and set(mcc) <= set(policy.allowed_categories)))
    )  # fmt: skip
    try:
        verdict = check_policy_change(
            policy,
            current,
            daily_limit_cents=daily,
            per_auth_max_cents=per_auth,
            mcc_allowlist=mcc,
            others=day_of(cards, exclude=current.id),
        )
    except (GuardrailExceeded, CategoryNotAllowed):
        assert not fits
        return
    assert fits
    threshold = policy.require_approval_above_cents
    assert verdict.needs_approval == (
        (raised_daily and (daily or 0) > threshold)
        or (raised_per_auth and (per_auth or 0) > threshold)
    )
