"""HTTP to an issuer: retries, idempotency keys and error mapping, in one place.

- Every write carries an ``Idempotency-Key`` made once per logical operation and sent again,
  unchanged, on every retry — so a retry after a lost response can never act twice.
- Retried: connection errors, timeouts, 5xx, a 409 saying the same key is still in flight, and
  a 429 whose ``Retry-After`` fits in the backoff cap (a 429 without one is not retried).
  Backoff is capped and jittered.
- Issuer HTTP errors map once, here, to the stable codes of ``errors``:

    400 → invalid_params       401, 403 → issuer_auth_failed   404 → not_found
    409 → idempotency_conflict 422, other 4xx → issuer_rejected 429 → issuer_rate_limited
    5xx, transport errors, a 409 still in flight, a 2xx that is not JSON → issuer_unavailable

  An adapter overrides this for its own error codes (``IssuerBase.error_overrides``: ClawdCards'
  403 ``limit_exceeded`` is a limit reached, not a bad key); a 403 names the scope the request
  needed when the adapter says which (agent-card.sh's and Proxy's keys are scoped).
- Every attempt, retries included, first takes a slot of the issuer's own rate limit
  (``Pace``): our retries never push a key over it.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import httpx

from ..errors import (
    AgentCardError,
    IdempotencyConflict,
    InvalidParams,
    IssuerAuthFailed,
    IssuerRateLimited,
    IssuerRejected,
    IssuerUnavailable,
    NotFound,
)
from .pacing import Pace

__all__ = ["IssuerHTTP", "Overrides", "error_for_status", "new_idempotency_key", "origin_of"]

# (status, issuer code) → (error class, what to do next); see ``IssuerBase.error_overrides``.
Overrides = Mapping[tuple[int, str], tuple[type[AgentCardError], str]]

log = logging.getLogger("agentcard_mcp.issuers")

_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Codes an issuer uses for "a request with this key is still being processed" (Stripe's words).
_IN_FLIGHT_CODES = frozenset({"idempotency_key_in_use", "request_in_progress", "lock_timeout"})


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from an error body in Stripe's or a flat shape, or agent-card.sh's
    ``{"errors": {"detail": ...}}`` (field errors on a 422); empty when absent."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, dict) and isinstance(body.get("errors"), dict):
        return "", _errors_text(body["errors"])
    error = body.get("error", body) if isinstance(body, dict) else {}
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def origin_of(url: httpx.URL) -> str:
    """``scheme://host:port`` of ``url``: where a request went, with no user, password, path
    or query (any of which may hold a secret)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return f"{url.scheme}://{host}" + (f":{port}" if port else "")


def _errors_text(errors: dict[str, Any]) -> str:
    if isinstance(errors.get("detail"), str):
        return str(errors["detail"])
    # A validation error: {"field": ["message", ...]} (agent-card.sh's 422).
    return "; ".join(
        f"{field} {', '.join(map(str, v)) if isinstance(v, list) else v}"
        for field, v in errors.items()
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for_status(
    issuer: str,
    response: httpx.Response,
    overrides: Overrides | None = None,
    *,
    scope: str | None = None,
) -> AgentCardError:
    """The stable error for an issuer's HTTP error response: the adapter's ``overrides`` for
    its own codes first, then the status; ``scope`` is what the request needed (for a 403)."""
    status = response.status_code
    code, message = _error_detail(response)
    said = (
        f"{issuer} said {status}"
        + (f" {code}" if code else "")
        + (f": {message.rstrip('.')}" if message else "")
    )
    if overrides and (override := overrides.get((status, code))) is not None:
        error, next_step = override
        if issubclass(error, IssuerRateLimited):
            return IssuerRateLimited(f"{said}. {next_step}", retry_after=_retry_after(response))
        return error(f"{said}. {next_step}")
    if status == 400:
        return InvalidParams(f"{said}. Check the arguments and try again.")
    if status == 403 and scope is not None:
        return IssuerAuthFailed(
            f"{said}. The API key lacks the {scope!r} scope this needs: the operator must "
            f"give AGENTCARD_API_KEY the {scope} scope at {issuer}, or use a key that has it."
        )
    if status in (401, 403):
        return IssuerAuthFailed(f"{said}. The operator must check AGENTCARD_API_KEY.")
    if status == 404:
        return NotFound(f"{said}. Check the id (list_cards shows your cards).")
    if status == 409 and code in _IN_FLIGHT_CODES:
        # The first request with this key may still complete: a new key could act twice.
        return IssuerUnavailable(
            f"{said}. The issuer is still processing this request; retry later with the same "
            "idempotency_key."
        )
    if status == 409:
        return IdempotencyConflict(
            f"{said}. Retry the call without an idempotency_key, or use a new one."
        )
    if status == 429:
        after = _retry_after(response)
        hint = f" Retry after {after:g} s." if after is not None else " Retry later."
        return IssuerRateLimited(f"{said}.{hint}", retry_after=after)
    if status >= 500:
        return IssuerUnavailable(f"{said}. The issuer is having trouble; retry later.")
    return IssuerRejected(f"{said}.")


class IssuerHTTP:
    """Sends requests to one issuer through a shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        issuer: str,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        overrides: Overrides | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.client = client
        self.issuer = issuer
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.overrides: Overrides = overrides or {}
        # The issuer's rate limit, kept on our side (None: the issuer's 429s are the only word).
        self.pace = pace

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        scope: str | None = None,
        retry: bool = True,
        send_idempotency_key: bool = True,
    ) -> Any:
        """The decoded JSON body of a 2xx answer, after retries; else the mapped error.

        ``scope``: the key scope the request needs (named by a 403). ``retry=False``: one
        attempt only — for a write the issuer cannot deduplicate, which the adapter recovers
        itself. ``send_idempotency_key=False``: for an issuer that documents no such header."""
        headers = {}
        if method in _WRITES and send_idempotency_key:
            headers["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        attempts = self.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            if self.pace is not None:
                await self.pace.take(self.issuer)
            try:
                response = await self.client.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                if last:
                    raise IssuerUnavailable(
                        f"could not reach {self.issuer} at {origin_of(self.client.base_url)} "
                        f"({type(exc).__name__}); retry later."
                    ) from exc
                await self._backoff(attempt, None, f"{type(exc).__name__}")
                continue
            if response.is_success:
                return self._decode(response)
            delay = self._retry_delay(response, attempt)
            if last or delay is None:
                raise error_for_status(self.issuer, response, self.overrides, scope=scope)
            await self._backoff(attempt, delay, str(response.status_code))
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, response: httpx.Response) -> Any:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:  # a proxy or captive portal answering for the issuer
            raise IssuerUnavailable(
                f"{self.issuer} answered {response.status_code} with a body that is not JSON; "
                "check AGENTCARD_BASE_URL, or retry later."
            ) from exc

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """How long to wait before retrying this answer, or None if it must not be retried."""
        status = response.status_code
        if (status, _error_detail(response)[0]) in self.overrides:
            return None  # a code the adapter knows (a pool empty, a limit reached): final
        if status == 429:
            # Only a 429 that says when, and soon enough, is waited out; else the agent decides.
            after = _retry_after(response)
            return after if after is not None and after <= self.max_delay else None
        if status >= 500:
            return self._jittered(attempt)
        if status == 409 and _error_detail(response)[0] in _IN_FLIGHT_CODES:
            return self._jittered(attempt)
        return None

    async def backoff(self, attempt: int, why: str) -> None:
        """Waits as a retry after failed ``attempt`` would (for an adapter's own retries)."""
        await self._backoff(attempt, None, why)

    def _jittered(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    async def _backoff(self, attempt: int, delay: float | None, why: str) -> None:
        wait = self._jittered(attempt) if delay is None else delay
        log.info("%s: attempt %d failed (%s); retrying in %.2fs", self.issuer, attempt, why, wait)
        await self._sleep(wait)
