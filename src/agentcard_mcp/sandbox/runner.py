"""The sandbox as the operator runs it: ``sandbox serve`` and ``sandbox swipe``."""

from __future__ import annotations

import copy
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .provision import key_file_for, provision, read_credentials
from .store import Store

__all__ = ["serve", "swipe"]

log = logging.getLogger("agentcard_mcp.sandbox")

# uvicorn's own logging, with its access lines (one per request) on stderr beside every other
# log line rather than on stdout (DESIGN §11).
_LOG_CONFIG = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
_LOG_CONFIG["handlers"]["access"]["stream"] = "ext://sys.stderr"


def serve(db: Path, host: str, port: int) -> None:
    """Runs the sandbox API with uvicorn until interrupted."""
    store = Store(db)
    provision(store, db)
    log.warning(
        "AgentCard sandbox (test mode, no real money) at http://%s:%s — database %s; "
        "the API key is in %s (mode 0600): send it as 'Authorization: Bearer <api_key>'.",
        host, port, db, key_file_for(db),
    )  # fmt: skip
    config = uvicorn.Config(
        create_app(store), host=host, port=port, log_level="info", log_config=_LOG_CONFIG
    )
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
    rules, so it is safe while a server runs on it; that server delivers its webhooks. Returns
    the HTTP status and body; status 0 means the server could not be reached."""
    body = {"card_id": card_id, "amount_cents": amount_cents, "merchant": merchant,
            "mcc": mcc, "currency": currency}  # fmt: skip
    if url is not None:
        credentials = read_credentials(db)
        if credentials is None:
            return 0, _error("no_key", f"No sandbox key at {key_file_for(db)}; use the same "
                             "AGENTCARD_HOME or --db as the server.")  # fmt: skip
        return await _post_swipe(None, url, credentials.api_key, body)
    store = Store(db)
    try:
        credentials = provision(store, db)
        transport = httpx.ASGITransport(app=create_app(store))
        return await _post_swipe(transport, "http://sandbox", credentials.api_key, body)
    finally:
        store.close()


async def _post_swipe(
    transport: httpx.AsyncBaseTransport | None, base_url: str, api_key: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": str(uuid.uuid4())}
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
            response = await client.post("/v1/_test/swipe", json=body, headers=headers)
    except httpx.HTTPError as exc:
        return 0, _error("unreachable", f"Could not reach {base_url}: {type(exc).__name__}")
    return response.status_code, response.json()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def describe(status: int, payload: dict[str, Any], amount_cents: int, merchant: str) -> str:
    """One readable line for the operator."""
    if status != 200:
        error = payload.get("error", {})
        prefix = f"error {status}" if status else "error"
        return f"{prefix} {error.get('code', '')}: {error.get('message', json.dumps(payload))}"
    outcome = payload["agentcard_outcome"]
    return (
        f"{outcome['decision'].upper()} ({outcome['reason']}): ${amount_cents / 100:,.2f} at "
        f"{merchant} — spent today ${outcome['current_daily_spend_cents'] / 100:,.2f} "
        f"— {outcome['auth_id']}"
    )


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
