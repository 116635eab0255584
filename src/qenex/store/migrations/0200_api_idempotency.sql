-- API idempotency: the first response to each (principal, Idempotency-Key), replayed on retry.
CREATE TABLE api_idempotency (
    principal      text        NOT NULL,
    key            text        NOT NULL,
    request_sha256 bytea       NOT NULL,
    status_code    integer     NOT NULL,
    media_type     text        NOT NULL,
    body           bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX api_idempotency_created_at ON api_idempotency (created_at);
