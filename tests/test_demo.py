"""``agentcard-mcp demo``: the scripted first session a newcomer runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from agentcard_mcp.demo import run_demo
from agentcard_mcp.errors import TestModeOnly
from agentcard_mcp.settings import Settings

pytestmark = pytest.mark.anyio


async def test_the_demo_shows_an_approval_a_decline_a_tighter_policy_and_a_freeze(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    await run_demo(out, Settings(issuer="sandbox", home=tmp_path))
    text = out.getvalue()
    lines = text.splitlines()
    assert "issuer: sandbox, test mode" in text
    assert any("Delta Airlines" in line and "approve" in line for line in lines)
    assert any("Steakhouse" in line and "category_not_in_allowlist" in line for line in lines)
    assert any(line.split()[:2] == ["status", "frozen"] for line in lines)
    assert any(line.split()[:3] == ["daily", "limit", "$20.00"] for line in lines)
    assert "refused by the operator's policy: guardrail_exceeded:" in text
    # It ran on a temporary sandbox, not in the configured home.
    assert not (tmp_path / "sandbox.db").exists()


async def test_the_demo_refuses_a_live_key(tmp_path: Path) -> None:
    key = SecretStr("ac_live_" + "x" * 32)
    settings = Settings(issuer="agentcard", api_key=key, home=tmp_path, live=True)
    with pytest.raises(TestModeOnly):
        await run_demo(io.StringIO(), settings)


def test_the_demo_command_runs_end_to_end_and_prints_only_the_session(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCARD_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("agentcard-mcp")), "demo"],
        env={**env, "AGENTCARD_HOME": str(tmp_path)},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "> freeze_card(" in result.stdout
    assert "approve" in result.stdout
    assert "decline" in result.stdout
