"""Fixtures of the ledger system tests: a migrated fresh database and hot accounts on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "load_worker.py"
CLI_TIMEOUT_S = 120

# (owner, type, currency, opening balance, overdraft limit): a few hot accounts, small balances
# so that overdraft attempts are frequent; one USD account may go 500.00 below zero.
HOT_ACCOUNTS: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("hot_a", "CHECKING", "USD", "3000.00", None),
    ("hot_b", "CHECKING", "USD", "3000.00", "500.00"),
    ("hot_c", "SAVINGS", "USD", "1000.00", None),
    ("hot_d", "CHECKING", "USD", "0.00", None),
    ("hot_e", "CHECKING", "EUR", "2000.00", None),
    ("hot_f", "SAVINGS", "EUR", "2000.00", None),
)


def create_hot_accounts(url: str) -> list[tuple[str, str]]:
    """Create the hot accounts through the SDK; returns [(id, currency)]."""
    from qenex import FinancialKernel

    async def main() -> list[tuple[str, str]]:
        kernel = FinancialKernel({"database": {"url": url}})
        await kernel.initialize()
        try:
            out = []
            for owner, kind, cur, opening, limit in HOT_ACCOUNTS:
                kwargs: dict[str, Any] = {"owner_id": owner, "account_type": kind, "currency": cur}
                if Decimal(opening) > 0:
                    kwargs["initial_balance"] = Decimal(opening)
                if limit is not None:
                    kwargs["overdraft_limit"] = Decimal(limit)
                acct = await kernel.create_account(**kwargs)
                out.append((str(acct.id), cur))
            return out
        finally:
            await kernel.shutdown()

    return asyncio.run(main())


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(HERE.parent.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_cli(*args: str, url: str | None, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env.pop("QENEX_CONFIG", None)
    if url is not None:
        env["QENEX_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "qenex", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env, **kw
    )


@pytest.fixture()
def ledger_url(fresh_db_url: str) -> str:
    """A fresh database with every migration applied."""
    from qenex.store.migrate import migrate

    migrate(fresh_db_url)
    return fresh_db_url
