"""A fake Proxy issuer, field by field from issuer-docs/proxy-create-card.txt and more-facts.md.

fake = FakeProxy(clock=clock)              # clock: () -> aware datetime (tests.support.FakeClock)
client = httpx.AsyncClient(transport=fake.transport(), base_url="http://proxy.test",
                           headers={"Api-Key": fake.api_key})
fake.force(503)                            # the next request answers this
fake.lose_answer("POST", path)             # the next one acts, then its answer is lost
fake.swipe(card_id, 1200, "Delta", "4511") # a merchant asks to be paid
fake.over_limit                            # requests that found their rate bucket empty

- ``Api-Key: <key>`` on every request (``Authorization: Bearer`` is not it): 401
  ``missing_api_key`` / ``invalid_api_key``.
- Per organisation: reads 100 a minute (burst 20), writes 30 a minute (burst 10); beyond, 429
  ``rate_limited`` with ``Retry-After``.
- ``Idempotency-Key`` on POST is remembered 24 h: the same key and body replay the answer, the
  same key with another body is 409 ``idempotency_key_reused``.
- ``POST /v1/agents/{agentId}/cards`` takes only the documented fields, each of its type
  (``maxAmount`` and the ``limits`` figures integer cents: a float is 400
  ``validation_failed``); an agent whose ``credentialExposure`` is ``rawPan`` gets ``pan`` and
  ``cvv`` in the create answer only.
- Cards: ``notActivated`` → ``active`` ⇄ ``frozen`` → ``closed``; freezing a frozen card is 409
  ``card_already_frozen``, any change to a closed one 409 ``card_already_closed``, a change to
  one not activated 400 ``card_not_active``. Lists page with ``limit`` (≤ 100) and ``cursor``,
  answering ``{"data", "nextCursor", "hasMore"}``.
- Errors are ``{"error": {"type", "code", "message"}, "request_id"}``.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.agentcard import Recorded
from tests.fakes.clawdcards import LosingTransport, luhn

__all__ = ["FakeProxy"]

_INT, _STR, _BOOL, _NUM, _OBJ = int, str, bool, float, dict
# The create body, as documented: name -> type (enums and ranges checked below).
_CREATE_FIELDS: dict[str, type] = {
    "purpose": _STR, "type": _STR, "maxAmount": _INT, "merchantHint": _STR, "limits": _OBJ,
    "maxAuthCount": _INT, "ttlDays": _INT, "ttlMinutes": _INT, "onExpiry": _STR,
    "activeHoursStart": _INT, "activeHoursEnd": _INT, "activeTimezone": _STR, "activeDays": list,
    "cumulativeMax": _INT, "cooldownMinutes": _INT, "requireAttestation": _BOOL,
    "intentTolerance": _NUM, "attestationWindowMinutes": _INT, "onDrift": _STR,
    "merchantDriftEnabled": _BOOL, "requireApproval": _BOOL, "autoApproveBelow": _INT,
    "feeOverride": _OBJ, "riskPolicy": _OBJ,
}  # fmt: skip
_ENUMS = {"type": {"single", "multi"}, "onExpiry": {"freeze", "close"},
          "onDrift": {"freeze", "alert"}}  # fmt: skip
_LIMIT_FIELDS = frozenset({"perAuth", "perDay", "perMonth"})


class _Fail(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


@dataclass
class _Bucket:
    per_minute: float
    burst: float
    tokens: float
    at: datetime | None = None

    def take(self, now: datetime) -> float | None:
        """None when a token was taken, else the seconds until one is there."""
        if self.at is not None:
            self.tokens = min(self.burst, self.tokens
                              + (now - self.at).total_seconds() * self.per_minute / 60)  # fmt: skip
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) * 60 / self.per_minute


def _typed(value: Any, kind: type) -> bool:
    if kind is int:
        return type(value) is int
    if kind is float:
        return type(value) in (int, float)
    return isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))


class FakeProxy:
    def __init__(
        self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC), exposure: str = "rawPan"
    ) -> None:
        self.clock = clock
        self.api_key = "lk_dev_" + secrets.token_hex(16)
        self.agent_id = "agent_fake0001"
        self.agents = {self.agent_id: {"id": self.agent_id, "name": "starter",
                                       "credentialExposure": exposure}}  # fmt: skip
        self.activate_on_create = True
        self.cards: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.over_limit: list[Recorded] = []
        self.reads = _Bucket(100, 20, 20)
        self.writes = _Bucket(30, 10, 10)
        self._replays: dict[str, tuple[bytes, datetime, int, Any]] = {}
        self._script: list[tuple[int, Any, str | None, str | None]] = []
        self._ids = itertools.count(1)
        table: dict[str, dict[str, Callable[[Request, Any], Any]]] = {
            "/v1/agents": {"GET": lambda r, b: self._page(r, list(self.agents.values()))},
            "/v1/agents/{agent_id}/cards": {"POST": self._create},
            "/v1/cards": {"GET": self._list},
            "/v1/cards/{card_id}": {"GET": lambda r, b: self._public(self._card(r))},
            "/v1/cards/{card_id}/policy": {"GET": self._policy},
            "/v1/cards/{card_id}/freeze": {"POST": lambda r, b: self._move(r, "freeze")},
            "/v1/cards/{card_id}/unfreeze": {"POST": lambda r, b: self._move(r, "unfreeze")},
            "/v1/cards/{card_id}/close": {"POST": lambda r, b: self._move(r, "close")},
            "/v1/transactions": {"GET": self._transactions},
        }
        self.app = Starlette(routes=[Route(path, self._endpoint(methods), methods=list(methods))
                                     for path, methods in table.items()])  # fmt: skip
        self._transport = LosingTransport(self.app)

    # -- scripting and inspection ---------------------------------------------------------

    def transport(self) -> LosingTransport:
        return self._transport

    def force(self, status: int, *, code: str = "forced", method: str | None = None,
              path: str | None = None, retry_after: str | None = None, times: int = 1,
              ) -> None:  # fmt: skip
        body = {"error": {"type": "api_error", "code": code, "message": f"forced {status}"}}
        self._script.extend([(status, (body, retry_after), method, path)] * times)

    @property
    def rate_limited(self) -> int:
        """How many requests the issuer answered 429 of its own (a well-paced client: 0)."""
        return len(self.over_limit)

    def lose_answer(self, method: str, path: str) -> None:
        self._transport.losses.append((method, path))

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def activate(self, card_id: str) -> None:
        card = self.cards[card_id]
        assert card["status"] == "notActivated"
        card["status"] = "active"

    def swipe(self, card_id: str, cents: int, merchant: str, mcc: str) -> dict[str, Any]:
        card, policy = self.cards[card_id], self.policies[card_id]
        limits = policy["limits"]
        used = any(t["cardId"] == card_id and t["status"] != "declined" for t in self.transactions)
        day_left = None if limits["perDay"] is None else limits["perDay"] - limits["spentDay"]
        declined = (
            card["status"] != "active"
            or cents > card["maxAmount"]
            or (day_left is not None and cents > day_left)
            or (card["type"] == "single" and used)
        )
        if not declined:
            limits["spentDay"] += cents
            limits["spentMonth"] += cents
        transaction = {
            "id": f"txn_fake{next(self._ids):05d}", "cardId": card_id, "type": "authorization",
            "status": "declined" if declined else "pending", "amount": cents, "currency": "usd",
            "merchant": {"name": merchant, "mcc": mcc, "city": "Atlanta", "country": "US",
                         "category": "airlines"},
            "createdAt": _iso(self.clock()),
        }  # fmt: skip
        self.transactions.append(transaction)
        return transaction

    # -- the request cycle ----------------------------------------------------------------

    def _endpoint(
        self, methods: dict[str, Callable[[Request, Any], Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = ValueError
            recorded = Recorded(request.method, request.url.path, dict(request.headers),
                                dict(request.query_params), body)  # fmt: skip
            self.requests.append(recorded)
            for forced in self._script:
                status, (payload, after), method, path = forced
                if method in (None, request.method) and path in (None, request.url.path):
                    self._script.remove(forced)
                    headers = {"Retry-After": after} if after else None
                    return JSONResponse({**payload, "request_id": "req_forced"}, status, headers)
            try:
                return self._answer(request, recorded, raw, body, methods[request.method])
            except _Fail as fail:
                error = {"type": "invalid_request_error", "code": fail.code,
                         "message": fail.message}  # fmt: skip
                # Retry-After in whole seconds, rounded up: waiting it always finds a token.
                headers = (
                    {"Retry-After": str(math.ceil(fail.retry_after))} if fail.retry_after else None
                )
                return JSONResponse({"error": error, "request_id": _request_id()}, fail.status,
                                    headers)  # fmt: skip

        return endpoint

    def _answer(self, request: Request, recorded: Recorded, raw: bytes, body: Any,
                handler: Callable[[Request, Any], Any]) -> Response:  # fmt: skip
        key = request.headers.get("api-key")
        if key is None:
            raise _Fail(401, "missing_api_key", "Send your key in the Api-Key header.")
        if key != self.api_key:
            raise _Fail(401, "invalid_api_key", "The API key is not valid.")
        now = self.clock()
        wait = (self.writes if request.method == "POST" else self.reads).take(now)
        if wait is not None:
            self.over_limit.append(recorded)
            raise _Fail(429, "rate_limited", "Rate limit reached.", retry_after=wait)
        idem = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = request.method.encode() + request.url.path.encode() + b"\n" + raw
        if idem is not None and idem in self._replays:
            seen, at, status, payload = self._replays[idem]
            if now - at < timedelta(hours=24):
                if seen != fingerprint:
                    raise _Fail(409, "idempotency_key_reused", "Key used with another request.")
                return JSONResponse(payload, status)
        if body is ValueError or (request.method == "POST" and body is not None
                                  and not isinstance(body, dict)):  # fmt: skip
            raise _Fail(400, "body_parse_error", "The body must be a JSON object.")
        payload = handler(request, body or {})
        status = 201 if request.url.path.endswith("/cards") and request.method == "POST" else 200
        if idem is not None:
            self._replays[idem] = (fingerprint, now, status, payload)
        return JSONResponse(payload, status)

    # -- the API --------------------------------------------------------------------------

    def _create(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        agent = self.agents.get(request.path_params["agent_id"])
        if agent is None:
            raise _Fail(404, "agent_not_found", "No such agent.")
        for name, value in body.items():
            if name not in _CREATE_FIELDS:
                raise _Fail(400, "validation_failed", f"Unknown field: {name}.")
            if not _typed(value, _CREATE_FIELDS[name]):
                raise _Fail(400, "validation_failed", f"{name} has the wrong type.")
            if name in _ENUMS and value not in _ENUMS[name]:
                raise _Fail(400, "parameter_invalid", f"{name} must be one of {_ENUMS[name]}.")
        if not body.get("purpose"):
            raise _Fail(400, "parameter_missing", "purpose is required.")
        limits = body.get("limits", {})
        for name, value in limits.items():
            if name not in _LIMIT_FIELDS or type(value) is not int or value <= 0:
                raise _Fail(400, "validation_failed", f"limits.{name} is not a positive integer.")
        for name in ("maxAmount", "ttlMinutes", "ttlDays"):
            if name in body and body[name] <= 0:
                raise _Fail(400, "parameter_invalid", f"{name} must be positive.")
        n = next(self._ids)
        card_id = f"card_fake{n:05d}"
        created = self.clock()
        card: dict[str, Any] = {
            "id": card_id, "agentId": agent["id"], "userId": "user_fake", "type":
            body.get("type", "single"), "purpose": body["purpose"],
            "credentialExposure": agent["credentialExposure"],
            "status": "active" if self.activate_on_create else "notActivated",
            "last4": "", "expirationMonth": "12", "expirationYear": "2029",
            "maxAmount": body.get("maxAmount"), "createdAt": int(created.timestamp() * 1000),
            "limits": dict(limits),
        }  # fmt: skip
        pan = luhn(f"5555550000{n:05d}")
        card["last4"] = pan[-4:]
        ttl = body.get("ttlMinutes") or (body["ttlDays"] * 1440 if "ttlDays" in body else None)
        self.cards[card_id] = card
        self.policies[card_id] = {
            "cardId": card_id,
            "limits": {"perAuth": limits.get("perAuth", body.get("maxAmount")),
                       "perDay": limits.get("perDay"), "perMonth": limits.get("perMonth"),
                       "spentDay": 0, "spentMonth": 0},
            "ttlMinutes": ttl,
            "expiresAt": _iso(created + timedelta(minutes=ttl)) if ttl else None,
            "cooldownMinutes": body.get("cooldownMinutes"),
        }  # fmt: skip
        answer = self._public(card)
        if agent["credentialExposure"] == "rawPan":
            answer |= {"pan": pan, "cvv": f"{n * 7 % 1000:03d}"}
        return answer

    def _public(self, card: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in card.items() if v is not None}

    def _card(self, request: Request) -> dict[str, Any]:
        card = self.cards.get(request.path_params["card_id"])
        if card is None:
            raise _Fail(404, "card_not_found", "No such card.")
        return card

    def _policy(self, request: Request, body: Any) -> dict[str, Any]:
        policy = self.policies[self._card(request)["id"]]
        limits = policy["limits"]
        remaining = {
            f"remaining{period}": None
            if limits[f"per{period}"] is None
            else limits[f"per{period}"] - limits[f"spent{period}"]
            for period in ("Day", "Month")
        }
        return {**policy, "limits": {**limits, **remaining}}

    def _move(self, request: Request, action: str) -> dict[str, Any]:
        card = self._card(request)
        status = card["status"]
        if status == "closed":
            raise _Fail(409, "card_already_closed", "The card is closed.")
        if action == "close":
            card["status"] = "closed"
        elif status == "notActivated":
            raise _Fail(400, "card_not_active", "The card is not activated.")
        elif action == "freeze":
            if status == "frozen":
                raise _Fail(409, "card_already_frozen", "The card is already frozen.")
            card["status"] = "frozen"
        else:
            card["status"] = "active"
        return self._public(card)

    def _list(self, request: Request, body: Any) -> dict[str, Any]:
        cards = list(self.cards.values())
        if agent := request.query_params.get("agentId"):
            cards = [c for c in cards if c["agentId"] == agent]
        return self._page(request, [self._public(c) for c in cards])

    def _transactions(self, request: Request, body: Any) -> dict[str, Any]:
        found = self.transactions[::-1]
        if card_id := request.query_params.get("cardId"):
            found = [t for t in found if t["cardId"] == card_id]
        return self._page(request, found)

    def _page(self, request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            raise _Fail(400, "parameter_invalid", "limit must be an integer.") from None
        if not 1 <= limit <= 100:
            raise _Fail(400, "parameter_invalid", "limit must be from 1 to 100.")
        start = 0
        if cursor := request.query_params.get("cursor"):
            ids = [i["id"] for i in items]
            if cursor not in ids:
                raise _Fail(400, "parameter_invalid", "Unknown cursor.")
            start = ids.index(cursor) + 1
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {"data": page, "nextCursor": page[-1]["id"] if more else None, "hasMore": more}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id() -> str:
    return "req_" + secrets.token_hex(6)
