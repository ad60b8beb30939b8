"""agent-card.sh (issuers/agentcard_sh.py) against its documented fake
(tests/fakes/agentcard_sh.py), through the SDK client: the request and response shapes, the
card's state machine as the agent sees it, scoped keys, the daily limit kept by our budget, the
read-back against what the issuer really enforces, idempotent state changes, and funding in
integer cents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.requests import Request

from agentcard_mcp.issuers import REGISTRY
from agentcard_mcp.issuers.agentcard_sh import AgentCardShIssuer
from agentcard_mcp.issuers.http import IssuerHTTP
from tests.fakes.agentcard_sh import FakeAgentCardSh
from tests.issuers.harness import BASE_URL, Harness, Sleeps, call, connected

pytestmark = pytest.mark.anyio

ASKED = {"purpose": "hosting", "daily_limit_cents": 3000, "per_auth_max_cents": 1200}


def harness_for(fake: FakeAgentCardSh) -> Harness:
    env = {
        "AGENTCARD_ISSUER": "agentcard-sh", "AGENTCARD_API_KEY": fake.api_key,
        "AGENTCARD_BASE_URL": BASE_URL, "AGENTCARD_LIVE": "1",
    }  # fmt: skip
    return Harness("agentcard-sh", env, fake.transport(), lambda: len(fake.requests), fake=fake)


@asynccontextmanager
async def agent(
    fake: FakeAgentCardSh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[Client]:
    harness = harness_for(fake)
    harness.env.update(env)
    with anyio.fail_after(20):
        async with connected(harness, tmp_path, monkeypatch, Sleeps()) as client:
            yield client


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    code, out = await call(client, tool, arguments)
    assert code == "ok", f"{tool}: {code}: {out}"
    assert isinstance(out, dict)
    return out


async def test_a_card_goes_from_pending_to_active_only_by_the_humans_approval_and_unfreeze(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAgentCardSh()
    async with agent(fake, tmp_path, monkeypatch) as client:
        card = await ok(client, "create_card", ASKED)
        assert card["status"] == "pending"
        assert "approval on agent-card.sh" in card["note"]
        # The issuer was sent exactly the documented body: the per-purchase limit in cents.
        (create,) = fake.requests_to("POST", "/v1/cards")
        assert set(create.body) == {"card"}
        assert set(create.body["card"]) == {"name", "spend_limit_cents", "memo"}
        assert create.body["card"]["name"] == "hosting"
        assert create.body["card"]["spend_limit_cents"] == 1200
        assert create.headers["content-type"] == "application/json"
        # Freezing a card that cannot spend yet leaves it pending, and is not an error.
        assert (await ok(client, "freeze_card", {"card_id": card["id"]}))["status"] == "pending"
        # Nor can the agent activate it before the human approved: it stays pending.
        still = await ok(client, "unfreeze_card", {"card_id": card["id"]})
        assert (still["status"], still["note"]) == ("pending", card["note"])
        assert fake.requests_to("POST", f"/v1/cards/{card['id']}/activate") == []

        fake.approve(card["id"])  # the human, on agent-card.sh
        approved = await ok(client, "get_card", {"card_id": card["id"]})
        assert approved["status"] == "frozen"
        assert "unfreeze_card activates it" in approved["note"]
        active = await ok(client, "unfreeze_card", {"card_id": card["id"]})
        assert (active["status"], active.get("note")) == ("active", None)
        assert (await ok(client, "freeze_card", {"card_id": card["id"]}))["status"] == "frozen"
        assert (await ok(client, "unfreeze_card", {"card_id": card["id"]}))["status"] == "active"
        assert (await ok(client, "close_card", {"card_id": card["id"]}))["status"] == "closed"
    assert fake.cards[card["id"]]["status"] == "closed"
    # The server never approves a card itself, and sends no header the issuer does not know.
    assert not [r for r in fake.requests if r.path.endswith("/approve")]
    assert not [r for r in fake.requests if "idempotency-key" in r.headers]
    # unfreeze is activate.
    assert len(fake.requests_to("POST", f"/v1/cards/{card['id']}/activate")) == 2


async def test_spend_and_ledger_come_from_the_cards_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAgentCardSh()
    async with agent(fake, tmp_path, monkeypatch) as client:
        card = await ok(client, "create_card", ASKED)
        fake.approve(card["id"])
        await ok(client, "unfreeze_card", {"card_id": card["id"]})
        fake.purchase(card["id"], 700, "Fly.io")
        fake.purchase(card["id"], 5000, "Too Big")  # over the per-purchase limit: declined
        got = await ok(client, "get_card", {"card_id": card["id"]})
        assert got["current_daily_spend_cents"] == 700
        page = await ok(client, "read_ledger", {"card_id": card["id"], "limit": 1})
        assert page["has_more"] is True
        rest = await ok(client, "read_ledger", {"card_id": card["id"],
                                                "cursor": page["next_cursor"]})  # fmt: skip
        entries = page["entries"] + rest["entries"]
        assert sorted((e["merchant"], e["decision"], e["amount_cents"]) for e in entries) == [
            ("Fly.io", "approve", 700), ("Too Big", "decline", 5000),
        ]  # fmt: skip
        code, message = await call(client, "read_ledger", {})
        assert code == "not_supported"
        assert "agent-card.sh" in message
        assert "card_id" in message
        limits = await ok(client, "get_limits", {})
        assert limits["spent_today_cents"] == 700


@pytest.mark.parametrize(
    ("scopes", "tool", "missing"),
    [
        ({"cards:read", "transactions:read"}, "create_card", "cards:write"),
        ({"cards:read", "cards:write"}, "get_card", "transactions:read"),
    ],
)
async def test_a_key_without_a_scope_is_told_which_scope_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scopes: set[str], tool: str, missing: str
) -> None:
    fake = FakeAgentCardSh(scopes=scopes)
    if tool == "get_card":  # an active card, made on the dashboard
        fake.scopes = frozenset(scopes | {"cards:write"})
        card_id = fake.add_card()
    async with agent(fake, tmp_path, monkeypatch) as client:
        arguments = ASKED if tool == "create_card" else {"card_id": card_id}
        code, message = await call(client, tool, arguments)
    assert code == "issuer_auth_failed"
    assert f"lacks the '{missing}' scope" in message
    assert "AGENTCARD_API_KEY" in message


async def test_the_daily_limit_is_kept_by_our_budget_as_the_issuer_knows_only_per_purchase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "max_card_daily_limit_cents = 5000\nmax_per_auth_cents = 5000\n"
        "max_total_daily_cents = 5000\nmax_active_cards = 10\n"
        "require_approval_above_cents = 100000\n"
    )
    policy.chmod(0o600)
    fake = FakeAgentCardSh()
    async with agent(fake, tmp_path, monkeypatch, AGENTCARD_POLICY_FILE=str(policy)) as client:
        await ok(client, "create_card", ASKED)  # commits its 3000 a day
        code, message = await call(client, "create_card", ASKED)
        assert code == "guardrail_exceeded", message
        limits = await ok(client, "get_limits", {})
    assert limits["committed_daily_cents"] == 3000
    assert len(fake.cards) == 1  # the refused card never reached the issuer


class Capping(FakeAgentCardSh):
    """An issuer that quietly stores a higher per-purchase limit than it was sent."""

    def _create(self, request: Request, body: Any) -> dict[str, Any]:
        card = super()._create(request, body)
        card["spend_limit_cents"] *= 2
        return card


async def test_a_card_with_a_wider_per_purchase_limit_than_asked_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Capping()
    async with agent(fake, tmp_path, monkeypatch) as client:
        code, message = await call(client, "create_card", ASKED)
    assert code == "issuer_rejected"
    assert "per purchase 2400" in message
    assert "per purchase 1200" in message


async def test_a_state_change_whose_answer_was_lost_is_done_once_and_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAgentCardSh()
    card_id = fake.add_card()
    async with agent(fake, tmp_path, monkeypatch) as client:
        fake.force(502, method="POST", path=f"/v1/cards/{card_id}/freeze", handle=True)
        frozen = await ok(client, "freeze_card", {"card_id": card_id})
    assert frozen["status"] == "frozen"
    # The retry met the state machine's refusal, and the card was found frozen.
    assert len(fake.requests_to("POST", f"/v1/cards/{card_id}/freeze")) == 2


async def test_unknown_ids_and_the_issuers_error_shape_map_to_stable_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAgentCardSh()
    async with agent(fake, tmp_path, monkeypatch) as client:
        code, message = await call(client, "get_card", {"card_id": "card_nope"})
        assert (code, message.split(". ")[0]) == ("not_found", "agentcard-sh said 404: Not Found")
        code, message = await call(client, "set_policy", {"card_id": "card_nope",
                                                          "daily_limit_cents": 100})  # fmt: skip
        assert code == "not_supported"
        assert "close it (close_card) and create a new one" in message


async def test_funding_sends_integer_cents_and_refuses_anything_else_before_a_request() -> None:
    fake = FakeAgentCardSh()
    card_id = fake.add_card()
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=BASE_URL,
        headers={"Authorization": f"Bearer {fake.api_key}"},
    ) as client:  # fmt: skip
        info = REGISTRY["agentcard-sh"]
        issuer = AgentCardShIssuer(IssuerHTTP(client, "agentcard-sh"), name="agentcard-sh",
                                   mode="live", capabilities=info.capabilities)  # fmt: skip
        await issuer.fund(card_id, 2500)
        sent = len(fake.requests)
        with pytest.raises(ValueError, match="integer"):
            await issuer.fund(card_id, 25.0)  # type: ignore[arg-type]
    assert fake.funded == {card_id: 2500}
    assert len(fake.requests) == sent
