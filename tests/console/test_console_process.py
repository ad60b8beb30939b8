"""The real ``agentcard-mcp console`` process on 127.0.0.1: the login URL it prints, and the
live stream that brings a newly pending approval to an open page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.console.conftest import POLICY

pytestmark = pytest.mark.anyio

_LOGIN = re.compile(r"(http://127\.0\.0\.1:(\d+))/login\?token=[A-Za-z0-9_\-]+")


@contextmanager
def console_process(home: Path, policy: Path) -> Iterator[str]:
    """Runs ``agentcard-mcp console --port 0``; yields the login URL it printed."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    env |= {"AGENTCARD_HOME": str(home), "AGENTCARD_POLICY_FILE": str(policy)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentcard_mcp", "console", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr or []), daemon=True)
    drain.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket accepts connections
        match = _LOGIN.search(line)
        assert match is not None, f"no login URL in {line!r}: {''.join(stderr)}"
        yield match.group(0)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


async def test_the_printed_login_url_logs_in_once_and_the_event_stream_brings_new_approvals(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    home = tmp_path / "home"
    with console_process(home, policy) as login_url:
        base = _LOGIN.search(login_url).group(1)  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
            assert (await browser.get("/")).status_code == 401
            response = await browser.get(login_url)
            assert response.status_code == 303
            assert (await browser.get("/")).status_code == 200
            async with httpx.AsyncClient(base_url=base, timeout=10) as other:
                assert (await other.get(login_url)).status_code == 403  # used already
                assert (await other.get("/")).status_code == 401
            with anyio.fail_after(15):
                async with browser.stream("GET", "/events") as events:
                    assert events.headers["content-type"].startswith("text/event-stream")
                    lines = events.aiter_lines()
                    first = await _event(lines)
                    assert first["count"] == 0
                    settings = Settings(home=home, policy_file=policy)
                    async with SqliteApprovals(settings.home) as store:
                        await store.request("create_card", {"daily_limit_cents": 5000}, "big card")
                    second = await _event(lines)
                    assert second["count"] == 1
                    assert 'data-approval-id="apr_' in second["html"]
                    assert 'data-action="approve"' in second["html"]


async def _event(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The data of the next ``pending`` event."""
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "pending":
            data: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("the stream ended")
