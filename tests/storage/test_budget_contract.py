"""The BudgetStore contract (storage/base.py, DESIGN §5), the same for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcard_mcp.models import CardStatus
from agentcard_mcp.storage.base import BudgetStore, DayTotals, Reservation
from tests.storage.conftest import OpenStore
from tests.storage.support import (
    NOW,
    TODAY,
    YESTERDAY,
    Refused,
    Spy,
    card,
    lease_end,
    refuse,
    reserve,
    reserved,
)

pytestmark = pytest.mark.anyio


# --- the day's commitment -----------------------------------------------------------------


async def test_a_budget_with_no_cards_commits_nothing(store: BudgetStore) -> None:
    assert await store.totals(TODAY) == DayTotals(TODAY, 0, 0, 0)


async def test_an_active_card_commits_its_daily_limit_while_it_has_spent_less(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", "active", limit=1000, spent=300)])

    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 300)


async def test_an_active_card_that_spent_more_than_its_limit_commits_its_spend(
    store: BudgetStore,
) -> None:
    # The limit was lowered after the card had spent: what was spent still counts in full.
    await store.observe([card("a", "active", limit=1000, spent=1500)])

    assert await store.totals(TODAY) == DayTotals(TODAY, 1500, 1, 1500)


async def test_a_pending_card_counts_as_active_and_commits_its_daily_limit(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", "pending", limit=700, spent=0)])

    assert await store.totals(TODAY) == DayTotals(TODAY, 700, 1, 0)


@pytest.mark.parametrize("status", ["frozen", "closed"])
async def test_a_frozen_or_closed_card_commits_only_what_it_spent_today(
    store: BudgetStore, status: CardStatus
) -> None:
    await store.observe([card("a", status, limit=1000, spent=300)])

    assert await store.totals(TODAY) == DayTotals(TODAY, 300, 0, 300)


@pytest.mark.parametrize(
    ("status", "commits", "active"),
    [("active", 1000, 1), ("pending", 1000, 1), ("frozen", 0, 0), ("closed", 0, 0)],
)
async def test_a_spend_recorded_for_an_earlier_utc_day_counts_nothing_today(
    store: BudgetStore, status: CardStatus, commits: int, active: int
) -> None:
    await store.observe([card("a", status, limit=1000, spent=1500, day=YESTERDAY)])

    assert await store.totals(TODAY) == DayTotals(TODAY, commits, active, 0)
    # ... while it still counts on the day it was made.
    assert (await store.totals(YESTERDAY)).spent_cents == 1500


async def test_the_totals_add_up_every_card_of_the_account(store: BudgetStore) -> None:
    await store.observe(
        [
            card("active", "active", limit=1_000, spent=100),  # commits 1 000
            card("pending", "pending", limit=20_000),  # commits 20 000
            card("frozen", "frozen", limit=400_000, spent=4_000),  # commits 4 000
            card("closed", "closed", limit=8_000_000, spent=80_000),  # commits 80 000
            card("old-active", "active", limit=300_000, spent=9, day=YESTERDAY),  # 300 000
            card("old-closed", "closed", limit=7, spent=5_000_000, day=YESTERDAY),  # 0
        ]
    )

    assert await store.totals(TODAY) == DayTotals(
        TODAY,
        committed_cents=1_000 + 20_000 + 4_000 + 80_000 + 300_000,
        active_cards=3,
        spent_cents=100 + 4_000 + 80_000,
    )


async def test_exclude_leaves_one_card_out_of_the_totals(store: BudgetStore) -> None:
    await store.observe(
        [card("a", "active", limit=1000, spent=100), card("b", "active", limit=2000, spent=300)]
    )

    assert await store.totals(TODAY, exclude="b") == DayTotals(TODAY, 1000, 1, 100)
    assert await store.totals(TODAY, exclude="a") == DayTotals(TODAY, 2000, 1, 300)
    assert await store.totals(TODAY, exclude="nobody") == DayTotals(TODAY, 3000, 2, 400)


async def test_exclude_leaves_the_cards_reservation_out_too(store: BudgetStore) -> None:
    await store.observe([card("a", limit=1000), card("b", "frozen", limit=2000, spent=50)])
    await reserved(store, "b", 5000, active=True)  # an unfreeze and raise of b in flight
    await reserved(store, None, 700)  # a new card in flight: no card id, never excluded

    assert await store.totals(TODAY) == DayTotals(TODAY, 1000 + 5000 + 700, 3, 50)
    assert await store.totals(TODAY, exclude="b") == DayTotals(TODAY, 1000 + 700, 2, 0)


# --- reservations ---------------------------------------------------------------------------


async def test_a_reservation_for_a_new_card_counts_its_commits_and_one_active_card_while_open(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000, spent=100)])

    held = await reserved(store, None, 2500)

    assert await store.totals(TODAY) == DayTotals(TODAY, 3500, 2, 100)
    await store.settle(held.id, None)
    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 100)


async def test_a_new_card_reservation_that_will_not_be_active_adds_no_active_card(
    store: BudgetStore,
) -> None:
    await reserved(store, None, 300, active=False)

    assert await store.totals(TODAY) == DayTotals(TODAY, 300, 0, 0)


async def test_reservations_for_new_cards_never_block_one_another(store: BudgetStore) -> None:
    first = await reserved(store, None, 100)
    second = await reserved(store, None, 200)

    assert first.id != second.id
    assert await store.totals(TODAY) == DayTotals(TODAY, 300, 2, 0)


async def test_a_raise_in_flight_counts_the_new_limit_instead_of_the_old_one(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000, spent=200)])

    await reserved(store, "a", 2500)

    assert await store.totals(TODAY) == DayTotals(TODAY, 2500, 1, 200)


async def test_a_lowering_in_flight_keeps_counting_the_old_limit_until_it_is_settled(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000, spent=200)])

    held = await reserved(store, "a", 400)
    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 200)

    await store.settle(held.id, card("a", limit=400, spent=200))
    assert await store.totals(TODAY) == DayTotals(TODAY, 400, 1, 200)


async def test_a_freeze_in_flight_keeps_counting_the_old_limit_until_it_is_settled(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000, spent=200)])

    held = await reserved(store, "a", 0, active=False)
    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 200)

    await store.settle(held.id, card("a", "frozen", limit=1000, spent=200))
    assert await store.totals(TODAY) == DayTotals(TODAY, 200, 0, 200)


async def test_an_unfreeze_in_flight_counts_the_card_as_active_with_its_limit(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", "frozen", limit=1000, spent=200)])
    assert await store.totals(TODAY) == DayTotals(TODAY, 200, 0, 200)

    await reserved(store, "a", 1000, active=True)

    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 200)


async def test_a_reservation_on_a_card_the_budget_has_no_record_of_counts_its_commits(
    store: BudgetStore,
) -> None:
    # The issuer has a card the budget never saw (made after the last sync, outside the
    # server): a write to it must still count while it is in flight, or a concurrent
    # create_card checked against the totals would not see it.
    held = await reserved(store, "unseen", 1500, active=True)

    assert await store.totals(TODAY) == DayTotals(TODAY, 1500, 1, 0)
    assert await store.totals(TODAY, exclude="unseen") == DayTotals(TODAY, 0, 0, 0)
    spy = Spy()
    await reserved(store, None, 100, check=spy)
    assert spy.calls == [(DayTotals(TODAY, 1500, 1, 0), None)]

    # A read adopts the card while the write is in flight: counted once, the larger of the two.
    await store.observe([card("unseen", "frozen", limit=1000, spent=10)])
    assert await store.totals(TODAY) == DayTotals(TODAY, 1500 + 100, 2, 10)

    await store.settle(held.id, card("unseen", "active", limit=1500, spent=10))
    assert await store.totals(TODAY) == DayTotals(TODAY, 1500 + 100, 2, 10)


async def test_a_second_reservation_on_the_same_card_is_refused_with_none_and_writes_nothing(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000)])
    first = await reserved(store, "a", 2000)

    again = await reserve(store, "a", 9000, owner="host-b:1:beef0002")

    assert again is None
    assert await store.reservations() == [first]
    assert await store.totals(TODAY) == DayTotals(TODAY, 2000, 1, 0)


async def test_a_card_can_be_reserved_again_once_its_reservation_is_settled(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000)])
    first = await reserved(store, "a", 2000)
    await store.settle(first.id, card("a", limit=2000))

    second = await reserve(store, "a", 3000)

    assert second is not None
    assert second.id != first.id
    assert await store.totals(TODAY) == DayTotals(TODAY, 3000, 1, 0)


async def test_the_check_is_shown_the_totals_without_the_card_and_the_cards_record(
    store: BudgetStore,
) -> None:
    a = card("a", "active", limit=1000, spent=100)
    await store.observe([a, card("b", "frozen", limit=500, spent=50)])
    await reserved(store, None, 700)  # another write in flight counts among the others
    spy = Spy()

    await reserved(store, "a", 2500, check=spy)

    assert spy.calls == [(DayTotals(TODAY, 50 + 700, 1, 50), a)]


async def test_the_check_for_a_new_card_is_shown_every_card_and_no_record(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", "active", limit=1000, spent=100)])
    await reserved(store, "a", 3000)  # a raise in flight counts at its new limit
    spy = Spy()

    await reserved(store, None, 2500, check=spy)

    assert spy.calls == [(DayTotals(TODAY, 3000, 1, 100), None)]


async def test_a_check_that_raises_writes_nothing(store: BudgetStore) -> None:
    await store.observe([card("a", limit=1000)])

    with pytest.raises(Refused):
        await reserve(store, "a", 5000, check=refuse)
    with pytest.raises(Refused):
        await reserve(store, None, 5000, check=refuse)

    assert await store.reservations() == []
    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 0)
    assert await reserve(store, "a", 2000) is not None  # the card was not left held


async def test_a_reservation_is_returned_as_written(store: BudgetStore) -> None:
    held = await reserved(store, "a", 2500, active=False, owner="host-z:77:0000abcd")

    assert held.id
    assert (held.card_id, held.commits_cents, held.active, held.owner) == (
        "a", 2500, False, "host-z:77:0000abcd",
    )  # fmt: skip
    assert held.settle_after == lease_end()


async def test_settle_replaces_the_cards_record_and_removes_the_reservation(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000, spent=100)])
    held = await reserved(store, "a", 2500)
    landed = card("a", "active", limit=2500, spent=150)

    await store.settle(held.id, landed)

    assert await store.record("a") == landed
    assert await store.reservations() == []
    assert await store.totals(TODAY) == DayTotals(TODAY, 2500, 1, 150)


async def test_settle_takes_the_issuers_status_and_limit_even_when_lower_but_never_less_spend(
    store: BudgetStore,
) -> None:
    # Unlike observe, a settle is our own write as the issuer answered it: status and limit are
    # replaced, whatever the stored record said. A day's spend only grows, though: an issuer
    # reporting a closed card's spend as 0, or an older day's, does not undo today's.
    await store.observe([card("a", "active", limit=1000, spent=600)])
    held = await reserved(store, "a", 0, active=False)

    await store.settle(held.id, card("a", "closed", limit=10, spent=0))

    assert await store.record("a") == card("a", "closed", limit=10, spent=600)
    held = await reserved(store, "a", 0, active=False)
    await store.settle(held.id, card("a", "closed", limit=10, spent=0, day=YESTERDAY))
    assert await store.record("a") == card("a", "closed", limit=10, spent=600)


async def test_settling_a_new_cards_reservation_adopts_the_card(store: BudgetStore) -> None:
    held = await reserved(store, None, 2500)
    made = card("new", "pending", limit=2500)

    await store.settle(held.id, made)

    assert await store.record("new") == made
    assert await store.reservations() == []
    assert await store.totals(TODAY) == DayTotals(TODAY, 2500, 1, 0)


async def test_settle_without_a_card_releases_the_reservation_and_keeps_the_record(
    store: BudgetStore,
) -> None:
    before = card("a", limit=1000, spent=100)
    await store.observe([before])
    held = await reserved(store, "a", 2500)

    await store.settle(held.id, None)

    assert await store.record("a") == before
    assert await store.reservations() == []
    assert await store.totals(TODAY) == DayTotals(TODAY, 1000, 1, 100)


async def test_settling_an_already_settled_reservation_does_not_overwrite_the_card(
    store: BudgetStore,
) -> None:
    # Two reconcilers raced on one stale reservation: the first settled it, the card then
    # moved on (frozen by a later write); the second's older view must not undo that.
    await store.observe([card("a", limit=1000)])
    held = await reserved(store, "a", 2500)
    await store.settle(held.id, card("a", limit=2500))
    later = await reserved(store, "a", 0, active=False)
    frozen = card("a", "frozen", limit=2500, spent=40)
    await store.settle(later.id, frozen)

    await store.settle(held.id, card("a", "active", limit=2500))
    await store.settle(later.id, card("a", "active", limit=9999))

    assert await store.record("a") == frozen
    assert await store.totals(TODAY) == DayTotals(TODAY, 40, 0, 40)


async def test_a_released_reservation_settled_again_writes_no_card(store: BudgetStore) -> None:
    held = await reserved(store, None, 2500)
    await store.settle(held.id, None)

    await store.settle(held.id, card("ghost", limit=2500))

    assert await store.record("ghost") is None
    assert await store.totals(TODAY) == DayTotals(TODAY, 0, 0, 0)


async def test_disown_keeps_the_reservation_counted_with_no_owner_and_the_new_settle_after(
    store: BudgetStore,
) -> None:
    await store.observe([card("a", limit=1000)])
    held = await reserved(store, "a", 2500)
    new_card = await reserved(store, None, 700)
    grace = NOW + timedelta(seconds=60)

    await store.disown(held.id, grace)

    rows = {r.id: r for r in await store.reservations()}
    assert rows == {
        held.id: Reservation(held.id, "a", 2500, True, "", grace),
        new_card.id: new_card,
    }
    assert await store.totals(TODAY) == DayTotals(TODAY, 2500 + 700, 2, 0)
    assert await reserve(store, "a", 100) is None  # still holds the card


async def test_reservations_lists_every_open_reservation_as_it_was_reserved(
    store: BudgetStore,
) -> None:
    await store.observe([card("a"), card("b")])
    earlier = await reserved(store, "a", 1500, owner="host-a:1:aaaa0001")
    later_now = NOW + timedelta(seconds=5)
    later = await reserved(store, None, 800, active=True, owner="host-b:2:bbbb0002", now=later_now)
    gone = await reserved(store, "b", 0, active=False)
    await store.settle(gone.id, None)

    listed = await store.reservations()

    assert sorted(listed, key=lambda r: r.id) == sorted([earlier, later], key=lambda r: r.id)
    assert {r.id: r.settle_after for r in listed} == {
        earlier.id: lease_end(NOW),
        later.id: lease_end(later_now),
    }


# --- observe and spent ------------------------------------------------------------------------


async def test_observe_adopts_an_unknown_card_whole(store: BudgetStore) -> None:
    seen = card("a", "frozen", limit=700, spent=50)

    await store.observe([seen])

    assert await store.record("a") == seen


async def test_observe_adopts_several_cards_at_once_and_accepts_none(store: BudgetStore) -> None:
    await store.observe([])
    a, b = card("a", limit=100), card("b", "closed", limit=200, spent=3)

    await store.observe([a, b])

    assert (await store.record("a"), await store.record("b")) == (a, b)


async def test_a_card_never_seen_has_no_record(store: BudgetStore) -> None:
    assert await store.record("nobody") is None


# (known spend, known day), (reported spend, reported day), (kept spend, kept day)
SPEND_RULE = [
    pytest.param((300, TODAY), (500, TODAY), (500, TODAY), id="higher-same-day-taken"),
    pytest.param((300, TODAY), (200, TODAY), (300, TODAY), id="lower-same-day-ignored"),
    pytest.param((300, YESTERDAY), (50, TODAY), (50, TODAY), id="later-day-taken-even-lower"),
    pytest.param((50, TODAY), (900, YESTERDAY), (50, TODAY), id="earlier-day-ignored"),
]


@pytest.mark.parametrize(("known", "reported", "kept"), SPEND_RULE)
async def test_observe_takes_only_a_newer_spend_of_a_known_card_and_never_its_status_or_limit(
    store: BudgetStore,
    known: tuple[int, str],
    reported: tuple[int, str],
    kept: tuple[int, str],
) -> None:
    await store.observe([card("a", "active", limit=1000, spent=known[0], day=known[1])])

    # A snapshot read before a concurrent freeze-and-lower landed reports another status and
    # limit: only the spend may be taken from it.
    await store.observe([card("a", "frozen", limit=5, spent=reported[0], day=reported[1])])

    assert await store.record("a") == card("a", "active", limit=1000, spent=kept[0], day=kept[1])


@pytest.mark.parametrize(("known", "reported", "kept"), SPEND_RULE)
async def test_spent_follows_the_same_rule_as_observe(
    store: BudgetStore,
    known: tuple[int, str],
    reported: tuple[int, str],
    kept: tuple[int, str],
) -> None:
    await store.observe([card("a", "frozen", limit=1000, spent=known[0], day=known[1])])

    await store.spent("a", reported[0], reported[1])

    assert await store.record("a") == card("a", "frozen", limit=1000, spent=kept[0], day=kept[1])


async def test_spent_ignores_a_card_the_budget_does_not_know(store: BudgetStore) -> None:
    await store.spent("nobody", 500, TODAY)

    assert await store.record("nobody") is None
    assert await store.totals(TODAY) == DayTotals(TODAY, 0, 0, 0)


async def test_a_spend_over_the_limit_raises_what_the_card_commits(store: BudgetStore) -> None:
    await store.observe([card("a", "active", limit=1000, spent=0)])

    await store.spent("a", 1200, TODAY)

    assert await store.totals(TODAY) == DayTotals(TODAY, 1200, 1, 1200)


# --- accounts ---------------------------------------------------------------------------------


async def test_two_accounts_in_one_database_never_see_each_others_cards_or_reservations(
    open_store: OpenStore,
) -> None:
    mine = await open_store("stripe:https://api.example:agent-1")
    theirs = await open_store("stripe:https://api.example:agent-2")
    ours = card("c1", "active", limit=1000, spent=100)
    await mine.observe([ours])
    held = await reserved(mine, "c1", 3000)
    await reserved(mine, None, 700)

    assert await theirs.totals(TODAY) == DayTotals(TODAY, 0, 0, 0)
    assert await theirs.record("c1") is None
    assert await theirs.reservations() == []

    # The same card id in the other account is another card: its writes are its own.
    spy = Spy()
    other = await reserved(theirs, "c1", 50, check=spy)
    assert spy.calls == [(DayTotals(TODAY, 0, 0, 0), None)]
    await theirs.settle(other.id, card("c1", "closed", limit=1, spent=9))
    await theirs.observe([card("c1", "frozen", limit=2, spent=999_999)])
    await theirs.spent("c1", 1_000_000, TODAY)

    assert await mine.record("c1") == ours
    assert [r.id for r in await mine.reservations() if r.card_id == "c1"] == [held.id]
    assert await mine.totals(TODAY) == DayTotals(TODAY, 3000 + 700, 2, 100)
    assert await theirs.totals(TODAY) == DayTotals(TODAY, 1_000_000, 0, 1_000_000)
