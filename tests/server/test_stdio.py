"""The MCP server over stdio, as an MCP host runs it: the ``agentcard-mcp`` console script as a
subprocess, reached through the SDK's client and by hand-written JSON-RPC lines. On stdio the
protocol owns stdout; logs go to stderr, and a refused configuration exits 2 before serving."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, TextContent
from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

from tests.server.stdio_session import SCRIPT, RawSession, clean_env, collect
from tests.support import PERMISSIVE_POLICY

pytestmark = pytest.mark.anyio


LIVE_KEY = "ac_live_" + "k7Qz2mX9pL4vB8nR1tY6wE3uI0oA5sDf"  # 32 characters after the prefix


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}({arguments}) -> {text_of(result)}"
    assert result.structured_content is not None
    data: dict[str, Any] = result.structured_content
    assert json.loads(text_of(result)) == data
    return data


# --- the SDK client over stdio -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_session_through_the_sdk_client_over_stdio(tmp_path: Path, mode: str) -> None:
    home = tmp_path / "home"
    # The SDK passes only a few safe variables (PATH, HOME, ...) plus this env: AGENTCARD_HOME is
    # the only AGENTCARD_* variable the server sees; cwd has no .env file.
    params = StdioServerParameters(
        command=str(SCRIPT),
        args=[],
        env={"AGENTCARD_HOME": str(home), "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY)},
        cwd=tmp_path,
    )
    with anyio.fail_after(30):
        async with Client(params, mode=mode) as client:
            if mode == "legacy":
                assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            else:
                assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
            listing = await client.list_tools()
            assert len(listing.tools) == 10

            card = await ok(client, "create_card", {
                "purpose": "conference flights", "daily_limit_cents": 5000,
                "per_auth_max_cents": 3000, "mcc_allowlist": ["travel", "lodging"],
            })  # fmt: skip
            assert card["issuer"] == "sandbox"
            assert card["status"] == "active"
            assert card["purpose"] == "conference flights"
            assert card["daily_limit_cents"] == 5000
            assert card["per_auth_max_cents"] == 3000
            assert card["mcc_allowlist"] == ["travel", "lodging"]
            assert card["current_daily_spend_cents"] == 0
            assert card["id"].startswith("card_")
            assert len(card["last4"]) == 4

            purchase = await ok(client, "simulate_purchase", {
                "card_id": card["id"], "amount_cents": 1500,
                "merchant": "Delta Airlines", "mcc": "travel",
            })  # fmt: skip
            assert purchase["approved"] is True
            assert purchase["decision"] == "approve"
            assert purchase["reason"] == "approved"
            assert purchase["card_id"] == card["id"]
            assert purchase["amount_cents"] == 1500
            assert purchase["current_daily_spend_cents"] == 1500

            ledger = await ok(client, "read_ledger", {"card_id": card["id"]})
            assert len(ledger["entries"]) == 1
            entry = ledger["entries"][0]
            assert entry["id"] == purchase["id"]
            assert entry["decision"] == "approve"
            assert entry["merchant"] == "Delta Airlines"
            assert entry["amount_cents"] == 1500
            assert entry["current_daily_spend_cents_after"] == 1500
            assert ledger["has_more"] is False
            assert ledger["totals"] == {
                "approved_cents": 1500, "approved_count": 1, "declined_count": 0,
            }  # fmt: skip

            tightened = await ok(client, "set_policy", {
                "card_id": card["id"], "daily_limit_cents": 4000, "mcc_allowlist": ["travel"],
            })  # fmt: skip
            assert tightened["daily_limit_cents"] == 4000
            assert tightened["per_auth_max_cents"] == 3000
            assert tightened["mcc_allowlist"] == ["travel"]
            assert tightened["current_daily_spend_cents"] == 1500

            frozen = await ok(client, "freeze_card", {"card_id": card["id"]})
            assert frozen["status"] == "frozen"
            assert frozen["id"] == card["id"]

            declined = await ok(client, "simulate_purchase", {
                "card_id": card["id"], "amount_cents": 100, "merchant": "Delta", "mcc": "travel",
            })  # fmt: skip
            assert declined["approved"] is False
            assert declined["reason"] == "card_frozen"

            limits = await ok(client, "get_limits", {})
            assert limits["issuer"] == "sandbox"
            assert limits["mode"] == "test"
            assert limits["active_cards"] == 0
            assert limits["spent_today_cents"] == 1500

            # An expected failure crosses stdio as a tool error with a stable code.
            bad = await client.call_tool("create_card", {"purpose": "x", "daily_limit_cents": 15.5})
            assert bad.is_error
            assert text_of(bad).startswith("invalid_params: ")
    # The sandbox state lives in AGENTCARD_HOME.
    assert (home / "sandbox.db").is_file()


# --- raw JSON-RPC over the pipes ---------------------------------------------------------------


async def test_raw_stdio_carries_only_json_rpc_and_logs_go_to_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stderr: list[bytes] = []
    with anyio.fail_after(30):
        async with (
            await anyio.open_process(
                [str(SCRIPT)],
                env=clean_env(
                    AGENTCARD_HOME=str(home), AGENTCARD_POLICY_FILE=str(PERMISSIVE_POLICY)
                ),
                cwd=tmp_path,
            ) as process,
            anyio.create_task_group() as tasks,
        ):
            assert process.stderr is not None
            tasks.start_soon(collect, process.stderr, stderr)
            session = RawSession(process)

            init = await session.handshake(1, "raw-test")
            assert init["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION
            assert init["result"]["serverInfo"]["name"] == "agentcard-mcp"
            assert "tools" in init["result"]["capabilities"]

            listing = await session.request(2, "tools/list")
            names = {tool["name"] for tool in listing["result"]["tools"]}
            assert {"create_card", "simulate_purchase", "read_ledger", "get_limits"} <= names

            card = await session.call(3, "create_card", {
                "purpose": "raw pipes", "daily_limit_cents": 5000, "mcc_allowlist": ["saas"],
            })  # fmt: skip
            assert card["isError"] is False
            card_id = card["structuredContent"]["id"]

            purchase = await session.call(4, "simulate_purchase", {
                "card_id": card_id, "amount_cents": 1200, "merchant": "Linear", "mcc": "saas",
            })  # fmt: skip
            assert purchase["isError"] is False
            assert purchase["structuredContent"]["decision"] == "approve"

            ledger = await session.call(5, "read_ledger", {"card_id": card_id})
            assert [e["amount_cents"] for e in ledger["structuredContent"]["entries"]] == [1200]

            bad = await session.call(6, "simulate_purchase", {
                "card_id": card_id, "amount_cents": "12", "merchant": "Linear", "mcc": "saas",
            })  # fmt: skip
            assert bad["isError"] is True
            assert bad["content"][0]["text"].startswith("invalid_params: ")

            limits = await session.call(7, "get_limits", {})
            assert limits["structuredContent"]["mode"] == "test"

            # All answered: closing stdin ends the session; read whatever else comes.
            assert process.stdin is not None
            await process.stdin.aclose()
            await session.read_rest()
            assert await process.wait() == 0

    assert session.lines, "no output on stdout"
    for line in session.lines:
        message = json.loads(line)  # every line is one JSON document...
        assert isinstance(message, dict), line
        assert message.get("jsonrpc") == "2.0", line  # ...and a JSON-RPC 2.0 message
        assert "result" in message or "error" in message or "method" in message, line
    assert sorted(session.responses) == [1, 2, 3, 4, 5, 6, 7]
    logs = b"".join(stderr).decode()
    assert "TEST MODE" in logs
    assert "TEST MODE" not in "".join(session.lines)


# --- a configuration that must not start ----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "code", "names"),
    [
        pytest.param(
            {"AGENTCARD_ISSUER": "agentcard", "AGENTCARD_API_KEY": LIVE_KEY},
            "invalid_params",
            "AGENTCARD_LIVE",
            id="live-key-without-AGENTCARD_LIVE",
        ),
        pytest.param(
            {"AGENTCARD_ISSUER": "agentcard"},
            "invalid_params",
            "AGENTCARD_API_KEY",
            id="agentcard-without-a-key",
        ),
        pytest.param(
            {"AGENTCARD_ISSUER": "bogus"},
            "invalid_params",
            "AGENTCARD_ISSUER",
            id="unknown-issuer-name",
        ),
    ],
)
async def test_a_refused_configuration_exits_2_and_says_why(
    tmp_path: Path, env: dict[str, str], code: str, names: str
) -> None:
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [str(SCRIPT)],
            env=clean_env(AGENTCARD_HOME=str(tmp_path / "home"), **env),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stdout == ""  # nothing on the protocol channel
    assert stderr.startswith(f"agentcard-mcp: {code}: "), stderr
    assert names in stderr
    assert "Traceback" not in stderr
    key = env.get("AGENTCARD_API_KEY", "")
    if key:
        secret = key.split("_", 2)[-1]  # the random part, with or without its prefix
        assert secret not in stderr
        assert secret not in stdout
