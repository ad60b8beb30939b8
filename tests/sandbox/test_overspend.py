"""No overspend under real concurrency: many OS processes swipe one card at once, over HTTP
against the standalone server and directly on its database file, and the daily limit holds
exactly — the approved total is the limit, the card's spend is the ledger's sum."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.support import Standalone, standalone_server

pytestmark = pytest.mark.anyio

# A client process: opens its connections, says "ready", waits for "go" on stdin, then swipes.
# "burst": WORKERS swipes at once. "stream": WORKERS loops that swipe until the first decline.
# Every swipe has its own Idempotency-Key. Prints one JSON line: [[status, body], ...].
HTTP_CLIENT = r"""
import asyncio, json, sys
import httpx

base, api_key, card, amount, workers, tag, mode, cap = sys.argv[1:9]
amount, workers, cap = int(amount), int(workers), int(cap)

async def main():
    results = []
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    headers = {"Authorization": "Bearer " + api_key}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()

        async def swipe():
            body = {"card_id": card, "amount_cents": amount, "merchant": "M", "mcc": "saas"}
            key = {"Idempotency-Key": f"{tag}-{next(counter)}"}
            response = await c.post("/v1/_test/swipe", json=body, headers=key)
            try:
                payload = response.json()
            except ValueError:
                payload = response.text
            results.append([response.status_code, payload])
            return response.status_code == 200 and payload["approved"]

        async def loop():
            for _ in range(cap):
                if not await swipe():
                    return

        if mode == "burst":
            await asyncio.gather(*(swipe() for _ in range(workers)))
        else:
            await asyncio.gather(*(loop() for _ in range(workers)))
    sys.stdout.write(json.dumps(results) + "\n")

asyncio.run(main())
"""

# A process swiping directly on the database file through the CLI's own entry point
# (``python -m agentcard_mcp`` is ``raise SystemExit(cli.main())``), repeatedly, until the first
# decline. Prints one JSON line: [[exit_code, payload], ...].
DB_CLIENT = r"""
import contextlib, io, json, sys
from agentcard_mcp.cli import main
import agentcard_mcp.sandbox.runner

db, card, amount, cap = sys.argv[1:5]
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
results = []
for _ in range(int(cap)):
    out = io.StringIO()
    argv = ["sandbox", "swipe", card, amount, "--merchant", "M", "--mcc", "saas", "--db", db,
            "--json"]
    with contextlib.redirect_stdout(out):
        code = main(argv)
    payload = json.loads(out.getvalue())
    results.append([code, payload])
    if code != 0 or not payload["approved"]:
        break
sys.stdout.write(json.dumps(results) + "\n")
"""

LOCKED = "database is locked"


@dataclass
class Outcome:
    """One swipe as its client saw it."""

    source: str
    status: int
    payload: Any

    @property
    def approved(self) -> bool:
        return self.status == 200 and self.payload["approved"] is True

    @property
    def auth_id(self) -> str:
        return str(self.payload["agentcard_outcome"]["auth_id"])

    @property
    def reason(self) -> str:
        return str(self.payload["agentcard_outcome"]["reason"])


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "AGENTCARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}


@asynccontextmanager
async def server_with_card(
    tmp_path: Path, daily: int, per_auth: int
) -> AsyncIterator[tuple[Standalone, httpx.AsyncClient, str]]:
    db = tmp_path / "sandbox.db"
    with standalone_server(db, tmp_path / "home") as server:
        headers = {"Authorization": f"Bearer {server.api_key()}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            agents = (await client.get("/v1/agents")).json()["data"]
            response = await client.post(
                "/v1/cards",
                json={
                    "agent_id": agents[0]["id"],
                    "daily_limit_cents": daily,
                    "per_auth_max_cents": per_auth,
                },
            )
            assert response.status_code == 200
            yield server, client, response.json()["id"]


async def run_together(
    commands: Mapping[str, Sequence[str]], tmp_path: Path, extra: Sequence[Sequence[str]] = ()
) -> tuple[dict[str, list[list[Any]]], list[tuple[int, bytes]]]:
    """Starts every command, waits until each says "ready", releases them all at once and
    collects their JSON results. ``extra`` commands are started alongside and simply run."""
    env = _env(tmp_path / "home")
    results: dict[str, list[list[Any]]] = {}
    finished: list[tuple[int, bytes]] = []
    procs: dict[str, tuple[Process, BufferedByteReceiveStream]] = {}

    async def run_extra(command: Sequence[str]) -> None:
        done = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
        finished.append((done.returncode, done.stdout))

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for name, command in commands.items():
                    with (tmp_path / f"{name}.stderr").open("wb") as err:
                        proc = await anyio.open_process(command, stderr=err, env=env, cwd=tmp_path)
                    assert proc.stdout is not None
                    procs[name] = (proc, BufferedByteReceiveStream(proc.stdout))
                for command in extra:
                    tg.start_soon(run_extra, command)
                for _, out in procs.values():
                    assert await out.receive_until(b"\n", 1 << 10) == b"ready"
                for proc, _ in procs.values():
                    assert proc.stdin is not None
                    await proc.stdin.send(b"go\n")
                for name, (proc, out) in procs.items():
                    output = bytearray()
                    with contextlib.suppress(anyio.EndOfStream):
                        while True:  # to the end, so the pipe is closed on our side too
                            output += await out.receive()
                    code = await proc.wait()
                    assert code == 0, (tmp_path / f"{name}.stderr").read_text()[-3000:]
                    results[name] = json.loads(output)
    finally:
        for proc, _ in procs.values():  # after a failure, no child outlives the test
            if proc.returncode is None:
                proc.kill()
            await proc.aclose()
    return results, finished


def http_client(
    server: Standalone, card: str, amount: int, workers: int, tag: str, mode: str, cap: int = 1
) -> list[str]:
    return [sys.executable, "-c", HTTP_CLIENT, server.base_url, server.api_key(), card,
            str(amount), str(workers), tag, mode, str(cap)]  # fmt: skip


async def ledger_of(client: httpx.AsyncClient, card: str) -> list[dict[str, Any]]:
    """The card's whole ledger, oldest first."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/cards/{card}/ledger", params=params)).json()
        entries.extend(page["data"])
        if not page["has_more"]:
            return entries[::-1]
        cursor = page["next_cursor"]


def server_log(server: Standalone) -> list[str]:
    """The stopped server's whole stderr."""
    assert server.process.poll() is not None
    return list(server.stderr)


async def assert_books_balance(
    client: httpx.AsyncClient, card: str, outcomes: list[Outcome], amount: int, limit: int
) -> None:
    """The limit is spent exactly, the ledger agrees with the clients and with the card."""
    approved = [o for o in outcomes if o.approved]
    assert sum(amount for _ in approved) == limit
    assert {o.reason for o in outcomes if not o.approved} <= {"daily_limit_exceeded"}

    card_view = (await client.get(f"/v1/cards/{card}")).json()
    ledger = await ledger_of(client, card)
    assert len(ledger) == len(outcomes)
    approvals = [entry for entry in ledger if entry["decision"] == "approve"]
    assert card_view["current_daily_spend_cents"] == sum(e["amount_cents"] for e in approvals)
    assert card_view["current_daily_spend_cents"] == limit
    assert {e["id"] for e in approvals} == {o.auth_id for o in approved}
    # Approvals were serialized: each one saw exactly the spend of the ones before it.
    steps = [e["current_daily_spend_cents_after"] for e in approvals]
    assert steps == list(range(amount, limit + 1, amount))


async def test_fifty_concurrent_swipes_from_five_processes_never_overspend(
    tmp_path: Path,
) -> None:
    async with server_with_card(tmp_path, daily=10_000, per_auth=10_000) as (server, client, card):
        commands = {
            f"http{i}": http_client(server, card, 300, 10, f"p{i}", "burst") for i in range(5)
        }
        results, _ = await run_together(commands, tmp_path)
        outcomes = [Outcome(name, s, p) for name, rows in results.items() for s, p in rows]

        assert len(outcomes) == 50
        assert [o.status for o in outcomes] == [200] * 50
        assert sum(o.approved for o in outcomes) == 33
        assert sum(300 for o in outcomes if o.approved) == 9900
        assert sorted(o.reason for o in outcomes if not o.approved) == ["daily_limit_exceeded"] * 17
        await assert_books_balance(client, card, outcomes, 300, 9900)

    assert not [line for line in server_log(server) if LOCKED in line]


async def test_cli_swipes_on_the_db_file_race_the_server_without_overspending(
    tmp_path: Path,
) -> None:
    amount, limit = 100, 10_000
    async with server_with_card(tmp_path, daily=limit, per_auth=limit) as (server, client, card):
        db = str(server.db_path)
        commands: dict[str, list[str]] = {
            f"http{i}": http_client(server, card, amount, 5, f"s{i}", "stream", cap=200)
            for i in range(3)
        }
        for i in range(2):
            commands[f"db{i}"] = [sys.executable, "-c", DB_CLIENT, db, card, str(amount), "200"]
        # Two more swipes by the command exactly as an operator types it, started alongside.
        typed = [sys.executable, "-m", "agentcard_mcp", "sandbox", "swipe", card, str(amount),
                 "--merchant", "M", "--mcc", "saas", "--db", db, "--json"]  # fmt: skip
        results, finished = await run_together(commands, tmp_path, extra=[typed, typed])

        outcomes: list[Outcome] = []
        for name, rows in results.items():
            if name.startswith("http"):
                assert {status for status, _ in rows} == {200}
                outcomes += [Outcome(name, status, payload) for status, payload in rows]
            else:
                assert {code for code, _ in rows} == {0}
                outcomes += [Outcome(name, 200, payload) for _, payload in rows]
        for code, stdout in finished:
            assert code == 0
            outcomes.append(Outcome("typed", 200, json.loads(stdout)))

        # The processes on the file really took part in the race.
        assert any(o.approved for o in outcomes if o.source.startswith("db"))
        assert sum(o.approved for o in outcomes) == limit // amount
        await assert_books_balance(client, card, outcomes, amount, limit)

    assert not [line for line in server_log(server) if LOCKED in line]
    for name in commands:
        assert LOCKED not in (tmp_path / f"{name}.stderr").read_text()
