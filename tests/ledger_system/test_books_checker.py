"""The independent checkers in books.py really detect broken books (they are not vacuous)."""

from __future__ import annotations

import psycopg

from .books import check_acks, check_books
from .conftest import create_hot_accounts


def test_checkers_pass_on_good_books_and_catch_drift(ledger_url):
    accounts = create_hot_accounts(ledger_url)
    assert check_books(ledger_url) == []
    acct = int(accounts[0][0])
    with psycopg.connect(ledger_url) as conn:
        deposit = conn.execute("SELECT tx_id FROM ledger_journal WHERE credit_account = %s", (acct,)).fetchone()[0]
        # Drift an account's stored total away from its journal entries.
        conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = %s", (acct,))
    problems = check_books(ledger_url)
    assert any(f"account {acct}: totals" in p for p in problems)
    assert any("debits" in p and "credits" in p for p in problems)  # the books no longer balance

    assert check_acks(ledger_url, [{"kind": "transfer", "tx": str(deposit)}]) == []
    missing = check_acks(ledger_url, [{"kind": "transfer", "tx": "987654", "key": "never-stored"}])
    assert any("appears 0 times" in p for p in missing)
    assert any("never-stored" in p for p in missing)
