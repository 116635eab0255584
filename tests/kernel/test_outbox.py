"""The ledger's transactional outbox and its relay into the audit trail.

A mutation made with an AuditNote leaves exactly one outbox row, written in the mutation's own
database transaction with its outcome; the relay turns each row into one hash-chained audit
record and deletes it, exactly once, even with several relays at work.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from qenex.kernel.errors import LedgerError
from qenex.sdk.kernel import AuditNote, FinancialKernel
from qenex.security import outbox
from qenex.security.audit import query_events, verify_audit_log

from .conftest import run_kernel


def _note(action: str, resource: str = "r") -> AuditNote:
    return AuditNote(outbox.note_record("key:tester", action, resource, "10.0.0.7", {"via": "test"}))


def _rows(url: str) -> list[tuple[int, dict[str, Any]]]:
    with psycopg.connect(url) as conn:
        return [(i, json.loads(p)) for i, p in conn.execute("SELECT id, payload FROM ledger_outbox ORDER BY id")]


def _clear_outbox(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger_outbox")


async def _two_accounts(k: FinancialKernel, balance: str = "100.00") -> tuple[int, int]:
    a = await k.create_account("ob_a", "CHECKING", "USD", Decimal(balance))
    b = await k.create_account("ob_b", "CHECKING", "USD")
    return a.id, b.id


def test_single_transfer_and_rejection_leave_one_row_each(fresh_db_url: str) -> None:
    async def body(k: FinancialKernel) -> tuple[int, AuditNote, AuditNote]:
        a, b = await _two_accounts(k)
        ok_note, bad_note = _note("transaction.create"), _note("transaction.create")
        tx = await k.process_transaction("TRANSFER", a, b, Decimal("5.00"), "USD", audit=ok_note)
        with pytest.raises(LedgerError) as err:
            await k.process_transaction("TRANSFER", a, b, Decimal("500.00"), "USD", audit=bad_note)
        assert err.value.code == "insufficient_funds"
        return tx, ok_note, bad_note

    tx, ok_note, bad_note = _run(fresh_db_url, body)
    assert ok_note.written and bad_note.written
    rows = _rows(fresh_db_url)
    assert len(rows) == 2
    (_, first), (_, second) = rows
    assert first["note"]["actor"] == "key:tester" and first["note"]["source_ip"] == "10.0.0.7"
    assert first["outcome"] == {"items": 1, "succeeded": 1, "failed": 0, "replayed": 0, "ids": [[tx, tx]],
                                "ids_listed_all": True, "failures": []}
    assert second["outcome"]["failed"] == 1 and second["outcome"]["failures"] == [[0, "insufficient_funds"]]


def test_grouped_callers_each_get_their_own_slice(fresh_db_url: str) -> None:
    """Concurrent calls share one database transaction (group commit); each note carries only its
    own call's outcome."""

    async def body(k: FinancialKernel) -> list[AuditNote]:
        a, b = await _two_accounts(k, "1000.00")
        notes = [_note("transaction.batch", f"caller:{i}") for i in range(6)]

        async def call(i: int) -> None:
            items = [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
                     for _ in range(i + 1)]
            if i % 2:
                items.append({"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "9999.00",
                              "currency": "USD"})
            await k.process_transactions(items, audit=notes[i])

        await asyncio.gather(*(call(i) for i in range(6)))
        return notes

    notes = _run(fresh_db_url, body)
    assert all(n.written for n in notes)
    by_caller = {p["note"]["resource"]: p["outcome"] for _, p in _rows(fresh_db_url)}
    assert len(by_caller) == 6
    for i in range(6):
        outcome = by_caller[f"caller:{i}"]
        assert outcome["succeeded"] == i + 1
        assert outcome["failed"] == i % 2
        assert sum(last - first + 1 for first, last in outcome["ids"]) == i + 1
        if i % 2:
            assert outcome["failures"] == [[i + 1, "insufficient_funds"]]


def test_account_creation_and_admin_calls_write_notes(fresh_db_url: str) -> None:
    async def body(k: FinancialKernel) -> tuple[int, list[AuditNote]]:
        create, freeze = _note("account.create"), _note("account.freeze")
        close_keyed = _note("account.close")
        acct = await k.create_account("ob_c", "CHECKING", "USD", Decimal("3.00"), audit=create)
        await k.freeze_account(acct.id, audit=freeze)
        # A keyed rejection is committed with its idempotency record, so its note is written too.
        with pytest.raises(LedgerError):
            await k.close_account(acct.id, idempotency_key="close-1", audit=close_keyed)
        # An unkeyed rejection commits nothing: no note (the caller records the failure itself).
        unkeyed = _note("account.close")
        with pytest.raises(LedgerError):
            await k.close_account(acct.id, audit=unkeyed)
        assert not unkeyed.written
        return acct.id, [create, freeze, close_keyed]

    account_id, notes = _run(fresh_db_url, body)
    assert all(n.written for n in notes)
    payloads = [p for _, p in _rows(fresh_db_url)]
    assert [p["note"]["action"] for p in payloads] == ["account.create", "account.freeze", "account.close"]
    assert payloads[0]["outcome"]["ids"] == [[account_id, account_id]]
    assert payloads[2]["outcome"]["failures"][0][1] == "account_not_empty"


def test_relay_moves_each_note_once_into_the_audit_log(fresh_db_url: str) -> None:
    async def body(k: FinancialKernel) -> None:
        a, b = await _two_accounts(k, "1000.00")
        for i in range(30):
            await k.process_transaction("TRANSFER", a, b, Decimal("1.00"), "USD", audit=_note("transaction.create",
                                                                                              f"n:{i}"))
        await k.process_transactions(
            [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"},
             {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "99999.00", "currency": "USD"}],
            audit=_note("transaction.batch", "mixed"))

    _run(fresh_db_url, body)
    assert len(_rows(fresh_db_url)) == 31

    async def relay_concurrently() -> list[int]:
        conns = [await psycopg.AsyncConnection.connect(fresh_db_url) for _ in range(3)]

        async def rounds(conn: psycopg.AsyncConnection[Any]) -> int:  # one transaction at a time per connection
            return sum([await outbox.relay(conn, 7) for _ in range(4)])

        try:
            return list(await asyncio.gather(*(rounds(c) for c in conns)))
        finally:
            for c in conns:
                await c.close()

    moved = asyncio.run(relay_concurrently())
    moved_total = sum(moved) + outbox.drain_sync(fresh_db_url)
    assert moved_total == 31
    assert _rows(fresh_db_url) == []
    with psycopg.connect(fresh_db_url) as conn:
        events = query_events(conn, limit=100)
    resources = [e.resource for e in events]
    assert sorted(resources) == sorted([f"n:{i}" for i in range(30)] + ["mixed"])  # no duplicate, none lost
    mixed = next(e for e in events if e.resource == "mixed")
    assert mixed.outcome == "partial"
    assert mixed.details["failed"] == 1 and mixed.details["failures"] == [[1, "insufficient_funds"]]
    assert mixed.source_ip == "10.0.0.7" and mixed.actor == "key:tester"
    assert verify_audit_log(fresh_db_url, provider=None).records == 31


def test_an_unreadable_payload_becomes_a_visible_record_not_a_blockage(fresh_db_url: str) -> None:
    from qenex.store.migrate import migrate

    migrate(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger_outbox (payload) VALUES ('{\"not\": \"a note\"}')")
        good = json.dumps({"note": outbox.note_record("key:x", "account.create", "owner:x", None),
                           "outcome": {"items": 1, "succeeded": 1, "failed": 0, "replayed": 0, "ids": [[9, 9]],
                                       "failures": []}})
        conn.execute("INSERT INTO ledger_outbox (payload) VALUES (%s)", (good,))
        # Refused by the audit log itself (action outside its alphabet), after parsing fine.
        bad_action = json.loads(good)
        bad_action["note"]["action"] = "no spaces allowed"
        conn.execute("INSERT INTO ledger_outbox (payload) VALUES (%s)", (json.dumps(bad_action),))
    assert outbox.drain_sync(fresh_db_url) == 3
    with psycopg.connect(fresh_db_url) as conn:
        events = query_events(conn, limit=10)  # in outbox order
    assert [(e.action, e.outcome) for e in events] == [
        ("audit.outbox_unreadable", "failure"), ("account.create", "success"), ("audit.outbox_unreadable", "failure")]
    assert events[1].details["id"] == 9
    assert events[0].resource.startswith("outbox:") and events[2].resource.startswith("outbox:")


def _run(url: str, body: Any) -> Any:
    return run_kernel(url, body)
