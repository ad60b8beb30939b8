"""HTTP to an issuer: retries, idempotency keys and error mapping, in one place.

- Every write carries an ``Idempotency-Key`` made once per logical operation and sent again,
  unchanged, on every retry — so a retry after a lost response can never act twice. An agent's
  own key may be any text; one that is not printable ASCII (all a header can carry) is sent as
  its SHA-256, the same for the same key.
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
- Within the call's deadline (``deadline``): an attempt starts only with at least
  ``min_attempt_s`` left, a backoff or ``Retry-After`` is waited out only if an attempt still
  fits after it, and every httpx timeout is capped at the time left. Each error names the
  issuer's host (never the full base URL, which may carry credentials). A write that may have
  reached the issuer is noted on the call, so the agent is told to look before it retries.
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .. import deadline as call_deadline
from .. import jsonlimits
from ..deadline import CallDeadline, DeadlineExceeded
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
# Transport errors raised before a request left: it cannot have reached the issuer.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _header_key(key: str) -> str:
    if key and key.isascii() and key.isprintable() and key == key.strip():
        return key
    return "sha256-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from an error body in Stripe's or a flat shape, or agent-card.sh's
    ``{"errors": {"detail": ...}}`` (field errors on a 422); empty when absent."""
    try:
        body = jsonlimits.loads(response.content)
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
        return IssuerUnavailable(
            f"{said} (at {origin_of(response.request.url)}). The issuer is having trouble; "
            "retry later."
        )
    return IssuerRejected(f"{said}.")


_URLS_KEPT = 512  # paths whose joined URL IssuerHTTP keeps


class IssuerHTTP:
    """Sends requests to one issuer through a shared ``httpx.AsyncClient``. ``sleep`` waits
    between attempts (default: the call deadline's timer, else real time).

    ``in_process``: the client's transport when it serves the issuer in this process (the
    embedded sandbox). Requests then go to it straight: with no network there is no proxy,
    cookie, redirect or timeout for the client to handle, and its handling of them was most of
    the cost of a sandbox read."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        issuer: str,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        min_attempt_s: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        overrides: Overrides | None = None,
        pace: Pace | None = None,
        in_process: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.client = client
        self.in_process = in_process
        self.issuer = issuer
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.min_attempt_s = min_attempt_s
        self._sleep = sleep
        self.overrides: Overrides = overrides or {}
        # The issuer's rate limit, kept on our side (None: the issuer's 429s are the only word).
        self.pace = pace
        # Recent paths' absolute URLs, for the base URL they were joined to (see ``_url``).
        self._urls: dict[str, httpx.URL] = {}
        self._urls_base: httpx.URL | None = None
        self._origin = ""

    @property
    def where(self) -> str:
        """The issuer and its host, as error texts name them."""
        return f"{self.issuer} at {origin_of(self.client.base_url)}"

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
        write = method in _WRITES
        if write and send_idempotency_key:
            headers["Idempotency-Key"] = _header_key(idempotency_key or new_idempotency_key())
        deadline = call_deadline.current()
        maybe_sent = False  # a write may have reached the issuer: its outcome is unknown
        attempts = self.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            self._check_time(deadline, None)
            if self.pace is not None:
                await self.pace.take(self.issuer)
            try:
                response = await self._send(
                    deadline, write, method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                maybe_sent = maybe_sent or (write and not isinstance(exc, _NOT_SENT))
                why = type(exc).__name__
                if last:
                    raise self._unreachable(maybe_sent, why) from exc
                backoff = self._jittered(attempt)
                self._check_time(deadline, backoff, why, exc)
                await self._backoff(attempt, backoff, type(exc).__name__)
                continue
            if response.is_success:
                return self._decode(response)
            delay = self._retry_delay(response, attempt)
            if last or delay is None or not self._fits(deadline, delay):
                raise error_for_status(self.issuer, response, self.overrides, scope=scope)
            await self._backoff(attempt, delay, str(response.status_code))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, deadline: CallDeadline | None, write: bool, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """One attempt, its timeouts capped at the call's time left; a write that may have left
        is noted on the call (one refused at connect cannot have reached the issuer)."""
        url = self._url(path)
        if deadline is None:
            return await self._dispatch(method, url, None, **kwargs)
        deadline.host = self._origin
        wrote_before = deadline.wrote
        deadline.wrote = wrote_before or write
        # In process nothing times out (the deadline's cancel scope still bounds the call).
        timeout = None if self.in_process else _capped(self.client.timeout, deadline.remaining())
        try:
            return await self._dispatch(method, url, timeout, **kwargs)
        except _NOT_SENT:
            deadline.wrote = wrote_before
            raise

    async def _dispatch(
        self,
        method: str,
        url: httpx.URL | str,
        capped: httpx.Timeout | None,
        *,
        headers: dict[str, str],
        **kwargs: Any,
    ) -> httpx.Response:
        if self.in_process is None:
            if capped is None:
                return await self.client.request(method, url, headers=headers, **kwargs)
            return await self.client.request(method, url, headers=headers, timeout=capped, **kwargs)
        sent = {**self.client.headers, **headers} if headers else self.client.headers
        request = httpx.Request(method, url, headers=sent, **kwargs)
        response = await self.in_process.handle_async_request(request)
        await response.aread()
        return response

    def _url(self, path: str) -> httpx.URL | str:
        """``path`` as the client would join it to its base URL, remembered: httpx parses the
        base and the path again on every request otherwise, a third of its own time on a read
        of the embedded sandbox. Bounded (a card's reads reuse its one path); a new base URL
        starts afresh; a client with query parameters of its own (httpx merges them in) is
        left to httpx."""
        base = self.client.base_url
        if base is not self._urls_base:
            self._urls, self._urls_base, self._origin = {}, base, origin_of(base)
        if self.client.params:
            return path
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            url = self._urls[path] = self.client.build_request("GET", path).url
        return url

    def _fits(self, deadline: CallDeadline | None, wait: float) -> bool:
        """Whether an attempt still fits in the call's time after waiting ``wait``: at least
        ``min_attempt_s`` (or a tenth of a shorter deadline) must be left for it."""
        if deadline is None:
            return True
        attempt = min(self.min_attempt_s, deadline.seconds / 10)
        return wait + attempt <= deadline.remaining()

    def _check_time(
        self,
        deadline: CallDeadline | None,
        wait: float | None,
        why: str = "",
        cause: BaseException | None = None,
    ) -> None:
        """Refuses to start (or wait for) an attempt that cannot finish before the deadline."""
        if deadline is None or self._fits(deadline, wait or 0.0):
            return
        seconds = f"{deadline.seconds:g} s"
        if why:
            error = DeadlineExceeded(
                f"no answer from {self.where} ({why}) within this call's {seconds} deadline."
            )
        else:
            error = DeadlineExceeded(
                f"this call's {seconds} deadline left no time for another request to {self.where}."
            )
        raise error from cause

    def _unreachable(self, maybe_sent: bool, why: str) -> Exception:
        if maybe_sent:
            return IssuerUnavailable(
                f"no answer from {self.where} ({why}); the request may have reached it."
            )
        return IssuerUnavailable(f"could not reach {self.where} ({why}); retry later.")

    def _decode(self, response: httpx.Response) -> Any:
        if not response.content:
            return {}
        try:
            return jsonlimits.loads(response.content)
        except ValueError as exc:  # a proxy or captive portal answering for the issuer
            raise IssuerUnavailable(
                f"{self.where} answered {response.status_code} with a body that is not JSON; "
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
        await self._backoff(attempt, self._jittered(attempt), why)

    def _jittered(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    async def _backoff(self, attempt: int, wait: float, why: str) -> None:
        log.info("%s: attempt %d failed (%s); retrying in %.2fs", self.issuer, attempt, why, wait)
        if self._sleep is not None:
            await self._sleep(wait)
        else:
            deadline = call_deadline.current()
            await (deadline.timer if deadline is not None else call_deadline.REAL_TIME).sleep(wait)


def _capped(timeout: httpx.Timeout, left: float) -> httpx.Timeout:
    """``timeout`` with no phase longer than ``left`` seconds."""

    def cap(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write),
        pool=cap(timeout.pool),
    )  # fmt: skip
