"""The audit log as the server writes it (DESIGN §5, server.CardServer.call_tool, audit.py):
exactly one line per tool call — successes, refusals and failures alike — in order, in
``<home>/audit.jsonl`` (0600); and a server killed with SIGKILL mid-stream leaves a log that is
still JSONL (at most one torn last line), which a restarted server appends to cleanly."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.types import CallToolResult, TextContent
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from agentcard_mcp.audit import MAX_LINE_BYTES, read_tail, scan_tail
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.support import PERMISSIVE_POLICY

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = ["time", "tool", "caller", "outcome", "card_id", "approval_id", "duration_ms", "arguments"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


def outcome_of(result: CallToolResult) -> str:
    return text_of(result).partition(": ")[0] if result.is_error else "ok"


@dataclass
class Expected:
    """One call as its audit line must show it."""

    tool: str
    arguments: dict[str, Any]
    outcome: str
    card_id: str | None
    approval_id: str | None  # "apr_*": any approval id


@dataclass
class Recorder:
    client: Client
    expected: list[Expected] = field(default_factory=list)

    async def call(
        self, tool: str, arguments: dict[str, Any], outcome: str, *, approval: bool = False
    ) -> CallToolResult:
        result = await self.client.call_tool(tool, arguments)
        assert outcome_of(result) == outcome, text_of(result)
        card_id = arguments.get("card_id")
        if tool == "create_card" and not result.is_error:
            assert result.structured_content is not None
            card_id = result.structured_content["id"]
        approval_id = arguments.get("approval_id") or ("apr_*" if approval else None)
        self.expected.append(Expected(tool, arguments, outcome, card_id, approval_id))
        return result


@asynccontextmanager
async def sandbox_client(home: Path, mode: str) -> AsyncIterator[Client]:
    # The built-in default policy: approval above $25, unfreeze and close need approval.
    server = create_server(Settings(issuer="sandbox", home=home))
    async with Client(server, mode=mode) as client:
        yield client


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_call_is_one_line_in_order_with_its_outcome(home: Path, mode: str) -> None:
    async with sandbox_client(home, mode) as client:
        agent = Recorder(client)
        await agent.call("get_limits", {}, "ok")
        made = await agent.call("create_card", {
            "purpose": "audit trail", "daily_limit_cents": 1000, "mcc_allowlist": ["saas"],
        }, "ok")  # fmt: skip
        assert made.structured_content is not None
        card = made.structured_content["id"]
        fractional = {"purpose": "x", "daily_limit_cents": 10.5}
        await agent.call("create_card", fractional, "invalid_params")
        await agent.call("get_card", {"card_id": "card_doesnotexist"}, "not_found")
        too_big = {"purpose": "too big", "daily_limit_cents": 20000}
        await agent.call("create_card", too_big, "guardrail_exceeded")
        big = {"purpose": "needs a human", "daily_limit_cents": 5000}
        await agent.call("create_card", big, "approval_required", approval=True)
        await agent.call("simulate_purchase", {
            "card_id": card, "amount_cents": 300, "merchant": "Linear", "mcc": "saas",
        }, "ok")  # fmt: skip
        await agent.call("simulate_purchase", {
            "card_id": card, "amount_cents": 300, "merchant": "", "mcc": "saas",
        }, "invalid_params")  # fmt: skip
        await agent.call("set_policy", {"card_id": card, "daily_limit_cents": 800}, "ok")
        await agent.call("set_policy", {"card_id": card}, "invalid_params")
        await agent.call("freeze_card", {"card_id": card, "reason": "audit"}, "ok")
        await agent.call("unfreeze_card", {"card_id": card}, "approval_required", approval=True)
        await agent.call("close_card", {"card_id": card}, "approval_required", approval=True)
        await agent.call("read_ledger", {"card_id": card}, "ok")
        await agent.call("list_cards", {"status": "frozen"}, "ok")
        await agent.call("create_card", {**big, "approval_id": "apr_doesnotexist"}, "not_found")
        # The operator approves the pending create; the repeated call goes ahead under it.
        pending_id = next(
            line["approval_id"]
            for line in read_tail(home / "audit.jsonl", 100)
            if line["tool"] == "create_card" and line["outcome"] == "approval_required"
        )
        async with SqliteApprovals(home) as store:
            await store.approve(pending_id)
        await agent.call("create_card", {**big, "approval_id": pending_id}, "ok")

    path = home / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert read_tail(path, 1000) == lines
    assert len(lines) == len(agent.expected)
    for line, want in zip(lines, agent.expected, strict=True):
        assert list(line) == FIELDS
        assert TIME.match(line["time"]), line["time"]
        assert isinstance(line["duration_ms"], float | int)
        assert line["duration_ms"] >= 0
        assert (line["tool"], line["caller"], line["outcome"]) == (want.tool, "stdio", want.outcome)
        assert line["arguments"] == want.arguments
        assert line["card_id"] == want.card_id
        if want.approval_id == "apr_*":
            assert re.fullmatch(r"apr_[a-z0-9]+", line["approval_id"]), line
        else:
            assert line["approval_id"] == want.approval_id
    assert [line["time"] for line in lines] == sorted(line["time"] for line in lines)
    # The approved create names the approval it used and the card it made.
    last = lines[-1]
    assert last["approval_id"] == pending_id
    assert last["card_id"] is not None
    assert last["card_id"] != lines[1]["card_id"]


async def test_a_malformed_card_id_still_makes_a_capped_audit_line(home: Path) -> None:
    async with sandbox_client(home, "legacy") as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("get_card", {"card_id": {"nested": "x" * 20_000}}),
            ("get_card", {"card_id": ["y" * 3_000] * 10}),
            ("unfreeze_card", {"card_id": "card_x", "approval_id": {"q": "w" * 20_000}}),
        ]
        for tool, arguments in calls:
            assert outcome_of(await client.call_tool(tool, arguments)) == "invalid_params"
    raw = (home / "audit.jsonl").read_bytes().splitlines(keepends=True)
    assert len(raw) == len(calls)
    sizes = [len(line) for line in raw]
    lines = [json.loads(line) for line in raw]
    assert [line["outcome"] for line in lines] == ["invalid_params"] * len(calls)
    assert all(size <= MAX_LINE_BYTES for size in sizes), sizes
    assert all(line["card_id"] is None or isinstance(line["card_id"], str) for line in lines)
    assert all(
        line["approval_id"] is None or isinstance(line["approval_id"], str) for line in lines
    )


# --- a real stdio server, killed mid-stream ------------------------------------------------


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    return {
        **env,
        "PYTHONUNBUFFERED": "1",
        "AGENTCARD_HOME": str(home),
        "AGENTCARD_POLICY_FILE": str(PERMISSIVE_POLICY),
    }


class Pipes:
    """Newline-delimited JSON-RPC over a server process's stdin and stdout, by hand."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.responses: dict[int, dict[str, Any]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def read_one(self) -> None:
        """Reads one line; raises EndOfStream / IncompleteRead when stdout ends."""
        message = json.loads(await self.stdout.receive_until(b"\n", 1 << 22))
        if isinstance(message, dict) and "id" in message and "method" not in message:
            self.responses[message["id"]] = message

    async def request(self, ident: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        while ident not in self.responses:
            await self.read_one()
        return self.responses[ident]

    async def handshake(self) -> None:
        init = await self.request(0, "initialize", {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "audit-kill-test", "version": "0"},
        })  # fmt: skip
        assert init["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def tool_call(ident: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


def stream_of_calls(card_id: str, first_id: int, count: int) -> list[dict[str, Any]]:
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("simulate_purchase",
         {"card_id": card_id, "amount_cents": 1, "merchant": "Linear", "mcc": "saas"}),
        ("get_card", {"card_id": card_id}),
        ("get_limits", {}),
        ("simulate_purchase", {"card_id": card_id, "amount_cents": 1.5, "merchant": "Linear",
                               "mcc": "saas"}),  # invalid_params
        ("read_ledger", {"card_id": card_id, "limit": 5}),
        ("get_card", {"card_id": "card_doesnotexist"}),  # not_found
    ]  # fmt: skip
    return [tool_call(first_id + i, *kinds[i % len(kinds)]) for i in range(count)]


@dataclass
class Audit:
    """The audit file: its complete lines parsed, and what follows the last newline."""

    records: list[dict[str, Any]]
    unparsable: list[int]  # indexes of complete lines that are not a JSON object
    fragment: bytes

    @classmethod
    def read(cls, path: Path) -> Audit:
        *complete, fragment = path.read_bytes().split(b"\n")
        records, unparsable = [], []
        for index, line in enumerate(complete):
            try:
                record = json.loads(line)
            except ValueError:
                unparsable.append(index)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                unparsable.append(index)
        return cls(records, unparsable, fragment)


async def kill_mid_stream(home: Path, cwd: Path, total: int, kill_after: int) -> tuple[int, int]:
    """Starts the server, streams ``total`` calls after one create_card, SIGKILLs it once
    ``kill_after`` of them are answered; returns (calls sent, responses received)."""
    sent = 0
    received = 0
    with (cwd / "first.stderr").open("wb") as stderr:
        process = await anyio.open_process(
            [str(SCRIPT)], env=server_env(home), cwd=cwd, stderr=stderr
        )
    async with process:
        pipes = Pipes(process)
        await pipes.handshake()
        created = await pipes.request(1, "tools/call", tool_call(1, "create_card", {
            "purpose": "audit under fire", "daily_limit_cents": 10_000_000,
        })["params"])  # fmt: skip
        assert created["result"]["isError"] is False, created
        sent = received = 1
        card_id = created["result"]["structuredContent"]["id"]
        stream = stream_of_calls(card_id, 2, total)
        killed = anyio.Event()
        in_flight_at_kill = 0

        async def send_all() -> None:
            nonlocal sent
            for message in stream:
                sent += 1  # counted before: a send cut short by the kill may still land
                try:
                    await pipes.send(message)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send_all)
            try:
                while True:
                    await pipes.read_one()
                    answered = len(pipes.responses) - 2  # initialize and the create
                    if answered >= kill_after and not killed.is_set():
                        in_flight_at_kill = sent - 1 - answered
                        process.kill()  # SIGKILL
                        killed.set()
            except (anyio.EndOfStream, anyio.IncompleteRead):
                pass  # stdout closed: the process is gone (a torn last response is not counted)
            tasks.cancel_scope.cancel()
        assert killed.is_set(), "the server answered everything before it could be killed"
        assert in_flight_at_kill > 0, "no call was in flight when the server was killed"
        assert await process.wait() == -9
        received += len(pipes.responses) - 2
    return sent, received


async def one_more_call(home: Path, cwd: Path) -> dict[str, Any]:
    with (cwd / "second.stderr").open("wb") as stderr:
        process = await anyio.open_process(
            [str(SCRIPT)], env=server_env(home), cwd=cwd, stderr=stderr
        )
    async with process:
        pipes = Pipes(process)
        await pipes.handshake()
        response = await pipes.request(1, "tools/call", tool_call(1, "get_limits", {})["params"])
        assert process.stdin is not None
        await process.stdin.aclose()
        assert await process.wait() == 0
    result: dict[str, Any] = response["result"]
    return result


async def test_sigkill_mid_stream_leaves_valid_jsonl_and_a_restart_appends_cleanly(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = home / "audit.jsonl"
    with anyio.fail_after(40):
        sent, received = await kill_mid_stream(home, tmp_path, total=400, kill_after=25)

    after_kill = Audit.read(path)
    assert after_kill.unparsable == []  # every complete line is a JSON object
    tail = scan_tail(path, 10_000)
    assert tail.skipped <= 1
    if tail.skipped:  # the one skipped line is a torn fragment at the very end
        assert after_kill.fragment
    # A line cut exactly before its newline is whole (and read); anything else after the last
    # newline is a torn fragment (and skipped).
    whole = json.loads(after_kill.fragment) if after_kill.fragment and not tail.skipped else None
    before = after_kill.records + ([whole] if whole is not None else [])
    assert tail.records == before
    assert received <= len(before) <= sent, (received, len(before), sent)
    assert all(r["caller"] == "stdio" for r in before)
    assert before[0]["tool"] == "create_card"
    outcomes = {r["outcome"] for r in before}
    assert outcomes <= {"ok", "invalid_params", "not_found"}

    # Whether or not the kill tore a line, make sure there is a fragment, as a kill inside a
    # write leaves: the restarted server must not glue its first line onto it.
    if not after_kill.fragment:
        with path.open("ab") as log:
            log.write(b'{"time":"2026-05-11T07:00:00.000Z","tool":"simulate_pur')
    torn = whole is None
    with anyio.fail_after(30):
        result = await one_more_call(home, tmp_path)
    assert result["isError"] is False

    final = Audit.read(path)
    assert final.fragment == b""  # ends with a newline
    # The fragment is alone on its line, right before the new one; every other line parses.
    assert final.unparsable == ([len(before)] if torn else [])
    assert final.records[: len(before)] == before
    assert len(final.records) == len(before) + 1
    last = final.records[-1]
    assert (last["tool"], last["outcome"], last["caller"]) == ("get_limits", "ok", "stdio")
    tail = scan_tail(path, 10_000)
    assert tail.skipped == (1 if torn else 0)
    assert tail.records == final.records
    assert read_tail(path, 1) == [last]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
