"""``create_card`` on 1 and on 3 HTTP replicas sharing one PostgreSQL (full run only).

Each replica is the unchanged ``agentcard-mcp serve --transport http --stateless`` in its own
process and home, all on one PostgreSQL (the embedded test server with fsync off, or
``AGENTCARD_TEST_DATABASE_URL``) and one issuer, the standalone ``agentcard-mcp sandbox serve``.
12 clients, spread round-robin over the replicas in use, each create a card and close it
(untimed) back to back through a window. The floor is the same with 1 replica. There is no
target: on 2 cores the replicas share them with PostgreSQL, the issuer and the clients.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from .core import PERMISSIVE_POLICY, Figure
from .http_calls import McpClient, window

BENCH = "replicas"
CLIENTS = 12


@contextlib.contextmanager
def replicas(count: int, tmp: Path, env: dict[str, str]) -> Iterator[list[str]]:
    """``count`` replicas' /mcp URLs, once every /healthz answers."""
    from tests.http_servers import ServerSpec, http_servers

    specs = []
    for n in range(count):
        home = tmp / f"replica-{n}"
        home.mkdir()
        specs.append(ServerSpec(home, tmp / f"replica-{n}.log", env, ("--stateless",)))
    with http_servers(specs, timeout=60) as servers:
        yield [server.mcp_url for server in servers]


async def keys(database_url: str, count: int) -> list[str]:
    from agentcard_mcp.settings import Settings
    from agentcard_mcp.storage import open_storage

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=SecretStr(database_url))
        async with open_storage(settings) as storage:
            return [(await storage.keys.create(f"bench-{i}", rate=300))[0] for i in range(count)]


async def calls_per_second(urls: list[str], api_keys: list[str]) -> float:
    clients = [McpClient(urls[i % len(urls)], key) for i, key in enumerate(api_keys)]
    for client in clients:
        await client.open()

    async def create_and_close(client: McpClient) -> None:
        card = await client.call("create_card", {"purpose": "bench", "daily_limit_cents": 100})
        await client.call("close_card", {"card_id": card["structuredContent"]["id"]})

    await window(clients, create_and_close, 1.0)  # warm-up
    rate = sum([await window(clients, create_and_close, 3.0) for _ in range(2)]) / 2
    for client in clients:
        await client.http.aclose()
    return rate


async def run(quick: bool) -> list[Figure]:
    from tests.postgres import fresh_database
    from tests.support import standalone_server

    database_url = fresh_database()
    with tempfile.TemporaryDirectory(prefix="agentcard-bench-") as name:
        tmp = Path(name)
        (tmp / "issuer").mkdir()
        with standalone_server(tmp / "issuer" / "sandbox.db", tmp / "issuer") as issuer:
            env = {
                "AGENTCARD_DATABASE_URL": database_url, "AGENTCARD_ISSUER": "agentcard",
                "AGENTCARD_BASE_URL": issuer.base_url, "AGENTCARD_API_KEY": issuer.api_key(),
                "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
            }  # fmt: skip
            # A fresh bucket per cell: 12 clients under 300 requests each never wait.
            made = await keys(database_url, 2 * CLIENTS)
            with replicas(3, tmp, env) as urls:
                one = await calls_per_second(urls[:1], made[:CLIENTS])
                three = await calls_per_second(urls, made[CLIENTS:])
    return [
        Figure(BENCH, f"create_card calls/s, 3 replicas, {CLIENTS} clients (floor: 1)", three,
               "/s", one),
    ]  # fmt: skip
