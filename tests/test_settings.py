"""Settings (DESIGN §11): read from AGENTCARD_* variables and a ``.env`` file, keys kept secret,
and ``check()`` refusing what must not start — a live key without AGENTCARD_LIVE=1, a remote
issuer without a key, an issuer this version cannot talk to. With AGENTCARD_LIVE=1 a live key
runs the server in live mode (against a fake AgentCard API here, never the real one)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import TextContent
from pydantic import SecretStr

from agentcard_mcp.errors import InvalidParams
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import LIVE_KEY_PREFIXES, Settings, load_settings

LIVE_KEY = "ac_live_" + "Hq3Vn8Tr1Lx6Bz0Wm5Kp9Yc2Ds7Fg4Ja"
TEST_KEY = "ac_test_" + "Rb5Nc0Xq7Wm2Lt9Kv4Hz1Pd6Yf3Gs8Je"


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AGENTCARD_* variable from the outside, and the cwd (where .env is read) is tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- where settings come from -----------------------------------------------------------------


def test_defaults_are_the_embedded_sandbox_in_the_users_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    settings = Settings()
    assert settings.issuer == "sandbox"
    assert settings.api_key is None
    assert settings.base_url is None
    assert settings.agent_id is None
    assert settings.policy_file is None
    assert settings.live is False
    assert settings.home == tmp_path / "user" / ".agentcard-mcp"
    assert settings.sandbox_db == settings.home / "sandbox.db"
    assert not settings.home.exists()  # reading settings creates nothing
    settings.check()  # the default configuration starts


def test_ensure_home_creates_a_private_directory(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "a" / "home")
    assert settings.ensure_home() == tmp_path / "a" / "home"
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    assert settings.ensure_home() == settings.home  # idempotent


def test_settings_read_agentcard_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "AGENTCARD_ISSUER": "agentcard",
        "AGENTCARD_API_KEY": TEST_KEY,
        "AGENTCARD_BASE_URL": "http://127.0.0.1:8787",
        "AGENTCARD_AGENT_ID": "agt_from_env",
        "AGENTCARD_POLICY_FILE": str(tmp_path / "policy.toml"),
        "AGENTCARD_HOME": str(tmp_path / "home"),
        "AGENTCARD_LIVE": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.issuer == "agentcard"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == TEST_KEY
    assert settings.base_url == "http://127.0.0.1:8787"
    assert settings.issuer_base_url() == "http://127.0.0.1:8787"
    assert settings.agent_id == "agt_from_env"
    assert settings.policy_file == tmp_path / "policy.toml"
    assert settings.home == tmp_path / "home"
    assert settings.live is True
    settings.check()


def test_settings_read_a_dotenv_file_in_the_working_directory(
    hermetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (hermetic / ".env").write_text(
        "# operator configuration\n"
        "AGENTCARD_ISSUER=agentcard\n"
        f"AGENTCARD_API_KEY={TEST_KEY}\n"
        "AGENTCARD_AGENT_ID=agt_from_dotenv\n"
        f"AGENTCARD_HOME={hermetic / 'dotenv-home'}\n"
        "UNRELATED_SETTING=ignored\n",
        encoding="utf-8",
    )
    settings = Settings()
    assert settings.issuer == "agentcard"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == TEST_KEY
    assert settings.agent_id == "agt_from_dotenv"
    assert settings.home == hermetic / "dotenv-home"
    # Without a base URL, AgentCard's own API.
    assert settings.issuer_base_url() == "https://api.agentcard.so"
    # A variable in the environment wins over the .env file.
    monkeypatch.setenv("AGENTCARD_AGENT_ID", "agt_from_env")
    assert Settings().agent_id == "agt_from_env"


def test_the_api_key_never_shows_in_repr_str_or_a_dump() -> None:
    settings = Settings(issuer="agentcard", api_key=SecretStr(LIVE_KEY), live=True)
    assert isinstance(settings.api_key, SecretStr)
    secret = LIVE_KEY.removeprefix("ac_live_")
    for shown in (
        repr(settings),
        str(settings),
        repr(settings.api_key),
        str(settings.api_key),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
    ):
        assert secret not in shown, shown
    assert settings.api_key.get_secret_value() == LIVE_KEY


# --- check(): what must not start -------------------------------------------------------------


@pytest.mark.parametrize("prefix", LIVE_KEY_PREFIXES)
def test_a_live_key_is_refused_without_agentcard_live(prefix: str) -> None:
    key = prefix + "Hq3Vn8Tr1Lx6Bz0Wm5Kp9Yc2Ds7Fg4Ja"
    settings = Settings(issuer="agentcard", api_key=SecretStr(key))
    assert settings.is_live_key()
    with pytest.raises(InvalidParams) as refused:
        settings.check()
    text = str(refused.value)
    assert text.startswith("invalid_params: ")
    assert "AGENTCARD_LIVE" in text
    assert key not in text
    assert key.removeprefix(prefix) not in text


def test_a_live_key_is_refused_when_the_environment_says_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTCARD_ISSUER", "agentcard")
    monkeypatch.setenv("AGENTCARD_API_KEY", LIVE_KEY)
    with pytest.raises(InvalidParams, match="AGENTCARD_LIVE"):
        Settings().check()
    monkeypatch.setenv("AGENTCARD_LIVE", "0")
    with pytest.raises(InvalidParams, match="AGENTCARD_LIVE"):
        Settings().check()
    monkeypatch.setenv("AGENTCARD_LIVE", "1")
    settings = Settings()
    assert settings.live is True
    settings.check()  # accepted


@pytest.mark.parametrize("value", ["yes", "true", "on", "2", " 1", "01", "True"])
def test_agentcard_live_is_exactly_1_and_any_other_spelling_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AGENTCARD_ISSUER", "agentcard")
    monkeypatch.setenv("AGENTCARD_API_KEY", LIVE_KEY)
    monkeypatch.setenv("AGENTCARD_LIVE", value)
    with pytest.raises(InvalidParams) as refused:
        load_settings()
    assert "AGENTCARD_LIVE: must be exactly 1" in str(refused.value)
    assert LIVE_KEY not in str(refused.value)


@pytest.mark.parametrize(("value", "live"), [("1", True), ("0", False), ("", False)])
def test_agentcard_live_1_allows_live_keys_and_0_or_empty_does_not(
    monkeypatch: pytest.MonkeyPatch, value: str, live: bool
) -> None:
    monkeypatch.setenv("AGENTCARD_LIVE", value)
    assert load_settings().live is live


def test_a_live_key_is_accepted_with_live_and_a_test_key_needs_nothing() -> None:
    Settings(issuer="agentcard", api_key=SecretStr(LIVE_KEY), live=True).check()
    test = Settings(issuer="agentcard", api_key=SecretStr(TEST_KEY))
    assert not test.is_live_key()
    test.check()


def test_agentcard_without_a_key_is_refused() -> None:
    with pytest.raises(InvalidParams) as refused:
        Settings(issuer="agentcard").check()
    assert str(refused.value).startswith("invalid_params: ")
    assert "AGENTCARD_API_KEY" in str(refused.value)


# --- a live key with AGENTCARD_LIVE=1 runs in live mode -----------------------------------------

AGENT = {"id": "agt_live1", "name": "starter", "description": None, "status": "active"}


def _card(card_id: str, *, frozen: bool, daily: int, spend: int) -> dict[str, Any]:
    return {
        "id": card_id,
        "agent_id": AGENT["id"],
        "last4": "4242",
        "daily_limit_cents": daily,
        "per_auth_max_cents": daily // 2,
        "mcc_allowlist": ["travel"],
        "frozen": frozen,
        "current_daily_spend_cents": spend,
        "nickname": "flights",
        "created_at": "2026-05-11T07:00:00Z",
    }


CARDS = [
    _card("card_live_a", frozen=False, daily=50_000, spend=12_000),
    _card("card_live_b", frozen=True, daily=20_000, spend=3_000),
]
USAGE = {
    "plan": {"name": "payg"},
    "owner": {"id": "own_live1", "deposit_balance_cents": 100_000},
    "cards": {"used": 2, "limit": 25, "remaining": 23},
    "stats": {
        "total_auths": 4, "auths_last_24h": 2, "auths_last_7d": 4, "auths_last_30d": 4,
        "total_volume_cents": 15_000, "volume_last_24h_cents": 15_000,
        "volume_last_30d_cents": 15_000, "approve_rate": 0.75, "decline_reasons_24h": {},
    },
}  # fmt: skip


class FakeAgentCard:
    """A tiny AgentCard v1 API (read-only: cards, usage, agents) that records what it is sent."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "no"}})
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/v1/cards"): {"data": CARDS, "has_more": False},
            ("GET", "/v1/usage"): USAGE,
            ("GET", "/v1/agents"): {"data": [AGENT], "has_more": False},
        }
        body = routes.get((request.method, request.url.path))
        if body is None:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        return httpx.Response(200, json=body)


@pytest.mark.anyio
async def test_a_live_key_with_agentcard_live_runs_in_live_mode(
    hermetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCARD_ISSUER", "agentcard")
    monkeypatch.setenv("AGENTCARD_API_KEY", LIVE_KEY)
    monkeypatch.setenv("AGENTCARD_LIVE", "1")
    monkeypatch.setenv("AGENTCARD_HOME", str(hermetic / "home"))
    settings = Settings()
    fake = FakeAgentCard(LIVE_KEY)
    server = create_server(settings, issuer_transport=httpx.MockTransport(fake))
    with anyio.fail_after(10):
        async with Client(server) as client:
            limits = await client.call_tool("get_limits", {})
            swipe = await client.call_tool("simulate_purchase", {
                "card_id": "card_live_a", "amount_cents": 100, "merchant": "Delta",
                "mcc": "travel",
            })  # fmt: skip
    assert not limits.is_error, limits.content
    assert limits.structured_content is not None
    got = dict(limits.structured_content)
    assert got.pop("day")
    assert got == {
        "issuer": "agentcard",
        "mode": "live",
        "active_cards": 1,
        # The active card its daily limit, the frozen one what it spent today (DESIGN §5).
        "committed_daily_cents": 53_000,
        "spent_today_cents": 15_000,
        # What the issuer does not report is left out.
        "issuer_limits": {"card_limit": 25, "cards_remaining": 23},
        # The built-in operator policy: the live card already commits more than its total.
        "max_active_cards": 5,
        "max_card_daily_limit_cents": 10_000,
        "max_per_auth_cents": 5_000,
        "max_total_daily_cents": 20_000,
        "remaining_daily_cents": 0,
        "require_approval_above_cents": 2_500,
        "pending_approvals": [],
    }
    # A live issuer never swipes test purchases.
    assert swipe.is_error
    assert isinstance(swipe.content[0], TextContent)
    assert swipe.content[0].text.startswith("test_mode_only: ")
    # It spoke to AgentCard's API (the default base URL) with the live key, and only read.
    assert fake.requests
    for request in fake.requests:
        assert request.url.host == "api.agentcard.so"
        assert request.method == "GET"
    shown = json.dumps(limits.model_dump(mode="json")) + json.dumps(swipe.model_dump(mode="json"))
    assert LIVE_KEY.removeprefix("ac_live_") not in shown


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("https://api.clawd.cards/v1", "https://api.clawd.cards"),
        ("https://api.clawd.cards/v1/", "https://api.clawd.cards"),
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("https://gw.example/agentcard/v1", "https://gw.example/agentcard"),
        ("https://gw.example/v10", "https://gw.example/v10"),
    ],
)
def test_a_base_url_given_with_its_version_is_taken_without_it(given: str, used: str) -> None:
    # The adapters add /v1 themselves: "…/v1" as the docs print it must not become /v1/v1.
    assert Settings(issuer="agentcard", base_url=given).issuer_base_url() == used
