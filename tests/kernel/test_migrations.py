"""Schema migrations: fresh, re-run no-op, upgrade from every earlier kernel version with data,
and concurrent migrators."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from qenex.kernel.model import Leg, NewTransaction
from qenex.store import ledger_store as S
from qenex.store.ledger_audit import check_invariants, verify_journal
from qenex.store.migrate import available, current_version, migrate, pending

from .conftest import run_kernel

KERNEL_VERSIONS = [m.version for m in available() if m.version < 100]


def test_kernel_ships_at_least_two_migrations():
    assert KERNEL_VERSIONS[:2] == [1, 2]


def test_fresh_database_then_rerun_is_a_noop(fresh_db_url):
    assert current_version(fresh_db_url) == 0
    assert pending(fresh_db_url) == [m.filename for m in available()]
    applied = migrate(fresh_db_url)
    assert applied == [m.filename for m in available()]
    assert current_version(fresh_db_url) == available()[-1].version
    assert pending(fresh_db_url) == []
    assert migrate(fresh_db_url) == []
    with psycopg.connect(fresh_db_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert count == len(available())


async def _write_some(url: str) -> None:
    """Accounts and postings written with the store directly, on whatever schema version is there."""
    conn = await psycopg.AsyncConnection.connect(url)
    try:
        cash = (await S.ensure_system_accounts(conn, "USD"))["cash"]
        async with conn.transaction():
            a = await S.insert_account(conn, "mig", "CHECKING", "USD", 0, "{}")
            b = await S.insert_account(conn, "mig", "CHECKING", "USD", 0, "{}")
        await S.run_batch(conn, [NewTransaction("DEPOSIT", (Leg(cash, a, 10_000, "USD"),)),
                                 NewTransaction("TRANSFER", (Leg(a, b, 2_500, "USD"),), pending=True)])
    finally:
        await conn.close()


@pytest.mark.parametrize("start", [0, *KERNEL_VERSIONS[:-1]])
def test_upgrade_from_each_earlier_version_with_data(fresh_db_url, start):
    migrate(fresh_db_url, target=start)
    assert current_version(fresh_db_url) == start
    if start >= 1:
        asyncio.run(_write_some(fresh_db_url))
    migrate(fresh_db_url)
    assert pending(fresh_db_url) == []
    assert check_invariants(fresh_db_url) == []

    async def body(k):
        accounts = await k.list_accounts(owner_id="mig")
        if start >= 1:
            assert [a.balance for a in accounts] == [100, 0]
            assert accounts[0].balances.available == 75
        new = await k.create_account(owner_id="after", currency="USD", initial_balance="5.00")
        assert new.balance == 5

    run_kernel(fresh_db_url, body)
    assert verify_journal(fresh_db_url).ok


def test_concurrent_migrators_apply_each_file_once(fresh_db_url):
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(migrate(fresh_db_url))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    applied = sorted(name for r in results for name in r)
    assert applied == [m.filename for m in available()]
