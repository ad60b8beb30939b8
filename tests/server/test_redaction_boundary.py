"""Card data never reaches the agent (DESIGN §6): an issuer that leaks the PAN, CVC and expiry
into every field it can — error messages and merchant names included — sits behind every tool,
and nothing the server returns, logs or audits carries any of it."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.redaction import MASK
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.card_corpus import cases, survivors
from tests.fakes.leaky import PANS, LeakyAgentCard, leaked_in
from tests.server.leaky_session import run_leaky_session
from tests.server.stdio_session import SCRIPT, RawSession, clean_env, collect
from tests.support import PERMISSIVE_POLICY, serve_in_thread

pytestmark = pytest.mark.anyio


def leaky_settings(home: Path, fake: LeakyAgentCard) -> Settings:
    return Settings(
        issuer="agentcard",
        api_key=SecretStr(fake.api_key),
        base_url="http://issuer.test",
        home=home,
        policy_file=PERMISSIVE_POLICY,
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_no_card_data_in_any_result_log_or_audit_line(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = LeakyAgentCard()
    home = tmp_path / "home"
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx's debug records too
    server = create_server(leaky_settings(home, fake), issuer_transport=fake.transport())
    async with Client(server, mode=mode) as client:

        async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(name, arguments)
            return result.model_dump(mode="json", by_alias=True, exclude_none=True)

        results = await run_leaky_session(fake, call)

    assert len(fake.requests) > 15  # every answer to these carried the card, in every form
    every_result = json.dumps(results, ensure_ascii=False)
    assert leaked_in(every_result) == []
    assert "•••• 1111" in every_result
    assert "•••• 4444" in every_result
    log_text = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert caplog.records  # the session did log
    assert leaked_in(log_text) == []
    raw_audit = (home / "audit.jsonl").read_text()
    lines = [json.loads(line) for line in raw_audit.splitlines()]
    assert len(lines) == len(results)
    audit = json.dumps(lines, ensure_ascii=False)  # the file escapes non-ASCII: scan both
    assert leaked_in(raw_audit) == []
    assert leaked_in(audit) == []
    assert "•••• 1111" in audit  # the agent's own purpose, masked in the audit line too


async def test_the_leaky_fake_leaks_without_the_boundary() -> None:
    """The scan is not vacuous: the fake's raw answers hold every leak the scan looks for."""
    fake = LeakyAgentCard()
    async with httpx.AsyncClient(
        transport=fake.transport(),
        base_url="http://issuer.test",
        headers={"Authorization": f"Bearer {fake.api_key}"},
    ) as http:
        created = await http.post(
            "/v1/cards", json={"agent_id": fake.agent_id, "daily_limit_cents": 100}
        )
        fake.force(404, message="card on file", path="/v1/cards/nope")
        missing = await http.get("/v1/cards/nope")
    found = set(leaked_in(created.text)) | set(leaked_in(missing.text))
    assert {f"PAN {brand}" for brand in PANS} <= found
    assert {"CVC", "expiry 09/31", "API key"} <= found


async def test_a_real_stdio_session_leaks_nothing_on_stdout_stderr_or_the_audit_log(
    tmp_path: Path,
) -> None:
    """The console script over its pipes, on the leaking issuer over real HTTP: the whole
    JSON-RPC stream the server wrote, its stderr and its audit log hold none of the card."""
    fake = LeakyAgentCard()
    home = tmp_path / "home"
    stderr: list[bytes] = []
    with serve_in_thread(fake.app) as base_url, anyio.fail_after(60):
        env = clean_env(
            AGENTCARD_HOME=str(home),
            AGENTCARD_POLICY_FILE=str(PERMISSIVE_POLICY),
            AGENTCARD_ISSUER="agentcard",
            AGENTCARD_BASE_URL=base_url,
            AGENTCARD_API_KEY=fake.api_key,
            AGENTCARD_LOG_LEVEL="DEBUG",  # every record the SDK, httpx and we can write
        )
        async with (
            await anyio.open_process([str(SCRIPT)], env=env, cwd=tmp_path) as process,
            anyio.create_task_group() as tasks,
        ):
            assert process.stderr is not None
            tasks.start_soon(collect, process.stderr, stderr)
            session = RawSession(process)
            await session.handshake(0, "leak-scan")
            ids = itertools.count(1)

            async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                return await session.call(next(ids), name, arguments)

            results = await run_leaky_session(fake, call)
            assert process.stdin is not None
            await process.stdin.aclose()
            await session.read_rest()
            assert await process.wait() == 0

    stream = "\n".join(session.lines)
    assert len(session.lines) >= len(results) + 1
    assert leaked_in(stream) == []
    assert "•••• 1111" in json.dumps(
        [json.loads(line) for line in session.lines], ensure_ascii=False
    )
    logs = b"".join(stderr).decode()
    assert "HTTP Request" in logs  # the issuer calls were logged...
    assert leaked_in(logs) == []  # ...with nothing of the card in them
    audit = (home / "audit.jsonl").read_text()
    assert len(audit.splitlines()) == len(results)
    assert leaked_in(audit) == []


async def test_every_card_number_shape_an_issuer_leaks_is_masked_in_results_errors_logs_audit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12's corpus (tests/card_corpus.py), its ~8 700 numbers written as text, in the
    leaking issuer's answers: 250 numbers of every brand and shape in each card's nickname
    (the purpose the agent reads) and in each error message, through CardServer.call_tool over
    real JSON-RPC framing (mode="legacy")."""
    texts = [case for case in cases(10_200, seed=12) if isinstance(case.value, str)]
    chunks = iter(
        [
            " ; then ".join(str(c.value) for c in texts[i : i + 250])
            for i in range(0, len(texts), 250)
        ]
    )
    answered: list[str] = []

    def next_chunk() -> str:
        answered.append(next(chunks, ""))
        return f" and then {answered[-1]} ."

    fake = LeakyAgentCard(extra=next_chunk)
    home = tmp_path / "home"
    caplog.set_level(logging.INFO)
    server = create_server(leaky_settings(home, fake), issuer_transport=fake.transport())
    results = []
    async with Client(server, mode="legacy") as client:
        created = await client.call_tool("create_card", {"daily_limit_cents": 5000, "purpose": "x"})
        assert created.structured_content is not None
        card_id = created.structured_content["id"]
        while len(answered) < len(range(0, len(texts), 250)):
            results.append(await client.call_tool("get_card", {"card_id": card_id}))
            fake.force(404, message="no such card", method="GET", path=f"/v1/cards/{card_id}")
            results.append(await client.call_tool("get_card", {"card_id": card_id}))
    shown = json.dumps([r.model_dump(mode="json") for r in results], ensure_ascii=False)
    pans = [case.pan for case in texts]
    leaked = {c.pan for c in texts if any(str(c.value) in chunk for chunk in answered)}
    assert len(leaked) == len(pans)  # every number went out in some answer...
    assert shown.count(MASK) >= len(pans)  # ...came back masked...
    assert survivors(pans, shown) == []  # ...and none whole, in any result or error text
    assert any(r.is_error for r in results)  # error texts...
    assert not all(r.is_error for r in results)  # ...and results
    log_text = "\n".join(record.getMessage() for record in caplog.records)
    assert survivors(pans, log_text) == []
    assert survivors(pans, (home / "audit.jsonl").read_text()) == []
