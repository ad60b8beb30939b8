"""Soak: N agents over streamable HTTP for a bounded time, against the app ``serve --transport
http`` serves (``bench.http_calls``'s server: rate limits counted, never refusing).

Each agent loops: create a card, read it, read its ledger, freeze it, close it. Reported:
calls/s and p99 per minute-long slice (or shorter, for short runs), and the server process's
resident memory after the warm-up and at the end. Target: memory growth after the warm-up
under 10%.

    python -m bench.soak                      # 10 agents, 60 s
    python -m bench.soak --agents 20 --seconds 600
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio

from .core import REPO, clean_env, machine, pct_ms, served
from .http_calls import McpClient


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def agent(url: str, key: str, until: float, latencies: list[tuple[float, int]]) -> None:
    client = McpClient(url, key)
    await client.open()

    async def timed(tool: str, arguments: dict[str, object]) -> dict[str, object]:
        began = time.perf_counter_ns()
        result = await client.call(tool, arguments)
        latencies.append((time.perf_counter(), time.perf_counter_ns() - began))
        return dict(result["structuredContent"])

    while time.perf_counter() < until:
        card = await timed("create_card", {"purpose": "soak", "daily_limit_cents": 100})
        for tool in ("get_card", "read_ledger", "freeze_card", "close_card"):
            await timed(tool, {"card_id": card["id"]})
    await client.http.aclose()


async def soak(agents: int, seconds: float, warmup: float) -> int:
    with tempfile.TemporaryDirectory(prefix="agentcard-soak-") as tmp:
        home = Path(tmp) / "home"
        from agentcard_mcp.storage import open_storage

        from .core import sandbox_settings

        async with open_storage(sandbox_settings(home)) as storage:
            keys = [(await storage.keys.create(f"soak-{i}", rate=300))[0] for i in range(agents)]
        command = [sys.executable, "-m", "bench.http_calls", "--serve", "agentcard", str(home)]
        env = clean_env(PYTHONPATH=str(REPO))
        with served(command, env, Path(tmp)) as server:
            url, pid = f"{server.base_url}/mcp", server.process.pid
            began = time.perf_counter()
            latencies: list[tuple[float, int]] = []
            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(agent, url, key, began + warmup + seconds, latencies)
                await anyio.sleep(warmup)
                after_warmup = rss_kib(pid)
            at_end = rss_kib(pid)
    slice_s = 60.0 if seconds >= 120 else seconds / 2
    print(f"soak: {agents} agents, {warmup:.0f} s warm-up + {seconds:.0f} s; {machine()}")
    print(f"{'slice':>12} | {'calls/s':>8} | {'p99 ms':>7}")
    start = began + warmup
    while start < began + warmup + seconds - 1e-9:
        window = [ns for at, ns in latencies if start <= at < start + slice_s]
        if window:
            print(f"{start - began:5.0f}-{start - began + slice_s:<5.0f} s | "
                  f"{len(window) / slice_s:8.1f} | {pct_ms(window, 0.99):7.1f}")  # fmt: skip
        start += slice_s
    growth = 100 * (at_end - after_warmup) / after_warmup
    verdict = "PASS" if growth < 10 else "MISS"
    print(f"server RSS: {after_warmup / 1024:.1f} MiB after warm-up, {at_end / 1024:.1f} MiB at "
          f"the end: {growth:+.1f}% (target < 10%) {verdict}")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time after warm-up")
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    return anyio.run(soak, args.agents, args.seconds, args.warmup)


if __name__ == "__main__":
    sys.exit(main())
