"""The embedded sandbox issuer, in process (``httpx.ASGITransport``, the app's lifespan running).

- Authorizations: ``POST /v1/_test/swipe`` by 8 concurrent clients, nine in ten approved and
  one in ten declined, every answer checked; the floor is a bare Starlette route reading the
  same request, reached the same way. Target: p99 under 5 ms.
- ``GET /v1/usage`` as the ledger grows: 10 rows, then 100 000 (20 000 in the quick run)
  spread over 60 days; the floor is a bare route. Target: the cost over the floor at the large
  size within 0.5 ms of the small size's (the usage counters, not a ledger scan).
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .core import Figure, fill_ledger, interleaved, pct_ms, timed

BENCH = "sandbox"
SWIPE, USAGE = "/v1/_test/swipe", "/v1/usage"
CLIENTS = 8
PER_AUTH_MAX = 1_000_000
FLOOR_BODY = b'{"agentcard_outcome": {"decision": "approve", "reason": "approved"}, "approved": 1}'


def floor_client() -> httpx.AsyncClient:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(FLOOR_BODY, media_type="application/json")

    app = Starlette(routes=[Route(p, endpoint, methods=["GET", "POST"]) for p in (SWIPE, USAGE)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor")


async def swipes(client: httpx.AsyncClient, card_id: str, n: int, check: bool) -> list[int]:
    """``n`` swipes by CLIENTS concurrent workers; each latency in ns."""
    prefix, latencies = uuid.uuid4().hex[:12], []
    indices = iter(range(n))

    async def swipe(i: int) -> None:
        decline = i % 10 == 0
        body = {"card_id": card_id, "amount_cents": PER_AUTH_MAX + 1 if decline else 125,
                "merchant": "Bench Coffee Roasters", "mcc": "restaurants"}  # fmt: skip
        response = await client.post(SWIPE, json=body, headers={"Idempotency-Key": f"{prefix}{i}"})
        assert response.status_code == 200, response.text
        if check:
            reason = response.json()["agentcard_outcome"]["reason"]
            assert reason == ("per_auth_limit_exceeded" if decline else "approved"), reason

    async def worker() -> None:
        for i in indices:
            latencies.append(await timed(swipe(i)))

    async with anyio.create_task_group() as tg:
        for _ in range(CLIENTS):
            tg.start_soon(worker)
    return latencies


async def authorizations(tmp: Path, quick: bool) -> Figure:
    from tests.support import FakeClock, open_sandbox

    n = 400 if quick else 3000
    async with (
        open_sandbox(tmp / "swipes.db", "inprocess", FakeClock()) as sandbox,
        floor_client() as floor,
    ):
        made = await sandbox.client.post("/v1/cards", json={
            "agent_id": sandbox.credentials.agent_id, "daily_limit_cents": 10**12,
            "per_auth_max_cents": PER_AUTH_MAX, "nickname": "bench"})  # fmt: skip
        card_id = made.json()["id"]
        await swipes(sandbox.client, card_id, n // 10, True)  # warm-up
        ours, bare = [], []
        for _ in range(5):  # rounds, alternated
            ours += await swipes(sandbox.client, card_id, n // 5, True)
            bare += await swipes(floor, card_id, n // 5, False)
    p99, floor_p99 = pct_ms(ours, 0.99), pct_ms(bare, 0.99)
    return Figure(BENCH, f"swipe p99 at {CLIENTS} clients", p99, "ms", floor_p99, "< 5 ms",
                  p99 < 5)  # fmt: skip


async def usage_over_floor(db: Path, rows: int) -> float:
    """p50 of GET /v1/usage minus the floor's, on a ledger of ``rows``."""
    from tests.support import FakeClock, open_sandbox

    # fill_ledger writes the days before the wall clock's now; the sandbox must stand there too,
    # or the whole history lies in its future and counts in every window, the 24 hours included.
    clock = FakeClock(datetime.now(UTC))
    async with open_sandbox(db, "inprocess", clock) as sandbox, floor_client() as floor:
        made = await sandbox.client.post("/v1/cards", json={
            "agent_id": sandbox.credentials.agent_id, "daily_limit_cents": 10_000})  # fmt: skip
        fill_ledger(db, made.json()["id"], rows)

        async def usage() -> int:
            return await timed(sandbox.client.get(USAGE))

        async def bare() -> int:
            return await timed(floor.get(USAGE))

        response = await sandbox.client.get(USAGE)
        assert response.json()["stats"]["total_auths"] == rows, response.text
        samples = await interleaved({"usage": usage, "floor": bare}, 300, 30)
    return pct_ms(samples["usage"], 0.5) - pct_ms(samples["floor"], 0.5)


async def run(quick: bool) -> list[Figure]:
    big = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as name:
        tmp = Path(name)
        swipe = await authorizations(tmp, quick)
        small = await usage_over_floor(tmp / "small.db", 10)
        large = await usage_over_floor(tmp / "large.db", big)
    return [
        swipe,
        Figure(BENCH, f"usage over floor, {big:,} rows (floor: 10 rows)", large, "ms", small,
               "<= +0.5 ms", large <= small + 0.5),
    ]  # fmt: skip
