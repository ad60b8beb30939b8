"""The HTTP door tried as an attacker would (DESIGN §10, issue 12), over real uvicorn on
127.0.0.1: a session answers only the key that opened it, in every spelling of its id and for
responses as well as requests; a ``cards:read`` key is offered only the read tools and reads why
a write is refused; Host and Origin are matched exactly, on every path, before anything else;
malformed bodies are refused with the refusal body, one log line and a rate-limit token.

One streamable HTTP server and one SSE server serve the whole module (each test makes its own
keys)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from starlette.responses import PlainTextResponse

from agentcard_mcp import scopes
from agentcard_mcp.errors import InvalidParams
from agentcard_mcp.http.body import MAX_BODY
from agentcard_mcp.http.hosts import HostGuard, parse_allowed
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.http.conftest import ACCEPT, Served, serving
from tests.support import PERMISSIVE_POLICY

pytestmark = pytest.mark.anyio

POLICY = """
max_card_daily_limit_cents = 100000000
max_per_auth_cents = 100000000
max_total_daily_cents = 100000000
max_active_cards = 100
require_approval_above_cents = 1000
approval_channel = "elicit"
"""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
# What the server's elicitation would get back from a client that approves.
APPROVE = {"jsonrpc": "2.0", "id": 0, "result": {"action": "accept", "content": {"approve": True}}}
WRITE_TOOLS = {"create_card", "freeze_card", "unfreeze_card", "set_policy", "close_card",
               "simulate_purchase"}  # fmt: skip


@pytest.fixture(scope="module")
def streamable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("streamable")
    (root / "policy.toml").write_text(POLICY)
    with serving(root / "home", root / "policy.toml") as served:
        yield served


@pytest.fixture(scope="module")
def sse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("sse")
    (root / "policy.toml").write_text(POLICY)
    with serving(root / "home", root / "policy.toml", transport="sse") as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": ACCEPT, **extra}


def spellings(session_id: str) -> list[str]:
    """Every way the SDK's ``UUID(hex=...)`` reads the same session id."""
    dashed = str(UUID(hex=session_id))
    return [
        session_id,
        session_id.upper(),
        dashed,
        dashed.upper(),
        "{" + dashed + "}",
        "urn:uuid:" + dashed,
        "urn:uuid:{" + session_id.upper() + "}",
        "-".join(session_id[i : i + 4] for i in range(0, 32, 4)),
    ]


def refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error": body["error"], "code": code, "status": status}


def cards_in(served: Served) -> int:
    with sqlite3.connect(served.home / "sandbox.db") as db:
        count: int = db.execute("SELECT count(*) FROM cards").fetchone()[0]
    return count


async def open_streamable(served: Served, http: httpx.AsyncClient, key: str) -> str:
    opened = await http.post(served.url, json=INITIALIZE, headers=bearer(key))
    assert opened.status_code == 200
    return opened.headers["mcp-session-id"]


def into(session_id: str, key: str) -> dict[str, str]:
    return bearer(key, **{"mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"})


class SseSession:
    """A raw SSE session: its stream's lines and the URL its messages are posted to."""

    def __init__(self, served: Served, endpoint: str, lines: AsyncIterator[str]) -> None:
        self.served, self.endpoint, self.lines = served, endpoint, lines
        self.path, _, self.id = endpoint.partition("session_id=")

    def url(self, session_id: str | None = None) -> str:
        return self.served.base + self.path + "session_id=" + (session_id or self.id)

    async def message(self) -> dict[str, Any]:
        async for line in self.lines:
            if line.startswith("data: "):
                found: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return found
        raise AssertionError("the stream ended")


@asynccontextmanager
async def sse_session(
    served: Served, http: httpx.AsyncClient, key: str
) -> AsyncIterator[SseSession]:
    async with http.stream("GET", served.url, headers=bearer(key)) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("event: endpoint")
        endpoint = (await anext(lines)).removeprefix("data: ").strip()
        yield SseSession(served, endpoint, lines)


# -- sessions ----------------------------------------------------------------------------------


async def test_no_spelling_of_a_streamable_session_id_lets_another_key_in(
    streamable: Served, http: httpx.AsyncClient
) -> None:
    owner, other = await streamable.key("owner"), await streamable.key("other")
    session = await open_streamable(streamable, http, owner)
    for spelling in spellings(session):
        for message in (PING, APPROVE):  # a request, and a response to an elicitation
            hijack = await http.post(streamable.url, json=message, headers=into(spelling, other))
            refusal(hijack, 403, "SESSION_KEY_MISMATCH")
        refusal(await http.get(streamable.url, headers=into(spelling, other)), 403,
                "SESSION_KEY_MISMATCH")  # fmt: skip
        refusal(await http.delete(streamable.url, headers=into(spelling, other)), 403,
                "SESSION_KEY_MISMATCH")  # fmt: skip
    own = await http.post(streamable.url, json=PING, headers=into(session, owner))
    assert own.status_code == 200  # the session was neither taken nor ended


async def test_a_session_id_that_is_no_uuid_or_was_never_issued_is_refused(
    streamable: Served, http: httpx.AsyncClient
) -> None:
    key = await streamable.key()
    for bad in ("", "not-a-uuid", "0" * 31, "0" * 33, "0" * 32 + "g", "../" + "0" * 32):
        response = await http.post(streamable.url, json=PING, headers=into(bad, key))
        refusal(response, 400, "INVALID_SESSION_ID")
    never = await http.post(streamable.url, json=PING, headers=into(UUID(int=1).hex, key))
    refusal(never, 404, "UNKNOWN_SESSION")


async def test_no_spelling_of_an_sse_session_id_lets_another_key_in(
    sse: Served, http: httpx.AsyncClient
) -> None:
    owner, other = await sse.key("owner"), await sse.key("other")
    with anyio.fail_after(30):
        async with sse_session(sse, http, owner) as session:
            for spelling in spellings(session.id):
                for message in (INITIALIZE, APPROVE):
                    hijack = await http.post(session.url(spelling), json=message,
                                             headers=bearer(other))  # fmt: skip
                    refusal(hijack, 403, "SESSION_KEY_MISMATCH")
            async with sse_session(sse, http, other) as own:
                # Named twice, the SDK reads the last: the owner's session, so refused ...
                twice = session.url(own.id) + "&session_id=" + session.id
                refusal(await http.post(twice, json=PING, headers=bearer(other)), 403,
                        "SESSION_KEY_MISMATCH")  # fmt: skip
                # ... and the key's own session when that comes last.
                mine = session.url() + "&session_id=" + own.id.upper()
                assert (
                    await http.post(mine, json=INITIALIZE, headers=bearer(other))
                ).status_code == 202
            refusal(await http.post(session.url("zz"), json=PING, headers=bearer(owner)), 400,
                    "INVALID_SESSION_ID")  # fmt: skip


async def test_another_key_cannot_answer_a_session_s_approval_form(
    sse: Served, http: httpx.AsyncClient
) -> None:
    """The server asks the session's client to approve a card; a cards:read key posting the
    approving answer into that session is refused, and the owner's own answer stands."""
    owner = await sse.key("owner")
    reader = await sse.key("reader", scope="cards:read")
    before = cards_in(sse)
    with anyio.fail_after(30):
        async with sse_session(sse, http, owner) as session:
            for message in (INITIALIZE, INITIALIZED):
                assert (await http.post(session.url(), json=message,
                                        headers=bearer(owner))).status_code == 202  # fmt: skip
            assert (await session.message())["id"] == 1
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "create_card", "arguments": {"daily_limit_cents": 5000,
                                                     "purpose": "needs a yes"}}}  # fmt: skip
            assert (await http.post(session.url(), json=call,
                                    headers=bearer(owner))).status_code == 202  # fmt: skip
            asked = await session.message()
            assert asked["method"] == "elicitation/create"
            answer = {**APPROVE, "id": asked["id"]}
            for spelling in spellings(session.id):
                forged = await http.post(session.url(spelling), json=answer, headers=bearer(reader))
                refusal(forged, 403, "SESSION_KEY_MISMATCH")
            declined = {"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}}
            assert (await http.post(session.url(), json=declined,
                                    headers=bearer(owner))).status_code == 202  # fmt: skip
            result = await session.message()
    assert result["id"] == 2
    assert result["result"]["isError"] is True
    assert result["result"]["content"][0]["text"].startswith("approval_denied:")
    assert cards_in(sse) == before


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "mode"), [("streamable", "auto"), ("streamable", "legacy"), ("sse", "auto")]
)
async def test_a_read_key_is_offered_only_the_read_tools_and_reads_why_a_write_is_refused(
    request: pytest.FixtureRequest, transport: str, mode: str
) -> None:
    streamable: Served = request.getfixturevalue(transport)
    reader = await streamable.key("reader", scope="cards:read")
    before = cards_in(streamable)
    with anyio.fail_after(30):
        async with streamable.client(reader, mode) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == scopes.READ_TOOLS
            assert (await client.call_tool("get_limits", {})).is_error is False
            for tool, arguments in (
                ("create_card", {"daily_limit_cents": 100, "purpose": "x"}),
                ("freeze_card", {"card_id": "card_x"}),
                ("simulate_purchase", {}),  # the scope is checked before the arguments
            ):
                with pytest.raises(MCPError) as refused:
                    await client.call_tool(tool, arguments)
                assert refused.value.message == (
                    f"INSUFFICIENT_SCOPE: this key has cards:read; {tool} needs cards:write"
                )
    assert cards_in(streamable) == before
    audited = [r for r in await streamable.audited() if r["tool"] == "create_card"]
    assert audited[-1]["outcome"] == "insufficient_scope"


async def test_a_write_key_is_offered_every_tool(streamable: Served) -> None:
    writer = await streamable.key("writer")
    with anyio.fail_after(30):
        async with streamable.client(writer) as client:
            listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == scopes.READ_TOOLS | WRITE_TOOLS


async def test_the_read_tools_are_exactly_those_annotated_read_only(tmp_path: Any) -> None:
    server = create_server(
        Settings(issuer="sandbox", home=tmp_path / "home", policy_file=PERMISSIVE_POLICY)
    )
    async with Client(server) as client:
        listed = await client.list_tools()
    read_only = {t.name for t in listed.tools if t.annotations and t.annotations.read_only_hint}
    assert read_only == scopes.READ_TOOLS
    assert {t.name for t in listed.tools} == scopes.READ_TOOLS | WRITE_TOOLS


# -- Host and Origin ---------------------------------------------------------------------------


def port_of(served: Served) -> int:
    return int(served.base.rsplit(":", 1)[1])


async def test_a_foreign_host_is_421_on_every_path_and_never_redirected(
    streamable: Served, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    key = await streamable.key()
    port = port_of(streamable)
    foreign = [
        "evil.example",
        f"localhost:1@evil.example:{port}",
        f"localhost:{port}@evil.example",
        "localhost.evil.example",
        f"localhost.evil.example:{port}",
        f"localhost:{port + 1}",
        f"127.0.0.1.nip.io:{port}",
        f"127.0.0.1:{port}.evil.example",
        "localhost",  # no port: port 80, not this one
        f"localhost:{port}/x",
        f"[::1]:{port}x",
    ]
    for path in ("/mcp/", "/mcp", "/healthz", "/nowhere", "/sse", "/x%0Aforged%20line"):
        for host in foreign:
            response = await http.post(streamable.base + path, json=INITIALIZE,
                                       headers=bearer(key, Host=host))  # fmt: skip
            refusal(response, 421, "INVALID_HOST")
            assert "location" not in response.headers
    logged = [r.getMessage() for r in caplog.records if r.name == "agentcard_mcp.http"]
    assert len(logged) == 6 * len(foreign)
    assert not [line for line in logged if "\n" in line]  # one line each, whatever the path
    # Loopback names at the port served are this server.
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        response = await http.get(streamable.base + "/healthz", headers={"Host": host})
        assert response.status_code == 200, host
    slash = await http.post(streamable.base + "/mcp/", json=INITIALIZE, headers=bearer(key))
    assert slash.headers.get("location") == f"http://127.0.0.1:{port}/mcp"  # its own host only


async def test_origin_look_alikes_are_403_and_loopback_at_this_port_passes(
    streamable: Served, http: httpx.AsyncClient
) -> None:
    key = await streamable.key()
    port = port_of(streamable)
    for origin in (
        f"http://localhost:1@evil.example:{port}",
        f"http://localhost:{port}@evil.example",
        f"http://localhost.evil.example:{port}",
        f"http://localhost:{port + 1}",
        f"http://127.0.0.1.nip.io:{port}",
        f"https://localhost:{port}",
        f"http://localhost:{port}/",
        "http://localhost",
        "null",
    ):
        for path in ("/mcp", "/mcp/", "/healthz"):
            response = await http.post(streamable.base + path, json=INITIALIZE,
                                       headers=bearer(key, Origin=origin))  # fmt: skip
            refusal(response, 403, "INVALID_ORIGIN")
    for origin in (f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
        response = await http.post(streamable.url, json=INITIALIZE,
                                   headers=bearer(key, Origin=origin))  # fmt: skip
        assert response.status_code == 200, origin


# -- malformed bodies --------------------------------------------------------------------------


async def test_malformed_bodies_are_refused_in_one_log_line_and_spend_rate_tokens(
    streamable: Served,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    key = await streamable.key("garbage", rate=30)
    session = await open_streamable(streamable, http, key)  # token 1
    deep = b"[" * 100_000 + b"]" * 100_000
    just_too_deep = json.dumps({**PING, "params": {"x": json.loads("[" * 63 + "]" * 63)}})
    headers = into(session, key) | {"content-type": "application/json"}
    no_uuid = headers | {"mcp-session-id": session + "0"}
    bodies = [
        (deep, 400, "JSON_TOO_DEEP"),
        (just_too_deep.encode(), 400, "JSON_TOO_DEEP"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', 400, "INVALID_JSON"),
        (b"\xff\xfe{}", 400, "INVALID_JSON"),
        (b"", 400, "INVALID_JSON"),
        (b" " * (MAX_BODY + 1), 400, "BODY_TOO_LARGE"),
    ]
    refused = 0
    while refused < 29:  # tokens 2 to 30
        content, status, code = bodies[refused % len(bodies)]
        refusal(await http.post(streamable.url, content=content, headers=headers), status, code)
        refused += 1
        if refused % len(bodies) == 0:  # a session id that is no UUID is malformed too
            refusal(await http.post(streamable.url, json=PING, headers=no_uuid), 400,
                    "INVALID_SESSION_ID")  # fmt: skip
            refused += 1
    # Each refusal took its token: the key's 31st request of the minute is one too many.
    refusal(await http.post(streamable.url, json=PING, headers=headers), 429, "RATE_LIMITED")

    logged = [r for r in caplog.records if r.name == "agentcard_mcp.http"]
    assert len(logged) == refused
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in logged)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert "Traceback" not in capfd.readouterr().err


async def test_the_operator_s_hosts_and_origins_match_by_scheme_name_and_port() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("in")(scope, receive, send)

    allowed = parse_allowed(
        ["cards.example:8443", "api.example", "any.example:*"],
        ["https://app.example", "http://dev.example:*"],
    )
    guard = HostGuard(app, allowed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(guard)) as client:

        async def status(host: str, origin: str | None = None) -> int:
            headers = {"Host": host} | ({} if origin is None else {"Origin": origin})
            return (await client.get("http://ignored/", headers=headers)).status_code

        for host, expected in [
            ("cards.example:8443", 200), ("cards.example:8444", 421), ("cards.example", 421),
            ("api.example", 200), ("api.example:80", 421), ("any.example:1", 200),
            ("any.example", 200), ("sub.any.example:1", 421), ("any.example:*", 421),
        ]:  # fmt: skip
            assert await status(host) == expected, host
        for origin, expected in [
            ("https://app.example", 200), ("https://app.example:443", 200),
            ("http://app.example", 403), ("https://app.example:8443", 403),
            ("http://dev.example:3000", 200), ("https://dev.example:3000", 403),
            ("http://dev.example:*", 403),
        ]:  # fmt: skip
            assert await status("api.example", origin) == expected, origin


async def test_a_host_verdict_once_reached_is_the_same_for_every_repeat_and_any_flood() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("in")(scope, receive, send)

    guard = HostGuard(app, parse_allowed(["api.example"], ["https://app.example"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(guard)) as client:

        async def status(*headers: tuple[str, str]) -> int:
            return (await client.get("http://ignored/", headers=list(headers))).status_code

        host, origin = ("Host", "api.example"), ("Origin", "https://app.example")
        # More foreign names than the guard remembers verdicts for: each refused all the same.
        for n in range(1500):
            assert await status(("Host", f"h{n}.example")) == 421
        for _ in range(3):  # remembered verdicts, interleaved: each answered as the first time
            assert await status(host) == 200
            assert await status(host, origin) == 200
            assert await status(host, ("Origin", "https://evil.example")) == 403
            assert await status(("Host", "evil.example"), origin) == 421
            # The same allowed values twice over are no longer the one Host or Origin allowed.
            assert await status(host, host) == 421
            assert await status(host, origin, origin) == 403


@pytest.mark.parametrize(
    ("hosts", "origins"),
    [(["http://cards.example"], []), (["cards.example:99999"], []), ([], ["app.example"]),
     ([], ["https://app.example/path"]), (["user@cards.example"], [])],
)  # fmt: skip
def test_an_allowed_host_or_origin_that_is_no_pattern_is_refused_at_start(
    hosts: list[str], origins: list[str]
) -> None:
    with pytest.raises(InvalidParams, match="--allowed-"):
        parse_allowed(hosts, origins)
