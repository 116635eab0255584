-- The ledger writer's lock and its batch read in ONE statement.
--
-- A writer must read the state it plans against AFTER it holds the ledger lock: at READ COMMITTED
-- a statement's snapshot is taken when the statement starts, so a lock taken inside the reading
-- statement itself would not make the read see the commit of the writer it waited for. Until
-- now that cost a separate lock statement per batch (about 0.1 ms of client CPU and a round of
-- protocol work). A VOLATILE PL/pgSQL function takes a fresh snapshot for every statement it
-- runs, so here the read (RETURN QUERY) starts after PERFORM pg_advisory_xact_lock returned and
-- sees everything committed before the lock was granted.
--
-- Rows are tagged as qenex.store.ledger_store._state_from_rows reads them:
--   0 head        a=last_seq, ts=clock_timestamp(), bin=last_hash
--   1 idempotency a=result_id, t1=key, t2=error_code, t3=error_message, bin=request_hash
--   2 pending     a..e=tx_id, debit, credit, amount, state; t1=currency, t2=tx_type, ts=expires_at
--   3 orig. leg   a..g=seq, tx_id, leg, kind, debit, credit, amount; h=ref_tx; t1=currency, t2=tx_type
--   4 reversed    a=tx_id
--   5 account     a=id, b=overdraft, c..f=dp, cp, dpend, cpend; t1=currency, t2=type, t3=status
-- Every lookup is an index probe per id or key (LATERAL ... LIMIT), whatever the planner thinks
-- of the arrays' sizes; the accounts named only by reservations and originals too (a semi-join
-- there could be planned as a scan of every account).
CREATE FUNCTION ledger_lock_read(lock_key bigint, p_keys text[], p_pending bigint[], p_lookup bigint[],
                                 p_reverse bigint[], p_accounts bigint[], p_sweep_max integer, p_legs_max integer)
RETURNS TABLE (tag integer, a bigint, b bigint, c bigint, d bigint, e bigint, f bigint, g bigint, h bigint,
               t1 text, t2 text, t3 text, ts timestamptz, bin bytea)
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY
    WITH p AS (
        SELECT x.* FROM unnest(p_pending) AS r(id), LATERAL (
            SELECT lp.tx_id, lp.debit_account, lp.credit_account, lp.amount_minor, lp.state::bigint AS st,
                   lp.currency::text AS cu, lp.tx_type, lp.expires_at
            FROM ledger_pending lp WHERE lp.tx_id = r.id LIMIT 1) AS x
        UNION
        (SELECT lp.tx_id, lp.debit_account, lp.credit_account, lp.amount_minor, lp.state::bigint,
                lp.currency::text, lp.tx_type, lp.expires_at
         FROM ledger_pending lp WHERE lp.state = 0 AND lp.expires_at <= statement_timestamp()
         ORDER BY lp.expires_at LIMIT p_sweep_max)),
    o AS (
        SELECT j.seq, j.tx_id, j.leg::bigint AS leg, j.kind::bigint AS kind, j.debit_account, j.credit_account,
               j.amount_minor, j.ref_tx, j.currency::text AS cu, j.tx_type
        FROM unnest(p_lookup) AS r(id), LATERAL (
            SELECT * FROM ledger_journal lj
            WHERE lj.seq >= r.id AND lj.seq < r.id + p_legs_max AND lj.tx_id = r.id LIMIT p_legs_max) AS j),
    ids AS (
        SELECT DISTINCT x.id FROM (
            SELECT unnest(p_accounts) AS id
            UNION ALL SELECT p.debit_account FROM p UNION ALL SELECT p.credit_account FROM p
            UNION ALL SELECT o.debit_account FROM o UNION ALL SELECT o.credit_account FROM o) AS x)
    SELECT 0, hd.last_seq, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::bigint, NULL::text, NULL::text, NULL::text, clock_timestamp(), hd.last_hash
    FROM ledger_head hd WHERE hd.id = 1
    UNION ALL
    SELECT 2, p.tx_id, p.debit_account, p.credit_account, p.amount_minor, p.st, NULL, NULL, NULL, p.cu,
           p.tx_type, NULL, p.expires_at, NULL FROM p
    UNION ALL
    SELECT 5, la.id, la.overdraft_limit_minor, la.debits_posted, la.credits_posted, la.debits_pending,
           la.credits_pending, NULL, NULL, la.currency::text, la.account_type, la.status, NULL, NULL
    FROM ids, LATERAL (SELECT * FROM ledger_accounts acc WHERE acc.id = ids.id LIMIT 1) AS la
    UNION ALL
    SELECT 1, i.result_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, i.key, i.error_code, i.error_message,
           NULL, i.request_hash
    FROM unnest(p_keys) AS q(key), LATERAL (
        SELECT li.key, li.result_id, li.request_hash, li.error_code, li.error_message
        FROM ledger_idempotency li WHERE li.key = q.key LIMIT 1) AS i
    UNION ALL
    SELECT 3, o.seq, o.tx_id, o.leg, o.kind, o.debit_account, o.credit_account, o.amount_minor, o.ref_tx, o.cu,
           o.tx_type, NULL, NULL, NULL FROM o
    UNION ALL
    SELECT 4, lr.tx_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM ledger_reversals lr WHERE lr.tx_id = ANY(p_reverse);
END
$fn$;
