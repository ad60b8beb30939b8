"""The HTTP transports (DESIGN §10), over real uvicorn on 127.0.0.1: the SDK client runs the
agent's flow over streamable HTTP (stateful and stateless) and SSE in both protocol modes, and
only the operator's keys get in — at their scope, at their rate, on their own sessions. The
checks run with the keys, buckets and bindings on either backend (the ``served`` fixture)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from agentcard_mcp.errors import InvalidParams
from agentcard_mcp.http.app import HttpOptions, check_bind
from agentcard_mcp.keys import ApiKey, hash_key
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import open_storage
from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore
from tests.http.conftest import ACCEPT, Served, serving

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": ACCEPT, **extra}


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


# -- the agent's flow over every transport ---------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize(
    "options",
    [{"transport": "http"}, {"transport": "http", "stateless": True}, {"transport": "sse"}],
    ids=["streamable", "stateless", "sse"],
)
async def test_create_purchase_ledger_freeze_over_http(
    home: Path, options: dict[str, Any], mode: str
) -> None:
    with serving(home, **options) as served:
        key = await served.key("agent")
        with anyio.fail_after(30):
            async with served.client(key, mode) as client:
                card = await ok(client, "create_card", {"daily_limit_cents": 5000,
                                                        "purpose": "over http"})  # fmt: skip
                bought = await ok(client, "simulate_purchase", {
                    "card_id": card["id"], "amount_cents": 1200, "merchant": "ACME",
                    "mcc": "5411",
                })  # fmt: skip
                assert bought["decision"] == "approve"
                ledger = await ok(client, "read_ledger", {"card_id": card["id"]})
                assert [e["amount_cents"] for e in ledger["entries"]] == [1200]
                frozen = await ok(client, "freeze_card", {"card_id": card["id"]})
                assert frozen["status"] == "frozen"
        key_id = (await served.record(key)).id
    lines = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [line["tool"] for line in lines] == [
        "create_card", "simulate_purchase", "read_ledger", "freeze_card",
    ]  # fmt: skip
    assert {line["caller"] for line in lines} == {key_id}  # the audit names the key of every call


# -- who gets in -----------------------------------------------------------------------------


async def test_healthz_needs_no_key_and_reveals_nothing(
    served: Served, http: httpx.AsyncClient
) -> None:
    await served.key()
    response = await http.get(served.base + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "MISSING_KEY"),
        ({"Authorization": "Bearer amcp_short"}, "INVALID_KEY"),
        ({"Authorization": "Bearer AMCP_" + "A" * 32}, "INVALID_KEY"),
        ({"Authorization": "Basic amcp_" + "a" * 32}, "INVALID_KEY"),
        ({"Authorization": "Bearer amcp_" + "a" * 32}, "INVALID_KEY"),  # well formed, unknown
    ],
    ids=["none", "short", "upper", "scheme", "unknown"],
)
async def test_401_without_a_valid_key(
    served: Served, http: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    await served.key()
    response = await http.post(served.url, json=INITIALIZE, headers={"Accept": ACCEPT, **headers})
    assert response.status_code == 401
    assert response.json() == {"error": response.json()["error"], "code": code, "status": 401}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_in_the_query_string_is_refused(
    served: Served, http: httpx.AsyncClient
) -> None:
    key = await served.key()
    for query in ({"api_key": key}, {"x": key}):
        response = await http.post(served.url, params=query, json=INITIALIZE, headers=bearer(key))
        assert response.status_code == 401
        assert response.json()["code"] == "KEY_IN_QUERY"


async def test_a_revoked_key_is_refused_on_its_next_request_mid_session(
    served: Served, http: httpx.AsyncClient
) -> None:
    key = await served.key("to revoke")
    with anyio.fail_after(30):
        async with served.client(key) as client:
            await ok(client, "get_limits", {})
            await served.revoke(key)
            with pytest.raises(MCPError):  # the SDK's word for the 401 it got
                await client.call_tool("get_limits", {})
    assert len(await served.audited()) == 1  # the refused call never reached a tool
    response = await http.post(served.url, json=INITIALIZE, headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_KEY"


async def test_a_read_key_may_read_but_not_write(served: Served) -> None:
    reader = await served.key("reader", scope="cards:read")
    with anyio.fail_after(30):
        async with served.client(reader) as client:
            limits = await ok(client, "get_limits", {})
            assert limits["mode"] == "test"
            await ok(client, "list_cards", {})
            # Refused by the server before the tool runs, in words the agent reads.
            with pytest.raises(MCPError, match=r"^INSUFFICIENT_SCOPE: this key has cards:read; "):
                await client.call_tool("create_card", {"daily_limit_cents": 100, "purpose": "x"})
    cards = sqlite3.connect(served.home / "sandbox.db").execute("SELECT count(*) FROM cards")
    assert cards.fetchone()[0] == 0


async def test_429_with_retry_after_past_the_key_s_rate(
    served: Served, http: httpx.AsyncClient
) -> None:
    key = await served.key("slow", rate=30)
    other = await served.key("other", rate=30)
    statuses = []
    for _ in range(31):
        response = await http.post(served.url, json=INITIALIZE, headers=bearer(key))
        statuses.append(response.status_code)
    assert statuses[:30].count(429) == 0
    assert statuses[30] == 429
    assert response.json() == {"error": "Rate limit exceeded", "code": "RATE_LIMITED",
                               "status": 429}  # fmt: skip
    assert 1 <= int(response.headers["retry-after"]) <= 2  # one token in 2 s at 30/min
    # Each key has its own budget.
    assert (await http.post(served.url, json=INITIALIZE, headers=bearer(other))).status_code == 200


async def test_a_session_answers_only_the_key_that_opened_it(
    served: Served, http: httpx.AsyncClient
) -> None:
    first, second = await served.key("first"), await served.key("second")
    opened = await http.post(served.url, json=INITIALIZE, headers=bearer(first))
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
    hijack = await http.post(served.url, json=ping, headers=bearer(second, **{
        "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}))  # fmt: skip
    assert hijack.status_code == 403
    assert hijack.json()["code"] == "SESSION_KEY_MISMATCH"
    own = await http.post(served.url, json=ping, headers=bearer(first, **{
        "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}))  # fmt: skip
    assert own.status_code in (200, 202)


async def test_revoking_a_key_ends_its_open_stream(home: Path, database_url: str | None) -> None:
    with serving(home, transport="sse", database_url=database_url) as served:
        key = await served.key("streamer")
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", served.url, headers=bearer(key)) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            first = await anext(lines)
            assert first.startswith("event: endpoint")
            await served.revoke(key)
            with anyio.fail_after(10):  # the watcher looks every second
                async for _ in lines:
                    pass  # an open stream would keep this loop waiting past the deadline


# -- Host and Origin -------------------------------------------------------------------------


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
async def test_foreign_host_421_and_foreign_origin_403(home: Path, bind: str) -> None:
    # The checks do not depend on the bound address: with host "0.0.0.0" in the options the app
    # is built as it would be for a public bind (served here on loopback all the same).
    with serving(home, host=bind, allowed_hosts=("cards.example:*",),
                 allowed_origins=("https://app.example",)) as served:  # fmt: skip
        key = await served.key()
        port = served.base.rsplit(":", 1)[1]
        async with httpx.AsyncClient(timeout=30) as http:

            async def post(**headers: str) -> int:
                response = await http.post(
                    served.url, json=INITIALIZE, headers=bearer(key, **headers)
                )
                return response.status_code

            assert await post(Host="evil.example") == 421
            assert await post(Host=f"cards.example:{port}") == 200
            assert await post(Origin="https://evil.example") == 403
            assert await post(Origin="https://app.example") == 200


async def test_a_public_bind_is_refused_until_a_key_exists(
    home: Path, database_url: str | None
) -> None:
    url = None if database_url is None else SecretStr(database_url)
    async with open_storage(Settings(home=home, database_url=url)) as storage:
        options = HttpOptions(host="0.0.0.0", allowed_hosts=("cards.example:*",))
        with pytest.raises(InvalidParams) as refused:
            await check_bind(options, storage.keys)
        text = str(refused.value)
        assert "keys create" in text
        assert "cards.example:*" in text
        assert "http://localhost:8765" in text
        await check_bind(HttpOptions(host="127.0.0.1"), storage.keys)  # loopback: allowed
        _, first = await storage.keys.create("first")
        await check_bind(options, storage.keys)  # a key exists: allowed
        await storage.keys.revoke(first.id)
        with pytest.raises(InvalidParams):  # ... an active one
            await check_bind(options, storage.keys)


# -- the keys file ---------------------------------------------------------------------------


def test_the_keys_file_holds_only_hashes(home: Path) -> None:
    async def create() -> tuple[str, ApiKey]:
        store = SqliteKeyStore(home)
        try:
            return await store.create("prod", scope="cards:read", rate=120)
        finally:
            await store.aclose()

    key, record = anyio.run(create)
    raw = (home / "keys.db").read_bytes()
    for wal in home.glob("keys.db-*"):
        raw += wal.read_bytes()
    secret = key.removeprefix("amcp_")
    assert key.encode() not in raw
    assert secret.encode() not in raw
    assert secret[4:].encode() not in raw  # not even beyond the display prefix
    assert hash_key(key).encode() in raw
    assert record.prefix == key[:9]
    assert (home / "keys.db").stat().st_mode & 0o777 == 0o600


async def test_an_sse_session_answers_only_the_key_that_opened_it(
    home: Path, database_url: str | None
) -> None:
    with serving(home, transport="sse", database_url=database_url) as served:
        first, second = await served.key("first"), await served.key("second")
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", served.url, headers=bearer(first)) as stream,
        ):
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("event: endpoint")
            endpoint = (await anext(lines)).removeprefix("data: ").strip()
            assert "session_id=" in endpoint
            post = served.base + endpoint
            hijack = await http.post(post, json=INITIALIZE, headers=bearer(second))
            assert hijack.status_code == 403
            assert hijack.json()["code"] == "SESSION_KEY_MISMATCH"
            # The SDK reads session_id as a UUID in any spelling: each one is the same session.
            path, _, sid = endpoint.partition("session_id=")
            for spelling in (sid.upper(), str(UUID(sid)), "{" + str(UUID(sid)).upper() + "}"):
                respelled = await http.post(
                    served.base + path + "session_id=" + spelling,
                    json=INITIALIZE,
                    headers=bearer(second),
                )
                assert respelled.status_code == 403, spelling
                assert respelled.json()["code"] == "SESSION_KEY_MISMATCH"
            own = await http.post(post, json=INITIALIZE, headers=bearer(first))
            assert own.status_code == 202  # accepted; the answer comes on the stream


async def test_a_key_revoked_by_another_process_is_refused_on_its_next_request(
    served: Served, http: httpx.AsyncClient
) -> None:
    """On SQLite the server remembers lookups only until keys.db changes, and on PostgreSQL it
    remembers none: a revocation written by the operator's command (another connection, or
    another pool) counts from the next request."""
    key = await served.key("elsewhere")
    assert (await http.post(served.url, json=INITIALIZE, headers=bearer(key))).status_code == 200
    assert (await http.post(served.url, json=INITIALIZE, headers=bearer(key))).status_code == 200
    await served.revoke(key)  # its own connection, as `keys revoke` has
    response = await http.post(served.url, json=INITIALIZE, headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_KEY"
