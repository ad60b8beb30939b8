"""A small fake AgentCard v1 issuer (issuer-docs/agentcard-so.md) whose answers can be scripted.

fake = FakeAgentCard()
fake.force(503)                                   # the next request answers 503
fake.force(429, retry_after="1", path="/v1/cards", method="POST")
fake.force(502, handle=True)                      # acts, then answers 502 (a lost response)
client = httpx.AsyncClient(transport=fake.transport(), base_url="http://issuer.test",
                           headers={"Authorization": f"Bearer {fake.api_key}"})
fake.requests                                     # every request: method, path, headers, body
fake = FakeAgentCard(latency=0.05)                # every request waits 50 ms before it acts
fake.before = hook                                # awaited as a request arrives; False drops it
fake.after = hook                                 # awaited after it acted, before it is answered

Everything else is answered as the docs say, field by field: cards (create, get, list, PATCH,
freeze, unfreeze, DELETE), ledgers, usage, agents, and ``/v1/_test/swipe``. Writes with an
``Idempotency-Key`` replay their first 2xx answer; the same key with another body is a 409.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeAgentCard", "Forced", "Hook", "Recorded", "error_body"]

_DEFAULT_CODES = {
    400: "parameter_invalid",
    401: "invalid_api_key",
    403: "forbidden",
    404: "resource_missing",
    409: "idempotency_key_reused",
    422: "card_limit_reached",
    429: "rate_limited",
}


def error_body(code: str, message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    """An error in Stripe's shape, as AgentCard (on Stripe Issuing) answers them."""
    return {"error": {"type": type_, "code": code, "message": message}}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    query: dict[str, str]
    body: Any  # the decoded JSON body, or None

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class Forced:
    """A scripted answer for the next request that matches ``method`` and ``path`` (None: any)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None
    handle: bool = False  # act on the request first, then answer this instead

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and self.path in (None, path)


# Awaited around a request (see FakeAgentCard.before and .after). A ``before`` hook that
# returns False drops the request: nothing is done and it is answered 503.
Hook = Callable[[Recorded], Awaitable[bool | None]]


class _Fail(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _positive(body: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if type(value) is not int or value <= 0:
        raise _Fail(400, "parameter_invalid", f"{name} must be a positive integer (cents).")
    return value


class FakeAgentCard:
    def __init__(self, api_key: str = "ac_test_fake_key_0000", *, latency: float = 0.0) -> None:
        self.api_key = api_key
        # Seconds every request waits (without blocking others) before it acts: a slow remote
        # issuer, so that concurrent calls really overlap at the issuer.
        self.latency = latency
        # Awaited, in the app's event loop, as a request arrives (before ``latency``) and just
        # after it acted, before it is answered; None: nothing.
        self.before: Hook | None = None
        self.after: Hook | None = None
        self.requests: list[Recorded] = []
        self.script: list[Forced] = []
        self._ids = itertools.count(1)
        self.agents: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, dict[str, Any]] = {}  # live cards; deleted ones leave
        self.deleted: dict[str, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []  # oldest first
        self._replays: dict[str, tuple[bytes, int, Any]] = {}
        self.agent_id = self._add_agent("starter-agent", None)["id"]
        self.app = Starlette(routes=self._routes())

    # -- scripting and inspection ---------------------------------------------------------

    def force(
        self,
        status: int,
        body: Any = None,
        *,
        code: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        method: str | None = None,
        path: str | None = None,
        handle: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (an error body in Stripe's
        shape unless ``body`` is given)."""
        if body is None and status >= 400:
            body = error_body(
                code or _DEFAULT_CODES.get(status, "api_error"), message or f"forced {status}"
            )
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self.script.append(Forced(status, body, headers, method, path, handle))

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    # -- the request cycle ----------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[Request, dict[str, Any]], Any]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            path = request.url.path
            query = dict(request.query_params)
            recorded = Recorded(request.method, path, dict(request.headers), query, body)
            self.requests.append(recorded)
            if self.before is not None and await self.before(recorded) is False:
                return _response(503, error_body("api_error", "dropped", "api_error"))
            if self.latency > 0:
                await anyio.sleep(self.latency)
            response = self._act(request, raw, body, handler)
            if self.after is not None:
                await self.after(recorded)
            return response

        return endpoint

    def _act(
        self,
        request: Request,
        raw: bytes,
        body: Any,
        handler: Callable[[Request, dict[str, Any]], Any],
    ) -> Response:
        forced = next((f for f in self.script if f.matches(request.method, request.url.path)), None)
        if forced is not None:
            self.script.remove(forced)
            if forced.handle:
                self._answer(request, raw, body, handler)
            return _response(forced.status, forced.body, forced.headers)
        return self._answer(request, raw, body, handler)

    def _answer(
        self,
        request: Request,
        raw: bytes,
        body: Any,
        handler: Callable[[Request, dict[str, Any]], Any],
    ) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _response(401, error_body("invalid_api_key", "Invalid API key provided."))
        key = request.headers.get("idempotency-key") if request.method != "GET" else None
        fingerprint = request.method.encode() + b" " + request.url.path.encode() + b"\n" + raw
        if key is not None and key in self._replays:
            seen, status, payload = self._replays[key]
            if seen != fingerprint:
                return _response(409, error_body(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request.",
                    "idempotency_error",
                ))  # fmt: skip
            return _response(status, payload, {"Idempotent-Replayed": "true"})
        if request.method != "GET" and body is not None and not isinstance(body, dict):
            return _response(400, error_body("parameter_invalid", "The body must be an object."))
        try:
            payload = handler(request, body or {})
        except _Fail as fail:
            return _response(fail.status, error_body(fail.code, fail.message))
        if isinstance(payload, list):
            payload = {"data": payload, "has_more": False}
        if key is not None:
            self._replays[key] = (fingerprint, 200, payload)
        return _response(200, payload)

    # -- the API --------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        table: dict[str, dict[str, Callable[[Request, dict[str, Any]], Any]]] = {
            "/v1/usage": {"GET": self._usage},
            "/v1/agents": {"GET": lambda r, b: list(self.agents.values()),
                           "POST": self._create_agent},
            "/v1/agents/{agent_id}": {"GET": lambda r, b: self._agent(r)},
            "/v1/agents/{agent_id}/ledger": {"GET": self._agent_ledger},
            "/v1/cards": {"GET": lambda r, b: list(self.cards.values()),
                          "POST": self._create_card},
            "/v1/cards/{card_id}": {"GET": lambda r, b: self._card(r), "PATCH": self._patch,
                                    "DELETE": self._delete},
            "/v1/cards/{card_id}/freeze": {"POST": lambda r, b: self._freeze(r, True)},
            "/v1/cards/{card_id}/unfreeze": {"POST": lambda r, b: self._freeze(r, False)},
            "/v1/cards/{card_id}/ledger": {"GET": self._card_ledger},
            "/v1/_test/swipe": {"POST": self._swipe},
        }  # fmt: skip
        routes = []
        for path, methods in table.items():
            by_method = {m: self._endpoint(h) for m, h in methods.items()}
            routes.append(Route(path, _dispatch(by_method), methods=list(methods)))
        return routes

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _add_agent(self, name: str, description: str | None) -> dict[str, Any]:
        agent: dict[str, Any] = {
            "id": self._new_id("agt"), "name": name, "description": description,
            "status": "active", "created_at": _now(),
        }  # fmt: skip
        self.agents[agent["id"]] = agent
        return agent

    def _create_agent(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise _Fail(400, "parameter_missing", "name is required.")
        return self._add_agent(body["name"], body.get("description"))

    def _agent(self, request: Request) -> dict[str, Any]:
        agent_id = request.path_params["agent_id"]
        if agent_id not in self.agents:
            raise _Fail(404, "resource_missing", f"No such agent: '{agent_id}'")
        return self.agents[agent_id]

    def _card(self, request: Request, *, deleted: bool = False) -> dict[str, Any]:
        card_id = request.path_params["card_id"]
        card = self.cards.get(card_id) or (self.deleted.get(card_id) if deleted else None)
        if card is None:
            raise _Fail(404, "resource_missing", f"No such card: '{card_id}'")
        return card

    def _create_card(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        agent_id = body.get("agent_id")
        if not isinstance(agent_id, str):
            raise _Fail(400, "parameter_missing", "agent_id is required.")
        if agent_id not in self.agents:
            raise _Fail(404, "resource_missing", f"No such agent: '{agent_id}'")
        daily = _positive(body, "daily_limit_cents", required=True)
        per_auth = _positive(body, "per_auth_max_cents", required=False)
        allowlist = body.get("mcc_allowlist") or []
        if not isinstance(allowlist, list) or not all(isinstance(t, str) for t in allowlist):
            raise _Fail(400, "parameter_invalid", "mcc_allowlist must be a list of strings.")
        if len(self.cards) >= 25:
            raise _Fail(422, "card_limit_reached", "This account holds 25 of its 25 cards.")
        number = next(self._ids)
        card: dict[str, Any] = {
            "id": f"card_fake{number:06d}",
            "agent_id": agent_id,
            "last4": f"{4000 + number % 1000:04d}",
            "nickname": body.get("nickname"),
            "daily_limit_cents": daily,
            "per_auth_max_cents": per_auth or daily,
            "mcc_allowlist": list(dict.fromkeys(allowlist)),
            "frozen": False,
            "current_daily_spend_cents": 0,
            "created_at": _now(),
        }
        self.cards[card["id"]] = card
        return card

    def _patch(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        card = self._card(request)
        for name in ("daily_limit_cents", "per_auth_max_cents"):
            if name in body:
                card[name] = _positive(body, name, required=True)
        if "mcc_allowlist" in body:
            card["mcc_allowlist"] = list(dict.fromkeys(body["mcc_allowlist"] or []))
        return card

    def _freeze(self, request: Request, frozen: bool) -> dict[str, Any]:
        card = self._card(request)
        card["frozen"] = frozen
        return card

    def _delete(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        card = self._card(request)
        self.deleted[card["id"]] = self.cards.pop(card["id"])
        return {"id": card["id"], "deleted": True}

    def _page(self, request: Request, entries: list[dict[str, Any]]) -> dict[str, Any]:
        limit = int(request.query_params.get("limit", "50"))
        if decision := request.query_params.get("decision"):
            entries = [e for e in entries if e["decision"] == decision]
        entries = entries[::-1]
        if cursor := request.query_params.get("cursor"):
            ids = [e["id"] for e in entries]
            entries = entries[ids.index(cursor) + 1 :] if cursor in ids else []
        page = entries[:limit]
        more = len(entries) > limit
        return {"data": page, "has_more": more, "next_cursor": page[-1]["id"] if more else None}

    def _card_ledger(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        card = self._card(request, deleted=True)
        return self._page(request, [e for e in self.ledger if e["card_id"] == card["id"]])

    def _agent_ledger(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        agent = self._agent(request)
        return self._page(request, [e for e in self.ledger if e["agent_id"] == agent["id"]])

    def _usage(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        approved = [e for e in self.ledger if e["decision"] == "approve"]
        return {
            "plan": {"name": "payg"},
            "owner": {"id": "own_fake", "deposit_balance_cents": 100000},
            "cards": {"used": len(self.cards), "limit": 25, "remaining": 25 - len(self.cards)},
            "stats": {"total_auths": len(self.ledger),
                      "total_volume_cents": sum(e["amount_cents"] for e in approved)},
        }  # fmt: skip

    def _swipe(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        if not self.api_key.startswith("ac_test_"):
            raise _Fail(403, "test_mode_only", "Swipes are available only with ac_test_ keys.")
        card_id = body.get("card_id")
        card = self.cards.get(str(card_id)) or self.deleted.get(str(card_id))
        if card is None:
            raise _Fail(404, "resource_missing", f"No such card: '{card_id}'")
        amount = _positive(body, "amount_cents", required=True)
        assert amount is not None
        mcc = str(body.get("mcc", ""))
        spend = card["current_daily_spend_cents"]
        if card["id"] in self.deleted:
            reason = "card_not_active"
        elif card["frozen"]:
            reason = "card_frozen"
        elif self.agents[card["agent_id"]]["status"] != "active":
            reason = "agent_not_active"
        elif amount > card["per_auth_max_cents"]:
            reason = "per_auth_limit_exceeded"
        elif spend + amount > card["daily_limit_cents"]:
            reason = "daily_limit_exceeded"
        elif card["mcc_allowlist"] and mcc not in card["mcc_allowlist"]:
            reason = "category_not_in_allowlist"
        else:
            reason = "approved"
        approved = reason == "approved"
        if approved:
            spend = card["current_daily_spend_cents"] = spend + amount
        entry: dict[str, Any] = {
            "id": self._new_id("auth"), "card_id": card["id"], "agent_id": card["agent_id"],
            "decided_at": _now(), "decision": "approve" if approved else "decline",
            "reason": reason, "amount_cents": amount, "merchant": str(body.get("merchant", "")),
            "mcc": mcc, "current_daily_spend_cents_after": spend,
        }  # fmt: skip
        self.ledger.append(entry)
        outcome = {
            "auth_id": entry["id"], "decision": entry["decision"], "reason": reason,
            "current_daily_spend_cents": spend, "decided_at": entry["decided_at"],
        }  # fmt: skip
        return {"agentcard_outcome": outcome, "approved": approved}


def _dispatch(
    by_method: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await by_method[request.method](request)

    return endpoint


def _response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    if isinstance(payload, bytes | str):
        return Response(payload, status, headers=headers, media_type="text/html")
    return JSONResponse(payload, status, headers=headers)
