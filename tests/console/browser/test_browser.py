"""The console in a real browser: an agent's pending approval shows up on the open page without
a reload and is decided by a click; an expired one cannot be approved; a card frozen from the
cards page declines the agent's next purchase. Screenshots: tests/console/browser/artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from playwright.async_api import Page, Route, expect

from agentcard_mcp.approvals import APPROVAL_TTL
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.console.browser.conftest import Screenshots, Stage
from tests.server.conftest import Agent

pytestmark = pytest.mark.anyio

_APPROVAL_ID = re.compile(r"apr_[a-z0-9]+")


async def ask_for_a_big_card(agent: Agent) -> tuple[dict[str, Any], str]:
    """create_card above the approval threshold: refused with an approval id to wait for."""
    arguments = {"purpose": "conference flights", "daily_limit_cents": 5000}
    code, message = await agent.fail("create_card", arguments)
    assert code == "approval_required", message
    match = _APPROVAL_ID.search(message)
    assert match is not None, message
    return arguments, match.group(0)


async def arrives_live(page: Page, approval_id: str, shot: Screenshots) -> None:
    """The pending approval appears on the open page, the title counts it, and the page was
    not reloaded (a marker set in the page survives)."""
    pending = page.locator(f'#pending [data-approval-id="{approval_id}"]')
    await expect(pending).to_be_visible()
    await expect(page).to_have_title("(1) agentcard console")
    assert await page.evaluate("window.__notReloaded === true")
    await expect(pending).to_contain_text("create_card")
    await expect(pending).to_contain_text("5000")
    await shot(page, "pending")


async def test_an_approval_arrives_on_the_open_page_and_approving_it_lets_the_agent_through(
    page: Page, stage: Stage, shot: Screenshots
) -> None:
    await page.evaluate("window.__notReloaded = true")
    async with stage.agent() as agent:
        arguments, approval_id = await ask_for_a_big_card(agent)
        await arrives_live(page, approval_id, shot)
        async with page.expect_navigation():
            await page.locator(
                f'#pending [data-approval-id="{approval_id}"] [data-action="approve"]'
            ).click()
        assert page.url == stage.console + "/"
        await expect(page).to_have_title("(0) agentcard console")
        await expect(page.locator("#pending [data-approval-id]")).to_have_count(0)
        await shot(page, "approved")
        card = await agent.call("create_card", {**arguments, "approval_id": approval_id})
        assert card["daily_limit_cents"] == 5000
        assert card["id"] in await agent.card_ids()
        # Used once: the same approval does not make a second card.
        code, _ = await agent.fail("create_card", {**arguments, "approval_id": approval_id})
        assert code.startswith("approval_")
    await page.goto(stage.console + "/cards")
    await expect(page.locator(f'[data-card-id="{card["id"]}"]')).to_be_visible()
    await shot(page, "cards")


async def test_denying_on_the_page_fails_the_agents_repeated_call(
    page: Page, stage: Stage, shot: Screenshots
) -> None:
    await page.evaluate("window.__notReloaded = true")
    async with stage.agent() as agent:
        cards_before = await agent.card_ids()
        arguments, approval_id = await ask_for_a_big_card(agent)
        await arrives_live(page, approval_id, shot)
        async with page.expect_navigation():
            await page.locator(
                f'#pending [data-approval-id="{approval_id}"] [data-action="deny"]'
            ).click()
        await expect(page).to_have_title("(0) agentcard console")
        await expect(page.locator(f'tr[data-past-approval-id="{approval_id}"]')).to_contain_text(
            "denied"
        )
        await shot(page, "denied")
        code, _ = await agent.fail("create_card", {**arguments, "approval_id": approval_id})
        assert code == "approval_denied"
        assert await agent.card_ids() == cards_before


async def test_an_expired_approval_cannot_be_approved_from_a_page_that_still_shows_it(
    page: Page, stage: Stage, shot: Screenshots
) -> None:

    async def offline(route: Route) -> None:  # a stale page: no live updates reach it
        await route.abort()

    await page.route("**/events", offline)
    lifetime = timedelta(seconds=2)
    asked_at = datetime.now(UTC) - APPROVAL_TTL + lifetime
    async with SqliteApprovals(stage.home, clock=lambda: asked_at) as store:
        requested = await store.request(
            "create_card", {"purpose": "late", "daily_limit_cents": 5000}, "a card for $50.00"
        )
    approval_id = requested.approval.id
    await page.reload()
    pending = page.locator(f'#pending [data-approval-id="{approval_id}"]')
    await expect(pending).to_be_visible()
    await shot(page, "shown-before-expiry")
    await anyio.sleep(max(0.0, (requested.approval.expires_at - datetime.now(UTC)).total_seconds()))
    await anyio.sleep(0.2)
    async with page.expect_navigation():
        await pending.locator('[data-action="approve"]').click()
    await expect(page.locator("h1")).to_have_text("not approved")
    await expect(page.locator(".error")).to_contain_text("expired")
    await shot(page, "refused")
    await page.unroute("**/events")
    await page.goto(stage.console + "/")
    await expect(page.locator("#pending [data-approval-id]")).to_have_count(0)
    await expect(page.locator(f'tr[data-past-approval-id="{approval_id}"]')).to_contain_text(
        "expired"
    )
    await shot(page, "history")


async def test_freezing_a_card_on_the_cards_page_declines_the_agents_next_purchase(
    page: Page, stage: Stage, shot: Screenshots
) -> None:
    async with stage.agent() as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        purchase = {"card_id": card["id"], "amount_cents": 500, "merchant": "ACME", "mcc": "saas"}
        assert (await agent.call("simulate_purchase", purchase))["decision"] == "approve"
        await page.goto(stage.console + "/cards")
        row = page.locator(f'[data-card-id="{card["id"]}"]')
        await expect(row).to_contain_text("active")
        await shot(page, "cards")
        async with page.expect_navigation():
            await row.locator('[data-action="freeze"]').click()
        assert page.url == stage.console + "/cards"
        await expect(row).to_contain_text("frozen")
        await expect(row.locator('[data-action="unfreeze"]')).to_be_visible()
        await shot(page, "frozen")
        bought = await agent.call("simulate_purchase", purchase)
        assert bought["decision"] == "decline"
        assert bought["reason"] == "card_frozen"


async def test_every_page_renders_in_the_browser_with_its_content_and_no_card_data(
    page: Page, stage: Stage, shot: Screenshots
) -> None:
    async with stage.agent() as agent:
        card = await agent.call("create_card", {"purpose": "saas", "daily_limit_cents": 2000})
        purchase = {"card_id": card["id"], "amount_cents": 500, "merchant": "ACME", "mcc": "saas"}
        await agent.call("simulate_purchase", purchase)
        await agent.call("simulate_purchase", {**purchase, "amount_cents": 5000})  # declined
    pages = {
        "budget": ("/budget", "svg"),
        "ledger": (f"/cards/{card['id']}/ledger", "tr"),
        "audit": ("/audit", "tr"),
        "keys": ("/keys", "form"),
    }
    for label, (path, element) in pages.items():
        await page.goto(stage.console + path)
        await expect(page.locator(element).first).to_be_visible()
        text = await page.locator("body").inner_text()
        assert "4111" not in text, label
        assert "cvc" not in text.lower(), label
        await shot(page, label)
    await page.goto(stage.console + f"/cards/{card['id']}/ledger")
    await expect(page.locator("body")).to_contain_text("ACME")
