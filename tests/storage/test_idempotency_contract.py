"""The budget store's memory of agents' idempotency keys, on both backends: the first record
for a key stays, a record older than the window is not recalled, and accounts are apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentcard_mcp.storage.base import BudgetStore
from tests.storage.conftest import OpenStore

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
