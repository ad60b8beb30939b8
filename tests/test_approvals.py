"""Out-of-band approvals: the digest an approval is bound to, the SQLite file they live in, and
the operator's ``approvals`` command. What every backend does with them (single use, expiry,
sharing, races) is tests/storage/test_approvals_contract.py."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentcard_mcp.approvals import approvals_command, digest
from agentcard_mcp.home import UnsafeHome
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

CREATE = {
    "purpose": "flights to Lisbon",
    "daily_limit_cents": 5000,
    "per_auth_max_cents": 5000,
    "mcc_allowlist": ["travel"],
}
SUMMARY = "create_card: daily limit $50.00, per purchase $50.00, categories travel"


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteApprovals]:
    async with SqliteApprovals(tmp_path, clock=clock) as opened:
        yield opened


# --- digest --------------------------------------------------------------------------------


def test_digest_is_sha256_of_canonical_json_of_tool_and_arguments() -> None:
    canonical = (
        '{"arguments":{"daily_limit_cents":5000,"mcc_allowlist":["travel"],'
        '"per_auth_max_cents":5000,"purpose":"flights to Lisbon"},"tool":"create_card"}'
    )
    assert digest("create_card", CREATE) == hashlib.sha256(canonical.encode()).hexdigest()


def test_digest_ignores_key_order_approval_id_idempotency_key_and_nulls() -> None:
    reordered = dict(reversed(list(CREATE.items())))
    repeated = {**CREATE, "approval_id": "apr_x", "idempotency_key": "fresh", "agent_id": None}
    assert digest("create_card", reordered) == digest("create_card", CREATE)
    assert digest("create_card", repeated) == digest("create_card", CREATE)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("set_policy", CREATE),
        ("create_card", {**CREATE, "daily_limit_cents": 5001}),
        ("create_card", {**CREATE, "mcc_allowlist": ["travel", "saas"]}),
        ("create_card", {**CREATE, "single_use": False}),
        ("create_card", {**CREATE, "reason": {"nested": None}}),
    ],
)
def test_digest_changes_with_the_tool_or_any_bound_argument(
    tool: str, arguments: dict[str, Any]
) -> None:
    assert digest(tool, arguments) != digest("create_card", CREATE)


# --- the SQLite file (the behaviour of every backend: tests/storage/test_approvals_contract.py) --


async def test_the_database_is_private_to_its_owner(tmp_path: Path, store: SqliteApprovals) -> None:
    await store.request("create_card", CREATE, SUMMARY)
    files = [name for name in os.listdir(tmp_path) if name.startswith("approvals.db")]
    assert set(files) >= {"approvals.db", "approvals.db-wal"}
    for name in files:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


async def test_a_symlink_in_place_of_the_database_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"")
    (tmp_path / "approvals.db").symlink_to(elsewhere)
    with pytest.raises(UnsafeHome, match=r"approvals\.db is a symbolic link"):
        SqliteApprovals(tmp_path)
    assert elsewhere.read_bytes() == b""


# --- the operator's command ---------------------------------------------------------------------


async def run(
    action: str, approval_id: str | None, store: SqliteApprovals, clock: FakeClock
) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await approvals_command(action, approval_id, store, out, err, clock=clock)
    return status, out.getvalue() + err.getvalue()


async def test_list_says_when_nothing_is_pending(store: SqliteApprovals, clock: FakeClock) -> None:
    assert await run("list", None, store, clock) == (0, "no pending approvals\n")


async def test_list_shows_id_tool_summary_and_time_left(
    store: SqliteApprovals, clock: FakeClock
) -> None:
    approval, _ = await store.request("create_card", CREATE, SUMMARY)
    clock.advance(minutes=2, seconds=30)
    status, text = await run("list", None, store, clock)
    assert status == 0
    first, second = text.splitlines()
    assert first == f"{approval.id}  create_card  expires in 07:30  {SUMMARY}"
    assert second.startswith('    arguments: {"daily_limit_cents":5000,')


async def test_list_escapes_terminal_control_characters_from_the_agent(
    store: SqliteApprovals, clock: FakeClock
) -> None:
    await store.request("create_card", {"purpose": "x\x1b[2K\u202e"}, "create_card: x\x1b[2K\u202e")
    status, text = await run("list", None, store, clock)
    assert status == 0
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\x1b[2K\\u202e" in text


async def test_approve_and_deny_from_the_command_line(
    store: SqliteApprovals, clock: FakeClock
) -> None:
    yes, _ = await store.request("create_card", CREATE, SUMMARY)
    no, _ = await store.request("close_card", {"card_id": "card_1"}, "close_card: card_1")
    status, text = await run("approve", yes.id, store, clock)
    assert status == 0
    assert text.startswith(f"approved {yes.id}: {SUMMARY}\n")
    assert await run("deny", no.id, store, clock) == (0, f"denied {no.id}: close_card: card_1\n")
    assert (await store.get(yes.id)).status == "approved"
    assert (await store.get(no.id)).status == "denied"


async def test_the_command_refuses_unknown_expired_and_decided_ids(
    store: SqliteApprovals, clock: FakeClock
) -> None:
    decided = await store.approve((await store.request("create_card", CREATE, SUMMARY)).approval.id)
    expiring, _ = await store.request("close_card", {"card_id": "card_1"}, "close_card: card_1")
    assert (await run("deny", decided.id, store, clock))[0] == 2
    assert "not_found" in (await run("approve", "apr_unknown", store, clock))[1]
    clock.advance(minutes=11)
    status, text = await run("approve", expiring.id, store, clock)
    assert (status, "expired" in text) == (2, True)
    assert (await run("approve", None, store, clock))[0] == 2
    assert (await run("frobnicate", None, store, clock))[0] == 2


# --- the command as a process: failures of the store the settings name -------------------------

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")


async def approvals_process(home: Path, *args: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(SCRIPT), "approvals", *args],
            env={**clean, "AGENTCARD_HOME": str(home), **env},
            cwd=home.parent,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert done.stdout == b""
    return done.returncode, done.stderr.decode()


async def test_the_command_says_where_the_store_could_not_be_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    os.makedirs(home / "approvals.db")  # not a file
    status, err = await approvals_process(home, "list")
    assert status == 2
    assert err.startswith(f"agentcard-mcp approvals list: {home}: "), err
    assert "Traceback" not in err


async def test_a_database_url_that_is_not_postgresql_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    os.makedirs(home)
    url = "mysql://operator:hunter2secret@db.internal/cards"
    status, err = await approvals_process(home, "approve", "apr_x", AGENTCARD_DATABASE_URL=url)
    assert status == 2
    assert "AGENTCARD_DATABASE_URL must be a postgresql:// URL" in err
    assert "hunter2secret" not in err
