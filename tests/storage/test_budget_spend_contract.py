"""A card's spend for a day only grows in the budget, whatever a write reports, on both
backends; and the store lists the cards recorded active, whose spend get_limits reads afresh."""

from __future__ import annotations

import pytest

from agentcard_mcp.storage.base import BudgetStore, DayTotals
from tests.storage.support import TODAY, YESTERDAY, card, reserved

pytestmark = pytest.mark.anyio


async def test_a_close_reported_with_no_spend_keeps_the_days_spend(store: BudgetStore) -> None:
    await store.observe([card("a", "active", limit=4000, spent=2200)])
    closing = await reserved(store, "a", 0, active=False)
    # An issuer that answers a close with the card's spend reset to 0.
    await store.settle(closing.id, card("a", "closed", limit=4000, spent=0))
    assert await store.totals(TODAY) == DayTotals(TODAY, 2200, 0, 2200)


async def test_a_newer_days_spend_replaces_and_an_older_one_never_does(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", "frozen", spent=900, day=YESTERDAY)])
    write = await reserved(store, "a", 0, active=False)
    await store.settle(write.id, card("a", "frozen", spent=300, day=TODAY))
    assert (await store.totals(TODAY)).spent_cents == 300
    write = await reserved(store, "a", 0, active=False)
    await store.settle(write.id, card("a", "frozen", spent=5000, day=YESTERDAY))
    assert (await store.totals(TODAY)).spent_cents == 300


async def test_the_active_cards_are_listed_and_no_others(store: BudgetStore) -> None:
    await store.observe(
        [
            card("b", "active"),
            card("a", "pending"),
            card("c", "frozen", spent=10),
            card("d", "closed"),
        ]
    )
    assert await store.active_cards() == ["a", "b"]
