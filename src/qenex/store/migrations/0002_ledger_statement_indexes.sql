-- Statement and event reads: an account's entries in sequence order, and the per-transaction
-- lookup for events. Kept to two indexes because every index costs on each journal insert.
CREATE INDEX ledger_journal_debit_ix ON ledger_journal (debit_account, seq);
CREATE INDEX ledger_journal_credit_ix ON ledger_journal (credit_account, seq);
-- Closed accounts may not carry a balance; the engine enforces it, the database double-checks.
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_closed_empty CHECK (
    status <> 'closed' OR (debits_posted = credits_posted AND debits_pending = 0 AND credits_pending = 0));
