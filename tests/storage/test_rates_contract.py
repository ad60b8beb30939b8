"""The rate limits' contract (storage.base.RateLimits): a token bucket per key, ``rate`` requests
a minute in bursts of at most ``rate``. The same checks run on both backends' buckets — in process
memory with SQLite (one HTTP process), in PostgreSQL for replicas — and on PostgreSQL the bucket
is one for every replica: concurrent takes through separate pools never get more than it holds."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import anyio
import psycopg
import pytest

from agentcard_mcp.storage.base import RateLimits
from agentcard_mcp.storage.postgres.db import open_pool
from agentcard_mcp.storage.postgres.rates import PostgresRateLimits
from agentcard_mcp.storage.sqlite.rates import MemoryRateLimits

pytestmark = pytest.mark.anyio

# Moves the bucket's time on by this many seconds, without waiting for it.
Elapse = Callable[[float], None]


class Buckets:
    """The backend's buckets: ``open`` gives one more store (on PostgreSQL its own pool, a
    replica as far as the database can tell), ``elapse`` moves time on for all of them."""

    def __init__(self, open_: Callable[[], Awaitable[RateLimits]], elapse: Elapse) -> None:
        self.open = open_
        self.elapse = elapse


@pytest.fixture
async def buckets(backend: str, target: str, anyio_backend: str) -> AsyncIterator[Buckets]:
    if backend == "sqlite":
        now = [1000.0]
        memory = MemoryRateLimits(clock=lambda: now[0])

        async def open_memory() -> RateLimits:
            return memory  # one process: one set of buckets

        def elapse_memory(seconds: float) -> None:
            now[0] += seconds

        yield Buckets(open_memory, elapse_memory)
        return

    def elapse_postgres(seconds: float) -> None:
        # The buckets run on the database's clock: their last update is moved back instead.
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(
                "UPDATE rate_buckets SET updated_at = updated_at - make_interval(secs => %s)",
                (seconds,),
            )

    async with AsyncExitStack() as stack:

        async def open_postgres() -> RateLimits:
            pool = await stack.enter_async_context(open_pool(target, max_size=5))
            return PostgresRateLimits(pool)

        yield Buckets(open_postgres, elapse_postgres)


@pytest.fixture
async def rates(buckets: Buckets) -> RateLimits:
    return await buckets.open()


async def takes(rates: RateLimits, key_id: str, rate: int, n: int) -> list[float | None]:
    return [await rates.take(key_id, rate) for _ in range(n)]


def waits(wait: float | None, expected: float, since: float) -> bool:
    """``wait`` is ``expected`` seconds, less the real time gone by since ``since`` (PostgreSQL's
    buckets run on the database's clock, and the test's own statements take time: each second
    of it brings the next token a second closer)."""
    return wait is not None and expected - (time.monotonic() - since) - 0.01 <= wait <= expected


async def test_a_key_takes_its_whole_rate_at_once_then_waits_for_the_next_token(
    rates: RateLimits,
) -> None:
    began = time.monotonic()
    granted = await takes(rates, "key_a", 30, 30)
    assert granted == [None] * 30

    assert waits(await rates.take("key_a", 30), 2.0, began)  # a token every 2 s at 30 a minute


async def test_each_key_has_its_own_bucket(rates: RateLimits) -> None:
    await takes(rates, "key_a", 30, 30)
    assert await rates.take("key_a", 30) is not None

    assert await rates.take("key_b", 30) is None


async def test_the_bucket_refills_at_the_key_s_rate(rates: RateLimits, buckets: Buckets) -> None:
    began = time.monotonic()
    await takes(rates, "key_a", 60, 60)
    assert await rates.take("key_a", 60) is not None

    buckets.elapse(2.5)  # 2.5 tokens at one a second

    first, second, third = await takes(rates, "key_a", 60, 3)
    assert (first, second) == (None, None)
    assert waits(third, 0.5, began)


async def test_a_full_bucket_holds_no_more_than_the_rate(
    rates: RateLimits, buckets: Buckets
) -> None:
    await rates.take("key_a", 30)
    buckets.elapse(3600)  # an idle hour refills it to 30, not to 1 800

    results = await takes(rates, "key_a", 30, 31)
    assert results[:30] == [None] * 30
    assert results[30] is not None


async def test_refused_takes_spend_nothing_and_the_wait_shrinks_as_time_passes(
    rates: RateLimits, buckets: Buckets
) -> None:
    began = time.monotonic()
    await takes(rates, "key_a", 30, 30)
    first = await rates.take("key_a", 30)
    again = await rates.take("key_a", 30)
    assert first is not None
    assert again is not None
    assert waits(first, 2.0, began)
    assert again <= first  # asking again does not push the next token further away

    buckets.elapse(1.5)
    assert waits(await rates.take("key_a", 30), 0.5, began)

    buckets.elapse(0.5)
    assert await rates.take("key_a", 30) is None


# --- one bucket for every replica (PostgreSQL) ----------------------------------------------


@pytest.fixture
def replicas(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite's buckets belong to its one HTTP process")


@pytest.mark.usefixtures("replicas")
async def test_a_key_s_bucket_is_one_across_replicas(buckets: Buckets) -> None:
    a, b, c = [await buckets.open() for _ in range(3)]

    assert await takes(a, "key_a", 30, 20) == [None] * 20
    assert await takes(b, "key_a", 30, 10) == [None] * 10

    assert await c.take("key_a", 30) is not None
    assert await a.take("key_a", 30) is not None


@pytest.mark.usefixtures("replicas")
async def test_concurrent_takes_through_three_replicas_never_exceed_the_bucket(
    buckets: Buckets,
) -> None:
    replicas = [await buckets.open() for _ in range(3)]
    rate, attempts = 30, 150
    outcomes: list[float | None] = []

    async def take(rates: RateLimits) -> None:
        outcomes.append(await rates.take("key_shared", rate))

    began = time.monotonic()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for n in range(attempts):
                tasks.start_soon(take, replicas[n % 3])
    elapsed = time.monotonic() - began

    granted = outcomes.count(None)
    assert len(outcomes) == attempts
    # Every token the bucket held was handed out, and no more than it held plus what refilled
    # while the takes ran (one every 2 s).
    assert rate <= granted <= rate + int(elapsed * rate / 60), (granted, elapsed)
