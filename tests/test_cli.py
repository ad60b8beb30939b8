"""The ``agentcard-mcp`` command line, run for real: the console script and ``python -m``, in
subprocesses, with AGENTCARD_HOME pointing into the test's temporary directory."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from agentcard_mcp.sandbox import Store, create_app, provision
from tests.support import ServedProcess, listening_process

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")
MODULE = [sys.executable, "-m", "agentcard_mcp"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCARD_")}
    return {**env, "AGENTCARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}


async def run_cli(
    *args: str, home: Path, cwd: Path, script: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    command = [str(SCRIPT)] if script else MODULE
    with anyio.fail_after(60):
        return await anyio.run_process(
            [*command, *args], check=False, env={**_env(home), **(env or {})}, cwd=cwd,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


@contextmanager
def serving(home: Path, cwd: Path) -> Iterator[ServedProcess]:
    """``agentcard-mcp sandbox serve --port 0`` (the console script) with the default database."""
    command = [str(SCRIPT), "sandbox", "serve", "--port", "0"]
    with listening_process(command, env=_env(home), cwd=cwd) as served:
        yield served


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def database_bytes(db: Path) -> bytes:
    """The database file and its WAL and shared-memory files, as stored on disk."""
    parts = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return b"".join(part.read_bytes() for part in parts if part.exists())


def ledger(db: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM ledger ORDER BY seq")]


async def make_card(db: Path, daily_limit_cents: int) -> str:
    """A card on ``db``, made through the sandbox app in process (no server)."""
    store = Store(db)
    try:
        credentials = provision(store, db)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(store)),
            base_url="http://sandbox",
            headers=bearer(credentials.api_key),
        ) as client:
            response = await client.post(
                "/v1/cards",
                json={"agent_id": credentials.agent_id, "daily_limit_cents": daily_limit_cents},
            )
    finally:
        store.close()
    assert response.status_code == 200, response.text
    card_id: str = response.json()["id"]
    return card_id


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--help"], ["sandbox", "--version"]),
        (["sandbox", "serve", "--help"], ["--host", "--port", "--db"]),
        (
            ["sandbox", "swipe", "--help"],
            ["CARD_ID", "AMOUNT_CENTS", "--merchant", "--mcc", "--currency", "--db", "--url"],
        ),
    ],
)
@pytest.mark.parametrize("script", [True, False], ids=["console-script", "python-m"])
async def test_help_exits_0_and_names_the_options(
    tmp_path: Path, args: list[str], words: list[str], script: bool
) -> None:
    result = await run_cli(*args, home=tmp_path / "home", cwd=tmp_path, script=script)
    assert result.returncode == 0, err(result)
    for word in words:
        assert word in out(result)
    assert not (tmp_path / "home").exists()  # asking for help creates nothing


async def test_version_and_a_missing_command(tmp_path: Path) -> None:
    version = await run_cli("--version", home=tmp_path, cwd=tmp_path, script=True)
    assert version.returncode == 0
    assert "0.1.0" in out(version)
    # The bare command is the stdio MCP server: with stdin closed it ends cleanly, writes
    # nothing on stdout (the protocol channel) and says on stderr that it is the sandbox.
    bare = await run_cli(home=tmp_path, cwd=tmp_path, script=True)
    assert bare.returncode == 0
    assert out(bare) == ""
    assert "TEST MODE" in err(bare)
    missing = await run_cli("sandbox", home=tmp_path, cwd=tmp_path, script=True)
    assert missing.returncode == 2


# --- sandbox serve ----------------------------------------------------------------------------


async def test_serve_provisions_a_private_key_once_and_never_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db, key_file = home / "sandbox.db", home / "sandbox.key"
    with serving(home, tmp_path) as first:
        assert db.is_file()
        assert key_file.is_file()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        key = json.loads(key_file.read_text())["api_key"]
        assert re.fullmatch(r"ac_test_[a-z0-9]{32}", key), key
        async with httpx.AsyncClient(base_url=first.base_url) as client:
            assert (await client.get("/v1/usage", headers=bearer(key))).status_code == 200
            assert (await client.get("/v1/usage")).status_code == 401
            wrong = bearer("ac_test_" + "0" * 32)
            assert (await client.get("/v1/usage", headers=wrong)).status_code == 401
        stored_while_running = database_bytes(db)

    secret_part = key.removeprefix("ac_test_").encode()
    assert secret_part not in stored_while_running
    stderr = "".join(first.stderr)
    assert str(key_file) in stderr
    assert key not in stderr
    assert key not in "".join(first.stdout)

    with serving(home, tmp_path) as second:
        assert json.loads(key_file.read_text())["api_key"] == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        async with httpx.AsyncClient(base_url=second.base_url) as client:
            assert (await client.get("/v1/usage", headers=bearer(key))).status_code == 200
    assert key not in "".join(second.stderr) + "".join(second.stdout)
    assert str(key_file) in "".join(second.stderr)
    assert secret_part not in database_bytes(db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 1


# --- sandbox swipe ----------------------------------------------------------------------------


async def test_swipe_on_the_database_approves_then_declines_over_the_limit(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "sandbox.db"  # the default database: no --db needed
    card = await make_card(db, daily_limit_cents=5000)
    swipe = ["sandbox", "swipe", card]

    approve = await run_cli(
        *swipe, "1500", "--merchant", "Delta Airlines", "--mcc", "travel", home=home, cwd=tmp_path
    )
    assert approve.returncode == 0, err(approve)
    assert out(approve).startswith("APPROVE")
    [row] = ledger(db)
    assert (row["decision"], row["reason"], row["amount_cents"]) == ("approve", "approved", 1500)
    assert (row["card_id"], row["merchant"], row["mcc"]) == (card, "Delta Airlines", "travel")
    assert row["id"] in out(approve)

    over = await run_cli(
        *swipe, "4000", "--merchant", "Delta", "--mcc", "travel", "--db", str(db),
        home=tmp_path / "elsewhere", cwd=tmp_path, script=True,
    )  # fmt: skip
    assert over.returncode == 0, err(over)  # a decline is an answer, not an error
    assert out(over).startswith("DECLINE")
    assert "daily_limit_exceeded" in out(over)

    as_json = await run_cli(
        *swipe, "3500", "--merchant", "Delta", "--mcc", "travel", "--json", home=home, cwd=tmp_path
    )
    assert as_json.returncode == 0, err(as_json)
    payload = json.loads(out(as_json))
    outcome = payload["agentcard_outcome"]
    assert payload["approved"] is True
    assert (outcome["decision"], outcome["reason"]) == ("approve", "approved")
    assert outcome["current_daily_spend_cents"] == 5000

    rows = ledger(db)
    assert [(r["decision"], r["reason"], r["amount_cents"]) for r in rows] == [
        ("approve", "approved", 1500),
        ("decline", "daily_limit_exceeded", 4000),
        ("approve", "approved", 3500),
    ]
    assert rows[2]["id"] == outcome["auth_id"]
    assert rows[2]["current_daily_spend_cents_after"] == 5000


@pytest.mark.parametrize("amount", ["5.00", "0", "-500", "1_000", "1e3"])
async def test_swipe_refuses_an_amount_that_is_not_positive_integer_cents(
    tmp_path: Path, amount: str
) -> None:
    db = tmp_path / "sandbox.db"
    card = await make_card(db, daily_limit_cents=100_000)
    result = await run_cli(
        "sandbox", "swipe", card, amount, "--merchant", "Delta", "--mcc", "travel",
        "--db", str(db), home=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "AMOUNT_CENTS" in err(result)
    assert out(result) == ""
    assert ledger(db) == []


async def test_swipe_on_an_unknown_card_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    await make_card(db, daily_limit_cents=5000)
    result = await run_cli(
        "sandbox", "swipe", "card_doesnotexist", "500", "--merchant", "Delta", "--mcc", "travel",
        "--db", str(db), home=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "resource_missing" in err(result)
    assert "404" in err(result)
    assert out(result) == ""
    assert ledger(db) == []


async def test_swipe_through_a_running_server_with_url(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "sandbox.db"
    with serving(home, tmp_path) as server:
        credentials = json.loads(db.with_suffix(".key").read_text())
        key, agent_id = credentials["api_key"], credentials["agent_id"]
        async with httpx.AsyncClient(base_url=server.base_url, headers=bearer(key)) as client:
            response = await client.post(
                "/v1/cards", json={"agent_id": agent_id, "daily_limit_cents": 5000}
            )
            assert response.status_code == 200, response.text
            card = response.json()["id"]

            result = await run_cli(
                "sandbox", "swipe", card, "1200", "--merchant", "Delta", "--mcc", "travel",
                "--url", server.base_url, "--json", home=home, cwd=tmp_path, script=True,
            )  # fmt: skip
            assert result.returncode == 0, err(result)
            outcome = json.loads(out(result))["agentcard_outcome"]
            assert (outcome["decision"], outcome["current_daily_spend_cents"]) == ("approve", 1200)

            page = (await client.get(f"/v1/cards/{card}/ledger")).json()
            assert [entry["id"] for entry in page["data"]] == [outcome["auth_id"]]
            # the swipe reused the operator's key rather than minting another
            assert json.loads(db.with_suffix(".key").read_text())["api_key"] == key

            text = await run_cli(
                "sandbox", "swipe", card, "5000", "--merchant", "Delta", "--mcc", "travel",
                "--url", server.base_url, home=home, cwd=tmp_path,
            )  # fmt: skip
            assert text.returncode == 0, err(text)
            assert out(text).startswith("DECLINE")
            assert "daily_limit_exceeded" in out(text)


async def test_swipe_with_an_unreachable_url_fails_cleanly_and_writes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "sandbox.db"
    card = await make_card(db, daily_limit_cents=5000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = await run_cli(
        "sandbox", "swipe", card, "500", "--merchant", "Delta", "--mcc", "travel",
        "--url", closed, home=home, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert ledger(db) == []  # no silent fallback to the local database
    assert "Traceback" not in err(result)  # an operator error, not a crash
