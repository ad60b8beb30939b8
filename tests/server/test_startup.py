"""What starting the stdio server costs an MCP host, which spawns it for every session.

On stdio, on the embedded sandbox and SQLite, the start loads nothing that only another path
needs: PostgreSQL's driver, the HTTP app, the console, a TOML parser when there is no policy
file. Start-up runs with the cyclic garbage collector paused (cli/loading.py): a server turns it
back on before it serves, freezing what start-up made; any other command turns it back on and
freezes nothing, also when it fails, also when ``main`` is called as a function.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentcard_mcp.cli import main
from tests.server.stdio_session import RawSession, clean_env, collect

# The console script's own two lines, and what the process has loaded and the collector's state
# written to stderr when it exits.
PROBE = """\
import atexit, gc, json, sys
def report():
    state = {"modules": sorted(sys.modules), "enabled": gc.isenabled(),
             "frozen": gc.get_freeze_count()}
    sys.stderr.write("PROBE " + json.dumps(state) + "\\n")
atexit.register(report)
from agentcard_mcp.cli import main
sys.exit(main())
"""

# Needed only on another path: AGENTCARD_DATABASE_URL, --transport http/sse, the console, a
# policy file, a policy file refused.
NOT_ON_STDIO = (
    "psycopg",
    "psycopg_pool",
    "agentcard_mcp.storage.postgres",
    "agentcard_mcp.http",
    "agentcard_mcp.http_app",
    "agentcard_mcp.console",
    "agentcard_mcp.demo",
    "agentcard_mcp.cli.doctor",
    "tomllib",
    "difflib",
)


async def served_once(home: Path, cwd: Path) -> dict[str, Any]:
    """Spawns the server as a host does, runs one tools/call, closes stdin; the probe's report."""
    stderr: list[bytes] = []
    with anyio.fail_after(30):
        async with (
            await anyio.open_process(
                [sys.executable, "-c", PROBE],
                env=clean_env(AGENTCARD_HOME=str(home)),
                cwd=cwd,
            ) as process,
            anyio.create_task_group() as tasks,
        ):
            assert process.stderr is not None
            tasks.start_soon(collect, process.stderr, stderr)
            session = RawSession(process)
            await session.handshake(1, "startup-test")
            limits = await session.call(2, "get_limits", {})
            assert limits["isError"] is False
            assert limits["structuredContent"]["issuer"] == "sandbox"
            assert process.stdin is not None
            await process.stdin.aclose()
            await session.read_rest()
            assert await process.wait() == 0
    said = b"".join(stderr).decode()
    probe = [line for line in said.splitlines() if line.startswith("PROBE ")]
    assert len(probe) == 1, said[-2000:]
    report: dict[str, Any] = json.loads(probe[0].removeprefix("PROBE "))
    return report


@pytest.mark.anyio
async def test_the_stdio_server_loads_nothing_another_path_needs_and_serves_collecting(
    tmp_path: Path,
) -> None:
    report = await served_once(tmp_path / "home", tmp_path)
    loaded = set(report["modules"])
    assert "agentcard_mcp.server" in loaded  # the probe saw the server's process
    assert loaded.isdisjoint(NOT_ON_STDIO), sorted(loaded.intersection(NOT_ON_STDIO))
    # It served with the collector on, start-up's objects frozen out of its walks.
    assert report["enabled"] is True
    assert report["frozen"] > 10_000


@pytest.fixture
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``main`` in this process: its own home, and the logging it configures undone after."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCARD_HOME", str(tmp_path / "home"))
    root, quiet = logging.getLogger(), logging.getLogger("httpx")
    handlers, levels = list(root.handlers), (root.level, quiet.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    quiet.setLevel(levels[1])


@pytest.mark.usefixtures("hermetic")
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["policy", "show"], 0),  # a command that is not a server
        (["serve", "--port", "9000"], 2),  # a server refused before it serves
        (["approvals", "approve", "apr_missing"], 2),  # a command that fails
    ],
)
def test_a_command_that_does_not_serve_leaves_the_collector_on_and_freezes_nothing(
    argv: list[str], code: int
) -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert main(argv) == code
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_help_leaves_the_collector_on() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert gc.isenabled()
