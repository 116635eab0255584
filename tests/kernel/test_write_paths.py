"""Both write paths (parameter arrays for small batches, COPY for large ones) store exactly what
was planned: amounts beyond 32 bits, every entry kind, references, rates and metadata."""

from __future__ import annotations

from decimal import Decimal

from qenex import FinancialKernel
from qenex.store.ledger_audit import check_invariants, verify_journal
from qenex.store.ledger_store import COPY_ROWS_MIN

D = Decimal
BIG = "9999999999.99"  # 999,999,999,999 minor units: far beyond int4


async def _pair(k: FinancialKernel) -> tuple[int, int]:
    a = await k.create_account(owner_id="paths", currency="USD", initial_balance="1000000000000.00")
    b = await k.create_account(owner_id="paths", currency="USD")
    return a.id, b.id


def _t(a: int, b: int, amount: str, **extra) -> dict:
    return {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": amount, "currency": "USD", **extra}


async def _mixed_batch(k: FinancialKernel, size: int) -> None:
    a, b = await _pair(k)
    pending = await k.process_transaction("TRANSFER", a, b, BIG, "USD", pending=True)
    posted = await k.process_transaction("TRANSFER", a, b, "1.00", "USD")
    items = [_t(a, b, BIG if i % 2 else "0.01", idempotency_key=f"paths-{a}-{size}-{i}") for i in range(size - 3)]
    items += [{"type": "REVERSAL", "original_transaction_id": posted},
              {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "2.00", "currency": "USD",
               "metadata": {"note": "tab\tline\nback\\slash"}},
              _t(a, b, "0.05")]
    results = await k.process_transactions(items)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:1]
    await k.post_pending(pending, amount="1.00")
    big = await k.get_transaction(results[1].transaction_id)
    assert big.amount == D(BIG) and big.kind == "posted"
    reversal = await k.get_transaction(results[-3].transaction_id)
    assert reversal.related_transaction_id == posted and reversal.type == "REVERSAL"
    assert (await k.get_transaction(results[-2].transaction_id)).metadata == {"note": "tab\tline\nback\\slash"}
    expected = D("1000000000000.00") - sum((D(i["amount"]) for i in items[:-3]), D(0)) - D("2.05") - D("1.00")
    assert await k.get_account_balance(a) == expected


def test_small_batches_use_parameter_arrays(kx, ledger_url):
    kx(lambda k: _mixed_batch(k, 10))
    assert verify_journal(ledger_url).ok and check_invariants(ledger_url) == []


def test_large_batches_use_copy(kx, ledger_url):
    kx(lambda k: _mixed_batch(k, COPY_ROWS_MIN + 20))
    assert verify_journal(ledger_url).ok and check_invariants(ledger_url) == []
