-- The operator's approvals (approvals.py) and the audit trail (audit.py), shared by replicas.

CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    seq         BIGINT GENERATED ALWAYS AS IDENTITY,  -- ties on created_at keep request order
    tool        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    arguments   JSONB NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    decided_at  TIMESTAMPTZ,
    used_at     TIMESTAMPTZ
);
-- pending(): status, then the expiry range, however many approvals were ever made.
CREATE INDEX approvals_pending ON approvals (status, expires_at);
-- request(): the pending approval of a digest.
CREATE INDEX approvals_pending_digest ON approvals (digest) WHERE status = 'pending';
-- recent(): newest first.
CREATE INDEX approvals_created_at ON approvals (created_at, seq);

-- One row per tool call, from every replica; rows are only ever added.
CREATE TABLE audit_records (
    id           BIGSERIAL PRIMARY KEY,
    time         TIMESTAMPTZ NOT NULL,
    tool         TEXT NOT NULL,
    caller       TEXT NOT NULL,
    arguments    JSONB NOT NULL,
    outcome      TEXT NOT NULL,
    card_id      TEXT,
    approval_id  TEXT,
    duration_ms  DOUBLE PRECISION NOT NULL
);

CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
