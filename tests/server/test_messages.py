"""Error texts an agent reads (DESIGN §7): `code: message`, the message a proper sentence that
says what to do next."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings

from .conftest import Agent

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def guarded(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Agent]:
    """The server under the built-in operator policy (approval above $25.00, unfreeze needs
    approval), reached by a client that shows no forms: the operator decides out of band."""
    built_in = settings.model_copy(update={"policy_file": None})
    async with Client(create_server(built_in), mode=request.param) as client:
        listing = await client.list_tools()
        yield Agent(client, {tool.name: tool for tool in listing.tools})


APPROVAL = re.compile(
    r"^this call needs the operator's approval \(id apr_[a-z0-9]+, valid 10 minutes\)\. Ask "
    r"them to approve it at \S+ or with `agentcard-mcp approvals approve apr_[a-z0-9]+`, then "
    r'repeat this exact call with approval_id="apr_[a-z0-9]+"\. It asks:\n'
)


async def test_approval_required_says_what_to_do_then_why_in_sentences(guarded: Agent) -> None:
    code, message = await guarded.fail(
        "create_card", {"purpose": "team offsite", "daily_limit_cents": 5000}
    )
    assert code == "approval_required"
    assert APPROVAL.search(message), message
    why = message.split("It asks:\n", 1)[1].splitlines()[0]
    assert why.endswith("— daily limit $50.00 is above the approval threshold $25.00"), why


async def test_unfreeze_needing_approval_says_so_in_a_sentence(guarded: Agent) -> None:
    card = await guarded.call("create_card", {"purpose": "books", "daily_limit_cents": 1500})
    await guarded.call("freeze_card", {"card_id": card["id"]})
    code, message = await guarded.fail("unfreeze_card", {"card_id": card["id"]})
    assert code == "approval_required"
    assert APPROVAL.search(message), message
    why = message.split("It asks:\n", 1)[1].splitlines()[0]
    assert why == f"unfreeze_card — the operator approves every unfreeze (card {card['id']})"


async def test_an_issuer_without_single_use_cards_says_so_in_grammar(agent: Agent) -> None:
    code, message = await agent.fail(
        "create_card", {"purpose": "one ticket", "daily_limit_cents": 1500, "single_use": True}
    )
    assert code == "not_supported"
    # The sentence, then what to do instead (from the issuer's registry entry).
    assert message.startswith("a single_use card is not supported by the sandbox issuer; "), message
