-- The day's commitments (storage/base.py): what each card commits, and the writes in flight.
CREATE TABLE budget_cards (
    account           TEXT NOT NULL,
    card_id           TEXT NOT NULL,
    status            TEXT NOT NULL,
    daily_limit_cents BIGINT NOT NULL,
    spent_cents       BIGINT NOT NULL,
    spent_day         TEXT NOT NULL,
    PRIMARY KEY (account, card_id)
);
CREATE INDEX budget_cards_status ON budget_cards (account, status);
-- Only cards that spent something: a card closed unspent never counts again.
CREATE INDEX budget_cards_spent ON budget_cards (account, spent_day) WHERE spent_cents > 0;

CREATE TABLE budget_reservations (
    id            TEXT PRIMARY KEY,
    account       TEXT NOT NULL,
    card_id       TEXT,
    commits_cents BIGINT NOT NULL,
    active        BOOLEAN NOT NULL,
    owner         TEXT NOT NULL,
    settle_after  TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX budget_reservations_card
    ON budget_reservations (account, card_id) WHERE card_id IS NOT NULL;
CREATE INDEX budget_reservations_account ON budget_reservations (account);
