"""Kernel test fixtures: one migrated database per pytest process, a kernel per test.

Tests create their own accounts, so they share the session database without interfering;
tests that inspect or tamper with the whole journal use `fresh_db_url` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from qenex.sdk.kernel import FinancialKernel
from qenex.store.migrate import migrate

T = TypeVar("T")


@pytest.fixture(scope="session")
def ledger_url(pg_session_url: str) -> str:
    migrate(pg_session_url)
    return pg_session_url


def run_kernel(url: str, body: Callable[[FinancialKernel], Awaitable[T]]) -> T:
    async def main() -> T:
        kernel = FinancialKernel({"database": {"url": url}})
        await kernel.initialize()
        try:
            return await body(kernel)
        finally:
            await kernel.shutdown()

    return asyncio.run(main())


@pytest.fixture()
def kx(ledger_url: str) -> Callable[[Callable[[FinancialKernel], Awaitable[T]]], T]:
    """``kx(body)`` runs ``await body(kernel)`` against the session ledger database."""
    return lambda body: run_kernel(ledger_url, body)
