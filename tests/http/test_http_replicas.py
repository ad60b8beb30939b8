"""Several ``agentcard-mcp serve --transport http`` replicas on one PostgreSQL behave as one server
(DESIGN §12): each replica is its own OS process with its own home, as on its own machine, and
the operator's ``agentcard-mcp keys`` command reaches them only through the database. A key it
makes works on every replica, its revocation is refused by every replica on the next request,
the key's rate limit is one bucket whichever replica a request lands on, and a session opened on
one replica answers only its key on the others."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from agentcard_mcp.keys import KEY_PATTERN
from tests.http.conftest import ACCEPT
from tests.http_servers import ServerSpec, http_servers
from tests.server.stdio_session import SCRIPT, clean_env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": ACCEPT, **extra}


def cli(home: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, on its own home: it shares nothing with the replicas but the
    database."""
    return subprocess.run(
        [str(SCRIPT), *args],
        env=clean_env(AGENTCARD_HOME=str(home), AGENTCARD_DATABASE_URL=database_url),
        cwd=home.parent,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def create_key(home: Path, database_url: str, *args: str) -> tuple[str, str]:
    """A key made by ``agentcard-mcp keys create``: the key and its id."""
    created = cli(home, database_url, "keys", "create", "--name", "replicated", *args)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert KEY_PATTERN.fullmatch(key)
    match = re.search(r"key_[a-z0-9]{12}", created.stderr)
    assert match is not None
    return key, match.group()


@contextmanager
def replica(home: Path, database_url: str, *flags: str) -> Iterator[str]:
    """``agentcard-mcp serve --transport http`` as its own process; yields its /mcp URL once
    /healthz answers."""
    home.mkdir(parents=True)
    spec = ServerSpec(home, home.parent / f"{home.name}.log",
                      {"AGENTCARD_DATABASE_URL": database_url}, flags)  # fmt: skip
    with http_servers([spec]) as [server]:
        yield server.mcp_url


@contextmanager
def replicas(tmp_path: Path, database_url: str, *flags: str) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(replica(tmp_path / f"replica-{n}", database_url, *flags))
            for n in range(2)
        ]


@pytest.fixture
def operator(tmp_path: Path) -> Path:
    return tmp_path / "operator"


def test_a_key_made_by_the_cli_works_on_every_replica_and_its_revocation_on_every_one(
    tmp_path: Path, postgres_url: str, operator: Path
) -> None:
    with (
        replicas(tmp_path, postgres_url, "--stateless") as urls,
        httpx.Client(timeout=30) as http,
    ):
        key, key_id = create_key(operator, postgres_url)  # made while the replicas run

        for url in urls:
            answered = http.post(url, json=INITIALIZE, headers=bearer(key))
            assert answered.status_code == 200, answered.text
            assert '"serverInfo":{"name":"agentcard-mcp"' in answered.text  # an SSE event
        listed = cli(operator, postgres_url, "keys", "list")
        row = next(line for line in listed.stdout.splitlines() if key_id in line)
        assert "never" not in row  # its use was recorded, in the one database

        assert cli(operator, postgres_url, "keys", "revoke", key_id).returncode == 0

        for url in urls:
            refused = http.post(url, json=INITIALIZE, headers=bearer(key))
            assert refused.status_code == 401
            assert refused.json() == {"error": "Invalid API key", "code": "INVALID_KEY",
                                      "status": 401}  # fmt: skip


def test_one_key_s_rate_limit_is_one_bucket_across_replicas(
    tmp_path: Path, postgres_url: str, operator: Path
) -> None:
    key, _ = create_key(operator, postgres_url, "--rate", "30")
    statuses: Counter[tuple[int, int]] = Counter()  # (replica, status)
    with (
        replicas(tmp_path, postgres_url, "--stateless") as urls,
        httpx.Client(timeout=30) as http,
    ):
        began = time.monotonic()
        for n in range(50):
            response = http.post(urls[n % 2], json=INITIALIZE, headers=bearer(key))
            statuses[n % 2, response.status_code] += 1
            if response.status_code == 429:
                assert response.json()["code"] == "RATE_LIMITED"
                assert int(response.headers["retry-after"]) >= 1
        elapsed = time.monotonic() - began

    assert {status for _, status in statuses} == {200, 429}, statuses
    granted = statuses[0, 200] + statuses[1, 200]
    # 30 at once, then one every 2 s: never 30 on each replica.
    assert 30 <= granted <= 30 + int(elapsed / 2), (statuses, elapsed)
    assert statuses[0, 429] > 0
    assert statuses[1, 429] > 0


def test_a_session_opened_on_one_replica_answers_only_its_key_on_the_other(
    tmp_path: Path, postgres_url: str, operator: Path
) -> None:
    owner, _ = create_key(operator, postgres_url)
    other, _ = create_key(operator, postgres_url)
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    with replicas(tmp_path, postgres_url) as (first, second), httpx.Client(timeout=30) as http:
        opened = http.post(first, json=INITIALIZE, headers=bearer(owner))
        assert opened.status_code == 200
        session = {"mcp-session-id": opened.headers["mcp-session-id"],
                   "mcp-protocol-version": "2025-06-18"}  # fmt: skip

        for url in (first, second):
            hijack = http.post(url, json=ping, headers=bearer(other, **session))
            assert hijack.status_code == 403
            assert hijack.json()["code"] == "SESSION_KEY_MISMATCH"
        # Its own key gets past the door on either replica (the second has no such session in
        # memory: old-protocol sessions need sticky routing, DESIGN §12).
        assert http.post(first, json=ping, headers=bearer(owner, **session)).status_code == 200
        assert http.post(second, json=ping, headers=bearer(owner, **session)).status_code != 403
