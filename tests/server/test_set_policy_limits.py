"""A card's per-purchase limit never stands above its daily limit: set_policy lowering the daily
limit under it takes it down too and says so; create_card asked for both refuses the pair."""

from __future__ import annotations

import pytest

from .conftest import Agent

pytestmark = pytest.mark.anyio


async def test_lowering_the_daily_limit_under_the_per_purchase_limit_lowers_both_and_says_so(
    agent: Agent,
) -> None:
    card = await agent.call(
        "create_card",
        {"purpose": "trip", "daily_limit_cents": 5000, "per_auth_max_cents": 2500},
    )
    changed = await agent.call("set_policy", {"card_id": card["id"], "daily_limit_cents": 2000})
    assert (changed["daily_limit_cents"], changed["per_auth_max_cents"]) == (2000, 2000)
    assert changed["note"] == (
        "per_auth_max_cents lowered from 2500 to 2000 with the daily limit: no purchase can "
        "exceed the day's limit."
    )
    again = await agent.call("get_card", {"card_id": card["id"]})
    assert (again["daily_limit_cents"], again["per_auth_max_cents"]) == (2000, 2000)
    assert "note" not in again  # said once, by the call that did it


async def test_a_daily_limit_still_above_the_per_purchase_limit_leaves_it_and_adds_no_note(
    agent: Agent,
) -> None:
    card = await agent.call(
        "create_card",
        {"purpose": "trip", "daily_limit_cents": 5000, "per_auth_max_cents": 2500},
    )
    changed = await agent.call("set_policy", {"card_id": card["id"], "daily_limit_cents": 2500})
    assert (changed["daily_limit_cents"], changed["per_auth_max_cents"]) == (2500, 2500)
    assert "note" not in changed


async def test_asking_for_a_per_purchase_limit_above_the_daily_one_is_refused(
    agent: Agent,
) -> None:
    code, _ = await agent.fail(
        "create_card",
        {"purpose": "trip", "daily_limit_cents": 2000, "per_auth_max_cents": 2500},
    )
    assert code == "invalid_params"
    card = await agent.call("create_card", {"purpose": "trip", "daily_limit_cents": 5000})
    code, _ = await agent.fail(
        "set_policy",
        {"card_id": card["id"], "daily_limit_cents": 2000, "per_auth_max_cents": 2500},
    )
    assert code == "invalid_params"
    assert (await agent.call("get_card", {"card_id": card["id"]}))["daily_limit_cents"] == 5000
