-- The agents' idempotency keys for create_card: a retry with the same key and request gets the
-- card it made, without a second reservation or approval (storage/base.py BudgetStore.remember).
CREATE TABLE budget_idempotency (
    account    TEXT NOT NULL,
    key        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    card_id    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account, key)
);
