"""Ledger rejections. Every one carries a stable ``code``; nothing is ever half-applied."""

from __future__ import annotations

from typing import Any, Final

from qenex.errors import QenexError

# Stable codes. Clients branch on these strings; never rename one.
INSUFFICIENT_FUNDS: Final = "insufficient_funds"
ACCOUNT_FROZEN: Final = "account_frozen"
ACCOUNT_CLOSED: Final = "account_closed"
CURRENCY_MISMATCH: Final = "currency_mismatch"
AMOUNT_PRECISION: Final = "amount_precision"
INVALID_AMOUNT: Final = "invalid_amount"
INVALID_CURRENCY: Final = "invalid_currency"
ACCOUNT_NOT_FOUND: Final = "account_not_found"
TRANSACTION_NOT_FOUND: Final = "transaction_not_found"
IDEMPOTENCY_CONFLICT: Final = "idempotency_conflict"
PENDING_EXPIRED: Final = "pending_expired"
PENDING_ALREADY_RESOLVED: Final = "pending_already_resolved"
NOT_PENDING: Final = "not_pending"
ALREADY_REVERSED: Final = "already_reversed"
NOT_REVERSIBLE: Final = "not_reversible"
LIMIT_EXCEEDED: Final = "limit_exceeded"
SAME_ACCOUNT: Final = "same_account"
INVALID_REQUEST: Final = "invalid_request"
LINKED_FAILED: Final = "linked_event_failed"
# The last item of a call is linked: its chain has no end, so none of the chain's items runs.
LINKED_CHAIN_OPEN: Final = "linked_chain_open"
# A DEPOSIT, WITHDRAWAL, FEE or INTEREST whose bank side is a customer account instead of a
# general-ledger (settlement, revenue, expense...) account.
SETTLEMENT_ACCOUNT_REQUIRED: Final = "settlement_account_required"
BATCH_TOO_LARGE: Final = "batch_too_large"
ACCOUNT_NOT_EMPTY: Final = "account_not_empty"

_HTTP_STATUS: dict[str, int] = {
    ACCOUNT_NOT_FOUND: 404,
    TRANSACTION_NOT_FOUND: 404,
    IDEMPOTENCY_CONFLICT: 409,
    PENDING_ALREADY_RESOLVED: 409,
    ALREADY_REVERSED: 409,
    INSUFFICIENT_FUNDS: 422,
    ACCOUNT_FROZEN: 422,
    ACCOUNT_CLOSED: 422,
    PENDING_EXPIRED: 422,
    LIMIT_EXCEEDED: 422,
    NOT_PENDING: 409,
    NOT_REVERSIBLE: 409,
    BATCH_TOO_LARGE: 413,
    ACCOUNT_NOT_EMPTY: 409,
}


class LedgerError(QenexError):
    """A ledger rejection: ``.code`` is one of the constants above, ``.message`` is plain text."""

    code = INVALID_REQUEST

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.http_status = _HTTP_STATUS.get(code, 400)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (self.__class__, (self.code, self.message), {"details": self.details})


class InvariantViolation(RuntimeError):
    """An internal check failed: a bug, never a user's mistake. Raised instead of `assert`,
    which `python -O` strips. The current database transaction must be rolled back."""


def check(condition: bool, message: str) -> None:
    """An invariant check that survives `python -O`."""
    if not condition:
        raise InvariantViolation(message)
