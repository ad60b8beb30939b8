"""What every benchmark shares: the figure it reports (next to its floor, measured in the same
run), timing that interleaves a target with its floor so that load from elsewhere hits both
alike, the bare MCP server that is the floor of a tool call, and the sandbox-backed homes and
histories the benchmarks measure on."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.server import MCPServer

REPO = Path(__file__).resolve().parents[1]
PERMISSIVE_POLICY = REPO / "tests" / "permissive_policy.toml"

__all__ = [
    "Figure",
    "Step",
    "call",
    "clean_env",
    "fill_ledger",
    "floor_server",
    "interleaved",
    "machine",
    "make_cards",
    "pct_ms",
    "sandbox_settings",
    "served",
    "timed",
]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure, its floor (the same work with nothing of ours behind it, or the
    small history's figure), and the target it is held to (``ok`` None: no target)."""

    bench: str
    name: str
    value: float
    unit: str
    floor: float | None = None
    target: str = ""
    ok: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor == 0:
            return None
        return self.value / self.floor


def pct_ms(samples_ns: Sequence[int], q: float) -> float:
    """The ``q`` quantile of nanosecond samples, in milliseconds (nearest rank)."""
    ordered = sorted(samples_ns)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


async def timed(call: Awaitable[Any]) -> int:
    began = time.perf_counter_ns()
    await call
    return time.perf_counter_ns() - began


# A step does one unit of work and returns the nanoseconds of its timed part.
Step = Callable[[], Awaitable[int]]


async def interleaved(steps: Mapping[str, Step], n: int, warmup: int) -> dict[str, list[int]]:
    """``n`` timed runs of each step after ``warmup``, one of each in turn, the order rotating
    from run to run."""
    for _ in range(warmup):
        for step in steps.values():
            await step()
    names = list(steps)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for i in range(n):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(await steps[name]())
    return samples


def floor_server() -> MCPServer[Any]:
    """A bare MCP server with one tool that does nothing: the floor of any tool call."""
    server: MCPServer[Any] = MCPServer("floor")

    @server.tool()
    async def noop() -> str:
        return "ok"

    return server


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool's structured result; a refusal stops the benchmark (every answer is checked)."""
    result = await client.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return dict(result.structured_content)


def sandbox_settings(home: Path, database_url: str | None = None) -> Any:
    """Settings on the embedded sandbox with the permissive policy (the benchmarks measure the
    tools, not the guardrails' refusals)."""
    from agentcard_mcp.settings import Settings

    values: dict[str, Any] = {"issuer": "sandbox", "home": home, "policy_file": PERMISSIVE_POLICY}
    if database_url is not None:
        values["database_url"] = database_url
    return Settings(**values)


async def make_cards(settings: Any, count: int, active: int = 5) -> str:
    """``count`` cards through the tools, all but ``active`` closed; the first card's id."""
    from agentcard_mcp.server import create_server

    first = ""
    async with Client(create_server(settings)) as client:
        for i in range(count):
            card = await call(
                client, "create_card", {"purpose": f"history {i}", "daily_limit_cents": 1000}
            )
            first = first or str(card["id"])
            if i >= active:
                await call(client, "close_card", {"card_id": card["id"]})
    return first


def fill_ledger(db: Path, card_id: str, rows: int, days: int = 59) -> None:
    """Appends ``rows`` approved authorizations of ``card_id`` to the sandbox's ledger in one
    transaction, spread over the ``days`` before now (the ledger's trigger keeps the usage
    counters, as for a swipe)."""
    from agentcard_mcp.sandbox import Store
    from agentcard_mcp.sandbox.provision import read_credentials

    credentials = read_credentials(db)
    assert credentials is not None
    start = datetime.now(UTC) - timedelta(days=days + 1)
    step = timedelta(days=days) / max(rows, 1)

    def row(i: int) -> tuple[object, ...]:
        stamp = (start + i * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        declined = i % 10 == 9
        return (
            f"auth_bench{i:010d}", credentials.owner_id, credentials.agent_id, card_id, stamp,
            "decline" if declined else "approve",
            "per_auth_limit_exceeded" if declined else "approved",
        )  # fmt: skip

    def insert(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
            "amount_cents, currency, merchant, mcc, current_daily_spend_cents_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 125, 'usd', 'Bench Coffee', 'restaurants', 0)",
            (row(i) for i in range(rows)),
        )

    store = Store(db)
    try:
        store.transaction_sync(insert)
    finally:
        store.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without AGENTCARD_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCARD_")}
    return {**env, **extra}


@contextmanager
def served(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Any]:
    """A uvicorn-based server process; yields tests.support's ServedProcess (base_url, pid),
    and shows its stderr if the benchmark fails while it runs."""
    from tests.support import listening_process

    with listening_process(command, env=env, cwd=cwd) as process:
        try:
            yield process
        except Exception:
            print("".join(process.stderr)[-3000:], file=sys.stderr)
            raise


def machine() -> str:
    try:
        load = "load {:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load unknown"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"mcp {version('mcp')}, sqlite {sqlite3.sqlite_version}, {load}"
    )
