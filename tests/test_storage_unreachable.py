"""A database that cannot be reached stops every command at once with one line saying where —
never a traceback, never the URL's password."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.server.stdio_session import SCRIPT, clean_env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns: nothing listens


@pytest.mark.parametrize(
    "command",
    [[], ["serve", "--transport", "http"], ["approvals", "list"], ["audit", "tail"]],
    ids=["stdio", "http", "approvals", "audit"],
)
def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://agentcard:s3cret-pw@127.0.0.1:{_closed_port()}/agentcard"
    done = subprocess.run(
        [str(SCRIPT), *command],
        env=clean_env(AGENTCARD_HOME=str(tmp_path / "home"), AGENTCARD_DATABASE_URL=url),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    # audit tail exits 1 when it cannot read the trail, as it always has; the others exit 2.
    assert done.returncode == (1 if command[:1] == ["audit"] else 2)
    assert "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout
    assert f"127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}" in done.stderr
    assert done.stdout == ""  # on stdio, stdout is the protocol's alone
