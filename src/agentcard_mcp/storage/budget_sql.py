"""The budget's card-record writes, in SQL both backends speak (``?`` placeholders; PostgreSQL's
driver takes them through ``pyformat``). Only plain CASE expressions: SQLite's ``MAX(a, b)`` and
PostgreSQL's ``GREATEST`` are the one place the two dialects would part."""

from __future__ import annotations

__all__ = ["OBSERVE", "UPSERT", "pyformat"]

# Our own write, as the issuer answered it: status and limit are replaced. A day's spend only
# grows: an issuer that reports a closed card's spend as 0, or an older day's, must not make
# today's spend (and a closed card's commitment) drop.
UPSERT = """
INSERT INTO budget_cards (account, card_id, status, daily_limit_cents, spent_cents, spent_day)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (account, card_id) DO UPDATE SET
    status = excluded.status,
    daily_limit_cents = excluded.daily_limit_cents,
    spent_cents = CASE
        WHEN excluded.spent_day > budget_cards.spent_day THEN excluded.spent_cents
        WHEN excluded.spent_day = budget_cards.spent_day
             AND excluded.spent_cents > budget_cards.spent_cents THEN excluded.spent_cents
        ELSE budget_cards.spent_cents END,
    spent_day = CASE
        WHEN excluded.spent_day > budget_cards.spent_day THEN excluded.spent_day
        ELSE budget_cards.spent_day END
"""

# A read of the issuer: an unknown card is adopted whole; of a known card only a higher spend
# of the same day, or any spend of a later day.
OBSERVE = """
INSERT INTO budget_cards (account, card_id, status, daily_limit_cents, spent_cents, spent_day)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (account, card_id) DO UPDATE SET
    spent_cents = excluded.spent_cents,
    spent_day = excluded.spent_day
WHERE excluded.spent_day > budget_cards.spent_day
   OR (excluded.spent_day = budget_cards.spent_day
       AND excluded.spent_cents > budget_cards.spent_cents)
"""


def pyformat(sql: str) -> str:
    """``sql`` with psycopg's placeholders (the texts above hold no other ``?`` or ``%``)."""
    return sql.replace("?", "%s")
