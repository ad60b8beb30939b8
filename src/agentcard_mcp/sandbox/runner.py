"""The sandbox as the operator runs it: ``sandbox serve`` and ``sandbox swipe``."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .provision import key_file_for, provision
from .store import Store

__all__ = ["serve", "swipe"]

log = logging.getLogger("agentcard_mcp.sandbox")


def serve(db: Path, host: str, port: int) -> None:
    """Runs the sandbox API with uvicorn until interrupted."""
    store = Store(db)
    provision(store, db)
    log.warning(
        "AgentCard sandbox (test mode, no real money) at http://%s:%s — database %s; "
        "the API key is in %s (mode 0600): send it as 'Authorization: Bearer <api_key>'.",
        host, port, db, key_file_for(db),
    )  # fmt: skip
    config = uvicorn.Config(create_app(store), host=host, port=port, log_level="info")
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()


async def swipe(
    db: Path,
    card_id: str,
    amount_cents: int,
    merchant: str,
    mcc: str,
    currency: str,
    url: str | None,
) -> tuple[int, dict[str, Any]]:
    """Plays the merchant: one test authorization, in process on ``db`` or against ``url``.

    In process, the decision is made on the same database file under the same transaction
    rules, so it is safe while a server runs on it; that server delivers its webhooks."""
    store = Store(db)
    try:
        credentials = provision(store, db)
        transport = None if url else httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(
            transport=transport, base_url=url or "http://sandbox", timeout=30
        ) as client:
            response = await client.post(
                "/v1/_test/swipe",
                json={"card_id": card_id, "amount_cents": amount_cents, "merchant": merchant,
                      "mcc": mcc, "currency": currency},
                headers={"Authorization": f"Bearer {credentials.api_key}",
                         "Idempotency-Key": str(uuid.uuid4())},
            )  # fmt: skip
        return response.status_code, response.json()
    finally:
        store.close()


def describe(status: int, payload: dict[str, Any], amount_cents: int, merchant: str) -> str:
    """One readable line for the operator."""
    if status != 200:
        error = payload.get("error", {})
        return (
            f"error {status} {error.get('code', '')}: {error.get('message', json.dumps(payload))}"
        )
    outcome = payload["agentcard_outcome"]
    return (
        f"{outcome['decision'].upper()} ({outcome['reason']}): ${amount_cents / 100:,.2f} at "
        f"{merchant} — spent today ${outcome['current_daily_spend_cents'] / 100:,.2f} "
        f"— {outcome['auth_id']}"
    )


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
