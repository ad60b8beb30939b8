"""The budget's card-record writes, in SQL both backends speak (``?`` placeholders; PostgreSQL's
driver takes them through ``pyformat``). Only plain CASE expressions: SQLite's ``MAX(a, b)`` and
PostgreSQL's ``GREATEST`` are the one place the two dialects would part."""

from __future__ import annotations

__all__ = ["LOST", "OBSERVE", "RECALL", "TAKE_OVER", "UPSERT", "pyformat"]

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

# An agent's idempotency key (account, key, since, account, key, with_disowned): the card it
# made within the window, else the write in flight that holds it (no card yet) — one whose
# outcome was left unknown (disowned) only ``with_disowned``. At most one of each: the key is the
# primary key of one table and unique among the reservations.
RECALL = """
SELECT digest, card_id FROM (
    SELECT digest, card_id, 0 AS rank FROM budget_idempotency
    WHERE account = ? AND key = ? AND created_at >= ?
    UNION ALL
    SELECT digest, NULL, 1 FROM budget_reservations
    WHERE account = ? AND idem_key = ? AND (owner <> '' OR ?)
) AS seen ORDER BY rank LIMIT 1
"""

# A retry of a create whose outcome was left unknown (owner, settle_after, account, key, digest):
# it takes that write's reservation over — it already counts, once — and asks the issuer again
# with the same key, which answers with the card if the first request made one.
TAKE_OVER = """
UPDATE budget_reservations SET owner = ?, settle_after = ?
WHERE account = ? AND idem_key = ? AND digest = ? AND owner = ''
"""

LOST = "SELECT digest FROM budget_reservations WHERE account = ? AND idem_key = ? AND owner = ''"


def pyformat(sql: str) -> str:
    """``sql`` with psycopg's placeholders (the texts above hold no other ``?`` or ``%``)."""
    return sql.replace("?", "%s")
