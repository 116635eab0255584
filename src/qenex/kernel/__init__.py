"""The financial kernel: money, currencies, accounts, transfers and the ledger engine.

Pure domain: no infrastructure imports. The engine never calls storage: `qenex.store` reads a
batch's state (`engine.BatchState`), the engine returns what to write (`engine.BatchPlan`), and
the store writes it in the same database transaction (docs/ARCHITECTURE.md).
"""

from qenex.kernel.errors import LedgerError
from qenex.kernel.model import AccountStatus, AccountType, TransactionType

__all__ = ["AccountStatus", "AccountType", "LedgerError", "TransactionType"]
