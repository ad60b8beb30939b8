"""The core promise (DESIGN §5): check and act are one step, so concurrent writes — from one
process, from several stores on one database (replicas), and from several processes — can never
together pass a ceiling. Each race has more contenders than room, and exactly the room wins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from agentcard_mcp.storage.base import BudgetStore, DayTotals, Reservation
from tests.storage.conftest import ACCOUNT, OpenStore
from tests.storage.support import TODAY, Refused, card, ceiling, reserve

pytestmark = pytest.mark.anyio

AMOUNT = 1000
WORKER = Path(__file__).with_name("race_worker.py")

# Which ceiling binds: at most 5 active cards, or at most 5 cards' worth of daily limits.
CEILINGS = [
    pytest.param(5, 1_000_000, id="max-active-cards"),
    pytest.param(100, 5 * AMOUNT + AMOUNT // 2, id="max-total-daily"),
]


async def open_stores(open_store: OpenStore, n: int) -> list[BudgetStore]:
    return [await open_store(ACCOUNT) for _ in range(n)]


@pytest.mark.parametrize(("max_active", "max_total"), CEILINGS)
async def test_forty_concurrent_new_cards_over_four_stores_never_pass_the_ceiling(
    open_store: OpenStore, max_active: int, max_total: int
) -> None:
    stores = await open_stores(open_store, 4)
    check = ceiling(AMOUNT, max_active=max_active, max_total=max_total)
    won: list[Reservation] = []
    landed: set[str] = set()
    refused = 0

    async def attempt(i: int) -> None:
        nonlocal refused
        store = stores[i % len(stores)]
        try:
            held = await reserve(store, None, AMOUNT, check=check, owner=f"racer:{i}")
        except Refused:
            refused += 1
            return
        assert held is not None
        won.append(held)
        if i % 2:  # half land at once: the card record replaces the reservation
            await store.settle(held.id, card(f"card-{i}", "active", limit=AMOUNT))
            landed.add(held.id)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(attempt, i)

    assert (len(won), refused) == (5, 35)
    assert await stores[0].totals(TODAY) == DayTotals(TODAY, 5 * AMOUNT, 5, 0)
    # What is still in flight is exactly what won and has not landed, seen from every store.
    in_flight = {r.id for r in won} - landed
    for store in stores:
        assert {r.id for r in await store.reservations()} == in_flight
        assert await store.totals(TODAY) == DayTotals(TODAY, 5 * AMOUNT, 5, 0)


async def test_concurrent_writes_to_one_card_over_four_stores_get_exactly_one_reservation(
    open_store: OpenStore,
) -> None:
    stores = await open_stores(open_store, 4)
    await stores[0].observe([card("a", "active", limit=AMOUNT)])
    results: list[Reservation | None] = []

    async def attempt(i: int) -> None:
        results.append(await reserve(stores[i % 4], "a", AMOUNT + i, owner=f"racer:{i}"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(attempt, i)

    winners = [r for r in results if r is not None]
    assert len(results) == 20
    assert len(winners) == 1
    assert await stores[3].reservations() == winners
    assert (await stores[2].totals(TODAY)).committed_cents == winners[0].commits_cents


async def read_line(stream: BufferedByteReceiveStream) -> str:
    return (await stream.receive_until(b"\n", 65536)).decode()


@pytest.mark.parametrize(("max_active", "max_total"), CEILINGS)
async def test_four_processes_racing_for_new_cards_never_pass_the_ceiling(
    backend: str, target: str, open_store: OpenStore, max_active: int, max_total: int
) -> None:
    # The workers start together on a fresh SQLite home / an empty database: creating the file
    # and the schema (or migrating) races too, before the reservations do.
    processes: list[Process] = []
    try:
        with anyio.fail_after(20):
            for n in range(4):
                args = [f"worker{n}", "10", str(AMOUNT), str(max_active), str(max_total)]
                command = [sys.executable, str(WORKER), backend, target, ACCOUNT, *args]
                processes.append(await anyio.open_process(command, stderr=None))
            outputs = []
            for process in processes:
                assert process.stdout is not None
                outputs.append(BufferedByteReceiveStream(process.stdout))
            for out in outputs:
                assert await read_line(out) == "ready"
            for process in processes:  # go: every process is connected and waiting
                assert process.stdin is not None
                await process.stdin.send(b"go\n")
            results = [json.loads(await read_line(out)) for out in outputs]
            for process in processes:
                assert await process.wait() == 0
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert sum(r["won"] for r in results) == 5
    assert sum(r["refused"] for r in results) == 35
    store = await open_store(ACCOUNT)
    assert await store.totals(TODAY) == DayTotals(TODAY, 5 * AMOUNT, 5, 0)
    # Those that won and did not land are still in flight: nothing else was left behind.
    assert len(await store.reservations()) == sum(r["won"] - r["settled"] for r in results)
