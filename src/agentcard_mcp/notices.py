"""Out-of-band notice of each new pending approval: a small JSON POST to the operator's webhook
(``AGENTCARD_APPROVAL_WEBHOOK``), so that they learn of a request without watching the console.

    {"approval_id": "apr_…", "tool": "create_card", "summary": "create_card(purpose=…) — …",
     "console_url": "http://127.0.0.1:8766/approvals/apr_…", "expires_at": "2026-05-11T07:10:00Z"}

Delivery never blocks or fails the tool call that asked: ``notify`` only puts the notice on a
bounded in-memory queue, which one background task, owned by the server's issuer scope, drains.

- The body is redacted as a whole: the summary is the agent's own text.
- Each notice is tried up to ``Retry.attempts`` times, each attempt bounded by a short timeout;
  2xx is delivered; anything else (another status, a transport error, the timeout) is retried
  after a capped, jittered backoff, and after the last attempt logged as a WARNING naming the
  approval only (never the URL, whose query may be a secret, nor anything the agent wrote).
- A full queue drops the new notice (WARNING). At shutdown, what is still queued gets a short
  grace, then is dropped. The approval itself is stored either way: a notice is a courtesy.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import anyio
import httpx

from . import __version__
from .approvals import Approval
from .consent import console_link
from .redaction import redact
from .settings import Settings

__all__ = ["ApprovalNotices", "Retry", "notice_body", "open_notices"]

log = logging.getLogger("agentcard_mcp.notices")

Sleep = Callable[[float], Awaitable[None]]
Notice = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int = 4
    timeout: float = 5.0  # each attempt, connect to last byte
    base_delay: float = 0.5
    max_delay: float = 4.0

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based): doubling, capped, jittered."""
        ceiling: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def notice_body(approval: Approval, console_url: str) -> Notice:
    body = {
        "approval_id": approval.id,
        "tool": approval.tool,
        "summary": approval.summary,
        "console_url": console_link(console_url, approval.id),
        "expires_at": approval.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    clean: Notice = redact(body)
    return clean


class ApprovalNotices:
    """The queue of notices and its delivery. ``notify`` from any call; ``run`` in one task."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        console_url: str,
        *,
        retry: Retry | None = None,
        sleep: Sleep = anyio.sleep,
        queue_size: int = 100,
    ) -> None:
        self._client = client
        self._url = url
        self._console_url = console_url
        self._retry = retry or Retry()
        self._sleep = sleep
        self._send, self._receive = anyio.create_memory_object_stream[Notice](queue_size)
        self.drained = anyio.Event()

    def notify(self, approval: Approval) -> None:
        """Queues the notice of ``approval``; returns at once, whatever becomes of it."""
        try:
            self._send.send_nowait(notice_body(approval, self._console_url))
        except anyio.WouldBlock:
            log.warning("approval notice for %s dropped: the queue is full", approval.id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            log.warning("approval notice for %s dropped: the server is stopping", approval.id)

    def close(self) -> None:
        """No more notices: ``run`` ends once it has delivered (or given up on) those queued."""
        self._send.close()

    async def run(self) -> None:
        """Delivers queued notices, one at a time, until ``close`` and the queue is empty."""
        try:
            async with self._receive:
                async for notice in self._receive:
                    await self._deliver(notice)
        finally:
            self.drained.set()

    async def _deliver(self, notice: Notice) -> None:
        failure = ""
        for attempt in range(1, self._retry.attempts + 1):
            failure = await self._post(notice)
            if not failure:
                return
            if attempt < self._retry.attempts:
                await self._sleep(self._retry.backoff(attempt))
        log.warning(
            "approval notice for %s not delivered after %d attempts (last: %s)",
            notice["approval_id"],
            self._retry.attempts,
            failure,
        )

    async def _post(self, notice: Notice) -> str:
        """One attempt: "" when delivered, else what went wrong."""
        with anyio.move_on_after(self._retry.timeout):
            try:
                response = await self._client.post(self._url, json=notice)
            except Exception as exc:  # any failure to deliver is a failed attempt, never a crash
                return type(exc).__name__
            return "" if response.is_success else f"HTTP {response.status_code}"
        return "timeout"


@asynccontextmanager
async def open_notices(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    retry: Retry | None = None,
    grace: float = 1.0,
) -> AsyncIterator[ApprovalNotices | None]:
    """The notices for the server's lifetime (None without a webhook): a client and the one
    task that delivers. At the end, queued notices get ``grace`` seconds, then are dropped."""
    url = settings.approval_webhook_url()
    if url is None:
        yield None
        return
    headers = {"User-Agent": f"agentcard-mcp/{__version__}"}
    async with (
        httpx.AsyncClient(transport=transport, headers=headers) as client,
        anyio.create_task_group() as tasks,
    ):
        notices = ApprovalNotices(client, url, settings.console_url, retry=retry)
        tasks.start_soon(notices.run)
        try:
            yield notices
        finally:
            notices.close()
            with anyio.move_on_after(grace, shield=True):
                await notices.drained.wait()
            if not notices.drained.is_set():
                log.warning("approval notices still undelivered at shutdown were dropped")
            tasks.cancel_scope.cancel()
