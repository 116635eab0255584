-- Identity and access (qenex.security): API keys, OAuth2 clients, JWT signing keys,
-- human operators and their server-side sessions.
-- Secrets are never stored in clear: API keys and session tokens as SHA-256 digests
-- (they are high-entropy random values), client secrets and passwords as argon2id hashes,
-- TOTP seeds and JWT private keys sealed with AES-256-GCM.

CREATE TABLE IF NOT EXISTS security_api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'teller', 'auditor', 'customer')),
    scopes        text[] NOT NULL,
    owner_id      text CHECK (owner_id IS NULL OR char_length(owner_id) BETWEEN 1 AND 100),
    secret_sha256 bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    rotated_from  text REFERENCES security_api_keys (id),
    created_by    text NOT NULL DEFAULT 'system',
    CHECK (role <> 'customer' OR owner_id IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS security_oauth_clients (
    client_id     text PRIMARY KEY CHECK (client_id ~ '^qnc_[0-9a-f]{16}$'),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'teller', 'auditor', 'customer')),
    scopes        text[] NOT NULL,
    owner_id      text CHECK (owner_id IS NULL OR char_length(owner_id) BETWEEN 1 AND 100),
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK (role <> 'customer' OR owner_id IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS security_jwt_keys (
    kid                text PRIMARY KEY,
    algorithm          text NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key         bytea NOT NULL,
    private_key_sealed bytea NOT NULL,
    created_at         timestamptz NOT NULL,
    retired_at         timestamptz,      -- stops signing
    verify_until       timestamptz,      -- stops verifying (NULL while active)
    CHECK ((retired_at IS NULL) = (verify_until IS NULL))
);
-- At most one key signs at a time.
CREATE UNIQUE INDEX IF NOT EXISTS security_jwt_keys_one_active ON security_jwt_keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE IF NOT EXISTS security_operators (
    id              text PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'teller', 'auditor')),
    password_hash   text NOT NULL,
    totp_sealed     bytea NOT NULL,
    last_totp_step  bigint NOT NULL DEFAULT 0,   -- a TOTP code is accepted at most once
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_at       timestamptz,
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS security_sessions (
    token_sha256  bytea PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    operator_id   text NOT NULL REFERENCES security_operators (id),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    revoked_at    timestamptz,
    source_ip     text
);
CREATE INDEX IF NOT EXISTS security_sessions_operator ON security_sessions (operator_id);
