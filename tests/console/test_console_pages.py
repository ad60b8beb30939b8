"""The console's approval context and its ledger and audit pages, through its ASGI app: who
asked for each approval (an HTTP key by its name, or stdio), the card's state before → after,
each card's ledger with decline reasons and paging, and the audit log with its filters."""

from __future__ import annotations

import io
import re
from html import unescape

import pytest

from agentcard_mcp.approvals import approvals_command
from agentcard_mcp.consent import caller
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore
from tests.console.conftest import Console
from tests.console.test_console import agent_on, pending_create

pytestmark = pytest.mark.anyio

_NEXT = re.compile(r'<a href="([^"]+)" data-action="next"')


def _text(page: str) -> str:
    """The page's text without tags, as a person reads it."""
    return unescape(re.sub(r"<[^>]+>", " ", page))


async def test_an_approval_asked_over_an_http_key_shows_the_keys_name_and_stdio_shows_stdio(
    console: Console, settings: Settings
) -> None:
    await console.login()
    keys = SqliteKeyStore(settings.ensure_home())
    try:
        _, key = await keys.create("ci-bot <b>")
    finally:
        await keys.aclose()
    # The HTTP transport sets the caller to the key's id for the whole call (``KeyAuth``).
    token = caller.set(key.id)
    try:
        async with agent_on(settings) as agent:
            _, over_http = await pending_create(agent)
    finally:
        caller.reset(token)
    async with agent_on(settings) as agent:
        code, _ = await agent.fail("create_card", {"purpose": "books", "daily_limit_cents": 3000})
        assert code == "approval_required"
    async with SqliteApprovals(settings.home) as store:
        stored = {a.tool + str(a.arguments["daily_limit_cents"]): a for a in await store.pending()}
    assert stored["create_card5000"].caller == key.id
    assert stored["create_card3000"].caller == "stdio"
    page = await console.page("/")
    item = page[page.index(f'data-approval-id="{over_http}"') :]
    assert "asked by <strong>ci-bot &lt;b&gt;</strong>" in item.split('data-action="deny"')[0]
    assert key.id not in page  # the name, not the id
    assert "asked by <strong>stdio</strong>" in page
    # The terminal's list says who asked too.
    out, err = io.StringIO(), io.StringIO()
    keys = SqliteKeyStore(settings.home)
    try:
        async with SqliteApprovals(settings.home) as store:
            assert await approvals_command("list", None, store, out, err, keys=keys) == 0
    finally:
        await keys.aclose()
    assert "asked by: ci-bot <b>" in out.getvalue()
    assert "asked by: stdio" in out.getvalue()
    # Decided, it stays in the history with who asked.
    assert (await console.post(f"/approvals/{over_http}/deny", await console.csrf())).is_redirect
    history = (await console.page("/")).split("<h2>History</h2>")[1]
    assert "ci-bot &lt;b&gt;" in history


async def test_a_set_policy_approval_shows_the_card_before_and_after(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        card = await agent.call(
            "create_card",
            {"purpose": "saas", "daily_limit_cents": 2000, "mcc_allowlist": ["saas"]},
        )
        code, _ = await agent.fail("set_policy", {"card_id": card["id"], "daily_limit_cents": 4000})
        assert code == "approval_required"
        await agent.call("freeze_card", {"card_id": card["id"]})
        code, _ = await agent.fail("unfreeze_card", {"card_id": card["id"]})
        assert code == "approval_required"
        await pending_create(agent)
    page = await console.page("/")
    tables = re.findall(r'<table class="card-state".*?</table>', page)
    assert len(tables) == 3
    set_policy, unfreeze, created = tables
    assert f'data-card-id="{card["id"]}"' in set_policy
    assert "<tr class=changed><th>daily limit</th><td>$20.00</td><td>→</td><td>$40.00</td>" in (
        set_policy
    )
    # Unchanged values are shown as they are, not marked.
    assert "<tr><th>categories</th><td>saas</td><td>→</td><td>saas</td></tr>" in set_policy
    assert "<tr><th>status</th><td>frozen</td><td>→</td><td>frozen</td></tr>" in set_policy
    assert "<tr class=changed><th>status</th><td>frozen</td><td>→</td><td>active</td>" in unfreeze
    assert "the new card" in created
    assert "<tr><th>daily limit</th><td>$50.00</td></tr>" in created
    assert "<tr><th>categories</th><td>any</td></tr>" in created


async def test_the_ledger_page_lists_each_authorization_with_decline_reasons_and_pages(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        card = await agent.call(
            "create_card",
            {"purpose": "saas", "daily_limit_cents": 2000, "per_auth_max_cents": 1000},
        )
        purchase = {"card_id": card["id"], "merchant": "ACME <i>", "mcc": "saas"}
        bought = await agent.call("simulate_purchase", {**purchase, "amount_cents": 700})
        declined = await agent.call("simulate_purchase", {**purchase, "amount_cents": 1500})
        assert (bought["decision"], declined["decision"]) == ("approve", "decline")
        await agent.call("simulate_purchase", {**purchase, "amount_cents": 300})
    cards = await console.page("/cards")
    assert f'href="/cards/{card["id"]}/ledger"' in cards
    page = await console.page(f"/cards/{card['id']}/ledger")
    rows = re.findall(r"<tr data-entry-id=.*?</tr>", page)
    assert len(rows) == 3
    row = next(r for r in rows if 'data-decision="decline"' in r)
    assert f'<td class="reason">{declined["reason"]}</td>' in row
    assert '<td class="amount">$15.00</td>' in row
    assert "ACME &lt;i&gt;" in row
    assert "<i>" not in page
    assert "saas" in row
    assert declined["decided_at"][:19] in row
    # Paged by the issuer's cursor: one row at a time, every row once.
    seen: list[str] = []
    path: str | None = f"/cards/{card['id']}/ledger?limit=1"
    while path is not None:
        page = await console.page(path)
        seen += re.findall(r'data-entry-id="([^"]+)"', page)
        found = _NEXT.search(page)
        path = unescape(found.group(1)) if found else None
        assert len(seen) <= 3
    assert len(seen) == len(set(seen)) == 3
    unknown = await console.client.get("/cards/card_nope/ledger")
    assert unknown.status_code == 404


async def test_the_audit_log_is_newest_first_and_filters_by_tool_outcome_and_caller(
    console: Console, settings: Settings
) -> None:
    await console.login()
    async with agent_on(settings) as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        code, _ = await agent.fail("get_card", {"card_id": "card_x<script>"})
        assert code == "invalid_params"
    csrf = await console.csrf()
    assert (await console.post(f"/cards/{card['id']}/freeze", csrf)).is_redirect
    page = await console.page("/audit")
    assert '<form method="get" action="/audit"' in page
    tools = re.findall(r'<tr data-tool="([^"]+)" data-outcome="([^"]+)">', page)
    assert tools[:3] == [
        ("freeze_card", "ok"),
        ("get_card", "invalid_params"),
        ("create_card", "ok"),
    ]
    assert "<script>" not in page.split("</head>")[1]
    assert "card_x&lt;script&gt;" in page
    by_outcome = await console.page("/audit?outcome=invalid_params")
    assert re.findall(r'data-tool="([^"]+)"', by_outcome) == ["get_card"]
    by_caller = await console.page("/audit?caller=operator")
    assert re.findall(r'data-tool="([^"]+)"', by_caller) == ["freeze_card"]
    assert '<option value="operator" selected>' in by_caller
    by_tool = await console.page("/audit?tool=create_card&caller=stdio")
    assert re.findall(r'data-tool="([^"]+)"', by_tool) == ["create_card"]
    none = await console.page("/audit?tool=create_card&outcome=invalid_params")
    assert "no audit records" in none


async def test_the_new_pages_need_the_session_and_carry_the_security_headers(
    console: Console, settings: Settings
) -> None:
    async with agent_on(settings) as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
    paths = (f"/cards/{card['id']}/ledger", "/audit", "/audit?tool=create_card")
    for path in paths:
        response = await console.client.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-security-policy"] == "default-src 'self'"
    await console.login()
    for path in paths:
        response = await console.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == "default-src 'self'"
        assert response.headers["x-frame-options"] == "DENY"
        assert "<script>" not in response.text
        assert 'href="/audit"' in response.text
