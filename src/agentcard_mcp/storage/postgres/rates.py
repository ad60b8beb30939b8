"""Rate-limit buckets in PostgreSQL: one token bucket per key, whichever replica serves it.

A take is a single statement: the key's row is inserted full (less the token taken) or, when it
exists, updated under its row lock — refilled for the time since it was last updated, then a
token taken if a whole one is there. ``INSERT … ON CONFLICT DO UPDATE`` evaluates the update on
the latest committed row, after waiting for any other take of the same key to commit, so
concurrent takes from any number of replicas run one after another on the same bucket and cannot
both take its last token.

Time is the database server's (one clock for every replica), read once per statement. A take
whose statement started before the latest update it then waited for sees no refill (its elapsed
time is clamped at zero) and leaves ``updated_at`` where it was: no token is ever made twice.
"""

from __future__ import annotations

from .db import Pool

__all__ = ["PostgresRateLimits"]

_TAKE = """
INSERT INTO rate_buckets AS bucket (key_id, tokens, updated_at, granted)
VALUES (%(key_id)s, %(rate)s - 1, statement_timestamp(), true)
ON CONFLICT (key_id) DO UPDATE SET (tokens, updated_at, granted) = (
    SELECT
        CASE WHEN refilled.tokens >= 1 THEN refilled.tokens - 1 ELSE refilled.tokens END,
        GREATEST(bucket.updated_at, statement_timestamp()),
        refilled.tokens >= 1
    FROM (
        SELECT LEAST(
            %(rate)s,
            bucket.tokens + %(rate)s / 60.0 * GREATEST(
                0, EXTRACT(EPOCH FROM statement_timestamp() - bucket.updated_at)::float8
            )
        ) AS tokens
    ) AS refilled
)
RETURNING tokens, granted
"""


class PostgresRateLimits:
    """A token bucket per key (storage.base.RateLimits), shared by every replica."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def take(self, key_id: str, rate_per_minute: int) -> float | None:
        rate = float(rate_per_minute)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_TAKE, {"key_id": key_id, "rate": rate})
            row = await cursor.fetchone()
        assert row is not None  # INSERT … ON CONFLICT DO UPDATE always returns the row
        if row["granted"]:
            return None
        return (1.0 - float(row["tokens"])) * 60.0 / rate
