"""A fake ClawdCards issuer, field by field from issuer-docs/clawdcards.txt and more-facts.md.

fake = FakeClawdCards(clock=clock)        # clock: () -> aware datetime (tests.support.FakeClock)
client = httpx.AsyncClient(transport=fake.transport(), base_url="http://clawd.test/v1",
                           headers={"Authorization": f"Bearer {fake.api_key}"})
fake.force(503, code="no_cards_available")   # the next request answers this
fake.lose_answer("POST", "/v1/cards")        # the next one acts, then its answer is lost
fake.use(card_id, 75, "Vercel")              # a merchant charges the card (first use ends it)
fake.rate_limited                            # how many requests were answered 429

- ``Authorization: Bearer <key>`` on everything but ``POST /keys``: else 401 ``invalid_key``.
- 1 request a minute per key, every endpoint: the second within 60 s is 429 ``rate_limited``
  (the docs give no Retry-After header, so none is sent).
- ``POST /cards``: exactly ``amount`` (a JSON number of dollars, whole cents, at most the
  per-transaction limit, else 400 ``amount_exceeded``), ``merchant_category`` (one of seven),
  ``ttl_minutes`` (integer 1-1440, default 1440). Anything else is 400 ``invalid_params``. The
  answer carries the details, once: ``{"card": {"number", "cvv", "expiry", "spending_limit",
  "expires_at"}, "transaction_id"}``. No Idempotency-Key is documented, so none is honoured.
- ``GET /limits`` in cents (the older version has no ``cards_remaining``); ``GET /transactions``
  exists only in the older version (``transactions=True``), else 404.
- 403 ``limit_exceeded`` when the month's limit is spent; 503 ``no_cards_available`` when the
  pool is empty. Errors are ``{"code", "message"}``.
- No freeze, close, list or get: a card ends at its TTL or its first use.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.agentcard import Recorded

__all__ = ["CATEGORIES", "FakeClawdCards", "LosingTransport", "luhn"]

CATEGORIES = ("web_hosting", "cloud_compute", "api_services", "saas_tools", "domains",
              "databases", "other")  # fmt: skip
_BODY_FIELDS = frozenset({"amount", "merchant_category", "ttl_minutes"})


class _Fail(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status)


@dataclass
class _Forced:
    status: int
    body: Any
    method: str | None
    path: str | None

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and self.path in (None, path)


class LosingTransport(httpx.AsyncBaseTransport):
    """The fake's app in process; an answer marked lost is read (the issuer acted) and then
    replaced by a transport error, as a dropped connection would."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.losses: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if (request.method, request.url.path) in self.losses:
            self.losses.remove((request.method, request.url.path))
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


@dataclass
class _Card:
    id: str
    number: str
    cvv: str
    expiry: str
    cents: int
    expires_at: datetime
    used: bool = False
    transaction: dict[str, Any] | None = field(default=None)


class FakeClawdCards:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        per_transaction_limit: int = 100,
        monthly_limit: int = 50000,
        pool: int = 20,
        transactions: bool = False,
        older: bool = False,
    ) -> None:
        self.clock = clock
        self.api_key = "sk_live_" + secrets.token_hex(16)
        self.keys = {self.api_key}
        self.per_transaction_limit = per_transaction_limit
        self.monthly_limit = monthly_limit
        self.monthly_spent = 0
        self.pool = pool
        self.transactions = transactions or older
        self.older = older
        self.cards: dict[str, _Card] = {}
        self.requests: list[Recorded] = []
        self.rate_limited = 0  # requests answered 429 (a well-paced client: 0)
        self._last: dict[str, datetime] = {}
        self._key_made: datetime | None = None
        self._script: list[_Forced] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/v1/keys", self._endpoint(self._keys), methods=["POST", "DELETE"]),
            Route("/v1/cards", self._endpoint(self._create), methods=["POST"]),
            Route("/v1/limits", self._endpoint(self._limits), methods=["GET"]),
            Route("/v1/transactions", self._endpoint(self._transactions), methods=["GET"]),
        ])  # fmt: skip
        self._transport = LosingTransport(self.app)

    # -- scripting and inspection ---------------------------------------------------------

    def transport(self) -> LosingTransport:
        return self._transport

    def force(self, status: int, *, code: str = "", body: Any = None,
              method: str | None = None, path: str | None = None) -> None:  # fmt: skip
        if body is None:
            body = {"code": code or "forced", "message": f"forced {status}"}
        self._script.append(_Forced(status, body, method, path))

    def lose_answer(self, method: str, path: str) -> None:
        self._transport.losses.append((method, path))

    def use(self, card_id: str, cents: int, merchant: str) -> bool:
        """A merchant charges the card: approved within its limit and TTL, once."""
        card = self.cards[card_id]
        ok = not card.used and cents <= card.cents and self.clock() < card.expires_at
        card.used = card.used or ok
        if ok:
            self.monthly_spent += cents
        card.transaction = {
            "id": card.id, "amount": cents, "merchant_name": merchant,
            "reason": None if ok else "declined", "success": ok,
            "created_at": self.clock().isoformat().replace("+00:00", "Z"),
        }  # fmt: skip
        if not self.older:
            card.transaction["card_last_four"] = card.number[-4:]
        return ok

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # -- the request cycle ----------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[Request, Any], Any]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw, parse_float=Decimal) if raw else None
            except ValueError:
                body = ValueError
            recorded = Recorded(request.method, request.url.path, dict(request.headers),
                                dict(request.query_params), body)  # fmt: skip
            self.requests.append(recorded)
            where = (request.method, request.url.path)
            forced = next((f for f in self._script if f.matches(*where)), None)
            if forced is not None:
                self._script.remove(forced)
                return JSONResponse(forced.body, forced.status)
            try:
                if (request.method, request.url.path) != ("POST", "/v1/keys"):
                    self._authenticate(request)
                if body is ValueError:
                    raise _Fail(400, "invalid_params", "The body is not JSON.")
                return JSONResponse(handler(request, body))
            except _Fail as fail:
                return _error(fail.status, fail.code, fail.message)

        return endpoint

    def _authenticate(self, request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or key not in self.keys:
            raise _Fail(401, "invalid_key", "API key is missing, malformed, or revoked.")
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < timedelta(minutes=1):
            self.rate_limited += 1
            raise _Fail(429, "rate_limited", "Too many requests. Limit: 1 request per minute.")
        self._last[key] = now

    # -- the API --------------------------------------------------------------------------

    def _keys(self, request: Request, body: Any) -> dict[str, Any]:
        if request.method == "DELETE":
            self.keys.discard(request.headers["authorization"].partition(" ")[2])
            return {"revoked": True, "message": "API key revoked."}
        if self._key_made is not None and self.clock() - self._key_made < timedelta(hours=1):
            raise _Fail(429, "key_rate_limited", "1 key per IP per hour.")
        self._key_made = self.clock()
        key = "sk_live_" + secrets.token_hex(16)
        self.keys.add(key)
        return {"api_key": key, "created_at": self.clock().isoformat(),
                "message": "Store this key securely. It will not be shown again."}  # fmt: skip

    def _create(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Fail(400, "invalid_params", "The body must be a JSON object.")
        allowed = _BODY_FIELDS | ({"reason"} if self.older else set())
        if unknown := sorted(set(body) - allowed):
            raise _Fail(400, "invalid_params", f"Unknown parameter(s): {', '.join(unknown)}.")
        cents = _cents(body.get("amount"))
        category = body.get("merchant_category")
        if category not in CATEGORIES:
            raise _Fail(400, "invalid_params", "merchant_category must be one of the seven.")
        ttl = body.get("ttl_minutes", 1440)
        if type(ttl) is not int or not 1 <= ttl <= 1440:
            raise _Fail(400, "invalid_params", "ttl_minutes must be an integer from 1 to 1440.")
        if self.older and not (isinstance(body.get("reason"), str) and len(body["reason"]) >= 10):
            raise _Fail(400, "invalid_params", "reason must be at least 10 characters.")
        if cents > self.per_transaction_limit:
            raise _Fail(400, "amount_exceeded", "Amount exceeds the per transaction limit.")
        if self.monthly_spent + cents > self.monthly_limit:
            raise _Fail(403, "limit_exceeded", "Monthly spending limit reached.")
        if self.pool <= 0:
            raise _Fail(503, "no_cards_available", "Card pool is exhausted.")
        self.pool -= 1
        n = next(self._ids)
        number = luhn(f"4242420000{n:05d}")
        card = _Card(f"txn_{secrets.token_hex(6)}", number, f"{(n * 37) % 1000:03d}", "12/29",
                     cents, self.clock() + timedelta(minutes=ttl))  # fmt: skip
        self.cards[card.id] = card
        return {
            "card": {"number": card.number, "cvv": card.cvv, "expiry": card.expiry,
                     "spending_limit": cents,
                     "expires_at": card.expires_at.isoformat().replace("+00:00", "Z")},
            "transaction_id": card.id,
        }  # fmt: skip

    def _limits(self, request: Request, body: Any) -> dict[str, Any]:
        limits = {
            "monthly_limit": self.monthly_limit,
            "monthly_spent": self.monthly_spent,
            "monthly_remaining": self.monthly_limit - self.monthly_spent,
            "per_transaction_limit": self.per_transaction_limit,
        }
        if not self.older:
            limits["cards_remaining"] = self.pool
        return limits

    def _transactions(self, request: Request, body: Any) -> dict[str, Any]:
        if not self.transactions:
            raise _Fail(404, "not_found", "Not found.")
        done = [c.transaction for c in self.cards.values() if c.transaction is not None]
        return {"transactions": done[::-1]}


def _cents(amount: Any) -> int:
    """Whole cents from a JSON number of dollars; anything else is 400 ``invalid_params``."""
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise _Fail(400, "invalid_params", "amount must be a number of dollars.")
    cents = Decimal(amount) * 100
    if cents <= 0 or cents != cents.to_integral_value():
        raise _Fail(400, "invalid_params", "amount must be a positive number of whole cents.")
    return int(cents)


def luhn(partial: str) -> str:
    digits = [int(d) for d in partial]
    total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                for i, d in enumerate(reversed(digits)))  # fmt: skip
    return partial + str((10 - total % 10) % 10)
