"""The issuer registry (issuers/__init__.py) is the one place issuers are named: settings accept
exactly its names, live keys are told apart by its prefixes, AGENTCARD_LIVE opts in by exactly
``1``, the README's table is the one it generates, and no module outside issuers/ names an
issuer. The pacing every issuer request goes through (issuers/pacing.py) keeps the issuer's
documented rate limit."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

import agentcard_mcp
from agentcard_mcp.errors import InvalidParams, IssuerRateLimited
from agentcard_mcp.issuers import REGISTRY, TOOLS
from agentcard_mcp.issuers.pacing import Pace
from agentcard_mcp.issuers.table import BEGIN, END, markdown_table
from agentcard_mcp.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
REMOTE = [name for name, info in REGISTRY.items() if not info.embedded]


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_readme_table_is_the_one_the_registry_generates() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == markdown_table(), "run: python -m agentcard_mcp.issuers.table --write README.md"
    # One row per tool, one column per issuer.
    for tool, _ in TOOLS:
        assert f"| `{tool}` |" in block
    assert block.splitlines()[0].count("|") == len(REGISTRY) + 2


def test_no_module_outside_issuers_names_an_issuer() -> None:
    package = Path(agentcard_mcp.__file__).parent
    names = "|".join(re.escape(name) for name in REGISTRY)
    quoted = re.compile(rf"""["']({names})["']""")
    offenders = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in package.rglob("*.py")
        # issuers/ is the registry and its adapters; sandbox/ is the sandbox issuer's own code.
        if path.parent.name not in ("issuers", "sandbox")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if quoted.search(line) and not _the_sandbox_command(path, line)
    ]
    assert offenders == []


def _the_sandbox_command(path: Path, line: str) -> bool:
    """``agentcard-mcp sandbox …``: a command of the CLI, not the issuer setting."""
    return path.parent.name == "cli" and '"sandbox"' in line and "issuer" not in line


def test_agentcard_issuer_accepts_exactly_the_registry_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in REGISTRY:
        monkeypatch.setenv("AGENTCARD_ISSUER", name)
        assert load_settings().issuer == name
    monkeypatch.setenv("AGENTCARD_ISSUER", "marqeta")
    with pytest.raises(InvalidParams) as refused:
        load_settings()
    assert str(refused.value).startswith("invalid_params: AGENTCARD_ISSUER: ")
    for name in REGISTRY:
        assert name in str(refused.value)


@pytest.mark.parametrize("value", ["true", "yes", "on", "2", "1 "])
def test_agentcard_live_is_exactly_1(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AGENTCARD_LIVE", value)
    with pytest.raises(InvalidParams, match=r"AGENTCARD_LIVE: .*exactly 1"):
        load_settings()
    monkeypatch.setenv("AGENTCARD_LIVE", "1")
    assert load_settings().live is True
    monkeypatch.setenv("AGENTCARD_LIVE", "0")
    assert load_settings().live is False


@pytest.mark.parametrize("issuer", REMOTE)
def test_each_issuers_live_keys_need_agentcard_live_and_its_test_keys_do_not(
    issuer: str,
) -> None:
    info = REGISTRY[issuer]
    secret = "Hq3Vn8Tr1Lx6Bz0Wm5Kp9Yc2Ds7Fg4Ja"
    for prefix in info.live_key_prefixes:
        settings = Settings(issuer=issuer, api_key=SecretStr(prefix + secret))
        assert settings.key_mode() == "live"
        if info.adapter is not None:
            with pytest.raises(InvalidParams, match="AGENTCARD_LIVE=1") as refused:
                settings.check()
            assert secret not in str(refused.value)
            Settings(issuer=issuer, api_key=SecretStr(prefix + secret), live=True).check()
    for prefix in info.test_key_prefixes:
        settings = Settings(issuer=issuer, api_key=SecretStr(prefix + secret))
        assert settings.key_mode() == "test"
    # A key the issuer does not document as a test key may move money: live.
    assert Settings(issuer=issuer, api_key=SecretStr("mystery_" + secret)).key_mode() == "live"


def test_a_live_key_of_one_issuer_under_another_is_still_live() -> None:
    for issuer in REMOTE:
        for other in REMOTE:
            for prefix in REGISTRY[other].live_key_prefixes:
                key = SecretStr(prefix + "Hq3Vn8Tr1Lx6Bz0Wm5Kp9Yc2Ds7Fg4Ja")
                assert Settings(issuer=issuer, api_key=key).key_mode() == "live"


def test_the_sandbox_is_always_test_mode_and_needs_no_key() -> None:
    settings = Settings(issuer="sandbox")
    assert settings.key_mode() == "test"
    settings.check()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.anyio
async def test_pace_waits_for_a_slot_briefly_and_refuses_a_long_wait_with_its_length() -> None:
    clock = Clock()
    pace = Pace(2, 60.0, max_wait=5.0, clock=clock, sleep=clock.sleep)
    await pace.take("issuer")
    clock.now += 57.0
    await pace.take("issuer")
    # The window is full; the first slot frees in 3 s: waited out.
    await pace.take("issuer")
    assert clock.slept == [3.0]
    # Now the next slot frees in 57 s: not slept through, said.
    with pytest.raises(IssuerRateLimited) as limited:
        await pace.take("issuer")
    assert limited.value.retry_after == 57.0
    assert "retry after 57 s" in str(limited.value)
    clock.now += 57.0
    await pace.take("issuer")
    assert clock.slept == [3.0]
