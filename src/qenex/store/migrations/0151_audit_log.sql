-- Tamper-evident audit trail (qenex.security.audit).
-- audit_log is a hash chain: hash = SHA-256(prev_hash || canonical JSON of the record), ids are
-- contiguous from 1 (assigned under an advisory lock, never by a sequence, so a rolled-back
-- insert leaves no gap). audit_checkpoints hold ML-DSA signatures over the chain head.
-- Both tables are append-only: triggers refuse UPDATE, DELETE and TRUNCATE.

CREATE TABLE IF NOT EXISTS audit_log (
    id           bigint PRIMARY KEY CHECK (id > 0),
    occurred_at  timestamptz NOT NULL,
    actor        text NOT NULL CHECK (length(actor) BETWEEN 1 AND 256),
    action       text NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
    resource     text NOT NULL CHECK (length(resource) <= 512),
    outcome      text NOT NULL CHECK (length(outcome) BETWEEN 1 AND 32),
    source_ip    text CHECK (length(source_ip) <= 128),
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash         bytea NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (action, id);
CREATE INDEX IF NOT EXISTS audit_log_time_idx ON audit_log (occurred_at);

-- Checkpoint signing keys. The private key (ML-DSA seed) is stored sealed by the envelope
-- (AES-256-GCM data key wrapped by the master key); the public key is in clear.
CREATE TABLE IF NOT EXISTS audit_signing_keys (
    id                  integer PRIMARY KEY CHECK (id > 0),
    algorithm           text NOT NULL,
    public_key          bytea NOT NULL,
    sealed_private_key  bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id              bigint PRIMARY KEY CHECK (id > 0),
    last_record_id  bigint NOT NULL CHECK (last_record_id > 0),
    last_hash       bytea NOT NULL CHECK (length(last_hash) = 32),
    created_at      timestamptz NOT NULL,
    signing_key_id  integer NOT NULL,
    algorithm       text NOT NULL,
    public_key      bytea NOT NULL,
    signature       bytea NOT NULL
);

CREATE OR REPLACE FUNCTION qenex_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION qenex_audit_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION qenex_audit_append_only();

DROP TRIGGER IF EXISTS audit_checkpoints_no_change ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION qenex_audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION qenex_audit_append_only();

DROP TRIGGER IF EXISTS audit_signing_keys_no_change ON audit_signing_keys;
CREATE TRIGGER audit_signing_keys_no_change BEFORE UPDATE OR DELETE ON audit_signing_keys
    FOR EACH ROW EXECUTE FUNCTION qenex_audit_append_only();
DROP TRIGGER IF EXISTS audit_signing_keys_no_truncate ON audit_signing_keys;
CREATE TRIGGER audit_signing_keys_no_truncate BEFORE TRUNCATE ON audit_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION qenex_audit_append_only();
