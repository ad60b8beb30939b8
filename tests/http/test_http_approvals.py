"""Approval over HTTP and SSE (DESIGN §5, §10): there the MCP client is code on the agent's side,
so under the default ``approval_channel = "auto"`` a client that accepts every form still cannot
approve its own request — the call fails ``approval_required``, the operator decides, the call is
repeated. Only a key the operator made ``--allow-in-band-approval``, or the ``elicit`` channel,
gets the form; stateless HTTP has no session to carry one, whatever the channel. A client that
declares URL-mode elicitation is shown the console page of the pending approval instead of
failing at once; accepting it says only that the human went there."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.types import (
    CallToolResult,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitRequestURLParams,
    ElicitResult,
    TextContent,
)

from tests.http.conftest import Served, serving

pytestmark = pytest.mark.anyio

POLICY = """
max_card_daily_limit_cents = 100000000
max_per_auth_cents = 100000000
max_total_daily_cents = 100000000
max_active_cards = 100
require_approval_above_cents = 1000
"""
APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")
CREATE: dict[str, Any] = {"daily_limit_cents": 5000, "purpose": "needs a yes"}
# Each transport with each protocol generation the SDK client speaks.
WAYS = [("http", "auto"), ("http", "legacy"), ("sse", "auto"), ("sse", "legacy")]


class Human:
    """A client that accepts every form and every URL it is shown, as an agent's own code would;
    at a URL it does what ``at_url`` does (e.g. the operator approves on that page)."""

    def __init__(self, at_url: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.at_url = at_url
        self.forms: list[ElicitRequestFormParams] = []
        self.urls: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        if isinstance(params, ElicitRequestURLParams):
            self.urls.append(params.url)
            if self.at_url is not None:
                await self.at_url(params.url)
            return ElicitResult(action="accept")
        assert isinstance(params, ElicitRequestFormParams)
        self.forms.append(params)
        return ElicitResult(action="accept", content={"approve": True})


@pytest.fixture
def policy(home: Path) -> Path:
    path = home.parent / "approval-policy.toml"
    path.write_text(POLICY)
    return path


def with_channel(policy: Path, channel: str) -> Path:
    policy.write_text(POLICY + f'approval_channel = "{channel}"\n')
    return policy


def text_of(result: CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def approval_required(client: Client, arguments: dict[str, Any]) -> str:
    """The approval id named by a call that must fail ``approval_required``."""
    refused = await client.call_tool("create_card", arguments)
    assert refused.is_error
    code, _, message = text_of(refused).partition(": ")
    assert code == "approval_required", message
    ids: set[str] = set(APPROVAL_ID.findall(message))
    assert len(ids) == 1, message
    return ids.pop()


async def cards(client: Client) -> list[dict[str, Any]]:
    listed = await client.call_tool("list_cards", {})
    assert not listed.is_error
    assert listed.structured_content is not None
    found: list[dict[str, Any]] = listed.structured_content["cards"]
    return found


async def created_in_band(served: Served, key: str, mode: str) -> None:
    """The form is shown and accepted: the card is created in the one call."""
    human = Human()
    with anyio.fail_after(30):
        async with served.client(key, mode, elicitation_callback=human) as client:
            result = await client.call_tool("create_card", CREATE)
            assert not result.is_error, result.content
            assert [card["id"] for card in await cards(client)] == [
                (result.structured_content or {})["id"]
            ]
    assert len(human.forms) == 1
    assert "create_card" in human.forms[0].message


@pytest.mark.parametrize(("transport", "mode"), WAYS)
async def test_under_auto_a_client_that_accepts_every_form_cannot_approve_its_own_request(
    home: Path, policy: Path, transport: str, mode: str
) -> None:
    human = Human()
    with serving(home, policy, transport=transport) as served:
        key = await served.key()
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                approval_id = await approval_required(client, CREATE)
                assert await cards(client) == []
                async with served.storage() as storage:
                    pending = await storage.approvals.pending()
                    assert [(a.id, a.tool) for a in pending] == [(approval_id, "create_card")]
                    await storage.approvals.approve(approval_id)  # the operator, out of band
                done = await client.call_tool("create_card", {**CREATE, "approval_id": approval_id})
                assert not done.is_error, done.content
                assert len(await cards(client)) == 1
    assert human.forms == []
    assert human.urls == [f"http://127.0.0.1:8766/approvals/{approval_id}"]


@pytest.mark.parametrize(("transport", "mode"), WAYS)
async def test_under_auto_a_url_client_completes_the_call_once_the_operator_approves_at_the_url(
    home: Path, policy: Path, transport: str, mode: str
) -> None:
    with serving(home, policy, transport=transport) as served:

        async def operator_opens(url: str) -> None:
            approval_id = url.rsplit("/", 1)[-1]
            async with served.storage() as storage:
                assert [a.id for a in await storage.approvals.pending()] == [approval_id]
                await storage.approvals.approve(approval_id)

        human = Human(operator_opens)
        key = await served.key()
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                done = await client.call_tool("create_card", CREATE)
                assert not done.is_error, done.content
                assert [card["id"] for card in await cards(client)] == [
                    (done.structured_content or {})["id"]
                ]
    assert human.forms == []
    assert len(human.urls) == 1


@pytest.mark.parametrize(("transport", "mode"), WAYS)
async def test_a_key_made_allow_in_band_approval_gets_the_form(
    home: Path, policy: Path, transport: str, mode: str
) -> None:
    with serving(home, policy, transport=transport) as served:
        allowed = await served.key("trusted host", allow_in_band_approval=True)
        await created_in_band(served, allowed, mode)
        # Another key on the same server is still not asked.
        other = await served.key("agent framework")
        human = Human()
        with anyio.fail_after(30):
            async with served.client(other, mode, elicitation_callback=human) as client:
                await approval_required(client, {**CREATE, "purpose": "another"})
        assert human.forms == []


@pytest.mark.parametrize(("transport", "mode"), WAYS)
async def test_under_elicit_http_and_sse_ask_the_client_in_band(
    home: Path, policy: Path, transport: str, mode: str
) -> None:
    with serving(home, with_channel(policy, "elicit"), transport=transport) as served:
        await created_in_band(served, await served.key(), mode)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_under_console_even_an_allowed_key_is_not_asked(
    home: Path, policy: Path, mode: str
) -> None:
    human = Human()
    with serving(home, with_channel(policy, "console")) as served:
        key = await served.key(allow_in_band_approval=True)
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                await approval_required(client, CREATE)
                assert await cards(client) == []
    assert human.forms == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stateless_http_uses_the_out_of_band_path_whatever_the_channel(
    home: Path, policy: Path, mode: str
) -> None:
    human = Human()
    with serving(home, with_channel(policy, "elicit"), stateless=True) as served:
        key = await served.key(allow_in_band_approval=True)
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                approval_id = await approval_required(client, CREATE)
                async with served.storage() as storage:
                    await storage.approvals.approve(approval_id)
                done = await client.call_tool("create_card", {**CREATE, "approval_id": approval_id})
    assert not done.is_error, done.content
    assert human.forms == []
