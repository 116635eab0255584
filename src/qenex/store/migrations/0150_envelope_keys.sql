-- Encryption at rest (qenex.security.envelope): the key hierarchy's stored half.
-- Master versions: one row per master key version. For a root held in memory (environment or
-- key file) `material` is that version's random KEK wrapped by the root; for an HSM it is NULL
-- (the KEK lives inside the token under a versioned label).
CREATE TABLE IF NOT EXISTS security_master_keys (
    version     integer PRIMARY KEY CHECK (version > 0),
    provider    text NOT NULL CHECK (length(provider) BETWEEN 1 AND 32),
    material    bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- Data keys: per purpose, a new generation every security.key_rotation_days. The key itself
-- is only ever stored wrapped by a master version; rotating the master re-wraps these rows and
-- leaves every ciphertext untouched (a ciphertext names its data key id).
CREATE TABLE IF NOT EXISTS security_data_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purpose         text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 64),
    generation      integer NOT NULL CHECK (generation > 0),
    master_version  integer NOT NULL REFERENCES security_master_keys (version),
    wrapped_key     bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    rewrapped_at    timestamptz,
    UNIQUE (purpose, generation)
);

CREATE INDEX IF NOT EXISTS security_data_keys_master_idx ON security_data_keys (master_version);
