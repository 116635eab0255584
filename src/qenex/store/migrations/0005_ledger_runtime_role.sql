-- qenex_runtime: the restricted role the kernel's connections switch to (SET ROLE, see
-- qenex.store.ledger_store.use_runtime_role). It may read the ledger, append to the journal,
-- update balances, reservation states and the chain head; it may not update, delete or
-- truncate journal entries, nor disable the append-only triggers (only the tables' owner, the
-- migrating user, can). A bug or an injection in the running kernel therefore cannot rewrite
-- history, even when the configured database user is a superuser.
--
-- Roles are cluster-wide: an existing qenex_runtime is reused. The role is created only when the
-- migrating user may create roles; without it the kernel keeps the session user's privileges.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qenex_runtime')
       AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        BEGIN
            CREATE ROLE qenex_runtime NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migrator created it at the same moment
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'qenex_runtime') THEN
        RETURN;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        BEGIN  -- a non-superuser owner needs membership to SET ROLE to it
            EXECUTE format('GRANT qenex_runtime TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
            NULL;
        END;
    END IF;
    GRANT SELECT, INSERT ON ledger_journal, ledger_idempotency, ledger_reversals TO qenex_runtime;
    GRANT SELECT, INSERT ON ledger_accounts, ledger_pending TO qenex_runtime;
    GRANT UPDATE (status, overdraft_limit_minor, debits_posted, credits_posted, debits_pending, credits_pending)
        ON ledger_accounts TO qenex_runtime;
    GRANT UPDATE (state, resolved_tx) ON ledger_pending TO qenex_runtime;
    GRANT SELECT, UPDATE (last_seq, last_hash) ON ledger_head TO qenex_runtime;
    GRANT USAGE ON SEQUENCE ledger_accounts_id_seq TO qenex_runtime;
END
$$;
