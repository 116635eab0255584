"""The financial kernel: money, currencies, accounts, transfers and the ledger engine.

Pure domain: no infrastructure imports. The engine changes state only through the storage
port it is given (implemented in `qenex.store`).
"""

from qenex.kernel.errors import LedgerError
from qenex.kernel.model import AccountStatus, AccountType, TransactionType

__all__ = ["AccountStatus", "AccountType", "LedgerError", "TransactionType"]
