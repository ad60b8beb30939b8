-- Who may use the HTTP transports (DESIGN §10), shared by every replica: the operator's API
-- keys, a rate-limit bucket per key, and which key opened each HTTP session.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    sha256       TEXT NOT NULL UNIQUE,  -- every request's lookup
    scope        TEXT NOT NULL CHECK (scope IN ('cards:read', 'cards:write')),
    rate         INTEGER NOT NULL CHECK (rate > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- One token bucket per key, taken from in a single statement (postgres/rates.py). granted is
-- the outcome of the latest take, for that statement's RETURNING.
CREATE TABLE rate_buckets (
    key_id     TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    granted    BOOLEAN NOT NULL
);

CREATE TABLE session_bindings (
    session_id TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Pruning old bindings reads only the old end of this index.
CREATE INDEX session_bindings_created_at ON session_bindings (created_at);
