"""One process of the multi-process budget race (test_budget_concurrency.py).

    python race_worker.py BACKEND TARGET ACCOUNT NAME ATTEMPTS AMOUNT MAX_ACTIVE MAX_TOTAL

Opens its own store (BACKEND ``sqlite``: the home TARGET; ``postgres``: the database URL
TARGET), prints ``ready``, waits for a line on stdin (so every process starts together), then
makes ATTEMPTS concurrent reservations for new cards of AMOUNT under the ceilings; every other
one it wins it settles at once into a card record, as a create_card that landed would. Prints
one JSON line: how many it won, how many the check refused, how many it settled.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

# Run as a script: the repository root is not on the path, so the shared helpers come by file.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agentcard_mcp.storage.base import BudgetStore, Hold
from tests.storage.support import LEASE_S, NOW, TODAY, Refused, card, ceiling


async def race(
    store: BudgetStore, name: str, attempts: int, amount: int, max_active: int, max_total: int
) -> dict[str, int]:
    check = ceiling(amount, max_active=max_active, max_total=max_total)
    outcome = {"won": 0, "refused": 0, "settled": 0}

    async def attempt(i: int) -> None:
        try:
            held = await store.reserve(
                Hold(None, amount, True), check, day=TODAY, owner=f"{name}:{i}", now=NOW,
                lease_s=LEASE_S,
            )  # fmt: skip
        except Refused:
            outcome["refused"] += 1
            return
        assert held is not None  # a new card is never held by another write
        outcome["won"] += 1
        if i % 2:
            await store.settle(held.id, card(f"{name}-{i}", "active", limit=amount))
            outcome["settled"] += 1

    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    async with anyio.create_task_group() as tg:
        for i in range(attempts):
            tg.start_soon(attempt, i)
    return outcome


async def main(argv: list[str]) -> None:
    backend, target, account, name = argv[:4]
    attempts, amount, max_active, max_total = (int(a) for a in argv[4:8])
    if backend == "sqlite":
        from agentcard_mcp.storage.sqlite.budget import SqliteBudget

        store = SqliteBudget(Path(target), account)
        try:
            outcome = await race(store, name, attempts, amount, max_active, max_total)
        finally:
            await store.aclose()
    else:
        from agentcard_mcp.storage.postgres import open_postgres

        async with open_postgres(target, account) as storage:
            outcome = await race(storage.budget, name, attempts, amount, max_active, max_total)
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
