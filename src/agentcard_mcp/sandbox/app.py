"""The sandbox's HTTP API: AgentCard v1 (issuer-docs/agentcard-so.md) as a Starlette app.

Each request is one database transaction that authenticates, validates, acts and — for a write
with an ``Idempotency-Key`` — stores its response, all or nothing. Handlers are small functions
of a ``Call``; the route table at the bottom is the whole API.

Beyond the documented API, the sandbox has what the dashboard would do for a human (marked
"sandbox" below): the owner's merchant blocklist and currencies, API key management, and
suspending the owner, so that every one of the 12 decline reasons can really happen.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import accounts, cards, ledger, webhooks
from .clock import Clock, system_clock
from .errors import ApiError, invalid
from .idempotency import StoredResponse, fingerprint, lookup, remember
from .ids import new_id
from .store import Store
from .validation import (
    AgentCreate,
    AgentPatch,
    CardCreate,
    CardPatch,
    OwnerPatch,
    SignUp,
    Swipe,
    Verify,
    WebhookSet,
    parse_body,
)

__all__ = ["SandboxState", "create_app"]

log = logging.getLogger("agentcard_mcp.sandbox")
_JSON = "application/json"
_ANONYMOUS = "-"


@dataclass
class SandboxState:
    store: Store
    clock: Clock = system_clock
    webhook_transport: httpx.AsyncBaseTransport | None = None
    webhook_options: dict[str, Any] = field(default_factory=dict)
    dispatcher: webhooks.Dispatcher | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler sees: the open transaction, who is calling, when, and what they sent."""

    conn: Any
    owner_id: str
    now: datetime
    raw: bytes
    params: dict[str, str]
    query: dict[str, str]

    def body(self, model: type[Any]) -> Any:
        return parse_body(model, self.raw)


Handler = Callable[[Call], "dict[str, Any] | list[Any] | ApiError"]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Response(body, status, headers=headers, media_type=_JSON)


def _endpoint(
    handler: Handler, *, write: bool, auth: bool = True, replayable: bool = True
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        state: SandboxState = request.app.state.sandbox
        raw = await request.body()
        key = request.headers.get("idempotency-key") if write and replayable else None
        if key is not None and not 1 <= len(key) <= 255:
            raise invalid(
                None, "Idempotency-Key must be 1 to 255 characters.", "idempotency_key_invalid"
            )
        print_ = fingerprint(request.method, request.url.path, raw) if key is not None else ""
        wake = False

        def run(conn: Any) -> tuple[StoredResponse | ApiError, bool]:
            result, replayed = act(conn)
            # Looked at here, inside the transaction, so that writes that queued no event
            # (most swipes) cost the dispatcher nothing: no wake, no extra store call.
            nonlocal wake
            wake = write and not replayed and webhooks.anything_due(conn)
            return result, replayed

        def act(conn: Any) -> tuple[StoredResponse | ApiError, bool]:
            owner_id = (
                accounts.authenticate(conn, request.headers.get("authorization"))
                if auth
                else _ANONYMOUS
            )
            if key is not None and (stored := lookup(conn, owner_id, key, print_)) is not None:
                return stored, True
            call = Call(
                conn,
                owner_id,
                state.clock(),
                raw,
                dict(request.path_params),
                dict(request.query_params),
            )
            result = handler(call)
            if isinstance(result, ApiError):
                return result, False
            response = StoredResponse(200, json.dumps(_listed(result)).encode())
            if key is not None:
                remember(conn, owner_id, key, print_, response)
            return response, False

        result, replayed = await (state.store.transaction(run) if write else state.store.read(run))
        if isinstance(result, ApiError):
            raise result
        if wake and state.dispatcher is not None:
            state.dispatcher.wake()
        return _json(
            result.status, result.body, {"Idempotent-Replayed": "true"} if replayed else None
        )

    return endpoint


def _listed(result: dict[str, Any] | list[Any]) -> dict[str, Any]:
    return {"data": result, "has_more": False} if isinstance(result, list) else result


# --- handlers -------------------------------------------------------------------------------


def sign_up(c: Call) -> dict[str, Any]:
    body = c.body(SignUp)
    return accounts.sign_up(c.conn, body.human_email, body.agent_name, c.now)


def verify(c: Call) -> dict[str, Any] | ApiError:
    body = c.body(Verify)
    result = accounts.verify(c.conn, body.verification_id, body.otp_code, c.now)
    if isinstance(result, ApiError):
        return result
    return {
        "owner_id": result.owner_id,
        "agent_id": result.agent_id,
        "card_id": result.card_id,
        "last4": result.last4,
        "api_key": result.api_key,
    }


def _page_args(c: Call) -> dict[str, Any]:
    raw_limit = c.query.get("limit", str(ledger.DEFAULT_PAGE))
    if (
        not (raw_limit.isascii() and raw_limit.isdigit())
        or not 1 <= int(raw_limit) <= ledger.MAX_PAGE
    ):
        raise invalid("limit", f"limit must be an integer from 1 to {ledger.MAX_PAGE}.")
    decision = c.query.get("decision")
    if decision not in (None, "approve", "decline"):
        raise invalid("decision", "decision must be 'approve' or 'decline'.")
    return {"limit": int(raw_limit), "cursor": c.query.get("cursor") or None, "decision": decision}


def create_card(c: Call) -> dict[str, Any]:
    b = c.body(CardCreate)
    return cards.insert_card(
        c.conn, c.owner_id, b.agent_id, b.daily_limit_cents, b.per_auth_max_cents,
        b.mcc_allowlist, b.nickname, c.now,
    )  # fmt: skip


def _card(c: Call) -> str:
    return c.params["card_id"]


def _agent(c: Call) -> str:
    return c.params["agent_id"]


def create_key(c: Call) -> dict[str, Any]:
    key_id, key = accounts.mint_key(c.conn, c.owner_id, c.now)
    return {"id": key_id, "api_key": key}


async def test_webhook(request: Request) -> Response:
    """Sends one synthetic ``authorization.decided`` event now and reports how it went."""
    state: SandboxState = request.app.state.sandbox

    def endpoint(conn: Any) -> Any:
        owner_id = accounts.authenticate(conn, request.headers.get("authorization"))
        return conn.execute(
            "SELECT url, secret FROM webhook_endpoints WHERE owner_id = ?", (owner_id,)
        ).fetchone()

    row = await state.store.read(endpoint)
    if row is None:
        raise invalid("url", "No webhook URL is set; POST /v1/webhooks first.", "webhook_not_set")
    event_id = new_id("evt")
    data = {"auth_id": "auth_test", "decision": "approve", "reason": "approved", "test": True}
    body = webhooks.event_body(event_id, "authorization.decided", data, state.clock())
    timeout = state.webhook_options.get("timeout", 5.0)
    async with _webhook_client(state) as client:
        result = await webhooks.post_event(
            client, row["url"], row["secret"], event_id, body, wait=timeout
        )
    return _json(200, {"event_id": event_id, "delivered": result.delivered,
                       "status_code": result.status_code, "error": result.error})  # fmt: skip


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~100 ms; do it once per process, not per app or test call.
    return ssl.create_default_context()


def _new_webhook_client(state: SandboxState) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=state.webhook_transport, follow_redirects=False, verify=_tls_context()
    )


@asynccontextmanager
async def _webhook_client(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    async with _new_webhook_client(state) as client:
        yield client


# --- the API --------------------------------------------------------------------------------


def _r(path: str, method: str, handler: Handler, **kw: Any) -> Route:
    return Route(path, _endpoint(handler, write=method != "GET", **kw), methods=[method])


ROUTES = [
    _r("/v0/agent/sign-up", "POST", sign_up, auth=False),
    _r("/v0/agent/verify", "POST", verify, auth=False, replayable=False),
    _r("/v1/usage", "GET", lambda c: ledger.usage(c.conn, c.owner_id, c.now)),
    _r("/v1/agents", "GET", lambda c: accounts.list_agents(c.conn, c.owner_id)),
    _r("/v1/agents", "POST", lambda c: accounts.create_agent(
        c.conn, c.owner_id, (b := c.body(AgentCreate)).name, b.description, c.now)),
    _r("/v1/agents/{agent_id}", "GET", lambda c: accounts.get_agent(c.conn, c.owner_id, _agent(c))),
    _r("/v1/agents/{agent_id}", "PATCH", lambda c: accounts.update_agent(
        c.conn, c.owner_id, _agent(c), c.body(AgentPatch).model_dump(exclude_unset=True))),
    _r("/v1/agents/{agent_id}", "DELETE", lambda c: accounts.delete_agent(
        c.conn, c.owner_id, _agent(c), c.now)),
    _r("/v1/agents/{agent_id}/suspend", "POST", lambda c: accounts.set_agent_status(
        c.conn, c.owner_id, _agent(c), "suspended")),
    _r("/v1/agents/{agent_id}/resume", "POST", lambda c: accounts.set_agent_status(
        c.conn, c.owner_id, _agent(c), "active")),
    _r("/v1/agents/{agent_id}/ledger", "GET", lambda c: ledger.ledger_page(
        c.conn, c.owner_id, agent_id=_agent(c), **_page_args(c))),
    _r("/v1/cards", "GET", lambda c: cards.list_cards(c.conn, c.owner_id, c.now)),
    _r("/v1/cards", "POST", create_card),
    _r("/v1/cards/{card_id}", "GET", lambda c: cards.get_card(c.conn, c.owner_id, _card(c), c.now)),
    _r("/v1/cards/{card_id}", "PATCH", lambda c: cards.patch_card(
        c.conn, c.owner_id, _card(c), c.body(CardPatch), c.now)),
    _r("/v1/cards/{card_id}", "DELETE", lambda c: cards.delete_card(
        c.conn, c.owner_id, _card(c), c.now)),
    _r("/v1/cards/{card_id}/freeze", "POST", lambda c: cards.set_frozen(
        c.conn, c.owner_id, _card(c), True, c.now)),
    _r("/v1/cards/{card_id}/unfreeze", "POST", lambda c: cards.set_frozen(
        c.conn, c.owner_id, _card(c), False, c.now)),
    _r("/v1/cards/{card_id}/ledger", "GET", lambda c: ledger.ledger_page(
        c.conn, c.owner_id, card_id=_card(c), **_page_args(c))),
    _r("/v1/webhooks", "GET", lambda c: webhooks.get_endpoint(c.conn, c.owner_id)),
    _r("/v1/webhooks", "POST", lambda c: webhooks.set_endpoint(
        c.conn, c.owner_id, c.body(WebhookSet).url, c.now)),
    Route("/v1/webhooks/test", test_webhook, methods=["POST"]),
    _r("/v1/_test/swipe", "POST", lambda c: cards.swipe(c.conn, c.owner_id, c.body(Swipe), c.now)),
    _r("/v1/_test/cards/{card_id}/reset_daily", "POST", lambda c: cards.reset_daily(
        c.conn, c.owner_id, _card(c), c.now)),
    # sandbox: what the human would do in the dashboard
    _r("/v1/owner", "GET", lambda c: accounts.owner_view(c.conn, c.owner_id)),
    _r("/v1/owner", "PATCH", lambda c: accounts.patch_owner(
        c.conn, c.owner_id, c.body(OwnerPatch).model_dump(exclude_unset=True))),
    _r("/v1/_test/owner/suspend", "POST", lambda c: accounts.set_owner_suspended(
        c.conn, c.owner_id, True)),
    _r("/v1/_test/owner/resume", "POST", lambda c: accounts.set_owner_suspended(
        c.conn, c.owner_id, False)),
    _r("/v1/api_keys", "GET", lambda c: accounts.list_keys(c.conn, c.owner_id)),
    _r("/v1/api_keys", "POST", create_key, replayable=False),
    _r("/v1/api_keys/{key_id}/revoke", "POST", lambda c: accounts.revoke_key(
        c.conn, c.owner_id, c.params["key_id"], c.now)),
]  # fmt: skip


def _one_route_per_path(routes: list[Route]) -> list[Route]:
    """Merges the table's per-method routes, so that a wrong method gets a 405 whose Allow
    header lists every method of the path (Starlette stops at the first partial match)."""
    tables: dict[str, dict[str, Callable[[Request], Any]]] = {}
    for route in routes:
        for method in route.methods or ():
            tables.setdefault(route.path, {})[method] = route.endpoint
    return [Route(path, _by_method(table), methods=list(table)) for path, table in tables.items()]


def _by_method(table: dict[str, Callable[[Request], Any]]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        response: Response = await table[request.method](request)
        return response

    return endpoint


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.body())


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("sandbox internal error on %s %s", request.method, request.url.path, exc_info=exc)
    error = ApiError(500, "api_error", "internal_error", "The sandbox hit an internal error.")
    return _json(500, error.body())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    error = ApiError(exc.status_code, "invalid_request_error", code, str(exc.detail))
    return _json(exc.status_code, error.body(), dict(exc.headers or {}))


def create_app(
    store: Store,
    *,
    clock: Clock = system_clock,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    **webhook_options: Any,
) -> Starlette:
    """The sandbox app. Its lifespan runs webhook delivery; enter it when embedding the app
    (``async with app.router.lifespan_context(app)``), as uvicorn does when serving it."""
    state = SandboxState(store, clock, webhook_transport, webhook_options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dispatcher = webhooks.Dispatcher(
            store, lambda: _new_webhook_client(state), **webhook_options
        )
        try:
            async with anyio.create_task_group() as tg:
                state.dispatcher = dispatcher
                tg.start_soon(dispatcher.run)
                try:
                    yield
                finally:
                    state.dispatcher = None
                    tg.cancel_scope.cancel()
        finally:
            await dispatcher.aclose()

    app = Starlette(
        routes=_one_route_per_path(ROUTES),
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, 500: _server_error},
    )
    app.state.sandbox = state
    return app
