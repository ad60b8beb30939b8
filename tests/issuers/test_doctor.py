"""``agentcard-mcp doctor`` (cli/doctor.py): checks the configured issuer by reading only, and
prints what each tool does there; exit 0 when ready, 1 when the issuer refuses or is out of
reach (one line, no traceback), 2 when the configuration is wrong."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from agentcard_mcp.cli import main
from agentcard_mcp.cli.doctor import run_doctor
from agentcard_mcp.settings import Settings
from tests.fakes.agentcard import FakeAgentCard
from tests.fakes.agentcard_sh import FakeAgentCardSh

BASE_URL = "http://issuer.test"


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCARD_HOME", str(tmp_path / "home"))


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """``main`` configures logging for its process; the next tests get theirs back."""
    root, quiet = logging.getLogger(), logging.getLogger("httpx")
    handlers, levels = list(root.handlers), (root.level, quiet.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    quiet.setLevel(levels[1])


def tool_lines(report: str) -> dict[str, str]:
    tools = report.split("tools:\n", 1)[1]
    return {line.split()[0]: line.split(None, 1)[1] for line in tools.splitlines()}


def test_on_a_fresh_sandbox_it_reports_every_tool_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("issuer: sandbox (the embedded AgentCard sandbox), test mode\n")
    tools = tool_lines(out)
    assert len(tools) == 10
    assert all(said.startswith("yes") for said in tools.values())
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"AGENTCARD_ISSUER": "agentcard-sh", "AGENTCARD_API_KEY": "ak_Hq3Vn8Tr1Lx6"},
         "AGENTCARD_LIVE=1"),
        ({"AGENTCARD_ISSUER": "agentcard"}, "AGENTCARD_API_KEY is required"),
        ({"AGENTCARD_ISSUER": "visa"}, "AGENTCARD_ISSUER"),
        ({"AGENTCARD_LIVE": "yes"}, "AGENTCARD_LIVE"),
    ],
)  # fmt: skip
def test_a_wrong_configuration_exits_2_with_one_line_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    env: dict[str, str], said: str,
) -> None:  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["doctor"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("agentcard-mcp doctor: invalid_params: ")
    assert said in line
    assert "Hq3Vn8Tr1Lx6" not in line


@pytest.mark.anyio
async def test_on_agent_card_sh_it_checks_the_read_scopes_by_reading_only(tmp_path: Path) -> None:
    fake = FakeAgentCardSh()
    fake.add_card()
    settings = Settings(issuer="agentcard-sh", api_key=SecretStr(fake.api_key), live=True,
                        base_url=BASE_URL, home=tmp_path / "home")  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    assert await run_doctor(settings, out, err, fake.transport()) == 0
    report = out.getvalue()
    assert "issuer: agentcard-sh (agent-card.sh v1), live mode" in report
    assert "cards:read: accepted (1 card(s))" in report
    assert "transactions:read: accepted" in report
    assert "cards:write: not checked" in report
    tools = tool_lines(report)
    assert tools["set_policy"] == "no (not_supported)"
    assert tools["simulate_purchase"] == "no (not_supported)"
    assert tools["create_card"].startswith("yes — starts pending")
    assert err.getvalue() == ""
    assert {r.method for r in fake.requests} == {"GET"}


@pytest.mark.anyio
async def test_it_reports_the_issuers_own_limits_and_which_tools_need_a_test_key(
    tmp_path: Path,
) -> None:
    fake = FakeAgentCard(api_key="ac_live_fake_key_0000")
    settings = Settings(issuer="agentcard", api_key=SecretStr(fake.api_key), live=True,
                        base_url=BASE_URL, home=tmp_path / "home")  # fmt: skip
    out = io.StringIO()
    assert await run_doctor(settings, out, io.StringIO(), fake.transport()) == 0
    report = out.getvalue()
    assert "the issuer's own limits: card_limit 25, cards_remaining 25" in report
    assert tool_lines(report)["simulate_purchase"] == "no (test_mode_only: needs a test key)"
    assert {r.method for r in fake.requests} == {"GET"}


@pytest.mark.anyio
async def test_a_refused_key_exits_1_with_one_line_naming_the_issuer(tmp_path: Path) -> None:
    fake = FakeAgentCardSh()
    settings = Settings(issuer="agentcard-sh", api_key=SecretStr("ak_wrong_key"), live=True,
                        base_url=BASE_URL, home=tmp_path / "home")  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    assert await run_doctor(settings, out, err, fake.transport()) == 1
    (line,) = err.getvalue().splitlines()
    assert line.startswith("agentcard-mcp doctor: agentcard-sh: issuer_auth_failed: ")
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert "ak_wrong_key" not in out.getvalue() + err.getvalue()


def test_a_home_others_can_write_exits_2_as_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    assert main(["doctor"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("agentcard-mcp doctor: ")
    assert str(home) in line
    assert list(home.iterdir()) == []
