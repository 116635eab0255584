-- Balances and the chain head are updated on every batch. Leaving free space in their pages
-- lets PostgreSQL do heap-only (HOT) updates, which skip index maintenance and write less WAL.
ALTER TABLE ledger_accounts SET (fillfactor = 70);
ALTER TABLE ledger_head SET (fillfactor = 20);
ALTER TABLE ledger_pending SET (fillfactor = 80);
