"""Approval over HTTP (DESIGN §5, §10): on stateful streamable HTTP the human is asked through
the client's form (elicitation); stateless HTTP has no channel back to the client, so the
out-of-band path is used — approval_required, the operator's command, the call repeated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestFormParams, ElicitRequestParams, ElicitResult

from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from tests.http.conftest import serving

pytestmark = pytest.mark.anyio

POLICY = """
max_card_daily_limit_cents = 100000000
max_per_auth_cents = 100000000
max_total_daily_cents = 100000000
max_active_cards = 100
require_approval_above_cents = 1000
"""


class Human:
    def __init__(self) -> None:
        self.forms: list[ElicitRequestFormParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.forms.append(params)
        return ElicitResult(action="accept", content={"approve": True})


@pytest.fixture
def policy(home: Path) -> Path:
    path = home.parent / "approval-policy.toml"
    path.write_text(POLICY)
    return path


CREATE: dict[str, Any] = {"daily_limit_cents": 5000, "purpose": "needs a yes"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stateful_http_asks_the_human_in_band(home: Path, policy: Path, mode: str) -> None:
    human = Human()
    with serving(home, policy) as served:
        key = await served.key()
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                result = await client.call_tool("create_card", CREATE)
    assert not result.is_error, result.content
    assert len(human.forms) == 1
    assert "create_card" in human.forms[0].message


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stateless_http_uses_the_out_of_band_path(
    home: Path, policy: Path, mode: str
) -> None:
    human = Human()
    with serving(home, policy, stateless=True) as served:
        key = await served.key()
        with anyio.fail_after(30):
            async with served.client(key, mode, elicitation_callback=human) as client:
                refused = await client.call_tool("create_card", CREATE)
                assert refused.is_error
                text = refused.content[0].text  # type: ignore[union-attr]
                assert text.startswith("approval_required: ")
                approval_id = text.split("apr_", 1)[1].split()[0].rstrip(".;,")
                async with SqliteApprovals(home) as store:
                    await store.approve(f"apr_{approval_id}")
                done = await client.call_tool(
                    "create_card", {**CREATE, "approval_id": f"apr_{approval_id}"}
                )
    assert not done.is_error, done.content
    assert human.forms == []
