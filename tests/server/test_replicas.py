"""Several servers on one PostgreSQL (DESIGN §12), as ``serve --transport http`` replicas behind a
load balancer would be: an approval requested through one replica and approved by the operator's
``agentcard-mcp approvals approve`` — a process of its own, on the same AGENTCARD_DATABASE_URL —
is usable once, on any replica; the audit records of every replica are one trail, in order; and
an audit record that cannot be written does not turn the call's own outcome into a failure."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import psycopg
import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.postgres.audit import PostgresAudit
from agentcard_mcp.storage.postgres.db import open_pool
from tests.server.conftest import hermetic_settings, text_of

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")
APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")
# Above the built-in policy's approval threshold (2500), within its ceilings.
BIG = {"purpose": "flights to Lisbon", "daily_limit_cents": 5000}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Settings:
    """The sandbox, the built-in policy (approval above $25), the state on PostgreSQL."""
    home = tmp_path / "home"
    home.mkdir()
    hermetic = hermetic_settings(home, monkeypatch)
    return hermetic.model_copy(
        update={"policy_file": None, "database_url": SecretStr(postgres_url)}
    )


async def operator(settings: Settings, tmp_path: Path, *args: str) -> str:
    """The operator's command in its own process, with its own home, on the same database."""
    assert settings.database_url is not None
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    env["AGENTCARD_HOME"] = str(tmp_path / "operator")
    env["AGENTCARD_DATABASE_URL"] = settings.database_url.get_secret_value()
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(SCRIPT), *args], env=env, cwd=tmp_path, check=False, stdin=subprocess.DEVNULL
        )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def test_an_approval_made_through_one_replica_is_used_once_on_another(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        Client(create_server(settings)) as first,
        Client(create_server(settings)) as second,
    ):
        asked = await first.call_tool("create_card", BIG)
        assert text_of(asked).startswith("approval_required: ")
        approval_id = APPROVAL_ID.findall(text_of(asked))[0]

        limits = await second.call_tool("get_limits", {})
        assert limits.structured_content is not None
        pending = limits.structured_content["pending_approvals"]
        assert [line.split(":")[0] for line in pending] == [approval_id]

        listed = await operator(settings, tmp_path, "approvals", "list")
        assert listed.startswith(f"{approval_id}  create_card  ")
        await operator(settings, tmp_path, "approvals", "approve", approval_id)

        made = await second.call_tool("create_card", {**BIG, "approval_id": approval_id})
        assert not made.is_error, text_of(made)
        again = await first.call_tool("create_card", {**BIG, "approval_id": approval_id})
        assert text_of(again).startswith("approval_denied: ")
        assert "single-use" in text_of(again)
        cards = await first.call_tool("list_cards", {})
        assert cards.structured_content is not None
        assert len(cards.structured_content["cards"]) == 1

    # One trail, in the order the calls were made, whichever replica made them; none on disk.
    assert not (settings.home / "audit.jsonl").exists()
    async with open_pool(settings.database_url_text() or "") as pool:
        tail = await PostgresAudit(pool).tail(100)
    assert [(r["tool"], r["outcome"], r["approval_id"]) for r in tail.records] == [
        ("create_card", "approval_required", approval_id),
        ("get_limits", "ok", None),
        ("create_card", "ok", approval_id),
        ("create_card", "approval_denied", approval_id),
        ("list_cards", "ok", None),
    ]
    shown = await operator(settings, tmp_path, "audit", "tail", "-n", "2")
    assert [line.split()[2:4] for line in shown.splitlines()] == [
        ["create_card", "approval_denied"],
        ["list_cards", "ok"],
    ]


async def test_a_call_whose_audit_record_cannot_be_written_keeps_its_outcome(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = settings.database_url_text()
    assert url is not None
    async with Client(create_server(settings)) as client:
        assert not (await client.call_tool("get_limits", {})).is_error
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_records RENAME TO audit_records_away")
        with caplog.at_level(logging.ERROR, logger="agentcard_mcp.audit"):
            made = await client.call_tool(
                "create_card", {"purpose": "coffee", "daily_limit_cents": 900}
            )
        assert not made.is_error, text_of(made)
        assert made.structured_content is not None
        failures = [r for r in caplog.records if r.name == "agentcard_mcp.audit"]
        assert len(failures) == 1
        assert "create_card (ok) not written" in failures[0].getMessage()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_records_away RENAME TO audit_records")
        assert not (await client.call_tool("get_limits", {})).is_error
    async with open_pool(url) as pool:
        tail = await PostgresAudit(pool).tail(10)
    assert [r["tool"] for r in tail.records] == ["get_limits", "get_limits"]
