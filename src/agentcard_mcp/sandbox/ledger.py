"""Reading the ledger (newest first, cursor-paginated) and the account's usage statistics."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from .accounts import agent_row
from .cards import card_row
from .clock import isoformat
from .errors import invalid

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "entry_view", "ledger_page", "usage"]

DEFAULT_PAGE = 50
MAX_PAGE = 500

_ENTRY_COLUMNS = (
    "seq, id, card_id, decided_at, decision, reason, amount_cents, merchant, mcc, "
    "current_daily_spend_cents_after"
)


def entry_view(row: sqlite3.Row) -> dict[str, Any]:
    entry = dict(row)
    del entry["seq"]
    return entry


def ledger_page(
    conn: sqlite3.Connection,
    owner_id: str,
    *,
    card_id: str | None = None,
    agent_id: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    decision: str | None = None,
) -> dict[str, Any]:
    """One page of entries for a card or an agent; ``cursor`` is the last id of the page before."""
    if card_id is not None:
        card_row(conn, owner_id, card_id, include_deleted=True)
        where, args = ["card_id = ?"], [card_id]
    else:
        assert agent_id is not None
        agent_row(conn, owner_id, agent_id)
        where, args = ["agent_id = ?"], [agent_id]
    if decision is not None:
        where.append("decision = ?")
        args.append(decision)
    if cursor is not None:
        seq = conn.execute(
            "SELECT seq FROM ledger WHERE id = ? AND owner_id = ?", (cursor, owner_id)
        ).fetchone()
        if seq is None:
            raise invalid("cursor", "Unknown cursor; pass the next_cursor of the previous page.")
        where.append("seq < ?")
        args.append(seq[0])
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM ledger WHERE {' AND '.join(where)} "  # noqa: S608
        "ORDER BY seq DESC LIMIT ?",
        (*args, limit + 1),
    ).fetchall()
    data = [entry_view(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    return {"data": data, "has_more": has_more, "next_cursor": data[-1]["id"] if has_more else None}


def usage(conn: sqlite3.Connection, owner_id: str, now: datetime) -> dict[str, Any]:
    owner = conn.execute("SELECT * FROM owners WHERE id = ?", (owner_id,)).fetchone()
    used = conn.execute(
        "SELECT count(*) FROM cards WHERE owner_id = ? AND deleted_at IS NULL", (owner_id,)
    ).fetchone()[0]
    return {
        "plan": {"name": "payg"},
        "owner": {"id": owner_id, "deposit_balance_cents": owner["deposit_balance_cents"]},
        "cards": {
            "used": used,
            "limit": owner["card_limit"],
            "remaining": max(0, owner["card_limit"] - used),
        },
        "stats": _stats(conn, owner_id, now),
    }


def _stats(conn: sqlite3.Connection, owner_id: str, now: datetime) -> dict[str, Any]:
    since = {d: isoformat(now - timedelta(days=d)) for d in (1, 7, 30)}
    row = conn.execute(
        "SELECT count(*) AS total, "
        "count(*) FILTER (WHERE decided_at > :d1) AS last_24h, "
        "count(*) FILTER (WHERE decided_at > :d7) AS last_7d, "
        "count(*) FILTER (WHERE decided_at > :d30) AS last_30d, "
        "count(*) FILTER (WHERE decision = 'approve') AS approved, "
        "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve'), 0) AS volume, "
        "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve' AND decided_at > :d1), 0) "
        "  AS volume_24h, "
        "coalesce(sum(amount_cents) FILTER (WHERE decision = 'approve' AND decided_at > :d30), 0) "
        "  AS volume_30d "
        "FROM ledger WHERE owner_id = :owner",
        {"owner": owner_id, "d1": since[1], "d7": since[7], "d30": since[30]},
    ).fetchone()
    reasons = conn.execute(
        "SELECT reason, count(*) FROM ledger WHERE owner_id = ? AND decision = 'decline' "
        "AND decided_at > ? GROUP BY reason ORDER BY reason",
        (owner_id, since[1]),
    ).fetchall()
    return {
        "total_auths": row["total"],
        "auths_last_24h": row["last_24h"],
        "auths_last_7d": row["last_7d"],
        "auths_last_30d": row["last_30d"],
        "total_volume_cents": row["volume"],
        "volume_last_24h_cents": row["volume_24h"],
        "volume_last_30d_cents": row["volume_30d"],
        "approve_rate": round(row["approved"] / row["total"], 4) if row["total"] else None,
        "decline_reasons_24h": dict(reasons),
    }
