-- Idempotency keys remember rejections as well as successes: a record holds either the result
-- of a success (result_id) or the stable code and message of a rejection, never both or neither.
-- A retry with the key answers the same outcome; a different request with it conflicts.
ALTER TABLE ledger_idempotency
    ALTER COLUMN result_id DROP NOT NULL,
    ADD COLUMN error_code text NULL CHECK (length(error_code) BETWEEN 1 AND 64),
    ADD COLUMN error_message text NULL,
    ADD CONSTRAINT ledger_idempotency_one_outcome CHECK (
        (result_id IS NOT NULL AND error_code IS NULL AND error_message IS NULL)
        OR (result_id IS NULL AND error_code IS NOT NULL AND error_message IS NOT NULL));
