"""Python SDKs: `FinancialKernel` (in-process, on PostgreSQL) and the HTTP client."""

from __future__ import annotations

from typing import Any

__all__ = ["FinancialKernel"]


def __getattr__(name: str) -> Any:
    if name == "FinancialKernel":
        from qenex.sdk.kernel import FinancialKernel

        return FinancialKernel
    raise AttributeError(f"module 'qenex.sdk' has no attribute {name!r}")
