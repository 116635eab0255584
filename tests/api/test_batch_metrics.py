"""The API's aggregated batch metrics add exactly what `observe_results` adds, item by item."""

from __future__ import annotations

from prometheus_client import REGISTRY

from qenex.api.batch_metrics import observe_batch
from qenex.kernel.errors import LedgerError
from qenex.observability.metrics import observe_results
from qenex.sdk.views import TransactionResult


def _snapshot() -> dict[str, float]:
    names = {
        "done": ("qenex_transactions_total", {"type": "payment", "status": "completed"}),
        "dur": ("qenex_transaction_duration_seconds_count", {"type": "payment"}),
        "err": ("qenex_transaction_errors_total", {"type": "payment", "code": "insufficient_funds"}),
        "usd": ("qenex_transaction_amount_sum", {"currency": "USD"}),
        "jpy": ("qenex_transaction_amount_sum", {"currency": "JPY"}),
    }
    return {k: REGISTRY.get_sample_value(n, labels) or 0.0 for k, (n, labels) in names.items()}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def test_aggregated_equals_item_by_item() -> None:
    items = [{"type": "PAYMENT", "amount": a, "currency": c} for a, c in
             [("1.00", "USD"), ("2.50", "USD"), ("1.00", "USD"), ("300", "JPY"), ("9.99", "USD"), ("1.00", "USD")]]
    results = [TransactionResult(True, 1), TransactionResult(True, 2), TransactionResult(True, 3, replayed=True),
               TransactionResult(True, 4), TransactionResult(False, None, LedgerError("insufficient_funds", "no")),
               TransactionResult(True, 6)]
    s0 = _snapshot()
    observe_results(items, results, 0.01)
    s1 = _snapshot()
    observe_batch(items, results, 0.01)
    s2 = _snapshot()
    reference, ours = _delta(s0, s1), _delta(s1, s2)
    assert ours == reference
    assert reference == {"done": 4, "dur": 4, "err": 1, "usd": 450, "jpy": 300}
