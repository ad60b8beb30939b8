"""The embedded sandbox's in-process transport answers exactly what the app answers through ASGI:
same status, body and headers for every kind of answer — a card, a validation error, an
unknown route, a wrong method, an idempotent replay — and an unexpected error is raised."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from agentcard_mcp.sandbox import Store, create_app, provision
from agentcard_mcp.sandbox.direct import InProcessTransport
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

# Headers that differ by construction between two answers (none of them carry meaning here).
_VOLATILE = {"content-length"}


Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[tuple[Clients, str]]:
    """Two clients on one sandbox app, through ASGI and through the in-process transport, and
    the sandbox's agent."""
    db = tmp_path / "sandbox.db"
    store = Store(db)
    credentials = provision(store, db, FakeClock())
    app = create_app(store, clock=FakeClock())
    headers = {"Authorization": f"Bearer {credentials.api_key}"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=headers
            ) as asgi,
            httpx.AsyncClient(
                transport=InProcessTransport(app), base_url="http://sandbox", headers=headers
            ) as direct,
        ):
            yield (asgi, direct), credentials.agent_id
    finally:
        store.close()


def _answer(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in _VOLATILE}
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    return response.status_code, body, headers


async def _same(clients: Clients, method: str, path: str,
                **kwargs: Any) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
    asgi, direct = clients
    through_asgi = _answer(await asgi.request(method, path, **kwargs))
    through_direct = _answer(await direct.request(method, path, **kwargs))
    assert through_direct == through_asgi
    return through_direct


async def test_reads_and_refusals_are_answered_alike(both: tuple[Clients, str]) -> None:
    clients, agent_id = both
    made = await clients[0].post("/v1/cards", json={"agent_id": agent_id, "daily_limit_cents": 500})
    card_id = made.json()["id"]
    status, card, headers = await _same(clients, "GET", f"/v1/cards/{card_id}")
    assert (status, card["id"], headers["content-type"]) == (200, card_id, "application/json")
    status, listed, _ = await _same(clients, "GET", "/v1/cards", params={"limit": "5"})
    assert status == 200
    assert [c["id"] for c in listed["data"]] == [card_id]
    status, missing, _ = await _same(clients, "GET", "/v1/cards/card_doesnotexist0000000000")
    assert status == 404
    assert missing["error"]["code"]
    status, no_route, _ = await _same(clients, "GET", "/v1/nowhere")
    assert status == 404
    assert no_route["error"]["code"] == "route_not_found"
    status, _, headers = await _same(clients, "PUT", f"/v1/cards/{card_id}")
    assert status == 405
    assert set(headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}
    status, bad, _ = await _same(clients, "PATCH", f"/v1/cards/{card_id}", content=b"{not json")
    assert status == 400
    assert bad["error"]["type"] == "invalid_request_error"
    status, unauthenticated, _ = await _same(
        clients, "GET", "/v1/cards", headers={"Authorization": "Bearer sk_test_wrong"}
    )
    assert status == 401
    assert unauthenticated["error"]["code"]


async def test_a_replayed_write_is_marked_as_replayed_on_both_paths(
    both: tuple[Clients, str],
) -> None:
    clients, agent_id = both
    direct = clients[1]
    body = {"agent_id": agent_id, "daily_limit_cents": 700}
    key = {"Idempotency-Key": "replay-me-1"}
    first = await direct.post("/v1/cards", json=body, headers=key)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    again = await _same(clients, "POST", "/v1/cards", json=body, headers=key)
    assert again[1]["id"] == first.json()["id"]
    assert again[2]["idempotent-replayed"] == "true"
    listed = await direct.get("/v1/cards")
    assert [c["id"] for c in listed.json()["data"]] == [first.json()["id"]]  # one card made


async def test_an_unexpected_error_is_raised_as_through_asgi(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    store = Store(db)
    provision(store, db, FakeClock())
    app = create_app(store, clock=FakeClock())

    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug in the sandbox")

    app.router.routes.insert(0, Route("/v1/broken", broken, methods=["GET"]))
    try:
        for transport in (httpx.ASGITransport(app=app), InProcessTransport(app)):
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                with pytest.raises(RuntimeError, match="a bug in the sandbox"):
                    await client.get("/v1/broken")
    finally:
        store.close()


async def test_each_path_is_answered_for_its_own_parameters(both: tuple[Clients, str]) -> None:
    """Routes found once per (method, path) are reused: every read still gets its own card."""
    (_, direct), agent_id = both
    made = [
        (
            await direct.post("/v1/cards", json={"agent_id": agent_id, "daily_limit_cents": n})
        ).json()["id"]
        for n in (100, 200, 300)
    ]
    for card_id in made * 3:
        assert (await direct.get(f"/v1/cards/{card_id}")).json()["id"] == card_id
        frozen = await direct.post(f"/v1/cards/{card_id}/freeze")
        assert frozen.json()["id"] == card_id
