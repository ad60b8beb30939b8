"""The audit trail on PostgreSQL: one append-only table, ``audit_records``, for every replica.

Rows are only ever inserted: triggers refuse UPDATE, DELETE and TRUNCATE (migration 0002), so
neither a bug nor a compromised replica's SQL can rewrite what was recorded. What a row holds is
what ``audit.prepare`` makes of the record (scrubbed with the sink's ``scrub``, JSON-safe,
capped), the same as a line of the JSONL file; ``tail`` gives it back in that shape, in the
order the rows were added.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ...audit import AuditRecord, Tail, identity, prepare, utc_timestamp
from .db import Pool
from .text import storable

__all__ = ["PostgresAudit"]

_INSERT = (
    "INSERT INTO audit_records (time, tool, caller, arguments, outcome, card_id, approval_id, "
    "duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_TAIL = "SELECT * FROM (SELECT * FROM audit_records ORDER BY id DESC LIMIT %s) AS last ORDER BY id"


def _text(value: Any) -> str | None:
    return None if value is None else storable(value if isinstance(value, str) else str(value))


class PostgresAudit:
    where = "the PostgreSQL table audit_records"
    inline = False  # a round trip to the server

    def __init__(self, pool: Pool, scrub: Callable[[Any], Any] = identity) -> None:
        self._pool = pool
        self._scrub = scrub

    async def write(self, record: AuditRecord) -> None:
        fields = prepare(record, self._scrub)
        duration = fields.get("duration_ms")
        values = (
            datetime.fromisoformat(record.time),  # the server's stamp, not the scrubbed copy
            _text(fields.get("tool")) or "",
            _text(fields.get("caller")) or "",
            Jsonb(storable(fields.get("arguments"))),
            _text(fields.get("outcome")) or "",
            _text(fields.get("card_id")),
            _text(fields.get("approval_id")),
            float(duration) if isinstance(duration, int | float) else 0.0,
        )
        async with self._pool.connection() as conn:
            await conn.execute(_INSERT, values)

    async def tail(self, n: int) -> Tail:
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_TAIL, (n,))).fetchall()
        records = [
            {
                "time": utc_timestamp(row["time"]),
                "tool": row["tool"],
                "caller": row["caller"],
                "outcome": row["outcome"],
                "card_id": row["card_id"],
                "approval_id": row["approval_id"],
                "duration_ms": row["duration_ms"],
                "arguments": row["arguments"],
            }
            for row in rows
        ]
        return Tail(records, 0)

    async def aclose(self) -> None:
        return None  # the pool belongs to open_postgres
