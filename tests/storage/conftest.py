"""The budget store's contract is the same for both backends (DESIGN §12): every test here runs
against SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh database on a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from agentcard_mcp.storage.base import BudgetStore
from agentcard_mcp.storage.sqlite.budget import SqliteBudget

ACCOUNT = "sandbox:test"

# Opens another store on the test's one database (another process or replica, as far as the
# store can tell: its own connection or pool); closed at the end of the test.
OpenStore = Callable[[str], Awaitable[BudgetStore]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the backend's state lives: the SQLite home, or the PostgreSQL database's URL."""
    if backend == "sqlite":
        return str(tmp_path / "home")
    url = request.getfixturevalue("postgres_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
async def open_store(backend: str, target: str, anyio_backend: str) -> AsyncIterator[OpenStore]:
    async with AsyncExitStack() as stack:

        async def open_(account: str) -> BudgetStore:
            if backend == "sqlite":
                store: BudgetStore = SqliteBudget(Path(target), account)
                stack.push_async_callback(store.aclose)
                return store
            from agentcard_mcp.storage.postgres import open_postgres

            storage = await stack.enter_async_context(open_postgres(target, account))
            return storage.budget

        yield open_


@pytest.fixture
async def store(open_store: OpenStore) -> BudgetStore:
    return await open_store(ACCOUNT)
