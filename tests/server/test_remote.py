"""The remote issuer path end to end: the MCP server configured as ``issuer=agentcard`` talks
real HTTP to the standalone sandbox (``agentcard-mcp sandbox serve``, its own process), in
process through the SDK client and as the stdio console script. The same scripted session
gives the same results as on the embedded default, apart from ids, timestamps, last4 and the
issuer's name; a wrong key and an unreachable issuer fail every tool with a stable code."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.support import PERMISSIVE_POLICY, Standalone, standalone_server

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")

# Values that differ between two runs of the same session (and between issuers).
VOLATILE = frozenset({"id", "card_id", "agent_id", "created_at", "decided_at", "last4"})


@pytest.fixture
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AGENTCARD_* variable and no .env file reach Settings; returns the scratch directory."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def standalone(hermetic: Path) -> Iterator[Standalone]:
    home = hermetic / "standalone"
    home.mkdir()
    with standalone_server(home / "sandbox.db", home) as server:
        yield server


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def normalize(value: Any, issuer: str) -> Any:
    """``value`` with run-specific values replaced by placeholders (their presence kept)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "issuer":
                assert item == issuer
                out[key] = "<issuer>"
            elif key in VOLATILE and item is not None:
                out[key] = f"<{key}>"
            else:
                out[key] = normalize(item, issuer)
        return out
    if isinstance(value, list):
        return [normalize(item, issuer) for item in value]
    if isinstance(value, str):
        return value.replace(issuer, "<issuer>")
    return value


Step = tuple[str, bool, Any]


async def scripted_session(client: Client) -> list[Step]:
    """One agent session; each step is (tool, is_error, structured result or error text)."""
    steps: list[Step] = []

    async def call(tool: str, arguments: dict[str, Any]) -> Any:
        result = await client.call_tool(tool, arguments)
        payload = text_of(result) if result.is_error else result.structured_content
        steps.append((tool, result.is_error, payload))
        return payload

    card = await call("create_card", {
        "purpose": "team offsite", "daily_limit_cents": 5000, "per_auth_max_cents": 3000,
        "mcc_allowlist": ["travel", "lodging"],
    })  # fmt: skip
    card_id = card["id"]
    await call("simulate_purchase", {
        "card_id": card_id, "amount_cents": 1500, "merchant": "Delta Airlines", "mcc": "travel",
    })  # fmt: skip
    await call("simulate_purchase", {
        "card_id": card_id, "amount_cents": 800, "merchant": "Steakhouse", "mcc": "restaurants",
    })  # fmt: skip
    await call("simulate_purchase", {
        "card_id": card_id, "amount_cents": 3500, "merchant": "Hilton", "mcc": "lodging",
    })  # fmt: skip
    await call("read_ledger", {"card_id": card_id})
    await call("read_ledger", {})
    await call("set_policy", {
        "card_id": card_id, "daily_limit_cents": 4000, "mcc_allowlist": ["travel"],
    })  # fmt: skip
    await call("simulate_purchase", {
        "card_id": card_id, "amount_cents": 500, "merchant": "Hilton", "mcc": "lodging",
    })  # fmt: skip
    await call("freeze_card", {"card_id": card_id})
    await call("simulate_purchase", {
        "card_id": card_id, "amount_cents": 100, "merchant": "Delta Airlines", "mcc": "travel",
    })  # fmt: skip
    await call("get_card", {"card_id": card_id})
    await call("list_cards", {"status": "frozen"})
    await call("get_card", {"card_id": "card_doesnotexist"})
    await call("get_limits", {})
    return steps


def check_session(steps: list[Step], issuer: str) -> None:
    """What the scripted session must show, whichever issuer answers it."""
    results = [payload for _, _, payload in steps]
    errors = [(tool, payload) for tool, is_error, payload in steps if is_error]
    assert [tool for tool, _ in errors] == ["get_card"], errors
    (
        card, delta, steak, hilton, card_ledger, agent_ledger, tightened, after_policy, frozen,
        after_freeze, fetched, listed, missing, limits,
    ) = results  # fmt: skip
    assert card["issuer"] == issuer
    assert card["mcc_allowlist"] == ["travel", "lodging"]
    assert (card["daily_limit_cents"], card["per_auth_max_cents"]) == (5000, 3000)
    assert (delta["decision"], delta["reason"]) == ("approve", "approved")
    assert (steak["decision"], steak["reason"]) == ("decline", "category_not_in_allowlist")
    assert (hilton["decision"], hilton["reason"]) == ("decline", "per_auth_limit_exceeded")
    assert [e["merchant"] for e in card_ledger["entries"]] == [
        "Hilton", "Steakhouse", "Delta Airlines",
    ]  # fmt: skip
    assert card_ledger["totals"] == {
        "approved_cents": 1500, "approved_count": 1, "declined_count": 2,
    }  # fmt: skip
    assert agent_ledger["entries"] == card_ledger["entries"]
    assert tightened["daily_limit_cents"] == 4000
    assert tightened["mcc_allowlist"] == ["travel"]
    assert after_policy["reason"] == "category_not_in_allowlist"
    assert frozen["status"] == "frozen"
    assert after_freeze["reason"] == "card_frozen"
    assert fetched == frozen
    assert listed["cards"] == [frozen]
    assert missing.startswith("not_found: ")
    assert limits["issuer"] == issuer
    assert limits["mode"] == "test"
    assert limits["active_cards"] == 0
    # The frozen card still commits what it spent today (DESIGN §5: the day's commitment).
    assert limits["committed_daily_cents"] == 1500
    assert limits["spent_today_cents"] == 1500
    assert limits["issuer_limits"] == {"card_limit": 25, "cards_remaining": 24}


async def embedded_baseline(home: Path) -> list[Step]:
    async with Client(create_server(Settings(home=home, policy_file=PERMISSIVE_POLICY))) as client:
        steps = await scripted_session(client)
    check_session(steps, "sandbox")
    return steps


def assert_same_session(remote: list[Step], embedded: list[Step]) -> None:
    assert len(remote) == len(embedded)
    for (tool, is_error, got), (want_tool, want_error, want) in zip(remote, embedded, strict=True):
        assert (tool, is_error) == (want_tool, want_error)
        assert normalize(got, "agentcard") == normalize(want, "sandbox"), tool


async def test_in_process_server_on_the_standalone_sandbox_matches_the_embedded_one(
    hermetic: Path, standalone: Standalone
) -> None:
    settings = Settings(
        issuer="agentcard",
        base_url=standalone.base_url,
        api_key=SecretStr(standalone.api_key()),
        home=hermetic / "remote-home",
        policy_file=PERMISSIVE_POLICY,
    )
    with anyio.fail_after(20):
        async with Client(create_server(settings)) as client:
            remote = await scripted_session(client)
        embedded = await embedded_baseline(hermetic / "embedded-home")
    check_session(remote, "agentcard")
    assert_same_session(remote, embedded)
    # The remote issuer keeps no sandbox of its own in AGENTCARD_HOME.
    assert not (hermetic / "remote-home" / "sandbox.db").exists()


async def test_stdio_server_on_the_standalone_sandbox_matches_the_embedded_one(
    hermetic: Path, standalone: Standalone
) -> None:
    key = standalone.api_key()
    params = StdioServerParameters(
        command=str(SCRIPT),
        args=[],
        env={
            "AGENTCARD_ISSUER": "agentcard",
            "AGENTCARD_BASE_URL": standalone.base_url,
            "AGENTCARD_API_KEY": key,
            "AGENTCARD_HOME": str(hermetic / "remote-home"),
            "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
        },
        cwd=hermetic,
    )
    with anyio.fail_after(30):
        async with Client(params) as client:
            remote = await scripted_session(client)
        embedded = await embedded_baseline(hermetic / "embedded-home")
    check_session(remote, "agentcard")
    assert_same_session(remote, embedded)
    assert key not in repr(remote)


def all_tools(card_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every tool with well-formed arguments, so that each one reaches the issuer."""
    swipe = {"card_id": card_id, "amount_cents": 100, "merchant": "Linear", "mcc": "saas"}
    return [
        ("get_limits", {}),
        ("create_card", {"purpose": "x", "daily_limit_cents": 1000, "mcc_allowlist": ["saas"]}),
        ("list_cards", {}),
        ("get_card", {"card_id": card_id}),
        ("freeze_card", {"card_id": card_id}),
        ("unfreeze_card", {"card_id": card_id}),
        ("set_policy", {"card_id": card_id, "daily_limit_cents": 500}),
        ("close_card", {"card_id": card_id}),
        ("read_ledger", {"card_id": card_id}),
        ("read_ledger", {}),
        ("simulate_purchase", swipe),
    ]


async def every_tool_fails(settings: Settings, card_id: str) -> list[tuple[str, str]]:
    """(tool, error text) for every tool, called concurrently; fails if any call succeeds."""
    texts: list[tuple[str, str]] = []

    async def one(tool: str, arguments: dict[str, Any]) -> None:
        result = await client.call_tool(tool, arguments)
        assert result.is_error, f"{tool} succeeded: {result.structured_content}"
        assert result.structured_content is None
        texts.append((tool, text_of(result)))

    async with Client(create_server(settings)) as client, anyio.create_task_group() as tasks:
        for tool, arguments in all_tools(card_id):
            tasks.start_soon(one, tool, arguments)
    assert len(texts) == len(all_tools(card_id))
    return texts


async def test_a_wrong_api_key_fails_every_tool_with_issuer_auth_failed(
    hermetic: Path, standalone: Standalone
) -> None:
    # A real card, so that only the key is wrong.
    real = Settings(
        issuer="agentcard",
        base_url=standalone.base_url,
        api_key=SecretStr(standalone.api_key()),
        home=hermetic / "home",
        policy_file=PERMISSIVE_POLICY,
    )
    with anyio.fail_after(20):
        async with Client(create_server(real)) as client:
            made = await client.call_tool("create_card", {"purpose": "x", "daily_limit_cents": 900})
            assert not made.is_error, text_of(made)
            assert made.structured_content is not None
            card_id = made.structured_content["id"]

        wrong_key = "ac_test_" + "Zq8Wn3Lp0Xv5Rt7Yb2Mc4Kd6Hf9Gj1Sa"
        wrong = real.model_copy(update={"api_key": SecretStr(wrong_key)})
        texts = await every_tool_fails(wrong, card_id)
    for tool, text in texts:
        assert text.startswith("issuer_auth_failed: "), (tool, text)
        assert "AGENTCARD_API_KEY" in text, (tool, text)
        assert wrong_key not in text
        assert wrong_key[8:] not in text
    # Nothing changed at the issuer: the card is still there, active, and alone.
    with anyio.fail_after(20):
        async with Client(create_server(real)) as client:
            listing = await client.call_tool("list_cards", {})
    assert listing.structured_content is not None
    cards = listing.structured_content["cards"]
    assert [(c["id"], c["status"], c["daily_limit_cents"]) for c in cards] == [
        (card_id, "active", 900)
    ]


async def test_an_unreachable_issuer_fails_every_tool_with_issuer_unavailable(
    hermetic: Path,
) -> None:
    # A bound socket that never listens: connections to it are refused, and no other process
    # can take the port while the test runs.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        settings = Settings(
            issuer="agentcard",
            base_url=f"http://127.0.0.1:{port}",
            api_key=SecretStr("ac_test_" + "Zq8Wn3Lp0Xv5Rt7Yb2Mc4Kd6Hf9Gj1Sa"),
            home=hermetic / "home",
            policy_file=PERMISSIVE_POLICY,
        )
        with anyio.fail_after(20):
            texts = await every_tool_fails(settings, "card_01ABCDEFGHJKMNPQRSTVWXYZ00")
    for tool, text in texts:
        assert text.startswith("issuer_unavailable: "), (tool, text)
