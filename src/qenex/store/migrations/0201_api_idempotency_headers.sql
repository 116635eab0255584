-- API idempotency: keep the original response's headers (Location, Retry-After...) for the replay.
ALTER TABLE api_idempotency ADD COLUMN headers jsonb NOT NULL DEFAULT '{}'::jsonb;
