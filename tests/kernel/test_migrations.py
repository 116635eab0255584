"""Schema migrations: fresh, re-run no-op, upgrade from every earlier schema state with data
(ending in exactly the schema of a fresh install), and concurrent migrators.

Migration files are numbered by area (kernel 0001-0099, security 0100-0199, api 0200-0299) and
each area adds its own over time, so an installation's earlier state is not only "every file up
to N": an area can lag the others (its newest files arrived later). The upgrade is tested from
every number-order prefix and from every state where one area lags while the others are current.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from qenex.kernel.model import Leg, NewTransaction, PostPending, Reverse, VoidPending
from qenex.store import ledger_store as S
from qenex.store.ledger_audit import check_invariants, verify_journal
from qenex.store.migrate import _applied, _apply_one, available, current_version, migrate, pending

from .conftest import run_kernel

VERSIONS = [m.version for m in available()]
KERNEL_VERSIONS = [v for v in VERSIONS if v < 100]
AREA_SIZE = 100  # 0001-0099 kernel, 0100-0199 security, 0200-0299 api


def _earlier_states() -> dict[str, tuple[int, ...]]:
    states: dict[tuple[int, ...], str] = {}
    for i in range(len(VERSIONS)):  # number order: the empty database, then each prefix
        states.setdefault(tuple(VERSIONS[:i]), f"upto-{VERSIONS[i - 1] if i else 0:04d}")
    for area in sorted({v // AREA_SIZE for v in VERSIONS}):
        own = [v for v in VERSIONS if v // AREA_SIZE == area]
        others = [v for v in VERSIONS if v // AREA_SIZE != area]
        for i in range(len(own)):  # this area at its i-th file, every other area current
            applied = tuple(sorted(others + own[:i]))
            states.setdefault(applied, f"area{area}-at-{own[i - 1] if i else 0:04d}")
    return {name: applied for applied, name in states.items()}


EARLIER_STATES = _earlier_states()


def test_kernel_ships_its_migrations_and_every_state_is_covered():
    assert KERNEL_VERSIONS[:5] == [1, 2, 3, 4, 5]
    assert len(VERSIONS) >= 10  # kernel, security and api files
    assert (0,) not in EARLIER_STATES.values() and () in EARLIER_STATES.values()
    for i in range(len(VERSIONS)):
        assert tuple(VERSIONS[:i]) in EARLIER_STATES.values()
    # the kernel area at 0003 (before its later files), every other area current
    assert tuple(v for v in VERSIONS if v < 4 or v >= AREA_SIZE) in EARLIER_STATES.values()


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


# ---- schema dump --------------------------------------------------------------------------------

_DUMP_QUERIES: dict[str, str] = {
    "relations": """SELECT c.relname, c.relkind, coalesce(c.reloptions::text, ''), coalesce(c.relacl::text, '')
                    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1""",
    "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity, a.attgenerated,
                         coalesce(a.attacl::text, '')
                  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                    AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2""",
    "constraints": """SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled::text
                   FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc), coalesce(proacl::text, '')
                    FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "sequences": """SELECT sequencename, data_type::text, start_value, increment_by, max_value, cycle
                    FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "migrations": "SELECT version, name FROM schema_migrations ORDER BY 1",
}


def schema_dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in _DUMP_QUERIES.items()}


@pytest.fixture(scope="module")
def fresh_schema(pg_admin_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The schema of a fresh install: every migration applied to an empty database."""
    name = f"qenex_mig_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = psycopg.conninfo.make_conninfo(pg_admin_url, dbname=name)
        migrate(url)
        return schema_dump(url)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_schema_dump_sees_what_migrations_create(fresh_db_url, fresh_schema):
    """The comparison is not vacuous: it sees tables, column types, constraints, indexes, triggers,
    grants and table options."""
    names = {row[0] for row in fresh_schema["relations"]}
    assert {"ledger_journal", "ledger_idempotency", "schema_migrations"} <= names
    assert any(r[1] == "ledger_idempotency_one_outcome" for r in fresh_schema["constraints"])
    assert any(r[1] == "ledger_journal_no_update_delete" for r in fresh_schema["triggers"])
    migrate(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE ledger_head SET (fillfactor = 50)")
        conn.execute("REVOKE UPDATE (last_hash) ON ledger_head FROM qenex_runtime")
    changed = schema_dump(fresh_db_url)
    assert changed["relations"] != fresh_schema["relations"] and changed["columns"] != fresh_schema["columns"]


# ---- upgrade with data --------------------------------------------------------------------------

def _apply_only(url: str, versions: tuple[int, ...]) -> None:
    """Bring an empty database to exactly this set of applied migrations (in number order)."""
    with psycopg.connect(url, autocommit=True) as conn:
        _applied(conn)  # the bookkeeping table
        for migration in available():
            if migration.version in versions:
                _apply_one(conn, migration)


OLD_KEY = "mig-old-key"


_READ_FUNCTION_SIGNATURE = "ledger_lock_read(bigint, text[], bigint[], bigint[], bigint[], bigint[], integer, integer)"


def _lend_read_function(conn: psycopg.Connection[Any]) -> bool:
    """Before 0007 the schema has no ledger_lock_read, which today's store reads through: lend it
    the function for writing the old state's data (adapted to a pre-0004 idempotency table), to be
    dropped again so that the upgrade itself creates it. True when lent."""
    if conn.execute("SELECT to_regprocedure(%s)", (_READ_FUNCTION_SIGNATURE,)).fetchone()[0] is not None:
        return False
    text = next(m.path for m in available() if m.version == 7).read_text()
    has_errors = conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'ledger_idempotency' "
                              "AND column_name = 'error_code'").fetchone() is not None
    if not has_errors:
        text = text.replace("li.error_code, li.error_message", "NULL::text AS error_code, NULL::text AS error_message")
    conn.execute(text)
    return True


async def _write_ledger_data(url: str) -> dict[str, int]:
    """Accounts and every kind of entry, written with the store on whatever schema is there, and
    an idempotency record in the oldest shape (a result id only)."""
    with psycopg.connect(url, autocommit=True) as sync:
        lent = _lend_read_function(sync)
    try:
        return await _write_ledger_rows(url)
    finally:
        if lent:
            with psycopg.connect(url, autocommit=True) as sync:
                sync.execute(f"DROP FUNCTION {_READ_FUNCTION_SIGNATURE}")


async def _write_ledger_rows(url: str) -> dict[str, int]:
    from qenex.sdk.kernel import _fast_digest

    conn = await psycopg.AsyncConnection.connect(url)
    try:
        cash = (await S.ensure_system_accounts(conn, "USD"))["cash"]
        async with conn.transaction():
            a = await S.insert_account(conn, "mig", "CHECKING", "USD", 0, "{}")
            b = await S.insert_account(conn, "mig", "CHECKING", "USD", 0, "{}")
        r = await S.run_batch(conn, [NewTransaction("DEPOSIT", (Leg(cash, a, 10_000, "USD"),)),
                                     NewTransaction("TRANSFER", (Leg(a, b, 2_500, "USD"),), pending=True),
                                     NewTransaction("TRANSFER", (Leg(a, b, 1_000, "USD"),), pending=True),
                                     NewTransaction("TRANSFER", (Leg(a, b, 500, "USD"),), pending=True),
                                     NewTransaction("TRANSFER", (Leg(a, b, 100, "USD"),))])
        deposit, held, posted, voided, moved = (x.result_id for x in r)
        r2 = await S.run_batch(conn, [PostPending(posted, 400), VoidPending(voided), Reverse(moved)])
        assert all(x.error is None for x in r2), r2
        async with conn.transaction():
            await conn.execute("INSERT INTO ledger_idempotency (key, request_hash, result_id) VALUES (%s, %s, %s)",
                               (OLD_KEY, _fast_digest("TRANSFER", a, b, 100, "USD", False), moved))
    finally:
        await conn.close()
    return {"a": a, "b": b, "held": held, "moved": moved}


def _write_api_data(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO api_idempotency (principal, key, request_sha256, status_code, media_type, body) "
                     "VALUES ('p', 'k', '\\x00', 201, 'application/json', '{}')")


@pytest.mark.parametrize("applied", list(EARLIER_STATES.values()), ids=list(EARLIER_STATES))
def test_upgrade_from_every_earlier_state_with_data_equals_a_fresh_install(fresh_db_url, fresh_schema, applied):
    _apply_only(fresh_db_url, applied)
    assert current_version(fresh_db_url) == max(applied, default=0)
    ids = asyncio.run(_write_ledger_data(fresh_db_url)) if 1 in applied else None
    if 200 in applied:
        _write_api_data(fresh_db_url)
    migrate(fresh_db_url)
    assert pending(fresh_db_url) == []
    assert schema_dump(fresh_db_url) == fresh_schema
    assert check_invariants(fresh_db_url) == []

    async def body(k):
        if ids is not None:
            a, b = await k.get_account(ids["a"]), await k.get_account(ids["b"])
            # 100.00 in, 4.00 posted of a 10.00 hold, 25.00 still held, 1.00 moved and reversed.
            assert (a.balance, a.balances.available, b.balance) == (96, 71, 4)
            assert (await k.get_transaction(ids["held"])).status == "pending"
            # The record written before 0004 still answers its key: same id, nothing moves.
            tx = await k.process_transaction("TRANSFER", from_account=ids["a"], to_account=ids["b"],
                                             amount="1.00", currency="USD", idempotency_key=OLD_KEY)
            assert tx == ids["moved"] and await k.get_account_balance(ids["a"]) == 96
            await k.post_pending(ids["held"])
        new = await k.create_account(owner_id="after", currency="USD", initial_balance="5.00")
        assert new.balance == 5
        with pytest.raises(Exception) as info:  # a rejection is remembered after the upgrade
            await k.process_transaction("TRANSFER", from_account=new.id, to_account=new.id + 10**9,
                                        amount="1.00", currency="USD", idempotency_key="after-upgrade")
        assert getattr(info.value, "code", None) == "account_not_found"

    run_kernel(fresh_db_url, body)
    assert verify_journal(fresh_db_url).ok and check_invariants(fresh_db_url) == []
    if 200 in applied:
        with psycopg.connect(fresh_db_url) as conn:
            assert conn.execute("SELECT count(*) FROM api_idempotency").fetchone()[0] == 1


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
