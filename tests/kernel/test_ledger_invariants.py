"""The books' invariants tie every mutable side table back to the append-only journal: each
balance column, each reservation's state, each reversal marker and the chain head. Tampering
with any of them (as a superuser could, bypassing the kernel) is reported."""

from __future__ import annotations

import psycopg
import pytest

from qenex import FinancialKernel
from qenex.store.ledger_audit import check_invariants, ledger_invariants
from qenex.store.migrate import migrate

from .conftest import run_kernel


@pytest.fixture()
def books(fresh_db_url: str) -> tuple[str, dict[str, int]]:
    """A ledger with postings, a posted, a voided and an open reservation, and a reversal."""
    migrate(fresh_db_url)

    async def body(k: FinancialKernel) -> dict[str, int]:
        a = (await k.create_account(owner_id="inv", currency="USD", initial_balance="100.00")).id
        b = (await k.create_account(owner_id="inv", currency="USD")).id
        t = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="10.00", currency="USD")
        rev = await k.reverse_transaction(t)
        posted = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="5.00",
                                             currency="USD", pending=True)
        post = await k.post_pending(posted, amount="3.00")
        voided = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="4.00",
                                             currency="USD", pending=True)
        void = await k.void_pending(voided)
        held = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="7.00",
                                           currency="USD", pending=True)
        return {"a": a, "b": b, "t": t, "rev": rev, "posted": posted, "post": post, "voided": voided,
                "void": void, "held": held}

    ids = run_kernel(fresh_db_url, body)
    assert check_invariants(fresh_db_url) == []
    return fresh_db_url, ids


def _tamper(url: str, *statements: str) -> None:
    """As a superuser could: with the journal's append-only triggers disabled."""
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE ledger_journal DISABLE TRIGGER USER")
        for sql in statements:
            conn.execute(sql)
        conn.execute("ALTER TABLE ledger_journal ENABLE TRIGGER USER")


def _found(url: str, *fragments: str) -> list[str]:
    problems = ledger_invariants(url)
    assert any(all(f in p for f in fragments) for p in problems), problems
    return problems


@pytest.mark.parametrize(("column", "other"), [("debits_posted", "credits_posted"), ("credits_posted", "debits_posted"),
                                               ("debits_pending", "credits_pending"),
                                               ("credits_pending", "debits_pending")])
def test_each_balance_column_is_checked_against_the_journal(books, column, other):
    url, ids = books
    # A forged balanced pair (a debit on one account, the credit on the other): the books still
    # balance and stay within limits, only the comparison with the journal finds it.
    _tamper(url, f"UPDATE ledger_accounts SET {column} = {column} + 1 WHERE id = {ids['a']}",
            f"UPDATE ledger_accounts SET {other} = {other} + 1 WHERE id = {ids['b']}")
    problems = _found(url, f"account {ids['a']} totals differ")
    assert any(f"account {ids['b']} totals differ" in p for p in problems)
    assert len(problems) == 2, problems


def test_pending_balance_follows_the_journal_not_the_reservation_table(books):
    """A forged VOID entry releases the open hold in the journal: balances and ledger_pending disagree."""
    url, ids = books
    _tamper(url, "INSERT INTO ledger_journal SELECT (SELECT max(seq) + 1 FROM ledger_journal), "
                 "(SELECT max(seq) + 1 FROM ledger_journal), 0, 3, tx_type, debit_account, credit_account, "
                 "amount_minor, currency, tx_id, NULL, NULL, created_at, hash FROM ledger_journal "
                 f"WHERE seq = {ids['held']}")
    problems = _found(url, f"account {ids['a']} totals differ")
    assert any(f"reservation {ids['held']} has state 0" in p for p in problems), problems
    assert any("chain head says" in p for p in problems), problems


def test_reversal_markers_must_match_reversal_entries(books):
    url, ids = books
    _tamper(url, f"DELETE FROM ledger_reversals WHERE tx_id = {ids['t']}")
    _found(url, f"reversal of transaction {ids['t']} differs", "ledger_reversals missing")

    _tamper(url, f"INSERT INTO ledger_reversals VALUES ({ids['t']}, {ids['rev']} + 1000)")
    _found(url, f"reversal of transaction {ids['t']} differs")
    _tamper(url, f"UPDATE ledger_reversals SET reversal_tx_id = {ids['rev']} WHERE tx_id = {ids['t']}")
    assert ledger_invariants(url) == []
    # A marker for a transaction nobody reversed would make it unreversible.
    _tamper(url, f"INSERT INTO ledger_reversals VALUES ({ids['post']}, {ids['post']})")
    _found(url, f"reversal of transaction {ids['post']} differs", "journal REVERSAL entry missing")


@pytest.mark.parametrize(("change", "target", "fragment"), [
    ("state = 0, resolved_tx = NULL", "posted", "has state 0"),  # reopened: its funds could be posted again
    ("state = 2", "posted", "has state 2"),
    ("state = 1, resolved_tx = {void}", "voided", "has state 1"),
    ("state = 2, resolved_tx = {held}", "held", "has state 2"),
    ("resolved_tx = {void}", "posted", "resolved by"),
    ("state = 3", "voided", "has state 3"),
])
def test_reservation_states_must_match_their_resolving_entries(books, change, target, fragment):
    url, ids = books
    _tamper(url, f"UPDATE ledger_pending SET {change.format(**ids)} WHERE tx_id = {ids[target]}")
    _found(url, f"reservation {ids[target]}", fragment)


def test_reservation_rows_must_match_their_pending_entries(books):
    url, ids = books
    _tamper(url, f"UPDATE ledger_pending SET amount_minor = amount_minor + 1 WHERE tx_id = {ids['held']}")
    _found(url, f"reservation {ids['held']} does not match its journal entry")
    _tamper(url, f"UPDATE ledger_pending SET amount_minor = amount_minor - 1 WHERE tx_id = {ids['held']}")
    assert ledger_invariants(url) == []
    _tamper(url, f"DELETE FROM ledger_pending WHERE tx_id = {ids['voided']}")
    problems = _found(url, f"reservation {ids['voided']} does not match its journal entry", "ledger_pending missing")
    assert any(f"reservation {ids['voided']} has state none" in p for p in problems), problems


def test_chain_head_must_be_the_last_entry(books):
    url, ids = books
    _tamper(url, "UPDATE ledger_head SET last_seq = last_seq - 1")
    _found(url, "chain head says")
    _tamper(url, "UPDATE ledger_head SET last_seq = last_seq + 1, last_hash = sha256(last_hash)")
    _found(url, "chain head says", "hash matches: False")


def test_an_intact_ledger_has_no_problem_after_all_kinds_of_entries(books):
    url, _ = books
    assert ledger_invariants(url) == [] and check_invariants(url) == []
