"""The operator's console through its ASGI app: who may use it, and what the operator sees and
does there — an agent's pending approval decided on the page, a card frozen from it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

from agentcard_mcp.console import Desks, open_desks
from agentcard_mcp.operator import ApprovalDesk
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.console.conftest import TOKEN, Console, console_app, opened, running
from tests.fakes.leaky import PANS, LeakyAgentCard, leaked_in
from tests.server.conftest import Agent
from tests.support import PERMISSIVE_POLICY, FakeClock

pytestmark = pytest.mark.anyio

_APPROVAL = re.compile(r'data-approval-id="(apr_[a-z0-9]+)"')


@asynccontextmanager
async def agent_on(settings: Settings, **options: Any) -> AsyncIterator[Agent]:
    server = create_server(settings, **options)
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        yield Agent(client, tools)


async def pending_create(agent: Agent) -> tuple[dict[str, Any], str]:
    arguments = {"purpose": "flights <b>\u202e", "daily_limit_cents": 5000}
    code, message = await agent.fail("create_card", arguments)
    assert code == "approval_required", message
    match = re.search(r"apr_[a-z0-9]+", message)
    assert match is not None
    return arguments, match.group(0)


# --- who may use it ----------------------------------------------------------------------------


async def test_the_login_token_works_once_and_sets_a_strict_http_only_cookie(
    console: Console,
) -> None:
    response = await console.client.get("/login", params={"token": TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in cookie  # the session is a new random id, not the token
    session = dict(console.client.cookies)
    console.client.cookies.clear()
    again = await console.client.get("/login", params={"token": TOKEN})
    assert again.status_code in (401, 403)
    assert "set-cookie" not in again.headers
    assert (await console.client.get("/")).status_code == 401
    console.client.cookies.update(session)
    assert (await console.client.get("/")).status_code == 200


async def test_a_wrong_login_token_opens_no_session(console: Console) -> None:
    response = await console.client.get("/login", params={"token": TOKEN + "x"})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert (await console.client.get("/")).status_code == 401


async def test_without_the_session_cookie_every_page_but_login_is_401(console: Console) -> None:
    for path in ("/", "/cards", "/events", "/static/console.js"):
        assert (await console.client.get(path)).status_code == 401, path
    for path in ("/approvals/apr_x/approve", "/cards/card_x/freeze"):
        assert (await console.post(path)).status_code == 401, path


async def test_a_post_without_the_csrf_token_or_from_a_foreign_origin_is_403(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        _, approval_id = await pending_create(agent)
    path = f"/approvals/{approval_id}/approve"
    assert (await console.post(path)).status_code == 403
    assert (await console.post(path, csrf="not-the-token")).status_code == 403
    csrf = await console.csrf()
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null"):
        response = await console.client.post(path, data={"csrf": csrf}, headers={"Origin": origin})
        assert response.status_code == 403, origin
    no_origin = await console.client.post(path, data={"csrf": csrf})
    assert no_origin.status_code == 403
    assert approval_id in await console.page("/")  # still pending


async def test_a_foreign_host_is_421(console: Console) -> None:
    await console.login()
    for host in ("evil.example", "127.0.0.1:9999", "localhost", "evil.example:8766"):
        response = await console.client.get("/", headers={"Host": host})
        assert response.status_code == 421, host
    assert (await console.client.get("/", headers={"Host": "localhost:8766"})).status_code == 200


async def test_every_response_carries_the_csp_and_refuses_framing(console: Console) -> None:
    responses = [await console.client.get("/")]
    await console.login()
    responses += [await console.client.get(p) for p in ("/", "/cards", "/static/console.js")]
    responses.append(await console.client.get("/", headers={"Host": "evil.example"}))
    for response in responses:
        assert response.headers["content-security-policy"] == "default-src 'self'"
        assert response.headers["x-frame-options"] == "DENY"
    page = responses[1].text
    assert "<script>" not in page
    assert "<script src=" in page


# --- approvals ---------------------------------------------------------------------------------


async def test_an_agents_pending_approval_appears_and_approving_it_lets_the_repeated_call_succeed(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        arguments, approval_id = await pending_create(agent)
        page = await console.page("/")
        assert "<title>(1) agentcard console</title>" in page
        assert _APPROVAL.findall(page) == [approval_id]
        assert 'data-action="approve"' in page
        assert 'data-action="deny"' in page
        assert "create_card" in page
        # Every argument quoted and escaped: no markup from the agent, the override shown.
        assert "&quot;flights &lt;b&gt;\\u202e&quot;" in page
        assert "<b>" not in page
        assert "\u202e" not in page
        assert "5000" in page
        linked = await console.client.get(f"/approvals/{approval_id}")
        assert linked.status_code == 303
        assert linked.headers["location"] == f"/#{approval_id}"
        assert f'id="{approval_id}"' in page
        response = await console.post(f"/approvals/{approval_id}/approve", await console.csrf())
        assert response.status_code == 303
        card = await agent.call("create_card", {**arguments, "approval_id": approval_id})
        assert card["daily_limit_cents"] == 5000
        page = await console.page("/")
        assert "<title>(0) agentcard console</title>" in page
        assert approval_id in page  # in the history now, as used
        assert 'data-action="approve"' not in page


async def test_a_denied_approval_fails_the_agents_repeated_call(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        arguments, approval_id = await pending_create(agent)
        response = await console.post(f"/approvals/{approval_id}/deny", await console.csrf())
        assert response.status_code == 303
        code, _ = await agent.fail("create_card", {**arguments, "approval_id": approval_id})
        assert code == "approval_denied"
        assert await agent.card_ids() == []


async def test_an_expired_approval_cannot_be_approved(settings: Settings) -> None:
    clock = FakeClock(datetime.now(UTC))

    @asynccontextmanager
    async def desks_at_clock() -> AsyncIterator[Desks]:
        async with open_desks(settings) as desks, SqliteApprovals(settings.home, clock=clock) as s:
            yield Desks(ApprovalDesk(s, clock), desks.cards)

    async for console in running(console_app(desks_at_clock)):
        await console.login()
        async with agent_on(settings) as agent:
            _, approval_id = await pending_create(agent)
            clock.advance(minutes=11)
            response = await console.post(f"/approvals/{approval_id}/approve", await console.csrf())
            assert response.status_code == 409
            assert "expired" in response.text
        page = await console.page("/")
        assert 'data-action="approve"' not in page
        assert "expired" in page  # in the history


# --- cards -------------------------------------------------------------------------------------


async def test_freezing_from_the_cards_page_makes_the_next_purchase_decline_card_frozen(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        page = await console.page("/cards")
        assert f'data-card-id="{card["id"]}"' in page
        assert "$20.00 committed of $200.00" in page
        csrf = await console.csrf()
        assert (await console.post(f"/cards/{card['id']}/freeze", csrf)).status_code == 303
        bought = await agent.call(
            "simulate_purchase",
            {"card_id": card["id"], "amount_cents": 500, "merchant": "ACME", "mcc": "saas"},
        )
        assert bought["decision"] == "decline"
        assert bought["reason"] == "card_frozen"
        # Unfreezing by the operator needs no approval request of its own, and is audited.
        assert (await console.post(f"/cards/{card['id']}/unfreeze", csrf)).status_code == 303
        assert (await agent.call("get_card", {"card_id": card["id"]}))["status"] == "active"
    audit = (settings.home / "audit.jsonl").read_text()
    assert '"caller":"operator"' in audit.replace(" ", "")


async def test_an_operator_unfreeze_still_checks_todays_ceilings(
    console: Console, settings: Settings, tmp_path: Path
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        await agent.call("freeze_card", {"card_id": card["id"]})
    # The operator lowers the per-card ceiling under the card's limit.
    assert settings.policy_file is not None
    settings.policy_file.write_text(
        settings.policy_file.read_text() + "max_card_daily_limit_cents = 1000\n"
    )
    async for lowered in running(console_app(opened(settings))):
        await lowered.login()
        response = await lowered.post(f"/cards/{card['id']}/unfreeze", await lowered.csrf())
        assert response.status_code == 409
        assert "guardrail_exceeded" in response.text
        assert "frozen" in await lowered.page("/cards")


# --- redaction ---------------------------------------------------------------------------------


async def test_a_leaky_issuers_card_data_never_appears_on_a_page(tmp_path: Path) -> None:
    fake = LeakyAgentCard()
    settings = Settings(
        issuer="agentcard",
        api_key=SecretStr(fake.api_key),
        base_url="http://issuer.test",
        home=tmp_path / "home",
        policy_file=PERMISSIVE_POLICY,
    )
    async with agent_on(settings, issuer_transport=fake.transport()) as agent:
        spaced = " ".join(PANS["visa"][i : i + 4] for i in range(0, 16, 4))
        await agent.call("create_card", {"purpose": f"for {spaced}", "daily_limit_cents": 5000})
    async for console in running(console_app(opened(settings, fake.transport()))):
        await console.login()
        pages = [await console.page(path) for path in ("/", "/cards")]
        assert "data-card-id=" in pages[1]
        assert "•••• 1111" in pages[1]
        for page in pages:
            assert leaked_in(page) == []
