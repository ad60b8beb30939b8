"""The approval text the human reads (issue 12, item 6): the amounts and the threshold alone on
the first line, every argument on a line of its own, every string quoted and escaped, long
values cut with their length — so the agent's text can neither fake a short argument list nor
push the real amount off screen. Checked on the text itself, in the form an eliciting client
shows (SDK client, both modes), and in the operator's terminal."""

from __future__ import annotations

import io
import os
import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult

from agentcard_mcp.approval_text import MAX_SHOWN, show, summarize
from agentcard_mcp.approvals import approvals_command
from agentcard_mcp.console.pages import approvals_page
from agentcard_mcp.guardrails import Verdict
from agentcard_mcp.invisible import hidden
from agentcard_mcp.operator import ApprovalView
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals

ASKS = Verdict(True, ("daily limit $50.00 is above the approval threshold $25.00",))
HEADLINE = (
    "create_card: daily_limit_cents=5000 ($50.00) — daily limit $50.00 is above the approval "
    "threshold $25.00"
)

# Characters that render as nothing, as a space, or move text around: each must be shown as
# its escape, never as itself.
UNSEEN = [
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\ufe0f", "\U000e0100",
    "\u3164", "\uffa0", "\u115f", "\u1160", "\u2800", "\u00a0", "\u2003", "\u3000", "\u202f",
    "\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\x1b", "\x00", "\n", "\r", "\t", "\x85",
    "\U000e0041", "\u20dd", "\ue000",
]  # fmt: skip


def create(purpose: str, **more: Any) -> dict[str, Any]:
    return {"purpose": purpose, "daily_limit_cents": 5000, **more}


def test_the_first_line_holds_the_amounts_and_why_and_nothing_of_the_agents() -> None:
    text = summarize("create_card", create("flights", mcc_allowlist=["travel"]), ASKS)
    assert text.split("\n") == [HEADLINE, '  purpose = "flights"', '  mcc_allowlist = ["travel"]']


def test_every_amount_is_on_the_first_line_with_its_dollars() -> None:
    text = summarize("create_card", create("x", per_auth_max_cents=2600), ASKS)
    first = text.split("\n")[0]
    assert "daily_limit_cents=5000 ($50.00)" in first
    assert "per_auth_max_cents=2600 ($26.00)" in first
    assert "above the approval threshold $25.00" in first
    assert "_cents" not in "".join(text.split("\n")[1:])


def test_a_gate_without_amounts_still_names_itself_first() -> None:
    why = Verdict(True, ("the operator approves every close (card card_1)",))
    text = summarize("close_card", {"card_id": "card_1"}, why)
    assert text.split("\n") == [
        "close_card — the operator approves every close (card card_1)",
        '  card_id = "card_1"',
    ]


@pytest.mark.parametrize("ch", UNSEEN, ids=lambda c: f"U+{ord(c):04X}")
def test_each_unseen_character_is_shown_as_its_escape(ch: str) -> None:
    text = summarize("create_card", create(f"a{ch}b"), ASKS)
    purpose = text.split("\n")[1]
    code = f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
    assert purpose == f'  purpose = "a{code}b"'


def test_quotes_and_backslashes_cannot_close_the_string() -> None:
    fake = 'x"\n  daily_limit_cents = 100 \\'
    purpose = summarize("create_card", create(fake), ASKS).split("\n")[1]
    assert purpose == '  purpose = "x\\"\\u000a  daily_limit_cents = 100 \\\\"'


def test_a_long_value_is_cut_with_its_length_shown() -> None:
    assert show("a" * 312) == '"' + "a" * MAX_SHOWN + '…" (312 chars)'
    assert show("a" * MAX_SHOWN) == '"' + "a" * MAX_SHOWN + '"'
    # A cut never splits an escape.
    cut = show("a" * (MAX_SHOWN - 3) + "\u200b" * 50)
    assert cut == '"' + "a" * (MAX_SHOWN - 3) + '…" (127 chars)'
    assert show([f"t{i}" for i in range(50)]).endswith(', "t9", …] (50 items)')


def test_card_numbers_in_the_agents_text_are_masked_before_they_are_cut() -> None:
    text = summarize("create_card", create("pay with 4111 1111 1111 1111 please"), ASKS)
    assert "1111 1111" not in text
    assert "•••• 1111" in text


# The agent's text, any of it: the layout stays ours.
agent_text = st.text(
    st.characters(codec="utf-8") | st.sampled_from(UNSEEN),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(purpose=agent_text, agent_id=agent_text)
def test_no_purpose_can_change_the_first_line_or_the_number_of_lines(
    purpose: str, agent_id: str
) -> None:
    text = summarize("create_card", create(purpose or "x", agent_id=agent_id or "a"), ASKS)
    lines = text.split("\n")
    assert lines[0] == HEADLINE
    assert len(lines) == 3
    assert lines[1].startswith('  purpose = "')
    assert lines[2].startswith('  agent_id = "')
    assert not any(hidden(ch) for line in lines for ch in line)
    for line in lines[1:]:
        assert len(line) <= len('  agent_id = ""… (200 chars)') + MAX_SHOWN
        # No stack of combining marks to draw over the lines around it.
        marks = 0
        for ch in line:
            marks = marks + 1 if unicodedata.combining(ch) else 0
            assert marks <= 2


# --- where the human reads it -------------------------------------------------------------------

FAKE = (
    "coffee\u2028\u2028\u2028\u2028" + "\u3164" * 60 + '", daily_limit_cents=100)'
    "\n\nApprove? (this only creates a $1.00 card)"
)


class Human:
    def __init__(self) -> None:
        self.forms: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.forms.append(params.message)
        return ElicitResult(action="decline")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_form_shows_the_real_amount_first_whatever_the_purpose(
    home: Path, mode: str
) -> None:
    human = Human()
    server = create_server(Settings(issuer="sandbox", home=home))
    async with Client(server, mode=mode, elicitation_callback=human) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("create_card", create(FAKE))
        assert result.is_error
    [form] = human.forms
    lines = form.split("\n")
    assert lines[0] == HEADLINE
    assert lines[1].startswith('  purpose = "coffee\\u2028\\u2028\\u2028\\u2028\\u3164')
    assert lines[1].endswith(f'…" ({len(FAKE)} chars)')
    assert lines[2:] == ["", "An AI agent asks to run this. Approve?"]
    assert "\u3164" not in form
    assert "\u2028" not in form


@pytest.mark.anyio
async def test_the_operators_terminal_and_console_show_the_same_escaped_lines(
    home: Path,
) -> None:
    arguments = create(FAKE)
    text = summarize("create_card", arguments, ASKS)
    out, err = io.StringIO(), io.StringIO()
    async with SqliteApprovals(home) as store:
        approval, _ = await store.request("create_card", arguments, text)
        assert await approvals_command("list", None, store, out, err) == 0
    listed = out.getvalue().split("\n")
    assert listed[0].endswith("  " + HEADLINE)
    assert listed[1] == "    " + text.split("\n")[1].strip()
    assert "\u3164" not in out.getvalue()

    page = approvals_page([ApprovalView(approval=approval, seconds_left=600)], [], "csrf")
    assert f"{HEADLINE}<br>purpose = &quot;coffee\\u2028" in page.replace("&#x27;", "'")
    assert "\u3164" not in page
    assert "\u2028" not in page
