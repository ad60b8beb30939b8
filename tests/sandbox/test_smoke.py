from __future__ import annotations

import pytest

from tests.support import Sandbox

pytestmark = pytest.mark.anyio


async def test_a_new_card_starts_with_no_spend_and_the_requested_policy(sandbox: Sandbox) -> None:
    response = await sandbox.client.post(
        "/v1/cards",
        json={
            "agent_id": sandbox.credentials.agent_id,
            "daily_limit_cents": 5000,
            "mcc_allowlist": ["travel"],
        },
    )
    assert response.status_code == 200
    card = response.json()
    assert (card["daily_limit_cents"], card["per_auth_max_cents"], card["mcc_allowlist"]) == (
        5000,
        5000,
        ["travel"],
    )
    assert card["current_daily_spend_cents"] == 0
