"""A fake agent-card.sh v1 API, written field by field from issuer-docs/agent-card-sh.txt and
more-facts.md, that refuses whatever those documents do not allow.

fake = FakeAgentCardSh()                          # a key with every scope
fake = FakeAgentCardSh(scopes={"cards:read"})     # a scoped key: other calls answer 403
fake.approve(card_id)                             # the human approves a card on agent-card.sh
fake.add_card()                                   # an active card made on the dashboard
fake.purchase(card_id, 500, "Shop")               # a merchant charges the card
fake.force(502, handle=True, path="/v1/cards", method="POST")  # acts, then loses the answer
fake.requests                                     # every request: method, path, headers, body

What it checks, as documented:
- ``Authorization: Bearer <key>`` (401 otherwise), the scope of each route (403 naming it);
- ``Content-Type: application/json`` on a request with a body;
- ``POST /v1/cards`` takes exactly ``{"card": {"name", "spend_limit_cents", "currency"?,
  "memo"?}}``: an unknown field is a 400, a float or a string where integer cents go is a
  422 naming the field; ``fund`` takes exactly ``{"amount_cents"}``; the state changes take
  no body;
- the state machine pending_approval → approved → active ⇄ frozen, any → closed (422 for any
  other move);
- 100 requests a minute per key (a 429 with ``Retry-After`` beyond), on ``clock``.
Answers are ``{"data": ...}``; errors ``{"errors": {"detail": ...}}`` (422: field → messages).
Not documented, so not offered: idempotency keys (the header is ignored), pagination, webhooks,
test keys.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["ALL_SCOPES", "FakeAgentCardSh", "Recorded"]

ALL_SCOPES = frozenset({"cards:read", "cards:write", "transactions:read"})
RATE_LIMIT = 100  # requests a minute per key
_CARD_FIELDS = {"name", "spend_limit_cents", "currency", "memo"}
# The documented moves: action → (from which statuses, to which status).
_MOVES: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending_approval"}), "approved"),
    "activate": (frozenset({"approved", "frozen"}), "active"),
    "freeze": (frozenset({"active"}), "frozen"),
    "close": (frozenset({"pending_approval", "approved", "active", "frozen"}), "closed"),
}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Forced:
    status: int
    method: str | None
    path: str | None
    handle: bool

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and self.path in (None, path)


class _Fail(Exception):
    def __init__(self, status: int, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.status, self.errors = status, errors


def _detail(status: int, detail: str) -> _Fail:
    return _Fail(status, {"detail": detail})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeAgentCardSh:
    def __init__(
        self,
        api_key: str = "ak_live_fake_key_0000",
        *,
        scopes: frozenset[str] | set[str] = ALL_SCOPES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.scopes = frozenset(scopes)
        self.clock = clock
        self.requests: list[Recorded] = []
        self.cards: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.funded: dict[str, int] = {}
        self.rate_limited = 0  # how many requests this fake answered 429
        self._window: deque[float] = deque()
        self._script: list[_Forced] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=self._routes())

    # -- the human and the merchants --------------------------------------------------------

    def approve(self, card_id: str) -> None:
        """The human approves the card in the agent-card.sh dashboard."""
        self._move(self.cards[card_id], "approve")

    def add_card(self, spend_limit_cents: int = 1000, status: str = "active") -> str:
        """A card the human made, approved and activated on the dashboard (no memo of ours)."""
        card_id = f"card_{next(self._ids):06d}"
        card: dict[str, Any] = {
            "id": card_id, "name": "dashboard card", "status": status,
            "spend_limit_cents": spend_limit_cents, "currency": "USD", "memo": None,
            "inserted_at": _now(),
        }  # fmt: skip
        self.cards[card_id] = card
        return card_id

    def purchase(self, card_id: str, amount_cents: int, merchant: str) -> dict[str, Any]:
        card = self.cards[card_id]
        approved = card["status"] == "active" and amount_cents <= card["spend_limit_cents"]
        txn = {
            "id": f"txn_{next(self._ids):06d}", "card_id": card_id, "amount_cents": amount_cents,
            "merchant_name": merchant, "status": "approved" if approved else "declined",
            "inserted_at": _now(),
        }  # fmt: skip
        self.transactions.append(txn)
        return txn

    def force(
        self, status: int, *, method: str | None = None, path: str | None = None,
        handle: bool = False, times: int = 1,
    ) -> None:  # fmt: skip
        """Answer the next ``times`` matching requests ``status`` (after acting, with
        ``handle``: a lost answer)."""
        self._script.extend(_Forced(status, method, path, handle) for _ in range(times))

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # -- the request cycle ----------------------------------------------------------------

    def _routes(self) -> list[Route]:
        table: list[tuple[str, str, str, Callable[[Request, Any], Any]]] = [
            ("GET", "/v1/cards", "cards:read", lambda r, b: list(self.cards.values())),
            ("POST", "/v1/cards", "cards:write", self._create),
            ("GET", "/v1/cards/{id}", "cards:read", lambda r, b: self._card(r)),
            ("POST", "/v1/cards/{id}/fund", "cards:write", self._fund),
            ("GET", "/v1/cards/{id}/transactions", "transactions:read", self._card_transactions),
            ("GET", "/v1/transactions/{id}", "transactions:read", self._transaction),
        ]
        table += [
            ("POST", f"/v1/cards/{{id}}/{action}", "cards:write", self._mover(action))
            for action in _MOVES
        ]
        by_path: dict[str, dict[str, tuple[str, Callable[[Request, Any], Any]]]] = {}
        for method, path, scope, handler in table:
            by_path.setdefault(path, {})[method] = (scope, handler)
        return [
            Route(path, self._endpoint(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]

    def _endpoint(
        self, methods: dict[str, tuple[str, Callable[[Request, Any], Any]]]
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body = json.loads(raw) if raw else None
            self.requests.append(
                Recorded(request.method, request.url.path, dict(request.headers), body)
            )
            scope, handler = methods[request.method]
            try:
                self._admit(request, scope, raw)
                forced = next(
                    (f for f in self._script if f.matches(request.method, request.url.path)),
                    None,
                )
                if forced is not None:
                    self._script.remove(forced)
                    if forced.handle:
                        handler(request, body)
                    raise _detail(forced.status, "forced")
                data = handler(request, body)
            except _Fail as fail:
                headers = {"Retry-After": "60"} if fail.status == 429 else None
                return JSONResponse({"errors": fail.errors}, fail.status, headers=headers)
            return JSONResponse({"data": data})

        return endpoint

    def _admit(self, request: Request, scope: str, raw: bytes) -> None:
        now = self.clock()
        while self._window and self._window[0] <= now - 60:
            self._window.popleft()
        if len(self._window) >= RATE_LIMIT:
            self.rate_limited += 1
            raise _detail(429, "Rate limited")
        self._window.append(now)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise _detail(401, "Unauthorized")
        if scope not in self.scopes:
            raise _detail(403, f"API key lacks required scope: {scope}")
        if raw and request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise _detail(400, "Content-Type must be application/json")

    # -- cards ----------------------------------------------------------------------------

    def _card(self, request: Request) -> dict[str, Any]:
        card = self.cards.get(request.path_params["id"])
        if card is None:
            raise _detail(404, "Not Found")
        return card

    def _create(self, request: Request, body: Any) -> dict[str, Any]:
        if (
            not isinstance(body, dict)
            or set(body) != {"card"}
            or not isinstance(body["card"], dict)
        ):
            raise _detail(400, 'the body must be {"card": {...}}')
        fields = body["card"]
        if unknown := set(fields) - _CARD_FIELDS:
            raise _detail(400, f"unknown parameter(s): {', '.join(sorted(unknown))}")
        problems: dict[str, list[str]] = {}
        if not isinstance(fields.get("name"), str) or not fields["name"]:
            problems["name"] = ["can't be blank"]
        limit = fields.get("spend_limit_cents")
        if type(limit) is not int or limit <= 0:
            problems["spend_limit_cents"] = ["must be a positive integer (cents)"]
        currency = fields.get("currency", "USD")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            problems["currency"] = ["must be an ISO 4217 code"]
        if "memo" in fields and not isinstance(fields["memo"], str | None):
            problems["memo"] = ["must be a string"]
        if problems:
            raise _Fail(422, problems)
        card = {
            "id": f"card_{next(self._ids):06d}", "name": fields["name"],
            "status": "pending_approval", "spend_limit_cents": limit,
            "currency": currency.upper(), "memo": fields.get("memo"), "inserted_at": _now(),
        }  # fmt: skip
        self.cards[card["id"]] = card
        return card

    def _move(self, card: dict[str, Any], action: str) -> dict[str, Any]:
        sources, target = _MOVES[action]
        if card["status"] not in sources:
            raise _detail(422, f"cannot {action} a card in status {card['status']}")
        card["status"] = target
        return card

    def _mover(self, action: str) -> Callable[[Request, Any], Any]:
        def move(request: Request, body: Any) -> dict[str, Any]:
            if body not in (None, {}):
                raise _detail(400, f"{action} takes no parameters")
            return self._move(self._card(request), action)

        return move

    def _fund(self, request: Request, body: Any) -> dict[str, Any]:
        card = self._card(request)
        if not isinstance(body, dict) or set(body) != {"amount_cents"}:
            raise _detail(400, 'the body must be {"amount_cents": <integer>}')
        if type(body["amount_cents"]) is not int or body["amount_cents"] <= 0:
            raise _Fail(422, {"amount_cents": ["must be a positive integer (cents)"]})
        self.funded[card["id"]] = self.funded.get(card["id"], 0) + body["amount_cents"]
        return card

    # -- transactions ---------------------------------------------------------------------

    def _card_transactions(self, request: Request, body: Any) -> list[dict[str, Any]]:
        card = self._card(request)
        return [t for t in self.transactions if t["card_id"] == card["id"]]

    def _transaction(self, request: Request, body: Any) -> dict[str, Any]:
        for txn in self.transactions:
            if txn["id"] == request.path_params["id"]:
                return txn
        raise _detail(404, "Not Found")
