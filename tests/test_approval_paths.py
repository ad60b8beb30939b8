"""The human's approval, end to end through the SDK client in both connection modes (DESIGN §5).

Three paths: the client asks the human (elicitation: accept, decline, cancel); the client cannot
ask, so the call fails ``approval_required`` and the operator decides with the real
``agentcard-mcp approvals`` command in its own process; and the calls that must never ask —
tightening, or anything beyond a ceiling. Every assertion is on an error code or on the cards the
issuer holds, never on prose.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import pytest
from mcp import Client, ClientSession
from mcp.client import ClientRequestContext
from mcp.types import (
    CallToolResult,
    ClientCapabilities,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitRequestURLParams,
    ElicitResult,
    TextContent,
)

from agentcard_mcp.approvals import approvals_command
from agentcard_mcp.sandbox import Store, create_app, read_credentials
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals

pytestmark = pytest.mark.anyio

Action = Literal["accept", "decline", "cancel"]

# Above the default approval threshold (2500), within every default ceiling.
CREATE: dict[str, Any] = {"purpose": "flights to Lisbon", "daily_limit_cents": 5000}
# Below the threshold: never asks.
SMALL: dict[str, Any] = {"purpose": "coffee beans", "daily_limit_cents": 2000}

# DESIGN §7: every expected failure starts with one of these.
STABLE_CODES = frozenset(
    {
        "invalid_params", "guardrail_exceeded", "category_not_allowed", "merchant_blocked",
        "approval_required", "approval_denied", "not_found", "not_supported", "test_mode_only",
        "idempotency_conflict", "issuer_auth_failed", "issuer_rate_limited",
        "issuer_unavailable", "issuer_rejected",
    }
)  # fmt: skip
APPROVAL_ID = re.compile(r"\bapr_[a-z0-9]+\b")
AGENTCARD_MCP = Path(sys.executable).with_name("agentcard-mcp")


class Human:
    """The person behind the client's elicitation form: answers ``action`` (or exactly
    ``reply``) and remembers every form it was shown. Sent a URL (URL-mode elicitation), it
    remembers it, does what ``at_url`` does there (e.g. the operator approves on that page),
    then answers ``action``."""

    def __init__(
        self,
        action: Action = "accept",
        *,
        reply: ElicitResult | None = None,
        at_url: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.action: Action = action
        self.reply = reply
        self.at_url = at_url
        self.forms: list[ElicitRequestFormParams] = []
        self.urls: list[ElicitRequestURLParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        if isinstance(params, ElicitRequestURLParams):
            self.urls.append(params)
            if self.at_url is not None:
                await self.at_url(params.url)
            return ElicitResult(action=self.action)
        assert isinstance(params, ElicitRequestFormParams), params
        self.forms.append(params)
        if self.reply is not None:
            return self.reply
        if self.action == "accept":
            return ElicitResult(action="accept", content={"approve": True})
        return ElicitResult(action=self.action)


class Operator:
    """The operator's terminal: the real ``agentcard-mcp approvals`` command, run as its own
    process on the same home directory as the server (``run``) — or, where a test is about
    the server rather than the command, the function that command runs, in process (each
    process start costs about half a second)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
        self.env["AGENTCARD_HOME"] = str(home)

    async def run(self, *args: str, status: int = 0) -> str:
        with anyio.fail_after(30):
            done = await anyio.run_process(
                [str(AGENTCARD_MCP), "approvals", *args],
                env=self.env,
                cwd=self.home.parent,
                check=False,
            )
        stdout, stderr = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == status, f"approvals {args}: {done.returncode}\n{stdout}{stderr}"
        return stdout

    async def approve(self, approval_id: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        async with SqliteApprovals(self.home) as store:
            status = await approvals_command("approve", approval_id, store, out, err)
        assert status == 0, err.getvalue()

    def age(self, approval_id: str) -> None:
        """Moves an approval's expiry into the past, as ten minutes of waiting would."""
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds")
        with closing(sqlite3.connect(self.home / "approvals.db")) as db, db:
            changed = db.execute(
                "UPDATE approvals SET expires_at = ? WHERE id = ?", (past, approval_id)
            ).rowcount
        assert changed == 1


class Agent:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def raw(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        with anyio.fail_after(20):
            return await self.client.call_tool(name, arguments or {})

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.raw(name, arguments)
        assert not result.is_error, f"{name}({arguments}) -> {text_of(result)}"
        data: dict[str, Any] | None = result.structured_content
        assert data is not None
        return data

    async def fail(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[str, str]:
        """(code, message) of a call that must be a ``code: message`` tool error."""
        result = await self.raw(name, arguments)
        text = text_of(result)
        assert result.is_error, f"{name}({arguments}) succeeded: {text}"
        code, sep, message = text.partition(": ")
        assert sep, f"not 'code: message': {text!r}"
        return code, message

    async def approval_required(self, name: str, arguments: dict[str, Any]) -> str:
        """The approval id named by a call that must fail ``approval_required``."""
        code, message = await self.fail(name, arguments)
        assert code == "approval_required", message
        ids: set[str] = set(APPROVAL_ID.findall(message))
        assert len(ids) == 1, message
        return ids.pop()

    async def cards(self) -> list[dict[str, Any]]:
        cards: list[dict[str, Any]] = (await self.call("list_cards"))["cards"]
        return cards

    async def card(self, card_id: str) -> dict[str, Any]:
        return await self.call("get_card", {"card_id": card_id})

    async def status(self, card_id: str) -> str | None:
        """The card's status at the issuer; None once it is gone (a closed card is deleted)."""
        found = [c["status"] for c in await self.cards() if c["id"] == card_id]
        return found[0] if found else None


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home; no AGENTCARD_* variable and no .env file can leak into the server."""
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def operator(home: Path) -> Operator:
    return Operator(home)


class Connect:
    """Opens the server on ``home`` (with the policy file as it is then) for one client."""

    def __init__(self, home: Path, mode: str) -> None:
        self.home = home
        self.mode = mode

    def policy(self, text: str) -> None:
        (self.home / "policy.toml").write_text(text)

    @asynccontextmanager
    async def __call__(self, human: Human | None = None) -> AsyncIterator[Agent]:
        server = create_server(Settings(issuer="sandbox", home=self.home))
        async with Client(server, mode=self.mode, elicitation_callback=human) as client:
            yield Agent(client)


@pytest.fixture
def connect(home: Path, mode: str) -> Connect:
    return Connect(home, mode)


async def another_agent(home: Path) -> str:
    """A second agent of the embedded sandbox's account (the server made the account), added
    through the sandbox's API as the operator would in AgentCard's dashboard."""
    db = home / "sandbox.db"
    credentials = read_credentials(db)
    assert credentials is not None
    store = Store(db)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(store)),
            base_url="http://sandbox",
            headers={"Authorization": f"Bearer {credentials.api_key}"},
        ) as client:
            made = await client.post("/v1/agents", json={"name": "other"})
            assert made.status_code == 200, made.text
            return str(made.json()["id"])
    finally:
        store.close()


def audit_lines(home: Path) -> Iterator[dict[str, Any]]:
    for line in (home / "audit.jsonl").read_text().splitlines():
        if line.strip():
            yield json.loads(line)


# --- elicitation: the client asks the human ----------------------------------------------------


async def test_accepted_form_creates_the_card_and_names_the_tool_and_amount(
    connect: Connect,
) -> None:
    human = Human("accept")
    async with connect(human) as agent:
        card = await agent.call("create_card", CREATE)
        assert card["daily_limit_cents"] == 5000
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert len(human.forms) == 1
    assert "create_card" in human.forms[0].message
    assert "5000" in human.forms[0].message


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_declined_or_cancelled_form_is_approval_denied_and_creates_nothing(
    connect: Connect, action: Action
) -> None:
    human = Human(action)
    async with connect(human) as agent:
        code, _ = await agent.fail("create_card", CREATE)
        assert code == "approval_denied"
        assert await agent.cards() == []
    assert len(human.forms) == 1
    last = [line for line in audit_lines(connect.home) if line["tool"] == "create_card"][-1]
    assert last["outcome"] == "approval_denied"
    assert APPROVAL_ID.fullmatch(last["approval_id"] or "")


async def test_the_form_names_the_agent_the_card_is_for(connect: Connect) -> None:
    human = Human("decline")
    async with connect(human) as agent:
        other = await another_agent(connect.home)
        code, _ = await agent.fail("create_card", {**CREATE, "agent_id": other})
        assert code == "approval_denied"
    assert len(human.forms) == 1
    assert other in human.forms[0].message


async def test_a_card_for_an_agent_the_issuer_does_not_know_is_refused_before_anyone_is_asked(
    connect: Connect,
) -> None:
    # The create would fail at the issuer after the human approved it (and the approval was
    # spent); the corrected call, for another agent_id, would need an approval of its own.
    human = Human("accept")
    async with connect(human) as agent:
        code, message = await agent.fail("create_card", {**CREATE, "agent_id": "agent_gone"})
        assert code == "not_found"
        assert "agent_gone" in message
        assert await agent.cards() == []
    assert human.forms == []
    async with SqliteApprovals(connect.home) as store:
        assert await store.recent() == []  # nothing asked, nothing recorded


async def test_a_form_answered_approve_false_is_approval_denied(connect: Connect) -> None:
    human = Human(reply=ElicitResult(action="accept", content={"approve": False}))
    async with connect(human) as agent:
        code, _ = await agent.fail("create_card", CREATE)
        assert code == "approval_denied"
        assert await agent.cards() == []
    assert len(human.forms) == 1


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(ElicitResult(action="accept", content={}), id="empty"),
        pytest.param(ElicitResult(action="accept", content={"approve": "maybe"}), id="not-bool"),
        pytest.param(ElicitResult(action="accept"), id="no-content"),
    ],
)
async def test_a_malformed_form_answer_creates_nothing_and_is_approval_denied(
    connect: Connect, reply: ElicitResult
) -> None:
    async with connect(Human(reply=reply)) as agent:
        code, _ = await agent.fail("create_card", CREATE)
        assert code == "approval_denied"
        assert await agent.cards() == []


# --- no elicitation: approval_required, then the operator's command ---------------------------


async def test_without_a_form_the_call_is_approval_required_and_left_pending(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        assert await agent.cards() == []
        limits = await agent.call("get_limits")
        assert [entry.split(":", 1)[0] for entry in limits["pending_approvals"]] == [approval_id]
        # Asking again while it is pending names the same approval rather than piling up more.
        assert await agent.approval_required("create_card", CREATE) == approval_id
    listed = await operator.run("list")
    assert approval_id in listed


async def test_operator_approval_lets_the_exact_call_through_once(
    connect: Connect, operator: Operator, home: Path
) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.run("approve", approval_id)

        card = await agent.call("create_card", {**CREATE, "approval_id": approval_id})
        assert card["daily_limit_cents"] == 5000
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
        assert (await agent.call("get_limits"))["pending_approvals"] == []

        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "approval_denied"
        assert [c["id"] for c in await agent.cards()] == [card["id"]]

    creates = [line for line in audit_lines(home) if line["tool"] == "create_card"]
    assert [(line["outcome"], line["approval_id"]) for line in creates] == [
        ("approval_required", approval_id),
        ("ok", approval_id),
        ("approval_denied", approval_id),
    ]
    assert creates[1]["card_id"] == card["id"]


async def test_an_approval_for_other_arguments_is_refused_and_stays_usable(
    connect: Connect, operator: Operator
) -> None:
    # An explicit per-purchase cap, so that 6000 a day stays within max_per_auth_cents.
    approved = {**CREATE, "per_auth_max_cents": 5000}
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", approved)
        await operator.approve(approval_id)

        for other in (
            {**approved, "daily_limit_cents": 6000},
            {**approved, "purpose": "flights to Porto"},
            {**approved, "mcc_allowlist": ["travel"]},
            CREATE,  # per_auth_max_cents left out: another call, even if it means the same
        ):
            code, _ = await agent.fail("create_card", {**other, "approval_id": approval_id})
            assert (code, other) == ("approval_denied", other)
        assert await agent.cards() == []

        card = await agent.call("create_card", {**approved, "approval_id": approval_id})
        assert [c["id"] for c in await agent.cards()] == [card["id"]]


async def test_an_approval_for_another_tool_is_refused_and_stays_usable(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        card = await agent.call("create_card", SMALL)
        await agent.call("freeze_card", {"card_id": card["id"]})
        approval_id = await agent.approval_required("close_card", {"card_id": card["id"]})
        await operator.approve(approval_id)

        code, _ = await agent.fail(
            "unfreeze_card", {"card_id": card["id"], "approval_id": approval_id}
        )
        assert code == "approval_denied"
        assert await agent.status(card["id"]) == "frozen"

        await agent.call("close_card", {"card_id": card["id"], "approval_id": approval_id})
        assert await agent.status(card["id"]) is None


async def test_an_approved_call_is_not_asked_again_and_survives_a_restart(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
    await operator.approve(approval_id)

    human = Human("decline")  # a form now would turn the retry into approval_denied
    async with connect(human) as agent:
        card = await agent.call("create_card", {**CREATE, "approval_id": approval_id})
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert human.forms == []


async def test_an_expired_approval_is_denied(connect: Connect, operator: Operator) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.approve(approval_id)
        operator.age(approval_id)

        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "approval_denied"
        assert await agent.cards() == []
        # Without approval_id the agent gets a fresh request, not the expired one.
        assert await agent.approval_required("create_card", CREATE) != approval_id


async def test_a_denied_approval_is_denied(connect: Connect, operator: Operator) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.run("deny", approval_id)

        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "approval_denied"
        assert await agent.cards() == []
        assert (await agent.call("get_limits"))["pending_approvals"] == []


async def test_a_pending_approval_is_not_yet_usable(connect: Connect) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "approval_required"
        assert await agent.cards() == []


async def test_an_unknown_approval_id_creates_nothing(connect: Connect) -> None:
    async with connect() as agent:
        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": "apr_" + "0" * 20})
        assert code == "not_found"
        assert await agent.cards() == []


async def test_an_expired_request_cannot_be_approved(connect: Connect, operator: Operator) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        operator.age(approval_id)
        await operator.run("approve", approval_id, status=2)
        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "approval_denied"
        assert await agent.cards() == []
        assert (await agent.call("get_limits"))["pending_approvals"] == []


async def test_two_racing_retries_with_one_approval_make_one_card(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.approve(approval_id)

        outcomes: list[str] = []

        async def retry() -> None:
            result = await agent.raw("create_card", {**CREATE, "approval_id": approval_id})
            outcomes.append(text_of(result).split(":", 1)[0] if result.is_error else "ok")

        async with anyio.create_task_group() as tg:
            tg.start_soon(retry)
            tg.start_soon(retry)
        assert sorted(outcomes) == ["approval_denied", "ok"]
        assert len(await agent.cards()) == 1


# --- what never asks, and what does -----------------------------------------------------------


@pytest.mark.parametrize(("daily", "asks"), [(2500, False), (2501, True)])
async def test_the_approval_threshold_is_exclusive(
    connect: Connect, daily: int, asks: bool
) -> None:
    human = Human("accept")
    async with connect(human) as agent:
        card = await agent.call("create_card", {"purpose": "books", "daily_limit_cents": daily})
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert len(human.forms) == int(asks)


async def test_tightening_and_freezing_never_ask(connect: Connect) -> None:
    human = Human("decline")  # any form would turn the calls below into approval_denied
    async with connect(human) as agent:
        card = await agent.call("create_card", SMALL)
        lowered = await agent.call(
            "set_policy",
            {"card_id": card["id"], "daily_limit_cents": 1000, "per_auth_max_cents": 500},
        )
        assert (lowered["daily_limit_cents"], lowered["per_auth_max_cents"]) == (1000, 500)
        narrowed = await agent.call(
            "set_policy", {"card_id": card["id"], "mcc_allowlist": ["travel"]}
        )
        assert narrowed["mcc_allowlist"] == ["travel"]
        frozen = await agent.call("freeze_card", {"card_id": card["id"]})
        assert frozen["status"] == "frozen"
    assert human.forms == []


async def test_raising_a_limit_above_the_threshold_asks(connect: Connect) -> None:
    human = Human("accept")
    async with connect(human) as agent:
        card = await agent.call("create_card", SMALL)
        assert human.forms == []
        raised = await agent.call("set_policy", {"card_id": card["id"], "daily_limit_cents": 5000})
        assert raised["daily_limit_cents"] == 5000
        assert len(human.forms) == 1
        assert "set_policy" in human.forms[0].message

        human.action = "decline"
        code, _ = await agent.fail(
            "set_policy", {"card_id": card["id"], "per_auth_max_cents": 4000}
        )
        assert code == "approval_denied"
        assert (await agent.card(card["id"]))["per_auth_max_cents"] == 2000


async def test_raising_a_limit_without_a_form_is_approval_required(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        card = await agent.call("create_card", SMALL)
        change = {"card_id": card["id"], "daily_limit_cents": 5000}
        approval_id = await agent.approval_required("set_policy", change)
        assert (await agent.card(card["id"]))["daily_limit_cents"] == 2000

        await operator.approve(approval_id)
        raised = await agent.call("set_policy", {**change, "approval_id": approval_id})
        assert raised["daily_limit_cents"] == 5000


@pytest.mark.parametrize(
    ("tool", "prepare", "done"),
    [("unfreeze_card", "freeze_card", "active"), ("close_card", None, None)],
)
async def test_a_gated_action_asks_under_the_default_policy(
    connect: Connect, tool: str, prepare: str | None, done: str | None
) -> None:
    human = Human("decline")
    async with connect(human) as agent:
        card = await agent.call("create_card", SMALL)
        if prepare is not None:
            await agent.call(prepare, {"card_id": card["id"]})
        before = await agent.status(card["id"])

        code, _ = await agent.fail(tool, {"card_id": card["id"]})
        assert code == "approval_denied"
        assert await agent.status(card["id"]) == before

        human.action = "accept"
        await agent.call(tool, {"card_id": card["id"]})
        assert await agent.status(card["id"]) == done
    assert len(human.forms) == 2
    assert all(tool in form.message for form in human.forms)


@pytest.mark.parametrize(
    ("tool", "key", "prepare", "done"),
    [
        ("unfreeze_card", "unfreeze", "freeze_card", "active"),
        ("close_card", "close", None, None),
    ],
)
async def test_a_gate_set_to_allow_does_not_ask(
    connect: Connect, tool: str, key: str, prepare: str | None, done: str | None
) -> None:
    connect.policy(f'{key} = "allow"\n')
    human = Human("decline")
    async with connect(human) as agent:
        card = await agent.call("create_card", SMALL)
        if prepare is not None:
            await agent.call(prepare, {"card_id": card["id"]})
        await agent.call(tool, {"card_id": card["id"]})
        assert await agent.status(card["id"]) == done
    assert human.forms == []


@pytest.mark.parametrize(
    ("tool", "key", "prepare"),
    [("unfreeze_card", "unfreeze", "freeze_card"), ("close_card", "close", None)],
)
async def test_a_gate_set_to_deny_refuses_without_asking(
    connect: Connect, tool: str, key: str, prepare: str | None
) -> None:
    connect.policy(f'{key} = "deny"\n')
    human = Human("accept")
    async with connect(human) as agent:
        card = await agent.call("create_card", SMALL)
        if prepare is not None:
            await agent.call(prepare, {"card_id": card["id"]})
        before = await agent.status(card["id"])
        code, _ = await agent.fail(tool, {"card_id": card["id"]})
        assert code == "guardrail_exceeded"
        assert await agent.status(card["id"]) == before
    assert human.forms == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"daily_limit_cents": 20000}, "guardrail_exceeded"),  # above max_card_daily_limit
        ({"daily_limit_cents": 8000}, "guardrail_exceeded"),  # per-auth defaults above 5000
        ({"daily_limit_cents": 8000, "per_auth_max_cents": 6000}, "guardrail_exceeded"),
        ({"daily_limit_cents": 5000, "mcc_allowlist": ["groceries"]}, "category_not_allowed"),
        ({"daily_limit_cents": 5000}, "category_not_allowed"),  # empty list means any category
    ],
)
async def test_beyond_a_ceiling_is_refused_without_asking(
    connect: Connect, arguments: dict[str, Any], expected: str
) -> None:
    connect.policy('allowed_categories = ["travel"]\n')
    human = Human("accept")
    async with connect(human) as agent:
        code, _ = await agent.fail("create_card", {"purpose": "anything", **arguments})
        assert code == expected
        assert await agent.cards() == []
        assert (await agent.call("get_limits"))["pending_approvals"] == []
    assert human.forms == []


async def test_raising_beyond_a_ceiling_is_refused_without_asking(connect: Connect) -> None:
    connect.policy('allowed_categories = ["travel", "lodging"]\n')
    human = Human("accept")
    async with connect(human) as agent:
        card = await agent.call("create_card", {**SMALL, "mcc_allowlist": ["travel"]})
        refusals: list[tuple[dict[str, Any], str]] = [
            ({"daily_limit_cents": 20000}, "guardrail_exceeded"),
            ({"daily_limit_cents": 9000, "per_auth_max_cents": 6000}, "guardrail_exceeded"),
            ({"mcc_allowlist": ["groceries"]}, "category_not_allowed"),
            ({"mcc_allowlist": []}, "category_not_allowed"),
        ]
        for change, expected in refusals:
            code, _ = await agent.fail("set_policy", {"card_id": card["id"], **change})
            assert (code, change) == (expected, change)
        after = await agent.card(card["id"])
        assert (after["daily_limit_cents"], after["per_auth_max_cents"]) == (2000, 2000)
        assert after["mcc_allowlist"] == ["travel"]
    assert human.forms == []


async def test_the_audit_log_records_an_elicited_approval(connect: Connect, home: Path) -> None:
    async with connect(Human("accept")) as agent:
        card = await agent.call("create_card", CREATE)
    creates = [line for line in audit_lines(home) if line["tool"] == "create_card"]
    # 2026-07-28 asks in a round of its own (input_required); legacy asks inside the one call.
    rounds = ["input_required", "ok"] if connect.mode == "auto" else ["ok"]
    assert [line["outcome"] for line in creates] == rounds
    assert creates[-1]["card_id"] == card["id"]
    assert APPROVAL_ID.fullmatch(creates[-1]["approval_id"] or "")


# --- the approval channel (DESIGN §5) ----------------------------------------------------------


async def test_under_the_console_channel_an_accepting_client_is_not_asked(
    connect: Connect, operator: Operator
) -> None:
    connect.policy('approval_channel = "console"\n')
    human = Human("accept")
    async with connect(human) as agent:
        # Shown the console page (URL-mode elicitation) and accepted: still the operator's call.
        approval_id = await agent.approval_required("create_card", CREATE)
        assert [shown(url) for url in human.urls] == [approval_id]
        assert await agent.cards() == []
        pending = (await agent.call("get_limits"))["pending_approvals"]
        assert [entry.split(":", 1)[0] for entry in pending] == [approval_id]
        await operator.approve(approval_id)
        card = await agent.call("create_card", {**CREATE, "approval_id": approval_id})
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert human.forms == []


async def test_under_the_elicit_channel_stdio_asks_in_band(connect: Connect) -> None:
    connect.policy('approval_channel = "elicit"\n')
    human = Human("accept")
    async with connect(human) as agent:
        await agent.call("create_card", CREATE)
    assert len(human.forms) == 1


async def test_an_approved_call_that_then_fails_a_ceiling_does_not_burn_the_approval(
    connect: Connect, operator: Operator
) -> None:
    connect.policy("max_total_daily_cents = 6000\n")
    async with connect() as agent:  # no form: the operator decides
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.approve(approval_id)
        small = await agent.call("create_card", SMALL)  # 2000 + 5000 is now past 6000

        code, _ = await agent.fail("create_card", {**CREATE, "approval_id": approval_id})
        assert code == "guardrail_exceeded"

        await agent.call("freeze_card", {"card_id": small["id"]})  # frees the day's room
        card = await agent.call("create_card", {**CREATE, "approval_id": approval_id})
        assert card["daily_limit_cents"] == CREATE["daily_limit_cents"]


# --- URL-mode elicitation: the client shows the human the console page of the approval -------

CONSOLE = "http://127.0.0.1:8766"


def shown(url: ElicitRequestURLParams) -> str:
    """The approval whose console page a URL elicitation shows (its id is also the
    elicitation_id on the older protocol; 2026-07-28 has none)."""
    prefix = f"{CONSOLE}/approvals/"
    assert url.url.startswith(prefix), url.url
    approval_id = url.url.removeprefix(prefix)
    assert APPROVAL_ID.fullmatch(approval_id), url.url
    assert url.elicitation_id in (None, approval_id)
    return approval_id


async def status_of(home: Path, approval_id: str) -> str:
    async with SqliteApprovals(home) as store:
        return (await store.get(approval_id)).status


async def test_a_url_client_is_sent_the_approval_page_and_completes_once_the_operator_approves(
    connect: Connect, operator: Operator, home: Path
) -> None:
    connect.policy('approval_channel = "console"\n')

    async def operator_opens(url: str) -> None:
        approval_id = url.removeprefix(f"{CONSOLE}/approvals/")
        assert await status_of(home, approval_id) == "pending"  # made before the URL was sent
        await operator.approve(approval_id)

    human = Human("accept", at_url=operator_opens)
    async with connect(human) as agent:
        card = await agent.call("create_card", CREATE)
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
        assert (await agent.call("get_limits"))["pending_approvals"] == []
    assert human.forms == []
    [url] = human.urls
    assert "create_card" in url.message
    assert await status_of(home, shown(url)) == "used"
    last = [line for line in audit_lines(home) if line["tool"] == "create_card"][-1]
    assert (last["outcome"], last["approval_id"]) == ("ok", shown(url))


@pytest.mark.parametrize("action", ["accept", "decline", "cancel"])
async def test_a_client_that_only_answers_the_url_is_approval_required_and_left_pending(
    connect: Connect, operator: Operator, home: Path, action: Action
) -> None:
    connect.policy('approval_channel = "console"\n')
    human = Human(action)
    async with connect(human) as agent:
        code, message = await agent.fail("create_card", CREATE)
        assert code == "approval_required"
        [url] = human.urls
        approval_id = shown(url)
        assert set(APPROVAL_ID.findall(message)) == {approval_id}
        assert f"{CONSOLE}/approvals/{approval_id}" in message
        assert await agent.cards() == []
        assert await status_of(home, approval_id) == "pending"
        # The agent repeats the call with the id once the operator has decided.
        await operator.approve(approval_id)
        card = await agent.call("create_card", {**CREATE, "approval_id": approval_id})
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert len(human.urls) == 1


async def test_a_client_without_url_elicitation_is_told_the_console_url(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCARD_CONSOLE_URL", "https://console.example:9000/")
    connect.policy('approval_channel = "console"\n')
    async with connect() as agent:
        code, message = await agent.fail("create_card", CREATE)
        assert code == "approval_required"
        [approval_id] = set(APPROVAL_ID.findall(message))
        assert f"https://console.example:9000/approvals/{approval_id}" in message
        assert f"agentcard-mcp approvals approve {approval_id}" in message
        assert await agent.cards() == []


async def test_in_band_the_form_is_asked_and_no_url_is_sent(connect: Connect) -> None:
    human = Human("accept")
    async with connect(human) as agent:  # auto on stdio: in band
        await agent.call("create_card", CREATE)
    assert (len(human.forms), human.urls) == (1, [])


async def test_a_client_with_only_url_elicitation_is_sent_the_page_even_in_band(
    connect: Connect, operator: Operator, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On stdio under ``auto`` the human may be asked in band, but a client that declares URL
    mode and no forms cannot show the form: it is sent the console page instead."""
    declared = ClientSession._build_capabilities

    def url_only(self: ClientSession, version: str) -> ClientCapabilities:
        capabilities = declared(self, version)
        assert capabilities.elicitation is not None
        elicitation = capabilities.elicitation.model_copy(update={"form": None})
        return capabilities.model_copy(update={"elicitation": elicitation})

    monkeypatch.setattr(ClientSession, "_build_capabilities", url_only)

    async def operator_opens(url: str) -> None:
        await operator.approve(url.removeprefix(f"{CONSOLE}/approvals/"))

    human = Human("accept", at_url=operator_opens)
    async with connect(human) as agent:
        card = await agent.call("create_card", CREATE)
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    [url] = human.urls
    assert (human.forms, await status_of(home, shown(url))) == ([], "used")


# --- only a JSON true approves; a bad argument never burns an approval ------------------------


# Lax parsing would read each of these as True.
NOT_TRUE: list[str | int | float] = ["yes", 1, "true", "True", "on", 1.0]
BAD_KEYS = {
    "non-ascii": "clé-1",
    "space": "key 1",
    "newline": "key\n1",
    "zero-width": "key\u200b1",
    "256-chars": "k" * 256,
}


async def test_a_form_answered_with_anything_but_json_true_creates_nothing(
    connect: Connect,
) -> None:
    replies = [ElicitResult(action="accept", content={"approve": a}) for a in NOT_TRUE]

    class Answers(Human):
        """Answers each form with the next of ``replies``."""

        async def __call__(
            self, context: ClientRequestContext, params: ElicitRequestParams
        ) -> ElicitResult:
            self.reply = replies[len(self.forms)]
            return await super().__call__(context, params)

    human = Answers()
    async with connect(human) as agent:
        for answer in NOT_TRUE:
            code, _ = await agent.fail("create_card", CREATE)
            assert code == "approval_denied", answer
        assert await agent.cards() == []
    assert len(human.forms) == len(NOT_TRUE)
    outcomes = [line["outcome"] for line in audit_lines(connect.home)]
    # (2026-07-28 records each round that asks the human as input_required.)
    assert [o for o in outcomes if o not in ("input_required", "ok")] == (
        ["approval_denied"] * len(NOT_TRUE)
    )


async def test_a_bad_idempotency_key_is_invalid_params_and_leaves_the_approval_usable(
    connect: Connect, operator: Operator
) -> None:
    async with connect() as agent:
        approval_id = await agent.approval_required("create_card", CREATE)
        await operator.approve(approval_id)

        for name, key in BAD_KEYS.items():
            code, message = await agent.fail(
                "create_card", {**CREATE, "approval_id": approval_id, "idempotency_key": key}
            )
            assert code == "invalid_params", name
            assert "idempotency_key" in message, name
            assert await status_of(connect.home, approval_id) == "approved", name
        assert await agent.cards() == []

        good = "retry-" + "k" * 249  # 255 printable ASCII characters: the longest allowed
        card = await agent.call(
            "create_card", {**CREATE, "approval_id": approval_id, "idempotency_key": good}
        )
        assert [c["id"] for c in await agent.cards()] == [card["id"]]
    assert await status_of(connect.home, approval_id) == "used"
