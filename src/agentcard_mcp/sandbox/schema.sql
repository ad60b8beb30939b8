-- The embedded AgentCard v1 sandbox. Amounts are integer USD cents; times are UTC ISO 8601.
-- Rows are never physically deleted: a deleted agent or card keeps its row (deleted_at) so that
-- its ledger stays readable and a late swipe declines with card_not_active.

CREATE TABLE IF NOT EXISTS owners (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE,
    deposit_balance_cents INTEGER NOT NULL,
    card_limit            INTEGER NOT NULL,
    suspended             INTEGER NOT NULL DEFAULT 0,
    merchant_blocklist    TEXT NOT NULL DEFAULT '[]',   -- JSON array of normalized names
    enabled_currencies    TEXT NOT NULL DEFAULT '["usd"]',
    created_at            TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES owners(id),
    key_hash    TEXT NOT NULL UNIQUE,                   -- SHA-256 hex; the key itself is never stored
    prefix      TEXT NOT NULL,                          -- e.g. "ac_test_ab12", for display
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE IF NOT EXISTS verifications (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    agent_name  TEXT,
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

CREATE TABLE IF NOT EXISTS agents (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES owners(id),
    name        TEXT NOT NULL,
    description TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL,
    deleted_at  TEXT
);

CREATE TABLE IF NOT EXISTS cards (
    id                  TEXT PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES owners(id),
    agent_id            TEXT NOT NULL REFERENCES agents(id),
    last4               TEXT NOT NULL,
    nickname            TEXT,
    daily_limit_cents   INTEGER NOT NULL CHECK (daily_limit_cents > 0),
    per_auth_max_cents  INTEGER NOT NULL CHECK (per_auth_max_cents > 0),
    mcc_allowlist       TEXT NOT NULL DEFAULT '[]',     -- JSON array of tags
    frozen              INTEGER NOT NULL DEFAULT 0,
    spend_day           TEXT NOT NULL,                  -- UTC date the spend counter belongs to
    daily_spend_cents   INTEGER NOT NULL DEFAULT 0 CHECK (daily_spend_cents >= 0),
    created_at          TEXT NOT NULL,
    deleted_at          TEXT
);
CREATE INDEX IF NOT EXISTS cards_owner ON cards(owner_id, deleted_at);

-- The ledger: one row per authorization decision, never changed afterwards.
CREATE TABLE IF NOT EXISTS ledger (
    seq                             INTEGER PRIMARY KEY AUTOINCREMENT,
    id                              TEXT NOT NULL UNIQUE,
    owner_id                        TEXT NOT NULL REFERENCES owners(id),
    agent_id                        TEXT NOT NULL REFERENCES agents(id),
    card_id                         TEXT NOT NULL REFERENCES cards(id),
    decided_at                      TEXT NOT NULL,
    decision                        TEXT NOT NULL CHECK (decision IN ('approve', 'decline')),
    reason                          TEXT NOT NULL,
    amount_cents                    INTEGER NOT NULL,
    currency                        TEXT NOT NULL,
    merchant                        TEXT NOT NULL,
    mcc                             TEXT NOT NULL,
    network_id                      TEXT,
    current_daily_spend_cents_after INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_card ON ledger(card_id, seq);
CREATE INDEX IF NOT EXISTS ledger_agent ON ledger(agent_id, seq);
CREATE INDEX IF NOT EXISTS ledger_owner ON ledger(owner_id, seq);
CREATE INDEX IF NOT EXISTS ledger_network ON ledger(card_id, network_id) WHERE network_id IS NOT NULL;

CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

-- REPLACE deletes the conflicting row without firing DELETE triggers unless recursive_triggers
-- is on for that connection; this trigger refuses the conflicting insert itself, whatever the
-- connection's settings, and also stops an upsert before it can reach DO UPDATE.
CREATE TRIGGER IF NOT EXISTS ledger_no_replace BEFORE INSERT ON ledger
WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id OR seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

-- The usage counters behind GET /v1/usage (usage_totals, usage_hours, usage_declines,
-- usage_days) and the triggers that keep them as the ledger grows live in counters.py: Store
-- creates them after this script, and fills them from the ledger once for a database made
-- before they existed.

-- Stored responses for Idempotency-Key replays, written in the same transaction as the effect.
CREATE TABLE IF NOT EXISTS idempotency (
    scope        TEXT NOT NULL,                         -- owner id, or '-' before sign-in
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,                         -- SHA-256 of method, path and body
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   REAL NOT NULL,                         -- unix time
    PRIMARY KEY (scope, key)
);

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    owner_id    TEXT PRIMARY KEY REFERENCES owners(id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Webhook outbox: events are written with the change that caused them and delivered later,
-- so a slow or dead receiver never holds up an authorization and a crash loses no event.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL,
    body           BLOB NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_attempt   REAL NOT NULL,                       -- unix time
    lease_until    REAL NOT NULL DEFAULT 0,
    delivered_at   REAL,
    failed_at      REAL,
    last_status    INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON webhook_outbox(next_attempt)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
