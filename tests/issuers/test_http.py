"""The issuer HTTP layer (issuers/http.py): retries, Idempotency-Keys and the mapping of issuer
answers to stable error codes — directly through IssuerHTTP, and through the MCP server talking
to a remote AgentCard issuer (the fake of tests/fakes/agentcard.py, or the embedded sandbox app)
behind a transport that can lose answers and refuse connections. Nothing here really sleeps,
except the one short backoff of the unpatched server in the lost-answer tests."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr

from agentcard_mcp.errors import AgentCardError, IssuerRateLimited
from agentcard_mcp.issuers import REGISTRY, connect
from agentcard_mcp.issuers.agentcard import AgentCardIssuer
from agentcard_mcp.issuers.base import CardSpec, PolicyChange
from agentcard_mcp.issuers.http import IssuerHTTP
from agentcard_mcp.sandbox import Store, create_app, provision
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.fakes.agentcard import FakeAgentCard
from tests.support import PERMISSIVE_POLICY

pytestmark = pytest.mark.anyio

BASE_URL = "http://issuer.test"

CODES = {
    400: "invalid_params",
    401: "issuer_auth_failed",
    403: "issuer_auth_failed",
    404: "not_found",
    409: "idempotency_conflict",
    422: "issuer_rejected",
    429: "issuer_rate_limited",
    500: "issuer_unavailable",
    502: "issuer_unavailable",
    503: "issuer_unavailable",
}
RETRIED = {500, 502, 503}
IN_FLIGHT = ["idempotency_key_in_use", "request_in_progress", "lock_timeout"]


@dataclass
class Sleeps:
    """An injected ``sleep`` that records how long it was asked to wait, and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Faulty(httpx.AsyncBaseTransport):
    """Forwards to the issuer; can refuse to connect, or lose an answer the issuer already gave."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[httpx.Request] = []
        self.refusals = 0
        self.drops: list[tuple[str, str, type[httpx.TransportError]]] = []

    def drop(
        self, method: str, path: str, error: type[httpx.TransportError] = httpx.ReadTimeout
    ) -> None:
        self.drops.append((method, path, error))

    def keys(self, method: str, path: str) -> list[str | None]:
        return [
            r.headers.get("idempotency-key")
            for r in self.sent
            if r.method == method and r.url.path == path
        ]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if self.refusals > 0:
            self.refusals -= 1
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        for drop in self.drops:
            if drop[:2] == (request.method, request.url.path):
                self.drops.remove(drop)
                await response.aread()  # the issuer acted and answered ...
                await response.aclose()
                raise drop[2]("answer lost", request=request)  # ... and the answer was lost
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Remote:
    """A remote AgentCard issuer reached through a ``Faulty`` transport."""

    transport: Faulty
    api_key: str
    agent_id: str
    fake: FakeAgentCard | None = None

    def client(self, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport or self.transport,
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )

    async def cards_named(self, nickname: str) -> list[dict[str, Any]]:
        """The issuer's own cards with this nickname, asked past the faulty transport."""
        async with self.client(self.transport.inner) as client:
            response = await client.get("/v1/cards")
        response.raise_for_status()
        return [c for c in response.json()["data"] if c["nickname"] == nickname]

    def settings(self, home: Path, api_key: str | None = None) -> Settings:
        return Settings(
            issuer="agentcard",
            api_key=SecretStr(api_key or self.api_key),
            base_url=BASE_URL,
            home=home,
            policy_file=PERMISSIVE_POLICY,
        )


@pytest.fixture(params=["fake", "sandbox"])
async def remote(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Remote]:
    if request.param == "fake":
        fake = FakeAgentCard()
        yield Remote(Faulty(fake.transport()), fake.api_key, fake.agent_id, fake)
        return
    db = tmp_path / "issuer" / "sandbox.db"
    db.parent.mkdir()
    store = Store(db)
    try:
        credentials = provision(store, db)
        app = create_app(store)
        async with app.router.lifespan_context(app):
            transport = Faulty(httpx.ASGITransport(app=app))
            yield Remote(transport, credentials.api_key, credentials.agent_id)
    finally:
        store.close()


@pytest.fixture
def fake() -> FakeAgentCard:
    return FakeAgentCard()


@pytest.fixture
def faulty(fake: FakeAgentCard) -> Faulty:
    return Faulty(fake.transport())


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@asynccontextmanager
async def open_http(
    fake: FakeAgentCard,
    sleeps: Sleeps,
    transport: httpx.AsyncBaseTransport | None = None,
    **options: Any,
) -> AsyncIterator[IssuerHTTP]:
    async with httpx.AsyncClient(
        transport=transport or fake.transport(),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {fake.api_key}"},
    ) as client:
        yield IssuerHTTP(client, "agentcard", sleep=sleeps, **options)


def new_card(fake: FakeAgentCard, nickname: str = "test card") -> dict[str, Any]:
    return {"agent_id": fake.agent_id, "daily_limit_cents": 5000, "nickname": nickname}


def same_key(keys: list[str | None]) -> bool:
    return bool(keys) and keys[0] is not None and all(k == keys[0] for k in keys)


async def failure(http: IssuerHTTP, method: str, path: str, **kw: Any) -> AgentCardError:
    with pytest.raises(AgentCardError) as info:
        await http.request(method, path, **kw)
    return info.value


def text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


# -- a lost answer: retried with the same key, one card at the issuer ---------------------------


@pytest.mark.parametrize("lost", [httpx.ReadTimeout, httpx.RemoteProtocolError])
async def test_lost_create_answer_is_retried_with_the_same_key(
    remote: Remote, lost: type[httpx.TransportError]
) -> None:
    remote.transport.drop("POST", "/v1/cards", lost)
    sleeps = Sleeps()
    body = {"agent_id": remote.agent_id, "daily_limit_cents": 5000, "nickname": "lost answer"}
    async with remote.client() as client:
        card = await IssuerHTTP(client, "agentcard", sleep=sleeps).request(
            "POST", "/v1/cards", json=body
        )
    assert [c["id"] for c in await remote.cards_named("lost answer")] == [card["id"]]
    keys = remote.transport.keys("POST", "/v1/cards")
    assert len(keys) == 2
    assert same_key(keys)
    assert len(sleeps.delays) == 1
    if remote.fake is not None:  # what the issuer itself saw
        seen = [r.idempotency_key for r in remote.fake.requests_to("POST", "/v1/cards")]
        assert seen == keys


@pytest.mark.parametrize("given_key", [None, "agent-chosen-key-1"])
async def test_server_create_card_survives_a_lost_answer(
    remote: Remote, tmp_path: Path, given_key: str | None
) -> None:
    remote.transport.drop("POST", "/v1/cards")
    arguments: dict[str, Any] = {"purpose": "lost answer", "daily_limit_cents": 5000}
    if given_key is not None:
        arguments["idempotency_key"] = given_key
    server = create_server(remote.settings(tmp_path), issuer_transport=remote.transport)
    with anyio.fail_after(10):  # the server's own backoff really sleeps, once, for ≤ 0.2 s
        async with Client(server) as client:
            result = await client.call_tool("create_card", arguments)
            assert not result.is_error, text(result)
            assert result.structured_content is not None
            card_id = result.structured_content["id"]
            if given_key is not None:  # the agent retries its own call: still one card
                again = await client.call_tool("create_card", arguments)
                assert again.structured_content is not None
                assert again.structured_content["id"] == card_id
    assert [c["id"] for c in await remote.cards_named("lost answer")] == [card_id]
    keys = remote.transport.keys("POST", "/v1/cards")
    # The agent's retry is answered from the server's record of its key: no third request.
    assert len(keys) == 2
    assert same_key(keys)
    if given_key is not None:
        assert keys[0] == given_key
    reads = [r for r in remote.transport.sent if r.method == "GET"]
    assert reads  # the agent lookup
    assert all("idempotency-key" not in r.headers for r in reads)


async def test_answer_lost_every_time_is_issuer_unavailable_yet_one_card(
    fake: FakeAgentCard, faulty: Faulty, sleeps: Sleeps
) -> None:
    for _ in range(4):
        faulty.drop("POST", "/v1/cards")
    async with open_http(fake, sleeps, faulty) as http:
        error = await failure(http, "POST", "/v1/cards", json=new_card(fake))
    assert error.code == "issuer_unavailable"
    assert isinstance(error.__cause__, httpx.ReadTimeout)
    assert len(fake.requests_to("POST", "/v1/cards")) == 4
    assert same_key(faulty.keys("POST", "/v1/cards"))
    assert len(fake.cards) == 1  # every retry was a replay
    assert len(sleeps.delays) == 3


# -- 5xx and transport errors -------------------------------------------------------------------


async def test_503_then_success_retries_once(fake: FakeAgentCard, sleeps: Sleeps) -> None:
    fake.force(503, method="POST", path="/v1/cards")
    async with open_http(fake, sleeps) as http:
        card = await http.request("POST", "/v1/cards", json=new_card(fake))
    attempts = fake.requests_to("POST", "/v1/cards")
    assert len(attempts) == 2
    assert same_key([a.idempotency_key for a in attempts])
    assert len(sleeps.delays) == 1
    assert list(fake.cards) == [card["id"]]


async def test_502_after_the_issuer_acted_is_replayed_not_repeated(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    fake.force(502, method="POST", path="/v1/cards", handle=True)
    async with open_http(fake, sleeps) as http:
        card = await http.request("POST", "/v1/cards", json=new_card(fake))
    assert list(fake.cards) == [card["id"]]
    assert same_key([a.idempotency_key for a in fake.requests_to("POST", "/v1/cards")])


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("max_attempts", [2, 4])
async def test_5xx_every_time_is_issuer_unavailable_after_max_attempts(
    fake: FakeAgentCard, sleeps: Sleeps, status: int, max_attempts: int
) -> None:
    fake.force(status, times=10)
    async with open_http(fake, sleeps, max_attempts=max_attempts) as http:
        error = await failure(http, "POST", "/v1/cards", json=new_card(fake))
    assert error.code == "issuer_unavailable"
    attempts = fake.requests_to("POST", "/v1/cards")
    assert len(attempts) == max_attempts
    assert same_key([a.idempotency_key for a in attempts])
    assert len(sleeps.delays) == max_attempts - 1
    assert fake.cards == {}


async def test_connect_errors_every_time_are_issuer_unavailable(
    fake: FakeAgentCard, faulty: Faulty, sleeps: Sleeps
) -> None:
    faulty.refusals = 99
    async with open_http(fake, sleeps, faulty) as http:
        error = await failure(http, "GET", "/v1/cards")
    assert error.code == "issuer_unavailable"
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert len(faulty.sent) == 4
    assert fake.requests == []
    assert len(sleeps.delays) == 3


async def test_issuer_unavailable_names_where_it_could_not_reach_and_no_secret(
    sleeps: Sleeps,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    base = "https://operator:s3cret@issuer.example:8443/v1?token=ac_test_q1w2e3r4"
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url=base) as client:
        http = IssuerHTTP(client, "agentcard", max_attempts=2, sleep=sleeps)
        error = await failure(http, "GET", "/cards")
    assert error.code == "issuer_unavailable"
    assert "could not reach agentcard at https://issuer.example:8443 (ConnectError)" in str(error)
    for secret in ("operator", "s3cret", "token", "ac_test_", "/v1"):
        assert secret not in str(error)


async def test_connect_errors_then_success(
    fake: FakeAgentCard, faulty: Faulty, sleeps: Sleeps
) -> None:
    faulty.refusals = 2
    async with open_http(fake, sleeps, faulty) as http:
        card = await http.request("POST", "/v1/cards", json=new_card(fake))
    assert list(fake.cards) == [card["id"]]
    keys = faulty.keys("POST", "/v1/cards")
    assert len(keys) == 3
    assert same_key(keys)
    assert len(sleeps.delays) == 2


# -- 429 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "waited"), [("1", 1.0), ("0.5", 0.5), ("5", 5.0)])
async def test_429_with_a_short_retry_after_waits_exactly_that(
    fake: FakeAgentCard, sleeps: Sleeps, retry_after: str, waited: float
) -> None:
    fake.force(429, retry_after=retry_after, method="POST", path="/v1/cards")
    async with open_http(fake, sleeps) as http:
        card = await http.request("POST", "/v1/cards", json=new_card(fake))
    assert sleeps.delays == [waited]
    attempts = fake.requests_to("POST", "/v1/cards")
    assert len(attempts) == 2
    assert same_key([a.idempotency_key for a in attempts])
    assert list(fake.cards) == [card["id"]]


async def test_429_with_a_long_retry_after_is_not_retried(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    fake.force(429, retry_after="3600", times=5)
    async with open_http(fake, sleeps) as http:
        error = await failure(http, "POST", "/v1/cards", json=new_card(fake))
    assert isinstance(error, IssuerRateLimited)
    assert error.code == "issuer_rate_limited"
    assert error.retry_after == 3600.0
    assert "retry" in error.message.lower()
    assert len(fake.requests) == 1
    assert sleeps.delays == []


async def test_429_without_retry_after_is_not_retried(fake: FakeAgentCard, sleeps: Sleeps) -> None:
    """DESIGN §8 retries only transport errors, timeouts, 409 in-flight and 5xx, and honours a
    Retry-After on 429; the module says a 429 is retried when its Retry-After fits the cap."""
    fake.force(429, times=5)
    async with open_http(fake, sleeps) as http:
        error = await failure(http, "GET", "/v1/cards")
    assert error.code == "issuer_rate_limited"
    assert len(fake.requests) == 1
    assert sleeps.delays == []


# -- 409 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", IN_FLIGHT)
async def test_409_in_flight_is_retried_with_the_same_key(
    fake: FakeAgentCard, sleeps: Sleeps, code: str
) -> None:
    fake.force(409, code=code, method="POST", path="/v1/cards")
    async with open_http(fake, sleeps) as http:
        card = await http.request("POST", "/v1/cards", json=new_card(fake))
    attempts = fake.requests_to("POST", "/v1/cards")
    assert len(attempts) == 2
    assert same_key([a.idempotency_key for a in attempts])
    assert len(sleeps.delays) == 1
    assert list(fake.cards) == [card["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"type": "idempotency_error", "code": "idempotency_key_reused", "message": "x"}},
        {"error": {"message": "Conflict"}},
        {"error": "Conflict"},
    ],
)
async def test_plain_409_is_idempotency_conflict_not_retried(
    fake: FakeAgentCard, sleeps: Sleeps, body: dict[str, Any]
) -> None:
    fake.force(409, body, times=5)
    async with open_http(fake, sleeps) as http:
        error = await failure(http, "POST", "/v1/cards", json=new_card(fake))
    assert error.code == "idempotency_conflict"
    assert len(fake.requests) == 1
    assert sleeps.delays == []


async def test_same_key_with_another_body_is_idempotency_conflict(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    async with open_http(fake, sleeps) as http:
        await http.request("POST", "/v1/cards", json=new_card(fake), idempotency_key="k-1")
        error = await failure(
            http, "POST", "/v1/cards", json=new_card(fake, "other"), idempotency_key="k-1"
        )
    assert error.code == "idempotency_conflict"
    assert len(fake.requests) == 2
    assert len(fake.cards) == 1


# -- every status maps to its code; only 5xx is retried ------------------------------------------


@pytest.mark.parametrize("status", sorted(CODES))
@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/cards/card_x"), ("POST", "/v1/cards")])
async def test_status_maps_to_its_code(
    fake: FakeAgentCard, sleeps: Sleeps, status: int, method: str, path: str
) -> None:
    message = f"issuer-message-{status}"
    fake.force(status, message=message, retry_after="3600" if status == 429 else None, times=10)
    body = new_card(fake) if method == "POST" else None
    async with open_http(fake, sleeps) as http:
        error = await failure(http, method, path, json=body)
    assert error.code == CODES[status]
    assert message in error.message
    attempts = 4 if status in RETRIED else 1
    assert len(fake.requests) == attempts
    assert len(sleeps.delays) == attempts - 1


@pytest.mark.parametrize(
    ("status", "code"), [(502, "issuer_unavailable"), (403, "issuer_auth_failed")]
)
async def test_an_html_error_page_still_maps(
    fake: FakeAgentCard, sleeps: Sleeps, status: int, code: str
) -> None:
    fake.force(status, "<html><body>Bad Gateway</body></html>", times=10)
    async with open_http(fake, sleeps) as http:
        error = await failure(http, "GET", "/v1/cards")
    assert error.code == code


async def test_a_2xx_that_is_not_json_is_a_stable_error(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    """A captive portal or misrouted proxy answering 200 with HTML is an issuer failure too:
    DESIGN §7 says issuer errors map, in issuers/http.py, to a stable code."""
    fake.force(200, "<html>Welcome to the hotel wifi</html>", times=10)
    async with open_http(fake, sleeps) as http:
        error = await failure(http, "GET", "/v1/cards")
    assert error.code.startswith("issuer_")


# -- Idempotency-Key: only on writes, one per logical write --------------------------------------


async def test_reads_carry_no_idempotency_key_even_when_retried(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    fake.force(503, method="GET")
    fake.force(429, retry_after="1", method="GET")
    async with open_http(fake, sleeps) as http:
        await http.request("GET", "/v1/cards", idempotency_key="ignored-on-reads")
        await http.request("GET", "/v1/usage")
    assert len(fake.requests) == 4
    assert all(r.idempotency_key is None for r in fake.requests)


async def test_separate_writes_get_separate_keys(fake: FakeAgentCard, sleeps: Sleeps) -> None:
    async with open_http(fake, sleeps) as http:
        first = await http.request("POST", "/v1/cards", json=new_card(fake))
        second = await http.request("POST", "/v1/cards", json=new_card(fake))
    assert first["id"] != second["id"]
    keys = [r.idempotency_key for r in fake.requests]
    assert None not in keys
    assert len(set(keys)) == 2


async def test_adapter_keys_only_writes_each_with_its_own_key(
    fake: FakeAgentCard, sleeps: Sleeps
) -> None:
    async with open_http(fake, sleeps) as http:
        issuer = AgentCardIssuer(
            http, name="agentcard", mode="test", capabilities=REGISTRY["agentcard"].capabilities
        )
        spec = CardSpec(await issuer.default_agent_id(), "ads", 5000, None, [])
        card = await issuer.create_card(spec, "create-key-1")
        await issuer.get_card(card.id)
        await issuer.list_cards()
        await issuer.freeze(card.id)
        await issuer.unfreeze(card.id)
        await issuer.set_policy(card.id, PolicyChange(daily_limit_cents=6000))
        await issuer.simulate(card.id, 100, "Shop", "saas")
        await issuer.ledger(card_id=card.id, agent_id=None, limit=10, cursor=None, decision=None)
        await issuer.limits()
        await issuer.close(card.id)
    reads = [r for r in fake.requests if r.method == "GET"]
    writes = [r for r in fake.requests if r.method != "GET"]
    assert len(reads) == 6  # agents, get, list, ledger, usage, and close's look first
    assert all(r.idempotency_key is None for r in reads)
    assert [w.method for w in writes] == ["POST"] * 3 + ["PATCH", "POST", "DELETE"]
    keys = [w.idempotency_key for w in writes]
    assert keys[0] == "create-key-1"
    assert None not in keys
    assert len(set(keys)) == len(keys)


# -- backoff -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["503", "refused"])
async def test_backoff_is_capped_and_jittered(
    fake: FakeAgentCard, faulty: Faulty, cause: str
) -> None:
    ceilings = [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]  # base 1 s doubling, capped at 3 s
    runs: list[list[float]] = []
    for _ in range(10):
        sleeps = Sleeps()
        if cause == "503":
            fake.force(503, times=len(ceilings) + 1)
        else:
            faulty.refusals = len(ceilings) + 1
        async with open_http(
            fake, sleeps, faulty, base_delay=1.0, max_delay=3.0, max_attempts=len(ceilings) + 1
        ) as http:
            error = await failure(http, "GET", "/v1/cards")
        assert error.code == "issuer_unavailable"
        assert len(sleeps.delays) == len(ceilings)
        for delay, ceiling in zip(sleeps.delays, ceilings, strict=True):
            assert ceiling / 2 <= delay <= ceiling
        runs.append(sleeps.delays)
    assert len({run[0] for run in runs}) > 1  # jittered, not a fixed schedule


# -- through the MCP server ----------------------------------------------------------------------


@pytest.fixture
def patched_sleep(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """The server's IssuerHTTP, with its injectable sleep recorded instead of slept."""
    sleeps = Sleeps()
    monkeypatch.setattr(connect, "IssuerHTTP", functools.partial(IssuerHTTP, sleep=sleeps))
    return sleeps


TOOL_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "get_card": ("GET", "/v1/cards/card_x", {"card_id": "card_x"}),
    "create_card": ("POST", "/v1/cards", {"purpose": "ads", "daily_limit_cents": 5000}),
}


@pytest.mark.parametrize("status", sorted(CODES))
@pytest.mark.parametrize("tool", sorted(TOOL_CALLS))
async def test_server_tool_error_starts_with_the_mapped_code(
    fake: FakeAgentCard, patched_sleep: Sleeps, tmp_path: Path, tool: str, status: int
) -> None:
    method, path, arguments = TOOL_CALLS[tool]
    message = f"issuer-message-{status}"
    retry_after = "3600" if status == 429 else None
    fake.force(status, message=message, retry_after=retry_after, method=method, path=path, times=9)
    settings = Settings(
        issuer="agentcard",
        api_key=SecretStr(fake.api_key),
        base_url=BASE_URL,
        home=tmp_path,
        policy_file=PERMISSIVE_POLICY,
    )
    server = create_server(settings, issuer_transport=fake.transport())
    with anyio.fail_after(10):
        async with Client(server) as client:
            result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert text(result).startswith(f"{CODES[status]}:")
    assert message in text(result)
    attempts = 4 if status in RETRIED else 1
    assert len(fake.requests_to(method, path)) == attempts
    assert len(patched_sleep.delays) == attempts - 1
    assert fake.cards == {}


async def test_server_unknown_card_is_not_found(remote: Remote, tmp_path: Path) -> None:
    server = create_server(remote.settings(tmp_path), issuer_transport=remote.transport)
    with anyio.fail_after(10):
        async with Client(server) as client:
            result = await client.call_tool("get_card", {"card_id": "card_doesnotexist"})
    assert result.is_error
    assert text(result).startswith("not_found:")


async def test_server_wrong_key_is_issuer_auth_failed(remote: Remote, tmp_path: Path) -> None:
    wrong = "ac_test_" + "0" * 32
    server = create_server(remote.settings(tmp_path, wrong), issuer_transport=remote.transport)
    with anyio.fail_after(10):
        async with Client(server) as client:
            result = await client.call_tool("list_cards", {})
    assert result.is_error
    assert text(result).startswith("issuer_auth_failed:")
    assert wrong not in text(result)
    # One at start (the budget's sync with the issuer), one for the tool: a 401 is not retried.
    assert [r.url.path for r in remote.transport.sent] == ["/v1/cards", "/v1/cards"]
