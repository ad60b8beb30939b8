"""``agentcard-mcp serve --transport http --console`` as a real process: the agent's app on one
port and the operator console on its own 127.0.0.1 port, in one process and one event loop; the
console is never reachable on the agent's port."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.console.conftest import POLICY
from tests.server.stdio_session import SCRIPT, clean_env

_LOGIN = re.compile(r"http://127\.0\.0\.1:(\d+)/login\?token=[A-Za-z0-9_\-]+")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_serve_with_console_serves_both_apps_on_their_own_ports(
    tmp_path: Path, transport: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    home = tmp_path / "home"
    agent_port, console_port = _free_port(), _free_port()
    stateless = ["--stateless"] if transport == "http" else []
    command = [str(SCRIPT), "serve", "--transport", transport, *stateless, "--console",
               "--port", str(agent_port), "--console-port", str(console_port)]  # fmt: skip
    process = subprocess.Popen(
        command,
        env=clean_env(AGENTCARD_HOME=str(home), AGENTCARD_POLICY_FILE=str(policy)),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr or []), daemon=True)
    drain.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the console's socket accepts
        match = _LOGIN.search(line)
        assert match is not None, f"no login URL in {line!r}: {''.join(stderr)}"
        assert int(match.group(1)) == console_port
        agent = f"http://127.0.0.1:{agent_port}"
        deadline = time.monotonic() + 30
        while True:  # the agent's app starts beside the console, not necessarily first
            try:
                health = httpx.get(agent + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(stderr)
                time.sleep(0.05)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}

        with httpx.Client(base_url=f"http://127.0.0.1:{console_port}", timeout=10) as browser:
            assert browser.get("/").status_code == 401
            assert browser.get(match.group(0)).status_code == 303
            page = browser.get("/")
            assert page.status_code == 200
            assert page.headers["content-security-policy"] == "default-src 'self'"
            assert "agentcard console" in page.text
            cookies = dict(browser.cookies)
        assert cookies

        # The agent's port knows nothing of the console, even with its login URL and cookie.
        login = match.group(0).replace(f":{console_port}/", f":{agent_port}/")
        with httpx.Client(base_url=agent, timeout=10, cookies=cookies) as stranger:
            for response in (stranger.get(login), stranger.get("/"), stranger.get("/cards")):
                assert response.status_code in (401, 404), response.text
                assert "agentcard console" not in response.text
                assert "content-security-policy" not in response.headers
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("serve --console did not stop on SIGTERM:\n" + "".join(stderr))
        drain.join(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_console_needs_an_http_transport(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "serve", "--console"],
        env=clean_env(AGENTCARD_HOME=str(tmp_path / "home")),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--console needs --transport http or sse" in done.stderr


def test_serve_help_describes_the_console_flags(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "serve", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0
    assert "--console" in done.stdout
    assert "--console-port" in done.stdout
