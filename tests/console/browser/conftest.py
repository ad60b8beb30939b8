"""A real browser on the real console: Debian's chromium driven by Playwright, the
``agentcard-mcp console`` process and an HTTP MCP server process (``serve --transport http``)
sharing one AGENTCARD_HOME, and an agent on the SDK's streamable HTTP client with a key.

Each page the browser visits is saved as a screenshot in ``tests/console/browser/artifacts/``
(git-ignored), named after the test.

Without chromium the browser tests are skipped, except under CI (``CI`` set), where that is a
failure: ``.ci/run`` installs chromium, and CI must not pass by skipping them."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.async_api import Browser, Page, StorageState, async_playwright, expect

from tests.console.test_console_process import console_process
from tests.server.conftest import Agent
from tests.server.stdio_session import SCRIPT, clean_env

ARTIFACTS = Path(__file__).with_name("artifacts")

# Approvals go to the operator (the console), never in band; 25 dollars and up need one.
POLICY = """
require_approval_above_cents = 2500
unfreeze = "allow"
close = "allow"
approval_channel = "console"
"""

# As the machine's notes give them: headless, no sandbox as root, and none of chromium's own
# background connections (this machine's network is closed and refuses them).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

TIMEOUT_MS = 10_000
_LOGIN_BASE = re.compile(r"^(http://127\.0\.0\.1:\d+)/")


def chromium_path() -> str:
    """The system's chromium; a skip without it, or a failure under CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        reason = (
            "no chromium on PATH: install Debian's chromium (apt-get install chromium) for "
            "the console's browser tests"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}; .ci/run installs it as root")
        pytest.skip(reason)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless chromium with a fresh profile (Playwright's default temporary one)."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Screenshots:
    """Saves a screenshot of a page as ``<test>-<n>-<label>.png`` in ARTIFACTS."""

    prefix: str
    saved: list[Path] = field(default_factory=list)

    async def __call__(self, page: Page, label: str) -> Path:
        path = ARTIFACTS / f"{self.prefix}-{len(self.saved) + 1:02d}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screenshots:
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    return Screenshots(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mcp_server(home: Path, policy: Path) -> Iterator[Callable[[], str]]:
    """Starts ``agentcard-mcp serve --transport http`` as its own process; yields a function
    that waits until /healthz answers and returns the /mcp URL (so other processes can start
    meanwhile)."""
    port = _free_port()
    log = home.parent / "serve.log"
    command = [str(SCRIPT), "serve", "--transport", "http", "--port", str(port)]
    env = clean_env(AGENTCARD_HOME=str(home), AGENTCARD_POLICY_FILE=str(policy))
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=home.parent,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> str:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start:\n{log.read_text()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    return base + "/mcp"
            except httpx.TransportError:
                time.sleep(0.05)

    try:
        yield ready
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def making_key(home: Path) -> subprocess.Popen[str]:
    """``keys create`` started; its stdout is the key."""
    return subprocess.Popen(
        [str(SCRIPT), "keys", "create", "--name", "browser-test-agent"],
        env=clean_env(AGENTCARD_HOME=str(home)),
        cwd=home.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Stage:
    """The console (its printed login URL and base), the MCP server's URL, a key, the home."""

    home: Path
    login_url: str
    console: str
    mcp_url: str
    key: str
    # The browser's cookies once it has logged in (the login URL works once).
    session: StorageState | None = None

    @asynccontextmanager
    async def agent(self) -> AsyncIterator[Agent]:
        """An agent on the SDK's streamable HTTP client, with the key as a Bearer header."""
        headers = {"Authorization": f"Bearer {self.key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(self.mcp_url, http_client=http)) as client,
        ):
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            yield Agent(client, tools)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """The MCP server, the console and a key, started side by side on one fresh home, for the
    whole module (starting them takes seconds; each test leaves nothing pending)."""
    tmp_path = tmp_path_factory.mktemp("browser")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    home = tmp_path / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)  # no .env from the working directory
        key_process = making_key(home)
        with mcp_server(home, policy) as mcp_ready, console_process(home, policy) as login_url:
            out, err = key_process.communicate(timeout=60)
            assert key_process.returncode == 0, err
            match = _LOGIN_BASE.match(login_url)
            assert match is not None
            yield Stage(home, login_url, match.group(1), mcp_ready(), out.strip())


@pytest.fixture
async def page(browser: Browser, stage: Stage, shot: Screenshots) -> AsyncIterator[Page]:
    """A fresh browser page logged in through the console's printed URL, on the approvals
    page; closed before the console stops (an open page keeps its event stream open)."""
    context = await browser.new_context(storage_state=stage.session)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        opened = await context.new_page()
        if stage.session is None:  # the first test logs in; the others reuse its cookie
            response = await opened.goto(stage.login_url)
            assert response is not None
            assert response.ok, response.status
            assert opened.url == stage.console + "/"  # redirected to the approvals page
            stage.session = await context.storage_state()
        else:
            await opened.goto(stage.console + "/")
        await expect(opened).to_have_title("(0) agentcard console")
        await shot(opened, "logged-in")
        yield opened
    finally:
        await context.close()
