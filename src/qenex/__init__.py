"""QENEX: an open-source financial operating system.

The SDK surface (``FinancialKernel``, ``TransactionType``, ``LedgerError``) is imported lazily,
so that ``import qenex.payments`` does not pull in the database driver.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["FinancialKernel", "LedgerError", "TransactionType", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "FinancialKernel":
        from qenex.sdk.kernel import FinancialKernel

        return FinancialKernel
    if name in ("TransactionType", "LedgerError"):
        from qenex import kernel

        return getattr(kernel, name)
    raise AttributeError(f"module 'qenex' has no attribute {name!r}")
