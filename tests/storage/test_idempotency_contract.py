"""The budget store's memory of agents' idempotency keys, on both backends: the first record
for a key stays, a record older than the window is not recalled, and accounts are apart. A
create's reservation holds its key: while it is in flight, or once its card is remembered, the
key is taken (checked before the ceilings); a disowned one is taken over by a retry of the same
request only. A SQLite budget.db from before the key columns gains them."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcard_mcp.storage.base import BudgetStore, Hold, KeyTaken, Reservation
from agentcard_mcp.storage.sqlite.budget import SqliteBudget
from tests.storage.conftest import ACCOUNT, OpenStore
from tests.storage.support import LEASE_S, OWNER, TODAY, allow, card, refuse

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_a_key_recalls_the_digest_and_card_it_was_first_recorded_with(
    store: BudgetStore,
) -> None:
    assert await store.recall("k1", NOW - timedelta(hours=24)) is None
    await store.remember("k1", "digest-a", "card_a", NOW)
    await store.remember("k1", "digest-b", "card_b", NOW)  # a racing second record loses
    assert await store.recall("k1", NOW - timedelta(hours=24)) == ("digest-a", "card_a")


async def test_a_key_older_than_the_window_is_forgotten(store: BudgetStore) -> None:
    await store.remember("k1", "digest-a", "card_a", NOW - timedelta(hours=25))
    assert await store.recall("k1", NOW - timedelta(hours=24)) is None
    assert await store.recall("k1", NOW - timedelta(hours=26)) == ("digest-a", "card_a")


async def test_keys_of_two_accounts_are_apart(open_store: OpenStore) -> None:
    one, other = await open_store("acct-one"), await open_store("acct-other")
    await one.remember("k1", "digest-a", "card_a", NOW)
    assert await other.recall("k1", NOW - timedelta(hours=1)) is None
    assert await one.recall("k1", NOW - timedelta(hours=1)) == ("digest-a", "card_a")


# --- a key held by a create in flight (Hold.key): checked in the reservation's transaction ---

KEYED = Hold(None, 2000, active=True, key="k1", digest="digest-a")


async def keyed(store: BudgetStore, hold: Hold = KEYED, *, owner: str = OWNER) -> Reservation:
    made = await store.reserve(hold, allow, day=TODAY, owner=owner, now=NOW, lease_s=LEASE_S)
    assert made is not None
    return made


async def test_a_key_in_flight_is_taken_until_its_card_is_remembered(store: BudgetStore) -> None:
    first = await keyed(store)
    assert await store.recall("k1", NOW - timedelta(hours=24)) == ("digest-a", None)
    # ``refuse`` as the ceiling check: a taken key is answered before any check runs.
    for hold in (KEYED, replace(KEYED, digest="digest-b")):
        with pytest.raises(KeyTaken) as taken:
            await store.reserve(hold, refuse, day=TODAY, owner=OWNER, now=NOW, lease_s=LEASE_S)
        assert (taken.value.digest, taken.value.card_id) == ("digest-a", None)
    await store.remember("k1", "digest-a", "card_a", NOW)  # as create_card does, then settles
    await store.settle(first.id, card("card_a", limit=2000))
    with pytest.raises(KeyTaken) as taken:
        await store.reserve(KEYED, refuse, day=TODAY, owner=OWNER, now=NOW, lease_s=LEASE_S)
    assert (taken.value.digest, taken.value.card_id) == ("digest-a", "card_a")
    assert await store.reservations() == []
    assert (await store.totals(TODAY)).committed_cents == 2000  # counted once


async def test_a_key_whose_create_ended_with_nothing_made_is_free_again(store: BudgetStore) -> None:
    first = await keyed(store)
    await store.settle(first.id, None)  # the issuer refused: nothing was made
    assert await store.recall("k1", NOW - timedelta(hours=24)) is None
    assert (await keyed(store)).id != first.id


async def test_a_retry_takes_over_the_disowned_reservation_of_its_own_request_only(
    store: BudgetStore,
) -> None:
    lost = await keyed(store)
    assert await store.lost("k1") is None  # in flight, owned
    await store.disown(lost.id, NOW + timedelta(seconds=60))  # the outcome is unknown
    # Not in flight any more: a retry may go ahead, and asks the issuer again with the key.
    assert await store.recall("k1", NOW - timedelta(hours=24)) is None
    assert await store.lost("k1") == "digest-a"
    with pytest.raises(KeyTaken):  # the key reused for another request
        await store.reserve(replace(KEYED, digest="digest-b"), allow, day=TODAY, owner=OWNER,
                            now=NOW, lease_s=LEASE_S)  # fmt: skip
    retry = await keyed(store, replace(KEYED, take_over=True), owner="host-b:7:beef0002")
    assert (retry.id, retry.owner) == (lost.id, "host-b:7:beef0002")
    assert retry.settle_after == NOW + timedelta(seconds=LEASE_S)
    assert [r.id for r in await store.reservations()] == [lost.id]
    assert (await store.totals(TODAY)).committed_cents == 2000  # still counted once
    assert await store.lost("k1") is None  # owned again


async def test_where_the_issuer_may_make_a_second_card_a_lost_key_waits_for_reconciliation(
    store: BudgetStore,
) -> None:
    """An issuer that does not make one card per key (agent-card.sh, ClawdCards): asking it
    again could make a second card, so the retry is told the key is taken until the lost
    create is reconciled."""
    lost = await keyed(store)
    await store.disown(lost.id, NOW + timedelta(seconds=60))
    with pytest.raises(KeyTaken) as taken:
        await store.reserve(KEYED, allow, day=TODAY, owner="host-b:7:beef0002", now=NOW,
                            lease_s=LEASE_S)  # fmt: skip
    assert (taken.value.digest, taken.value.card_id) == ("digest-a", None)
    [still] = await store.reservations()
    assert (still.id, still.owner) == (lost.id, "")
    await store.settle(lost.id, None, found=still)  # reconciled: nothing was made
    assert (await keyed(store)).id != lost.id  # the key is free again


async def test_a_reconciler_settles_a_reservation_only_as_it_found_it(store: BudgetStore) -> None:
    """A reconciler finds a lost create stale and asks the issuer; meanwhile a retry takes the
    reservation over. The reconciler's settle then leaves it to the retry, which counts it
    and records its card."""
    lost = await keyed(store)
    await store.disown(lost.id, NOW - timedelta(seconds=1))  # stale already
    [found] = await store.reservations()
    retry = await keyed(store, replace(KEYED, take_over=True), owner="host-b:7:beef0002")
    await store.settle(found.id, None, found=found)  # the reconciler, too late: nothing
    assert [r.owner for r in await store.reservations()] == ["host-b:7:beef0002"]
    assert (await store.totals(TODAY)).committed_cents == 2000
    await store.settle(retry.id, card("card_r", limit=2000))  # the retry's own settle
    assert await store.reservations() == []
    assert (await store.record("card_r")) is not None
    assert (await store.totals(TODAY)).committed_cents == 2000


async def test_a_budget_db_made_before_reservations_held_keys_gains_them_keeping_its_own(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with closing(sqlite3.connect(home / "budget.db")) as db, db:
        db.execute(
            "CREATE TABLE budget_reservations (id TEXT PRIMARY KEY, account TEXT NOT NULL, "
            "card_id TEXT, commits_cents INTEGER NOT NULL, active INTEGER NOT NULL, "
            "owner TEXT NOT NULL, settle_after TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO budget_reservations VALUES ('rsv_old', ?, NULL, 500, 1, ?, ?, ?)",
            (ACCOUNT, OWNER, (NOW + timedelta(minutes=2)).isoformat(), NOW.isoformat()),
        )
    store = SqliteBudget(home, ACCOUNT)
    try:
        assert [r.id for r in await store.reservations()] == ["rsv_old"]
        await keyed(store)
        with pytest.raises(KeyTaken):
            await keyed(store)
        assert (await store.totals(TODAY)).committed_cents == 2500
    finally:
        await store.aclose()
