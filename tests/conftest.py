from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import FakeClock, Sandbox, open_sandbox

# `pytest --hypothesis-profile=long` runs the tool fuzzers (tests/test_fuzz_tools.py) for long;
# tests that set their own example counts keep them.
settings.register_profile("long", max_examples=2_000, deadline=None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["inprocess", "http"])
async def sandbox(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Sandbox]:
    """The sandbox reached in process (as the server embeds it) and over real HTTP (uvicorn,
    127.0.0.1)."""
    async with open_sandbox(tmp_path / "sandbox.db", request.param, clock) as running:
        yield running


@pytest.fixture
async def inprocess(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sandbox]:
    """The sandbox in process only, for tests that are about logic rather than transport."""
    async with open_sandbox(tmp_path / "sandbox.db", "inprocess", clock) as running:
        yield running


@pytest.fixture
def postgres_url() -> str:
    """A fresh database on a real PostgreSQL server (tests/postgres.py)."""
    from tests.postgres import fresh_database

    return fresh_database()
