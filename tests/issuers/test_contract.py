"""The contract every issuer keeps (DESIGN §8), one suite parametrized over the embedded sandbox
and every fake issuer (tests/issuers/harness.py): each tool, through the SDK client, does on
each issuer what the registry says it does there, and a tool the issuer lacks answers
``not_supported`` naming the issuer, before any request. The server is configured by
AGENTCARD_* variables only: switching AGENTCARD_ISSUER (and the key and base URL) is the whole
change. A create whose answer is lost after the issuer acted yields one card; retries never
push a key over the issuer's rate limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agentcard_mcp.issuers import REGISTRY, Capability
from tests.issuers.harness import HARNESSES, Harness, Sleeps, call, connected

pytestmark = pytest.mark.anyio

ASKED = {"purpose": "contract test", "daily_limit_cents": 2000, "per_auth_max_cents": 1000}


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return HARNESSES[request.param](tmp_path)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


class Contract:
    """Calls a tool and checks the answer against what the registry says the tool does on
    this issuer: a result where it is supported, else the refusal naming the issuer, with no
    request made."""

    def __init__(self, client: Any, harness: Harness, mode: str) -> None:
        self.client = client
        self.harness = harness
        self.info = REGISTRY[harness.issuer]
        self.uses = {use.tool: use for use in self.info.tool_uses(mode)}  # type: ignore[arg-type]

    async def expect(self, tool: str, arguments: dict[str, Any], *, supported: bool | None = None
                     ) -> Any:  # fmt: skip
        use = self.uses[tool]
        supported = use.supported if supported is None else supported
        if self.harness.clock is not None:
            self.harness.clock.advance(seconds=self.harness.between_calls.total_seconds())
        before = self.harness.seen() if self.harness.seen else None
        code, out = await call(self.client, tool, arguments)
        if supported:
            assert code == "ok", f"{tool} on {self.harness.issuer}: {code}: {out}"
            return out
        assert code == (use.code if use.code != "ok" else "not_supported"), (tool, code, out)
        assert self.harness.issuer in out, out
        if before is not None and self.harness.seen is not None:
            assert self.harness.seen() == before, f"{tool} reached the issuer"
        return None


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_tool_does_on_each_issuer_what_the_registry_says(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps, mode: str
) -> None:
    with anyio.fail_after(30):
        async with connected(harness, tmp_path, monkeypatch, sleeps, mode) as client:
            code, limits = await call(client, "get_limits", {})
            assert code == "ok", limits
            assert limits["issuer"] == harness.issuer
            contract = Contract(client, harness, limits["mode"])
            await _walk(contract, harness)


async def _walk(contract: Contract, harness: Harness) -> None:
    expect, caps = contract.expect, contract.info.capabilities
    card = await expect("create_card", ASKED)
    card_id = card["id"] if card else "card_unknown"
    if card is not None:
        assert (card["daily_limit_cents"], card["per_auth_max_cents"]) == (2000, 1000)
        assert card["issuer"] == harness.issuer
        if card["status"] == "pending":
            # The issuer has a human approve each card on its side; the agent is told so.
            assert card["note"]
            assert "approv" in card["note"]
            assert harness.approve is not None
            harness.approve(card_id)
            # An approved card spends only once activated, under the unfreeze policy.
            assert (await expect("get_card", {"card_id": card_id}))["status"] == "frozen"
            assert (await expect("unfreeze_card", {"card_id": card_id}))["status"] == "active"
        else:
            assert card["status"] == "active"
    got = await expect("get_card", {"card_id": card_id})
    if got is not None:
        assert (got["id"], got["status"], got["per_auth_max_cents"]) == (card_id, "active", 1000)
    listed = await expect("list_cards", {})
    if listed is not None:
        assert card_id in [c["id"] for c in listed["cards"]]

    # A purchase: by a merchant at the issuer, or simulated where the issuer can.
    swipe = {"card_id": card_id, "amount_cents": 500, "merchant": "Shop", "mcc": "saas"}
    simulated = await expect("simulate_purchase", swipe)
    if simulated is not None:
        assert simulated["approved"] is True
    elif harness.purchase is not None and card is not None:
        harness.purchase(card_id, 500, "Shop")
    page = await expect("read_ledger", {"card_id": card_id})
    if page is not None and (simulated is not None or harness.purchase is not None):
        assert [(e["amount_cents"], e["decision"]) for e in page["entries"]] == [(500, "approve")]
        assert page["totals"]["approved_cents"] == 500
    by_agent = await expect("read_ledger", {}, supported=Capability.AGENT_LEDGER in caps)
    if by_agent is not None:
        assert card_id in [e["card_id"] for e in by_agent["entries"]]

    frozen = await expect("freeze_card", {"card_id": card_id})
    if frozen is not None:
        assert frozen["status"] == "frozen"
    thawed = await expect("unfreeze_card", {"card_id": card_id})
    if thawed is not None:
        assert thawed["status"] == "active"
    changed = await expect("set_policy", {"card_id": card_id, "daily_limit_cents": 1500})
    if changed is not None:
        assert changed["daily_limit_cents"] == 1500
    closed = await expect("close_card", {"card_id": card_id})
    if closed is not None:
        assert closed["status"] == "closed"


async def test_categories_are_kept_or_refused_before_any_request_never_dropped(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    async with connected(harness, tmp_path, monkeypatch, sleeps) as client:
        mode = (await call(client, "get_limits", {}))[1]["mode"]
        contract = Contract(client, harness, mode)
        supported = Capability.CATEGORIES in contract.info.capabilities
        card = await contract.expect(
            "create_card", {**ASKED, "mcc_allowlist": [harness.category]}, supported=supported
        )
    if supported:
        assert card["mcc_allowlist"] == [harness.category]


class LoseFirstPost(httpx.AsyncBaseTransport):
    """Hands every request to the issuer, but loses the answer to the first POST (a create):
    the issuer acted, the server never hears so."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and self.lost == 0:
            self.lost += 1
            await response.aread()
            raise httpx.ReadError("connection reset after the issuer acted", request=request)
        return response


@pytest.mark.parametrize("issuer", [n for n in HARNESSES if n != "sandbox"])
async def test_a_create_whose_answer_is_lost_after_the_issuer_acted_makes_one_card(
    issuer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    harness = HARNESSES[issuer](tmp_path)
    assert harness.transport is not None
    lossy = LoseFirstPost(harness.transport)
    with anyio.fail_after(30):
        async with connected(harness, tmp_path, monkeypatch, sleeps, transport=lossy) as client:
            code, card = await call(client, "create_card", ASKED)
    assert code == harness.lost_create, card
    assert lossy.lost == 1
    assert len(harness.fake.cards) == 1
    if code == "ok":
        assert list(harness.fake.cards) == [card["id"]]


@pytest.mark.parametrize(
    "issuer", [n for n in HARNESSES if REGISTRY[n].requests_per_minute is not None]
)
async def test_retries_never_push_the_key_over_the_issuers_rate_limit(
    issuer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    harness = HARNESSES[issuer](tmp_path)
    limit = REGISTRY[issuer].requests_per_minute
    assert limit is not None
    if Capability.GET_CARD not in REGISTRY[issuer].capabilities:
        pytest.skip(f"{issuer} has no read to retry")
    codes: list[str] = []
    with anyio.fail_after(30):
        async with connected(harness, tmp_path, monkeypatch, sleeps) as client:
            # The issuer fails every request from now on; each call retries, and more calls
            # come at once than the limit allows attempts for.
            harness.fake.force(503, times=10 * limit)
            calls = limit // 3

            async def one() -> None:
                codes.append((await call(client, "get_card", {"card_id": "card_x"}))[0])

            async with anyio.create_task_group() as group:
                for _ in range(calls):
                    group.start_soon(one)
    assert harness.fake.rate_limited == 0  # the issuer never had to say 429
    assert len(harness.fake.requests) <= limit
    # Calls the window had no room for are told to wait rather than sent.
    assert "issuer_rate_limited" in codes
    assert set(codes) <= {"issuer_rate_limited", "issuer_unavailable"}
