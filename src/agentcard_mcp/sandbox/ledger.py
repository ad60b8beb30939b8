"""Reading the ledger (newest first, cursor-paginated) and the account's usage statistics.

The statistics come from the usage counters (``counters``), never from a scan of the ledger:
``GET /v1/usage`` costs the same however long the history. Their 24-hour, 7-day and 30-day
windows are whole UTC hours (the current hour plus the 23, 167 or 719 before it); see
``counters`` for what that means exactly.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from . import counters
from .accounts import agent_row
from .cards import card_row
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
        "stats": counters.stats(conn, owner_id, now),
        # Approved spend per UTC day and category, the last SPEND_DAYS days (from counters).
        "spend_by_day": counters.spend_by_day(conn, owner_id, now),
    }
