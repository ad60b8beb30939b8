"""The operator's approval webhook (AGENTCARD_APPROVAL_WEBHOOK): a notice of each new pending
approval, posted in the background to a real receiver (uvicorn on 127.0.0.1), never holding up
or failing the agent's call; and the delivery's retries on their own, with a fake network."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentcard_mcp.approvals import Approval
from agentcard_mcp.errors import InvalidParams
from agentcard_mcp.notices import ApprovalNotices, Retry, notice_body
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings, load_settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.support import serve_in_thread

pytestmark = pytest.mark.anyio

# Above the default approval threshold (2500): out of band, as the client cannot elicit.
CREATE: dict[str, Any] = {"purpose": "flights to Lisbon", "daily_limit_cents": 5000}
APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")
FIELDS = {"approval_id", "tool", "summary", "console_url", "expires_at"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    content_type: str


class Receiver:
    """The operator's webhook endpoint: records every request and answers ``answers`` in
    turn (then 200). With ``hold_first``, the first answer waits for ``release``."""

    def __init__(self, answers: Sequence[int] = (), *, hold_first: bool = False) -> None:
        self.answers = list(answers)
        self.requests: list[Received] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self._changed = threading.Condition()
        self.app = Starlette(routes=[Route("/hook", self._endpoint, methods=["POST"])])

    async def _endpoint(self, request: Request) -> Response:
        received = Received(await request.json(), request.headers.get("content-type", ""))
        with self._changed:
            self.requests.append(received)
            count = len(self.requests)
            self._changed.notify_all()
        if count == 1:
            await anyio.to_thread.run_sync(self.release.wait, 10)
        status = self.answers[count - 1] if count <= len(self.answers) else 200
        return Response(status_code=status)

    async def wait_for(self, count: int) -> list[Received]:
        """The requests once there are at least ``count`` (fails after 10 s)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: len(self.requests) >= count, 10)

        assert await anyio.to_thread.run_sync(wait), f"{len(self.requests)} of {count} requests"
        return list(self.requests)


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver.app) as base_url:
        yield base_url + "/hook?token=s3cret"


def error_of(result: CallToolResult) -> tuple[str, str]:
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    code, _, message = block.text.partition(":")
    return code, message


async def pending_id(client: Client, arguments: dict[str, Any]) -> str:
    code, message = error_of(await client.call_tool("create_card", arguments))
    assert code == "approval_required"
    found = APPROVAL_ID.search(message)
    assert found is not None
    return found.group()


async def test_each_new_pending_approval_is_announced_once_with_its_console_link(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    with receiving(receiver) as url:
        settings = Settings(
            home=tmp_path, approval_webhook=SecretStr(url), console_url="https://console.example/"
        )
        async with Client(create_server(settings)) as client:
            first = await pending_id(client, CREATE)
            assert await pending_id(client, CREATE) == first  # the same request, pending
            second = await pending_id(client, {**CREATE, "daily_limit_cents": 4000})
            # One task delivers in order: a notice for the repeated call would come before this.
            received = await receiver.wait_for(2)
    async with SqliteApprovals(tmp_path) as store:
        approvals = [await store.get(first), await store.get(second)]
    assert len(receiver.requests) == 2
    for got, approval in zip(received, approvals, strict=True):
        assert got.content_type == "application/json"
        assert set(got.body) == FIELDS
        assert got.body["approval_id"] == approval.id
        assert got.body["tool"] == "create_card"
        assert got.body["summary"] == approval.summary
        assert got.body["console_url"] == f"https://console.example/approvals/{approval.id}"
        assert ISO_UTC.fullmatch(got.body["expires_at"])
        expires_at = datetime.strptime(got.body["expires_at"], "%Y-%m-%dT%H:%M:%S%z")
        assert timedelta(0) <= approval.expires_at - expires_at < timedelta(seconds=1)


async def test_the_notice_masks_a_card_number_the_agent_wrote(tmp_path: Path) -> None:
    receiver = Receiver()
    with receiving(receiver) as url:
        async with Client(
            create_server(Settings(home=tmp_path, approval_webhook=SecretStr(url)))
        ) as client:
            approval_id = await pending_id(
                client, {**CREATE, "purpose": "pay 4111 1111 1111 1111 exp 12/29"}
            )
            (got,) = await receiver.wait_for(1)
    text = str(got.body)
    assert got.body["approval_id"] == approval_id
    assert got.body["console_url"] == f"http://127.0.0.1:8766/approvals/{approval_id}"
    assert "4111" not in text.replace(" ", "")
    assert "1111" in text  # the last four, as redaction shows them


async def test_a_failing_receiver_is_tried_again_while_the_call_has_long_returned(
    tmp_path: Path,
) -> None:
    receiver = Receiver([500, 500], hold_first=True)
    with receiving(receiver) as url:
        async with Client(
            create_server(Settings(home=tmp_path, approval_webhook=SecretStr(url)))
        ) as client:
            with anyio.fail_after(5):
                # The receiver holds its first answer until the call has returned.
                approval_id = await pending_id(client, CREATE)
            receiver.release.set()
            received = await receiver.wait_for(3)
        # The server has stopped: the third attempt was delivered, and nothing followed it.
    assert len(receiver.requests) == 3
    assert [r.body["approval_id"] for r in received] == [approval_id] * 3


@contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def closed_port() -> str:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


@pytest.mark.parametrize("where", ["refused", "silent"])
async def test_an_unreachable_webhook_never_fails_or_slows_the_call(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    with black_hole() as silent:
        url = closed_port() if where == "refused" else silent
        settings = Settings(home=tmp_path, approval_webhook=SecretStr(url + "?token=s3cret"))
        with caplog.at_level(logging.WARNING, logger="agentcard_mcp.notices"):
            async with Client(create_server(settings)) as client:
                with anyio.fail_after(5):
                    started = time.perf_counter()
                    await pending_id(client, CREATE)
                    elapsed = time.perf_counter() - started
                    limits = await client.call_tool("get_limits", {})
            assert not limits.is_error
            assert elapsed < 1.0
    # Shutdown dropped what could not be delivered (after a short grace), and said so.
    assert any("dropped" in r.getMessage() for r in caplog.records)
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        "ftp://hooks.example/x?token=s3cret",
        "hooks.example/x?token=s3cret",
        "http:///x?token=s3cret",
        "javascript:alert('s3cret')",
        "https://[::1/x?token=s3cret",
    ],
)
def test_a_webhook_that_is_not_an_http_url_stops_the_server_naming_the_variable(
    tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidParams) as caught:
        create_server(Settings(home=tmp_path, approval_webhook=SecretStr(value)))
    assert "AGENTCARD_APPROVAL_WEBHOOK" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("AGENTCARD_APPROVAL_WEBHOOK", value)
    monkeypatch.setenv("AGENTCARD_HOME", str(tmp_path))
    with pytest.raises(InvalidParams, match="AGENTCARD_APPROVAL_WEBHOOK"):
        create_server(load_settings())


def test_the_webhook_is_optional_and_the_console_url_has_a_default(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.approval_webhook_url() is None
    assert settings.console_url == "http://127.0.0.1:8766"
    assert "s3cret" not in repr(
        Settings(home=tmp_path, approval_webhook=SecretStr("https://h/?t=s3cret"))
    )


# --- the delivery on its own: a fake network (httpx.MockTransport), no waiting --------------


def an_approval() -> Approval:
    now = datetime(2026, 5, 11, 7, 0, 30, 250_000, tzinfo=UTC)
    return Approval(
        id="apr_0123456789abcdefghij", tool="close_card", digest="d" * 64,
        summary="close_card(card_id=card_1)", arguments={"card_id": "card_1"},
        status="pending", created_at=now, expires_at=now + timedelta(minutes=10),
        decided_at=None, used_at=None,
    )  # fmt: skip


async def deliver(answers: Sequence[int | Exception]) -> tuple[int, list[float]]:
    """Delivers one notice against ``answers``; returns the attempts made and the waits."""
    attempts = 0
    waits: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        given = answers[min(attempts, len(answers)) - 1]
        if isinstance(given, Exception):
            raise given
        return httpx.Response(given)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        notices = ApprovalNotices(client, "https://hooks.example/x", "http://c", sleep=sleep)
        notices.notify(an_approval())
        notices.close()
        with anyio.fail_after(5):
            await notices.run()
    return attempts, waits


async def test_a_2xx_is_delivered_at_the_first_attempt() -> None:
    assert await deliver([204]) == (1, [])


async def test_errors_are_retried_with_capped_jittered_backoff_then_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentcard_mcp.notices"):
        attempts, waits = await deliver([503, httpx.ConnectError("refused"), 404, 500])
    assert attempts == Retry().attempts == 4
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(Retry().max_delay, Retry().base_delay * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "apr_0123456789abcdefghij" in record.getMessage()
    assert "HTTP 500" in record.getMessage()


def test_the_notice_body_is_the_five_fields_with_expiry_in_utc() -> None:
    body = notice_body(an_approval(), "http://127.0.0.1:8766")
    assert body == {
        "approval_id": "apr_0123456789abcdefghij",
        "tool": "close_card",
        "summary": "close_card(card_id=card_1)",
        "console_url": "http://127.0.0.1:8766/approvals/apr_0123456789abcdefghij",
        "expires_at": "2026-05-11T07:10:30Z",
    }
