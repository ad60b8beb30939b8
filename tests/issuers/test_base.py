"""IssuerBase (issuers/base.py) and the per-adapter error overrides of issuers/http.py: an
adapter that overrides nothing refuses every call ``not_supported`` naming the issuer and what
to do instead, before any request; an issuer's own error code can mean something other than
its status says (ClawdCards' 403 ``limit_exceeded`` is a limit, not a bad key), and such an
answer is final, never retried into the issuer's rate limit."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest

from agentcard_mcp.errors import (
    IssuerAuthFailed,
    IssuerRejected,
    IssuerUnavailable,
    NotSupported,
)
from agentcard_mcp.issuers import Capability, CardSpec, IssuerBase, PolicyChange
from agentcard_mcp.issuers.http import IssuerHTTP, error_for_status

pytestmark = pytest.mark.anyio


class Bare(IssuerBase):
    instead: ClassVar[dict[str, str]] = {"set_policy": "close it and make a new card"}


def unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a request was made: {request.method} {request.url}")


async def test_every_method_an_adapter_leaves_alone_refuses_naming_the_issuer() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as client:
        issuer = Bare(IssuerHTTP(client, "acme"), name="acme", mode="test",
                      capabilities=frozenset())  # fmt: skip
        spec = CardSpec("agent", "ads", 1000, None, [], ttl_minutes=30, single_use=True)
        calls: list[Any] = [
            issuer.create_card(spec, "key"), issuer.get_card("c"), issuer.list_cards(),
            issuer.freeze("c"), issuer.unfreeze("c"), issuer.set_policy("c", PolicyChange()),
            issuer.close("c"), issuer.simulate("c", 1, "m", "saas"),
            issuer.ledger(card_id="c", agent_id=None, limit=1, cursor=None, decision=None),
            issuer.set_merchant_blocklist([]),
        ]  # fmt: skip
        for pending in calls:
            with pytest.raises(NotSupported) as refused:
                await pending
            text = str(refused.value)
            assert text.startswith("not_supported: ")
            assert "by the acme issuer; " in text
        with pytest.raises(NotSupported, match="close it and make a new card"):
            await issuer.set_policy("c", PolicyChange(daily_limit_cents=1))
        # What an issuer without figures of its own reports, and reads nothing to say so.
        reported = await issuer.limits()
        assert all(getattr(reported, field) is None for field in type(reported).model_fields)
        assert await issuer.probe() == []
        assert await issuer.default_agent_id() == "default"


def test_by_default_the_read_back_expects_exactly_what_was_asked() -> None:
    issuer = Bare(None, name="acme", mode="test", capabilities=frozenset({Capability.TTL}))  # type: ignore[arg-type]
    policy = issuer.enforced_policy(CardSpec("a", "p", 2000, None, ["travel"]))
    assert policy.model_dump() == {
        "daily_limit_cents": 2000, "per_auth_max_cents": 2000, "mcc_allowlist": ["travel"],
    }  # fmt: skip


OVERRIDES = {
    (403, "limit_exceeded"): (IssuerRejected, "The monthly limit is reached; wait for next month."),
    (503, "no_cards_available"): (IssuerRejected, "The card pool is empty; try later."),
}


def answer(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://x/v1/cards"))


def test_an_issuers_own_code_overrides_what_its_status_would_mean() -> None:
    limited = error_for_status(
        "clawdcards", answer(403, {"code": "limit_exceeded", "message": "Monthly limit"}), OVERRIDES
    )
    assert isinstance(limited, IssuerRejected)
    assert str(limited) == (
        "issuer_rejected: clawdcards said 403 limit_exceeded: Monthly limit. "
        "The monthly limit is reached; wait for next month."
    )
    # Another 403 of the same issuer is still a key problem.
    other = error_for_status("clawdcards", answer(403, {"code": "forbidden"}), OVERRIDES)
    assert isinstance(other, IssuerAuthFailed)


def test_agent_card_sh_error_bodies_and_scopes_are_read() -> None:
    missing = error_for_status(
        "agentcard-sh", answer(403, {"errors": {"detail": "lacks scope"}}), scope="cards:write"
    )
    assert isinstance(missing, IssuerAuthFailed)
    assert "said 403: lacks scope" in str(missing)
    assert "lacks the 'cards:write' scope" in str(missing)
    invalid = error_for_status(
        "agentcard-sh", answer(422, {"errors": {"spend_limit_cents": ["must be an integer"]}})
    )
    assert isinstance(invalid, IssuerRejected)
    assert "said 422: spend_limit_cents must be an integer." in str(invalid)


async def test_an_overridden_answer_is_final_and_not_retried() -> None:
    sent: list[httpx.Request] = []

    def pool_empty(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, json={"code": "no_cards_available", "message": "empty"})

    async def no_sleep(_: float) -> None:
        raise AssertionError("retried")

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(pool_empty), base_url="http://x"
    ) as client:
        http = IssuerHTTP(client, "clawdcards", overrides=OVERRIDES, sleep=no_sleep)
        with pytest.raises(IssuerRejected, match="card pool is empty"):
            await http.request("POST", "/v1/cards", json={})
        assert len(sent) == 1
        # Without the override, the same 503 is retried as any 5xx is.
        slept: list[float] = []

        async def record(delay: float) -> None:
            slept.append(delay)

        http = IssuerHTTP(client, "clawdcards", max_attempts=2, sleep=record)
        with pytest.raises(IssuerUnavailable):
            await http.request("POST", "/v1/cards", json={})
    assert len(sent) == 3
    assert len(slept) == 1
