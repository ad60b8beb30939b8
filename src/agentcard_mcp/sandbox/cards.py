"""Cards and their authorizations: create, read, change policy, freeze, delete, swipe.

Every function takes the open transaction's connection; the caller (``app``) runs it inside
one ``BEGIN IMMEDIATE`` transaction, so a swipe's read of the day's spend, its decision, its
ledger row and its spend update happen atomically.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime
from typing import Any

from ..merchants import blocked_by
from .accounts import agent_row
from .authorize import Reason, SwipeFacts, decide
from .clock import isoformat
from .errors import ApiError, invalid, not_found
from .ids import new_id
from .validation import CardPatch, Swipe
from .webhooks import enqueue

__all__ = [
    "card_row",
    "card_view",
    "delete_card",
    "get_card",
    "insert_card",
    "list_cards",
    "patch_card",
    "reset_daily",
    "set_frozen",
    "swipe",
]


def _today(now: datetime) -> str:
    return now.date().isoformat()


def spend_today(row: sqlite3.Row, now: datetime) -> int:
    """The card's approved spend for the current UTC day (the counter resets at 00:00 UTC)."""
    return int(row["daily_spend_cents"]) if row["spend_day"] == _today(now) else 0


def card_view(row: sqlite3.Row, now: datetime) -> dict[str, Any]:
    return {
        "id": row["id"],
        "agent_id": row["agent_id"],
        "last4": row["last4"],
        "nickname": row["nickname"],
        "daily_limit_cents": row["daily_limit_cents"],
        "per_auth_max_cents": row["per_auth_max_cents"],
        "mcc_allowlist": json.loads(row["mcc_allowlist"]),
        "frozen": bool(row["frozen"]),
        "current_daily_spend_cents": spend_today(row, now),
        "created_at": row["created_at"],
    }


def card_row(
    conn: sqlite3.Connection, owner_id: str, card_id: str, *, include_deleted: bool = False
) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM cards WHERE id = ? AND owner_id = ?", (card_id, owner_id)
    ).fetchone()
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise not_found("card", card_id)
    return row  # type: ignore[no-any-return]


def get_card(
    conn: sqlite3.Connection, owner_id: str, card_id: str, now: datetime
) -> dict[str, Any]:
    return card_view(card_row(conn, owner_id, card_id), now)


def list_cards(conn: sqlite3.Connection, owner_id: str, now: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM cards WHERE owner_id = ? AND deleted_at IS NULL ORDER BY id", (owner_id,)
    ).fetchall()
    return [card_view(row, now) for row in rows]


def insert_card(
    conn: sqlite3.Connection,
    owner_id: str,
    agent_id: str,
    daily_limit_cents: int,
    per_auth_max_cents: int | None,
    mcc_allowlist: list[str],
    nickname: str | None,
    now: datetime,
) -> dict[str, Any]:
    agent_row(conn, owner_id, agent_id)
    used, limit = conn.execute(
        "SELECT (SELECT count(*) FROM cards WHERE owner_id = ?1 AND deleted_at IS NULL), "
        "card_limit FROM owners WHERE id = ?1",
        (owner_id,),
    ).fetchone()
    if used >= limit:
        raise ApiError(
            422,
            "invalid_request_error",
            "card_limit_reached",
            f"This account holds {used} of its {limit} cards; delete one or contact support.",
        )
    card_id = new_id("card")
    conn.execute(
        "INSERT INTO cards (id, owner_id, agent_id, last4, nickname, daily_limit_cents, "
        "per_auth_max_cents, mcc_allowlist, spend_day, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            card_id,
            owner_id,
            agent_id,
            f"{secrets.randbelow(10_000):04d}",
            nickname,
            daily_limit_cents,
            per_auth_max_cents or daily_limit_cents,
            json.dumps(_unique(mcc_allowlist)),
            _today(now),
            isoformat(now),
        ),
    )
    return get_card(conn, owner_id, card_id, now)


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def patch_card(
    conn: sqlite3.Connection, owner_id: str, card_id: str, patch: CardPatch, now: datetime
) -> dict[str, Any]:
    card_row(conn, owner_id, card_id)
    for field in patch.model_fields_set:
        value = getattr(patch, field)
        if value is None and field != "nickname":
            raise invalid(field, f"'{field}' cannot be null; omit it to leave it unchanged.")
        if field == "mcc_allowlist":
            value = json.dumps(_unique(value))
        conn.execute(f"UPDATE cards SET {field} = ? WHERE id = ?", (value, card_id))  # noqa: S608
    return get_card(conn, owner_id, card_id, now)


def set_frozen(
    conn: sqlite3.Connection, owner_id: str, card_id: str, frozen: bool, now: datetime
) -> dict[str, Any]:
    row = card_row(conn, owner_id, card_id)
    if bool(row["frozen"]) != frozen:
        conn.execute("UPDATE cards SET frozen = ? WHERE id = ?", (int(frozen), card_id))
        event = "card.frozen" if frozen else "card.unfrozen"
        enqueue(conn, owner_id, event, {"card_id": card_id, "agent_id": row["agent_id"]}, now)
    return get_card(conn, owner_id, card_id, now)


def delete_card(
    conn: sqlite3.Connection, owner_id: str, card_id: str, now: datetime
) -> dict[str, Any]:
    card_row(conn, owner_id, card_id)
    conn.execute("UPDATE cards SET deleted_at = ? WHERE id = ?", (isoformat(now), card_id))
    return {"id": card_id, "deleted": True}


def reset_daily(
    conn: sqlite3.Connection, owner_id: str, card_id: str, now: datetime
) -> dict[str, Any]:
    card_row(conn, owner_id, card_id)
    conn.execute(
        "UPDATE cards SET daily_spend_cents = 0, spend_day = ? WHERE id = ?", (_today(now), card_id)
    )
    return get_card(conn, owner_id, card_id, now)


def _facts(conn: sqlite3.Connection, card: sqlite3.Row, req: Swipe, now: datetime) -> SwipeFacts:
    owner = conn.execute("SELECT * FROM owners WHERE id = ?", (card["owner_id"],)).fetchone()
    agent = conn.execute("SELECT * FROM agents WHERE id = ?", (card["agent_id"],)).fetchone()
    duplicate = (
        req.network_id is not None
        and conn.execute(
            "SELECT 1 FROM ledger WHERE card_id = ? AND network_id = ?",
            (card["id"], req.network_id),
        ).fetchone()
        is not None
    )
    return SwipeFacts(
        amount_cents=req.amount_cents,
        mcc=req.mcc,
        merchant_blocked=blocked_by(req.merchant, json.loads(owner["merchant_blocklist"]))
        is not None,
        currency_enabled=req.currency in json.loads(owner["enabled_currencies"]),
        owner_suspended=bool(owner["suspended"]),
        agent_active=agent["status"] == "active" and agent["deleted_at"] is None,
        card_active=card["deleted_at"] is None,
        frozen=bool(card["frozen"]),
        mcc_allowlist=tuple(json.loads(card["mcc_allowlist"])),
        per_auth_max_cents=card["per_auth_max_cents"],
        daily_limit_cents=card["daily_limit_cents"],
        spend_today_cents=spend_today(card, now),
        network_duplicate=duplicate,
        network_decline=req.network_decline,
    )


def swipe(conn: sqlite3.Connection, owner_id: str, req: Swipe, now: datetime) -> dict[str, Any]:
    """Decides one authorization and records it: the ledger row and the spend move together."""
    card = card_row(conn, owner_id, req.card_id, include_deleted=True)
    facts = _facts(conn, card, req, now)
    reason = decide(facts)
    approved = reason is Reason.APPROVED
    spend_after = facts.spend_today_cents + (req.amount_cents if approved else 0)
    auth_id, decided_at = new_id("auth"), isoformat(now)
    if approved:
        conn.execute(
            "UPDATE cards SET daily_spend_cents = ?, spend_day = ? WHERE id = ?",
            (spend_after, _today(now), card["id"]),
        )
    conn.execute(
        "INSERT INTO ledger (id, owner_id, agent_id, card_id, decided_at, decision, reason, "
        "amount_cents, currency, merchant, mcc, network_id, current_daily_spend_cents_after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            auth_id, owner_id, card["agent_id"], card["id"], decided_at,
            "approve" if approved else "decline", reason.value, req.amount_cents, req.currency,
            req.merchant, req.mcc, req.network_id, spend_after,
        ),
    )  # fmt: skip
    outcome = {
        "auth_id": auth_id,
        "decision": "approve" if approved else "decline",
        "reason": reason.value,
        "current_daily_spend_cents": spend_after,
        "decided_at": decided_at,
    }
    _announce(conn, owner_id, card, req, outcome, now)
    return {"agentcard_outcome": outcome, "approved": approved}


def _announce(
    conn: sqlite3.Connection,
    owner_id: str,
    card: sqlite3.Row,
    req: Swipe,
    outcome: dict[str, Any],
    now: datetime,
) -> None:
    data = {
        **outcome,
        "card_id": card["id"],
        "agent_id": card["agent_id"],
        "amount_cents": req.amount_cents,
        "merchant": req.merchant,
        "mcc": req.mcc,
    }
    enqueue(conn, owner_id, "authorization.decided", data, now)
    at_limit = outcome["current_daily_spend_cents"] >= card["daily_limit_cents"]
    if outcome["reason"] == Reason.DAILY_LIMIT_EXCEEDED or (
        outcome["decision"] == "approve" and at_limit
    ):
        enqueue(conn, owner_id, "daily_limit.hit", data, now)
