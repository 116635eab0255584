"""Idempotency keys of a large batch are looked up before the ledger lock (prefetch). A record
found stays valid (records are never changed); one stored after the prefetch must still be seen:
the batch's own insert of the key hits the primary key and the batch re-runs under the lock."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from qenex import FinancialKernel
from qenex.kernel.model import Leg, NewTransaction
from qenex.sdk.kernel import PREFETCH_ITEMS_MIN, _fast_digest
from qenex.store import ledger_store as S
from qenex.store.ledger_audit import check_invariants, verify_journal


async def _pair(k: FinancialKernel) -> tuple[int, int]:
    a = await k.create_account(owner_id="prefetch", currency="USD", initial_balance="1000.00")
    b = await k.create_account(owner_id="prefetch", currency="USD")
    return a.id, b.id


def _items(a: int, b: int, prefix: str, n: int) -> list[dict]:
    return [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "0.01", "currency": "USD",
             "idempotency_key": f"{prefix}-{i}"} for i in range(n)]


def test_large_batch_replays_and_conflicts_through_the_prefetch(kx, ledger_url):
    async def body(k: FinancialKernel) -> None:
        a, b = await _pair(k)
        n = PREFETCH_ITEMS_MIN + 10
        first = await k.process_transactions(_items(a, b, f"pf{a}", n))
        assert all(r.ok and not r.replayed for r in first)
        again = _items(a, b, f"pf{a}", n)
        again[3]["amount"] = "0.02"  # same key, different request
        second = await k.process_transactions(again)
        assert second[3].error is not None and second[3].error.code == "idempotency_conflict"
        assert all(r.replayed and r.transaction_id == f.transaction_id
                   for i, (r, f) in enumerate(zip(second, first, strict=True)) if i != 3)
        assert await k.get_account_balance(b) == Decimal(n) / 100

    kx(body)
    assert verify_journal(ledger_url).ok and check_invariants(ledger_url) == []


def _commands(a: int, b: int, prefix: str, n: int) -> list[NewTransaction]:
    return [NewTransaction("TRANSFER", (Leg(a, b, 1, "USD"),), None, False, None, None, f"{prefix}-{i}",
                           _fast_digest("TRANSFER", a, b, 1, "USD", False), False) for i in range(n)]


def test_a_key_stored_after_the_prefetch_is_still_honoured(kx, ledger_url):
    async def body(k: FinancialKernel) -> None:
        a, b = await _pair(k)
        n = PREFETCH_ITEMS_MIN + 5
        async with await psycopg.AsyncConnection.connect(ledger_url, autocommit=True) as conn:
            stale = await S.prefetch_idempotency(conn, [f"st{a}-{i}" for i in range(n)])  # nothing stored yet
            assert stale[1] == {}
            stored = await S.run_batch(conn, _commands(a, b, f"st{a}", 2))  # another writer stores 2 keys
            results = await S.run_batch(conn, _commands(a, b, f"st{a}", n), stale)
        assert [r.replayed for r in results[:2]] == [True, True]
        assert [r.result_id for r in results[:2]] == [r.result_id for r in stored]
        assert all(r.error is None and not r.replayed for r in results[2:])
        assert await k.get_account_balance(b) == Decimal(n) / 100

    kx(body)
    assert verify_journal(ledger_url).ok and check_invariants(ledger_url) == []


def test_prefetched_records_are_used_without_reading_them_again(kx, ledger_url):
    async def body(k: FinancialKernel) -> None:
        a, b = await _pair(k)
        async with await psycopg.AsyncConnection.connect(ledger_url, autocommit=True) as conn:
            stored = await S.run_batch(conn, _commands(a, b, f"kn{a}", 1))
            known = await S.prefetch_idempotency(conn, [f"kn{a}-0"])
            assert known[1][f"kn{a}-0"][1] == stored[0].result_id
            results = await S.run_batch(conn, _commands(a, b, f"kn{a}", 1), known)
        assert results[0].replayed and results[0].result_id == stored[0].result_id

    kx(body)
