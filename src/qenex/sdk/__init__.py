"""Python SDKs: `FinancialKernel` (in-process, on PostgreSQL) and the HTTP client."""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncClient", "Client", "FinancialKernel"]


def __getattr__(name: str) -> Any:
    if name == "FinancialKernel":
        from qenex.sdk.kernel import FinancialKernel

        return FinancialKernel
    if name in ("Client", "AsyncClient"):
        from qenex.sdk import client

        return getattr(client, name)
    raise AttributeError(f"module 'qenex.sdk' has no attribute {name!r}")
