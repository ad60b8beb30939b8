-- A create_card reservation holds the agent's idempotency key (its hash) and the request's
-- digest while it is in flight: a racing retry with the same key is told so instead of being
-- counted as a second card (storage/base.py Hold.key, KeyTaken).
ALTER TABLE budget_reservations ADD COLUMN idem_key TEXT, ADD COLUMN digest TEXT;
CREATE UNIQUE INDEX budget_reservations_key ON budget_reservations (account, idem_key)
    WHERE idem_key IS NOT NULL;
