"""Prometheus observations for a batch of ledger results, aggregated before they touch the
metrics (one label lookup per (type, status), one amount sum per currency), so an 8,000-item
batch does not pay 8,000 label lookups. Same families and meaning as
`qenex.observability.metrics.observe_results`; idempotent replays are not counted again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from qenex.kernel.errors import LedgerError
from qenex.kernel.money import to_minor
from qenex.observability import metrics as M


def observe_batch(items: Sequence[Mapping[str, Any]], results: Sequence[Any], duration_s: float) -> None:
    done: Counter[str] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    amounts: Counter[tuple[str, str]] = Counter()
    for item, result in zip(items, results, strict=True):
        if result.replayed:
            continue
        tx_type = str(item.get("type", "unknown"))
        if result.error is not None or not result.ok:
            errors[(tx_type, getattr(result.error, "code", "unknown"))] += 1
            continue
        done[tx_type] += 1
        amounts[(str(item.get("amount")), str(item.get("currency") or ""))] += 1
    for tx_type, count in done.items():
        M.TRANSACTIONS.labels(M._label(tx_type), "completed").inc(count)
        M.observe_many(M.TRANSACTION_DURATION.labels(M._label(tx_type)), max(duration_s, 0.0), count)
    for (tx_type, code), count in errors.items():
        M.TRANSACTION_ERRORS.labels(M._label(tx_type), M._label(code)).inc(count)
    per_currency: Counter[str] = Counter()
    for (amount, currency), count in amounts.items():
        try:
            per_currency[currency] += to_minor(amount, currency, allow_zero=True) * count
        except LedgerError:
            continue  # accepted by the ledger in another form; counted without an amount
    for currency, minor in per_currency.items():
        if minor:
            M.TRANSACTION_AMOUNT.labels(M._currency(currency)).inc(minor)
