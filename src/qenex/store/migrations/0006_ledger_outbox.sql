-- Transactional outbox: a note the caller attaches to a ledger mutation (for the API: who did
-- what, from where) is inserted in the SAME database transaction as the mutation, with the
-- mutation's outcome. A relay later moves each note into the hash-chained audit log and deletes
-- it, in one transaction of its own. So a committed mutation is never left without its audit
-- record (a crash between the two only delays the record), and a rolled-back one leaves none.
CREATE TABLE ledger_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload    text        NOT NULL CHECK (length(payload) BETWEEN 2 AND 1000000)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qenex_runtime') THEN
        GRANT INSERT ON ledger_outbox TO qenex_runtime;
    END IF;
END
$$;
