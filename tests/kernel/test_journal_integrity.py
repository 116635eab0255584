"""The journal is append-only (enforced by the database) and hash-chained (tampering is found)."""

from __future__ import annotations

import psycopg
import pytest

from qenex import FinancialKernel
from qenex.store.ledger_audit import check_invariants, verify_journal
from qenex.store.migrate import migrate

from .conftest import run_kernel

ENTRIES = 12


@pytest.fixture()
def ledger_with_entries(fresh_db_url: str) -> str:
    migrate(fresh_db_url)

    async def body(k: FinancialKernel) -> None:
        a = await k.create_account(owner_id="audit", currency="USD", initial_balance="1000.00")
        b = await k.create_account(owner_id="audit", currency="USD")
        for i in range(ENTRIES - 1):
            await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount=f"{i + 1}.00",
                                        currency="USD", metadata={"i": i})

    run_kernel(fresh_db_url, body)
    return fresh_db_url


def _tamper(url: str, *statements: str) -> None:
    """Run statements with the append-only triggers disabled (as a superuser could)."""
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE ledger_journal DISABLE TRIGGER USER")
        for sql in statements:
            conn.execute(sql)
        conn.execute("ALTER TABLE ledger_journal ENABLE TRIGGER USER")


def _kinds_at(url: str) -> dict[int, str]:
    report = verify_journal(url)
    assert not report.ok
    return {p.seq: p.kind for p in report.problems}


@pytest.mark.parametrize("sql", [
    "UPDATE ledger_journal SET amount_minor = 1 WHERE seq = 3",
    "DELETE FROM ledger_journal WHERE seq = 3",
    "TRUNCATE ledger_journal",
])
def test_database_refuses_update_delete_truncate(ledger_with_entries, sql):
    with psycopg.connect(ledger_with_entries) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql)
    assert verify_journal(ledger_with_entries).ok


def test_intact_journal_verifies(ledger_with_entries):
    report = verify_journal(ledger_with_entries)
    assert report.ok and report.entries_checked == ENTRIES and report.head_seq == ENTRIES
    assert check_invariants(ledger_with_entries) == []


def test_modified_entry_is_found(ledger_with_entries):
    _tamper(ledger_with_entries, "UPDATE ledger_journal SET amount_minor = amount_minor + 1 WHERE seq = 5")
    assert _kinds_at(ledger_with_entries) == {5: "modified"}
    assert any("totals differ" in p for p in check_invariants(ledger_with_entries))


def test_modified_metadata_is_found(ledger_with_entries):
    _tamper(ledger_with_entries, """UPDATE ledger_journal SET metadata = '{"i":99}' WHERE seq = 7""")
    assert _kinds_at(ledger_with_entries) == {7: "modified"}


def test_deleted_entry_is_found(ledger_with_entries):
    _tamper(ledger_with_entries, "DELETE FROM ledger_journal WHERE seq = 6")
    assert _kinds_at(ledger_with_entries) == {6: "deleted"}


def test_deleted_tail_is_found(ledger_with_entries):
    _tamper(ledger_with_entries, f"DELETE FROM ledger_journal WHERE seq = {ENTRIES}")
    assert _kinds_at(ledger_with_entries) == {ENTRIES: "deleted"}


def test_inserted_entry_is_found(ledger_with_entries):
    # Make room after seq 4 by renumbering, then insert a forged copy of entry 4 as entry 5.
    _tamper(
        ledger_with_entries,
        "UPDATE ledger_journal SET seq = -(seq + 1) WHERE seq > 4",
        "UPDATE ledger_journal SET seq = -seq WHERE seq < 0",
        "INSERT INTO ledger_journal SELECT 5, 5, leg, kind, tx_type, debit_account, credit_account, 99999, "
        "currency, ref_tx, fx_rate, metadata, created_at, hash FROM ledger_journal WHERE seq = 4",
        "UPDATE ledger_head SET last_seq = last_seq + 1",
    )
    assert _kinds_at(ledger_with_entries) == {5: "inserted"}


def test_appended_entry_beyond_head_is_found(ledger_with_entries):
    _tamper(
        ledger_with_entries,
        f"INSERT INTO ledger_journal SELECT {ENTRIES + 1}, {ENTRIES + 1}, leg, kind, tx_type, debit_account, "
        "credit_account, amount_minor, currency, ref_tx, fx_rate, metadata, created_at, hash "
        f"FROM ledger_journal WHERE seq = {ENTRIES}",
    )
    assert _kinds_at(ledger_with_entries) == {ENTRIES + 1: "inserted"}


def test_reordered_entries_are_found(ledger_with_entries):
    _tamper(
        ledger_with_entries,
        "UPDATE ledger_journal SET seq = -1 WHERE seq = 8",
        "UPDATE ledger_journal SET seq = 8 WHERE seq = 9",
        "UPDATE ledger_journal SET seq = 9 WHERE seq = -1",
    )
    assert _kinds_at(ledger_with_entries) == {8: "reordered", 9: "reordered"}


def test_long_journal_is_verified_in_a_bounded_window(fresh_db_url):
    migrate(fresh_db_url)

    async def body(k: FinancialKernel) -> None:
        a = await k.create_account(owner_id="audit", currency="USD", initial_balance="1000.00")
        b = await k.create_account(owner_id="audit", currency="USD")
        items = [{"type": "TRANSFER", "from_account": a.id, "to_account": b.id, "amount": "0.01", "currency": "USD"}
                 for _ in range(400)]
        assert all(r.ok for r in await k.process_transactions(items))

    run_kernel(fresh_db_url, body)
    report = verify_journal(fresh_db_url)
    assert report.ok and report.entries_checked == 401
    _tamper(
        fresh_db_url,
        "UPDATE ledger_journal SET debit_account = credit_account, credit_account = debit_account WHERE seq = 150",
        "UPDATE ledger_journal SET seq = -1 WHERE seq = 300",
        "UPDATE ledger_journal SET seq = 300 WHERE seq = 301",
        "UPDATE ledger_journal SET seq = 301 WHERE seq = -1",
        "DELETE FROM ledger_journal WHERE seq = 380",
    )
    assert _kinds_at(fresh_db_url) == {150: "modified", 300: "reordered", 301: "reordered", 380: "deleted"}


def test_the_kernel_runs_as_a_role_that_cannot_rewrite_the_journal(ledger_with_entries):
    """Even connected as a superuser, the kernel's connections switch to qenex_runtime: it appends
    to the journal but cannot update, delete, truncate it or switch its triggers off."""

    async def body(k: FinancialKernel) -> None:
        async with k._require_pool().connection() as conn:
            row = await (await conn.execute("SELECT current_user, session_user")).fetchone()
            assert row[0] == "qenex_runtime" and row[1] != "qenex_runtime"
            for sql in ("UPDATE ledger_journal SET amount_minor = 1 WHERE seq = 3",
                        "DELETE FROM ledger_journal WHERE seq = 3",
                        "TRUNCATE ledger_journal",
                        "ALTER TABLE ledger_journal DISABLE TRIGGER USER",
                        "UPDATE ledger_accounts SET currency = 'EUR' WHERE id = 1",
                        "UPDATE ledger_head SET id = 2",
                        "DELETE FROM ledger_idempotency",
                        "DELETE FROM ledger_reversals"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                    await conn.execute(sql)
                assert "permission denied" in str(info.value) or "must be owner" in str(info.value)
        writer = await k._writer_connection()
        assert (await (await writer.execute("SELECT current_user")).fetchone())[0] == "qenex_runtime"
        # ... while everything the kernel does still works under it.
        a = await k.create_account(owner_id="role", currency="USD", initial_balance="5.00")
        await k.freeze_account(a.id, idempotency_key="role-freeze")
        assert (await k.get_account(a.id)).status == "frozen"

    run_kernel(ledger_with_entries, body)
    assert verify_journal(ledger_with_entries).ok and check_invariants(ledger_with_entries) == []
