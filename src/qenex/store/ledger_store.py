"""PostgreSQL side of the ledger: reads a batch's state under the ledger lock, lets the engine
plan it, writes the plan in the same database transaction.

One writer at a time per database: every posting transaction first takes
``pg_advisory_xact_lock(LEDGER_LOCK_KEY)``. That serializes writers across processes, makes the
balance checks race-free without row locks or deadlocks, and gives the hash chain a total order.
The transaction runs at READ COMMITTED, so every statement after the lock sees all commits
made before it.

Round trips per batch: one pipelined read (lock, head, idempotency keys, pending reservations,
reversal originals, accounts), rarely one more for accounts only known after that read, one
write statement (data-modifying CTEs over unnest arrays), commit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow

from qenex.kernel import errors as E
from qenex.kernel.engine import (
    EXPIRY_SWEEP_ITEMS_MAX,
    BatchPlan,
    BatchState,
    ChunkedPlanner,
    ItemResult,
    plan_batch,
)
from qenex.kernel.errors import LedgerError, check
from qenex.kernel.model import (
    DEPOSIT_TYPES,
    LEGS_PER_TRANSACTION_MAX,
    SYSTEM_ACCOUNTS,
    SYSTEM_OWNER_ID,
    AccountState,
    Command,
    JournalLeg,
    NewTransaction,
    PendingRecord,
    PostPending,
    Reverse,
    VoidPending,
)

AConn = psycopg.AsyncConnection[TupleRow]

# Advisory lock key of the single ledger writer (fixed 64-bit value, distinct from the migrator's).
LEDGER_LOCK_KEY: Final = 0x51454E4558_0002
NOTIFY_CHANNEL: Final = "qenex_ledger"

_SQL_LOCK = "SELECT pg_advisory_xact_lock(%s)"
# The lock and the batch read in one statement (migration 0007_ledger_lock_read.sql says why).
_SQL_LOCK_READ = (
    "SELECT * FROM ledger_lock_read(%(lock)b, %(keys)b::text[], %(pending)b::bigint[], %(lookup)b::bigint[], "
    "%(reverse)b::bigint[], %(accounts)b::bigint[], %(sweep)b::integer, %(legs)b::integer)"
)

# Everything a batch reads, after taking the lock, comes back from ledger_lock_read (migration
# 0007) in ONE statement: each statement costs far more client CPU than server time, so one wide
# UNION ALL beats six small queries. Rows are tagged; the migration lists the tags and columns.


# The write statement's per-row values travel as few arrays as possible (each array parameter
# costs the client tens of microseconds to adapt, which dominated single-transfer calls): the
# journal's integers flattened 8 per row (ref_tx 0 = NULL; ids start at 1) and read by subscript,
# which is O(1) in an integer array without NULLs; its text columns and hashes by unnest (a
# subscript into a text array walks it, which would make the statement quadratic); the
# accounts' four balances flattened likewise. OFFSET 0 makes each flattened array a value
# computed once: psycopg may send int2[]/int4[], and a cast repeated at every subscript is
# quadratic too.
_SQL_WRITE_JOURNAL = """
j AS (INSERT INTO ledger_journal (seq, tx_id, leg, kind, tx_type, debit_account, credit_account, amount_minor,
        currency, ref_tx, fx_rate, metadata, created_at, hash)
      SELECT p.n[o + 1], p.n[o + 2], p.n[o + 3], p.n[o + 4], u.ty, p.n[o + 5], p.n[o + 6], p.n[o + 7],
             u.cu, NULLIF(p.n[o + 8], 0), u.fx::numeric, u.m, %(ts)b, u.h
      FROM (SELECT %(j_int)b::bigint[] AS n OFFSET 0) AS p,
           unnest(%(j_type)b::text[], %(j_cur)b::text[], %(j_fx)b::text[], %(j_meta)b::text[], %(j_hash)b::bytea[])
             WITH ORDINALITY AS u(ty, cu, fx, m, h, k),
           LATERAL (SELECT (u.k::int - 1) * 8 AS o) AS x)"""
_SQL_WRITE_ACCOUNTS_HEAD = """
a AS (UPDATE ledger_accounts AS x SET debits_posted = v.b[v.o + 1], credits_posted = v.b[v.o + 2],
        debits_pending = v.b[v.o + 3], credits_pending = v.b[v.o + 4]
      FROM (SELECT w.id, (w.k::int - 1) * 4 AS o, bal.b
            FROM (SELECT %(a_bal)b::bigint[] AS b OFFSET 0) AS bal,
                 unnest(%(a_id)b::bigint[]) WITH ORDINALITY AS w(id, k)) AS v
      WHERE x.id = v.id),
h AS (UPDATE ledger_head SET last_seq = %(head_seq)b, last_hash = %(head_hash)b WHERE id = 1)"""
_SQL_WRITE_IDEM = """,
i AS (INSERT INTO ledger_idempotency (key, request_hash, result_id)
      SELECT * FROM unnest(%(i_key)b::text[], %(i_hash)b::bytea[], %(i_id)b::bigint[]))"""
# Rejections remembered under their keys (rare: a separate statement part only when there are some).
_SQL_WRITE_IDEM_ERR = """
ie AS (INSERT INTO ledger_idempotency (key, request_hash, error_code, error_message)
       SELECT * FROM unnest(%(e_key)b::text[], %(e_hash)b::bytea[], %(e_code)b::text[], %(e_msg)b::text[]))"""
_SQL_WRITE_OUTBOX = """
ob AS (INSERT INTO ledger_outbox (payload) SELECT unnest(%(o_payload)b::text[]))"""

# Outbox notes of one batch: (start, end, note) per caller that gave one; ``note`` is the caller's
# JSON-serialisable record, stored with the outcome of items [start, end) of the batch.
OutboxNotes = Sequence[tuple[int, int, Any]]
# Most failed items listed one by one in an outbox payload (the counts always cover all of them).
OUTBOX_FAILURES_LISTED_MAX: Final = 200
# Most runs of consecutive ids listed (a batch of single-leg transfers is one run).
OUTBOX_ID_RUNS_LISTED_MAX: Final = 200


def outcome_summary(results: Sequence[ItemResult]) -> dict[str, Any]:
    """A compact account of a call's outcome for the outbox: counts, the ids it produced as
    [first, last] runs of consecutive ids, and the failed items' indexes with their codes."""
    runs: list[list[int]] = []
    failures: list[list[Any]] = []
    failed = replayed = 0
    for index, r in enumerate(results):
        if r.error is not None:
            failed += 1
            if len(failures) < OUTBOX_FAILURES_LISTED_MAX:
                failures.append([index, r.error.code])
            continue
        replayed += r.replayed
        rid = r.result_id
        if rid is None:
            continue
        if runs and runs[-1][1] + 1 == rid:
            runs[-1][1] = rid
        else:
            runs.append([rid, rid])
    return {"items": len(results), "succeeded": len(results) - failed, "failed": failed, "replayed": replayed,
            "ids": runs[:OUTBOX_ID_RUNS_LISTED_MAX], "ids_listed_all": len(runs) <= OUTBOX_ID_RUNS_LISTED_MAX,
            "failures": failures}


def outbox_payloads(notes: OutboxNotes, results: Sequence[ItemResult]) -> list[str]:
    return [json.dumps({"note": note, "outcome": outcome_summary(results[start:end])},
                       separators=(",", ":"), default=str)
            for start, end, note in notes]


async def insert_outbox(conn: AConn, payloads: Sequence[str]) -> None:
    """Outbox rows inside the caller's transaction (account creation and admin calls)."""
    if payloads:
        await conn.execute("INSERT INTO ledger_outbox (payload) SELECT unnest(%s::text[])", (list(payloads),))


_SQL_WRITE_PENDING_NEW = """,
pn AS (INSERT INTO ledger_pending (tx_id, debit_account, credit_account, amount_minor, currency, tx_type,
         expires_at)
       SELECT * FROM unnest(%(p_tx)b::bigint[], %(p_d)b::bigint[], %(p_c)b::bigint[], %(p_a)b::bigint[],
                            %(p_cur)b::text[], %(p_type)b::text[], %(p_exp)b::timestamptz[]))"""
_SQL_WRITE_PENDING_UPD = """,
pu AS (UPDATE ledger_pending AS x SET state = v.st, resolved_tx = v.res
       FROM unnest(%(u_tx)b::bigint[], %(u_state)b::smallint[], %(u_res)b::bigint[]) AS v(tx, st, res)
       WHERE x.tx_id = v.tx)"""
_SQL_WRITE_REV = """,
rv AS (INSERT INTO ledger_reversals (tx_id, reversal_tx_id)
       SELECT * FROM unnest(%(r_tx)b::bigint[], %(r_rev)b::bigint[]))"""


# From this many items on, a batch's journal goes in by COPY, streamed while the batch is planned
# (much cheaper per row than parameter arrays), and so do its idempotency records.
COPY_ROWS_MIN: Final = 64
COPY_CHUNK_ROWS: Final = 1_000
_COPY_JOURNAL = (
    "COPY ledger_journal (seq, tx_id, leg, kind, tx_type, debit_account, credit_account, amount_minor, currency, "
    "ref_tx, fx_rate, metadata, created_at, hash) FROM STDIN"
)


def _copy_text(value: str | None) -> str:
    """A text field in COPY's text format: NULL is \\N; backslash, tab and line breaks are escaped."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


async def _plan_and_copy(conn: AConn, commands: Sequence[Command], state: BatchState,
                         ends: Sequence[int] | None) -> BatchPlan:
    """Plan a large batch chunk by chunk, sending each chunk's journal rows by COPY as soon as they
    are decided: the server ingests one chunk while the next is planned and hashed."""
    planner = ChunkedPlanner(commands, state, ends)
    ts = state.now.isoformat()
    async with conn.cursor() as cur, cur.copy(_COPY_JOURNAL) as copy:
        while True:
            data = planner.step_copy(COPY_CHUNK_ROWS, ts, _copy_text)
            if data:
                await copy.write(data)
            if planner.done:
                break
    return planner.finish()


_COPY_IDEMPOTENCY = "COPY ledger_idempotency (key, request_hash, result_id) FROM STDIN"


async def _copy_idempotency(conn: AConn, records: list[tuple[str, bytes, int]]) -> None:
    """A large batch's idempotency records by COPY: several times cheaper for both sides than an
    INSERT over three 8,000-element parameter arrays. A key already stored fails the COPY (primary
    key) and so the whole batch, exactly as the INSERT did; the read under the lock rules it out."""
    async with conn.cursor() as cur, cur.copy(_COPY_IDEMPOTENCY) as copy:
        for start in range(0, len(records), COPY_CHUNK_ROWS):
            lines = [f"{_copy_text(k)}\t\\\\x{d.hex()}\t{i}\n" for k, d, i in records[start:start + COPY_CHUNK_ROWS]]
            await copy.write("".join(lines).encode())


async def configure_writer(conn: AConn) -> None:
    """Session settings of a kernel's writer connection. Generic plans: the batch statements are
    prepared (psycopg does it after a few runs) and their lookups are index probes whatever the
    array sizes, yet PostgreSQL kept choosing custom plans, re-planning the read on every batch
    (about 0.3 ms of server CPU, more than executing it). A generic plan is rebuilt whenever
    (auto)analyze refreshes a table's statistics, so plans made on a fresh, empty database are
    replaced once the tables have grown past autovacuum's analyze threshold."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await use_runtime_role(conn)


# The restricted role of runtime connections (migration 0005_ledger_runtime_role.sql). A
# connection switches to it when the session user may (a superuser, or a member) and the role
# holds its grants in this database; otherwise it keeps the session user's privileges.
RUNTIME_ROLE: Final = "qenex_runtime"
_SQL_USE_RUNTIME_ROLE = f"""DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{RUNTIME_ROLE}') THEN
        IF pg_has_role(session_user, '{RUNTIME_ROLE}', 'MEMBER')
           AND has_table_privilege('{RUNTIME_ROLE}', 'ledger_journal', 'INSERT') THEN
            BEGIN
                SET ROLE {RUNTIME_ROLE};
            EXCEPTION WHEN insufficient_privilege THEN
                NULL;  -- a membership without the SET option (PostgreSQL 16+): keep the session user
            END;
        END IF;
    END IF;
END
$$"""


async def use_runtime_role(conn: AConn) -> None:
    """Switch a kernel connection to the restricted runtime role (see RUNTIME_ROLE): it can append
    to the journal but never rewrite it, nor disable the append-only triggers."""
    await conn.execute(_SQL_USE_RUNTIME_ROLE)


async def lock_ledger(conn: AConn) -> None:
    await conn.execute(_SQL_LOCK, (LEDGER_LOCK_KEY,))


def _command_ids(commands: Sequence[Command]) -> tuple[set[int], list[int], list[int], list[str]]:
    accounts: set[int] = set()
    pending_ids: list[int] = []
    reverse_ids: list[int] = []
    keys: list[str] = []
    add, add_key = accounts.add, keys.append
    for cmd in commands:
        if type(cmd) is NewTransaction:  # the bulk of every batch: no isinstance/getattr chain
            for leg in cmd.legs:
                add(leg.debit)
                add(leg.credit)
            if cmd.key is not None:
                add_key(cmd.key)
            continue
        if isinstance(cmd, PostPending | VoidPending):
            pending_ids.append(cmd.pending_id)
        elif isinstance(cmd, Reverse):
            reverse_ids.append(cmd.tx_id)
        key = getattr(cmd, "key", None)
        if key is not None:
            add_key(key)
    return accounts, pending_ids, reverse_ids, keys


# Idempotency records read before the lock: (keys looked up, records found among them).
KnownKeys = tuple[frozenset[str], dict[str, tuple[bytes, int | LedgerError]]]

_SQL_PREFETCH_IDEM = (
    "SELECT i.key, i.request_hash, i.result_id, i.error_code, i.error_message FROM unnest(%(keys)b::text[]) AS q(key), "
    "LATERAL (SELECT key, request_hash, result_id, error_code, error_message FROM ledger_idempotency "
    "WHERE key = q.key LIMIT 1) AS i"
)


def _outcome(result_id: int | None, error_code: str | None, error_message: str | None) -> int | LedgerError:
    """A stored idempotency record's outcome: the result id, or the rejection answered again."""
    if error_code is None:
        check(result_id is not None, "an idempotency record holds a result or an error")
        return int(result_id)  # type: ignore[arg-type]  # checked just above
    return LedgerError(error_code, error_message or "")


async def prefetch_idempotency(conn: AConn, keys: Sequence[str]) -> KnownKeys:
    """Look a large batch's idempotency keys up outside the ledger lock (on any connection), so
    the server does it while the client still validates the items.

    Safe without the lock: a record is never updated or deleted, so a key found stays found; a
    key reported absent may be stored by another writer before the lock, and then the batch's
    own insert of it violates the primary key, and run_batch re-runs the batch reading every
    key under the lock."""
    cur = await conn.execute(_SQL_PREFETCH_IDEM, {"keys": list(keys)}, binary=True)
    return frozenset(keys), {k: (bytes(h), i if c is None else _outcome(i, c, m))
                             for k, h, i, c, m in await cur.fetchall()}


async def _read_state(conn: AConn, commands: Sequence[Command], begin: bool,
                      known: KnownKeys | None = None) -> BatchState:
    """BEGIN (optionally), the ledger lock, then the one read statement: one round trip. Keys in
    ``known`` were looked up before the lock and are not read again."""
    account_ids, pending_ids, reverse_ids, keys = _command_ids(commands)
    if known is not None:
        covered = known[0]
        keys = [k for k in keys if k not in covered]
    lookup_ids = pending_ids + reverse_ids
    params = {"keys": keys, "pending": pending_ids, "lookup": lookup_ids, "reverse": reverse_ids,
              "accounts": list(account_ids)}
    params.update(lock=LEDGER_LOCK_KEY, sweep=EXPIRY_SWEEP_ITEMS_MAX, legs=LEGS_PER_TRANSACTION_MAX)
    async with conn.pipeline():
        if begin:
            await conn.execute("BEGIN")
        cur = await conn.execute(_SQL_LOCK_READ, params, binary=True)
    # Fetched after the pipeline's Sync: fetching inside the block costs a flush request and a
    # second wait on the server (~40 us of client CPU per batch here).
    state = _state_from_rows(await cur.fetchall())
    if known is not None:
        state.idempotency = {**known[1], **state.idempotency}
    return state


def _state_from_rows(rows: list[tuple[Any, ...]]) -> BatchState:
    head = None
    accounts: dict[int, AccountState] = {}
    pendings: dict[int, PendingRecord] = {}
    legs: list[JournalLeg] = []
    reversed_ids: set[int] = set()
    idempotency: dict[str, tuple[bytes, int | LedgerError]] = {}
    for tag, a, b, c, d, e, f, g, h, t1, t2, t3, ts, bin_ in rows:
        if tag == 5:
            accounts[a] = AccountState(a, t1, t2, t3, b, c, d, e, f)
        elif tag == 1:
            idempotency[t1] = (bytes(bin_), a if t2 is None else _outcome(a, t2, t3))
        elif tag == 0:
            head = (a, bytes(bin_), ts)
        elif tag == 2:
            pendings[a] = PendingRecord(a, b, c, d, t1, t2, ts, e)
        elif tag == 3:
            legs.append(JournalLeg(a, b, c, d, t2, e, f, g, t1, h))
        else:
            reversed_ids.add(a)
    if head is None:
        raise LedgerError(E.INVALID_REQUEST, "the ledger schema is not initialised; run `qenex db migrate`")
    originals: dict[int, list[JournalLeg]] = {}
    for leg in sorted(legs, key=lambda g: g.seq):
        originals.setdefault(leg.tx_id, []).append(leg)
    return BatchState(head_seq=head[0], head_hash=head[1], now=head[2], accounts=accounts, pendings=pendings,
                      originals=originals, reversed_ids=reversed_ids, idempotency=idempotency)


async def plan_and_write(conn: AConn, commands: Sequence[Command], *, own_transaction: bool = False,
                         known: KnownKeys | None = None, ends: Sequence[int] | None = None,
                         outbox: OutboxNotes | None = None) -> list[ItemResult]:
    """Lock, read, plan, write. Inside the caller's transaction, or with ``own_transaction`` (an
    autocommit connection) BEGIN is pipelined with the reads and COMMIT with the writes, which
    saves two round trips per batch. ``known``: idempotency keys already looked up (prefetch).
    ``ends``: where each caller's call ends in ``commands`` (no linked chain runs across one).
    ``outbox``: notes written to ledger_outbox with their calls' outcomes, in this transaction."""
    state = await _read_state(conn, commands, begin=own_transaction, known=known)
    streamed = len(commands) >= COPY_ROWS_MIN
    plan = await _plan_and_copy(conn, commands, state, ends) if streamed else plan_batch(commands, state, ends)
    payloads = outbox_payloads(outbox, plan.results) if outbox else []
    if not plan.journal:
        ctes: list[str] = []
        params: dict[str, Any] = {}
        if plan.idempotency_failures:
            ctes.append(_SQL_WRITE_IDEM_ERR)
            params.update(_failure_params(plan))
        if payloads:
            ctes.append(_SQL_WRITE_OUTBOX)
            params["o_payload"] = payloads
        async with conn.pipeline():
            if ctes:
                await conn.execute(("WITH" + ",".join(ctes) + "\nSELECT 1").encode(), params, binary=True)
            if own_transaction:
                await conn.execute("COMMIT")
        return plan.results
    touched = [state.accounts[i] for i in sorted(plan.touched)]
    params = {
        "a_id": [a.id for a in touched],
        "a_bal": [v for a in touched for v in (a.debits_posted, a.credits_posted, a.debits_pending,
                                               a.credits_pending)],
        "head_seq": plan.head_seq, "head_hash": plan.head_hash, "notify": str(plan.head_seq),
    }
    if streamed:
        sql = "WITH" + _SQL_WRITE_ACCOUNTS_HEAD
    else:
        journal = plan.journal
        params.update({
            "ts": state.now, "j_hash": plan.hashes,
            # int(kind): an IntEnum among ints would make psycopg pick the int2 dumper for the whole array.
            "j_int": [v for r in journal for v in (r[0], r[1], r[2], int(r[3]), r[5], r[6], r[7],
                                                   0 if r[9] is None else r[9])],
            "j_type": [r[4] for r in journal], "j_cur": [r[8] for r in journal],
            "j_fx": [r[10] for r in journal], "j_meta": [r[11] for r in journal],
        })
        sql = "WITH" + _SQL_WRITE_JOURNAL + "," + _SQL_WRITE_ACCOUNTS_HEAD
    if len(plan.idempotency_inserts) >= COPY_ROWS_MIN:
        await _copy_idempotency(conn, plan.idempotency_inserts)
    elif plan.idempotency_inserts:
        sql += _SQL_WRITE_IDEM
        idem = list(zip(*plan.idempotency_inserts, strict=True))
        params["i_key"], params["i_hash"], params["i_id"] = list(idem[0]), list(idem[1]), list(idem[2])
    if plan.pending_inserts:
        sql += _SQL_WRITE_PENDING_NEW
        p = list(zip(*plan.pending_inserts, strict=True))
        params.update(p_tx=list(p[0]), p_d=list(p[1]), p_c=list(p[2]), p_a=list(p[3]), p_cur=list(p[4]),
                      p_type=list(p[5]), p_exp=list(p[6]))
    if plan.pending_updates:
        sql += _SQL_WRITE_PENDING_UPD
        params["u_tx"] = list(plan.pending_updates)
        params["u_state"] = [v[0] for v in plan.pending_updates.values()]
        params["u_res"] = [v[1] for v in plan.pending_updates.values()]
    if plan.reversal_inserts:
        sql += _SQL_WRITE_REV
        params["r_tx"], params["r_rev"] = (list(c) for c in zip(*plan.reversal_inserts, strict=True))
    if plan.idempotency_failures:
        sql += "," + _SQL_WRITE_IDEM_ERR
        params.update(_failure_params(plan))
    if payloads:
        sql += "," + _SQL_WRITE_OUTBOX
        params["o_payload"] = payloads
    sql += f"\nSELECT pg_notify('{NOTIFY_CHANNEL}', %(notify)b)"
    async with conn.pipeline():
        await conn.execute(sql.encode(), params, binary=True)
        if own_transaction:
            await conn.execute("COMMIT")
    return plan.results


def _failure_params(plan: BatchPlan) -> dict[str, Any]:
    keys, hashes, codes, messages = (list(c) for c in zip(*plan.idempotency_failures, strict=True))
    return {"e_key": keys, "e_hash": hashes, "e_code": codes, "e_msg": messages}


async def run_batch(conn: AConn, commands: Sequence[Command], known: KnownKeys | None = None,
                    ends: Sequence[int] | None = None, outbox: OutboxNotes | None = None) -> list[ItemResult]:
    """One batch in its own database transaction: all-or-nothing at the database level. With
    prefetched keys, a key stored by another writer since the prefetch fails the batch's insert
    of it (primary key); the batch then runs again with every key read under the lock.
    ``ends``: where each caller's call ends, when the batch groups several (see ChunkedPlanner).
    ``outbox``: the callers' notes, written with their outcomes in the same transaction."""
    if known is None:
        return await _run_batch_once(conn, commands, None, ends, outbox)
    try:
        return await _run_batch_once(conn, commands, known, ends, outbox)
    except psycopg.errors.UniqueViolation:
        return await _run_batch_once(conn, commands, None, ends, outbox)


async def _run_batch_once(conn: AConn, commands: Sequence[Command], known: KnownKeys | None,
                          ends: Sequence[int] | None, outbox: OutboxNotes | None) -> list[ItemResult]:
    if not conn.autocommit:
        async with conn.transaction():
            return await plan_and_write(conn, commands, known=known, ends=ends, outbox=outbox)
    try:
        return await plan_and_write(conn, commands, own_transaction=True, known=known, ends=ends, outbox=outbox)
    except BaseException:
        if not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


# ---- accounts ----------------------------------------------------------------------------------

async def ensure_system_accounts(conn: AConn, currency: str) -> dict[str, int]:
    """The per-currency general-ledger accounts (cash, FX position, fees...), created on first use."""
    async with conn.transaction():
        for code, account_type in SYSTEM_ACCOUNTS.items():
            await conn.execute(
                "INSERT INTO ledger_accounts (owner_id, account_type, currency, system_code) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (system_code, currency) WHERE system_code IS NOT NULL "
                "DO NOTHING",
                (SYSTEM_OWNER_ID, account_type, currency, code),
            )
        cur = await conn.execute(
            "SELECT system_code, id FROM ledger_accounts WHERE currency = %s AND system_code IS NOT NULL", (currency,)
        )
        return {r[0]: r[1] for r in await cur.fetchall()}


async def idempotent_lookup(conn: AConn, key: str, digest: bytes) -> int | LedgerError | None:
    """The stored outcome of ``key`` (a result id or the rejection), None if the key is new;
    LedgerError(idempotency_conflict) if it was used for a different request. Call it under the
    ledger lock, so that no other writer records the key between this read and the write."""
    cur = await conn.execute(
        "SELECT request_hash, result_id, error_code, error_message FROM ledger_idempotency WHERE key = %s", (key,))
    row = await cur.fetchone()
    if row is None:
        return None
    if bytes(row[0]) != digest:
        raise LedgerError(E.IDEMPOTENCY_CONFLICT, "idempotency key was already used for a different request")
    return _outcome(row[1], row[2], row[3])


async def record_idempotency(conn: AConn, key: str, digest: bytes, result_id: int) -> None:
    await conn.execute(
        "INSERT INTO ledger_idempotency (key, request_hash, result_id) VALUES (%s, %s, %s)", (key, digest, result_id)
    )


async def record_idempotency_error(conn: AConn, key: str, digest: bytes, error: LedgerError) -> None:
    await conn.execute(
        "INSERT INTO ledger_idempotency (key, request_hash, error_code, error_message) VALUES (%s, %s, %s, %s)",
        (key, digest, error.code, error.message),
    )


async def insert_account(
    conn: AConn, owner_id: str, account_type: str, currency: str, overdraft_minor: int, metadata: str
) -> int:
    cur = await conn.execute(
        "INSERT INTO ledger_accounts (owner_id, account_type, currency, overdraft_limit_minor, metadata) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (owner_id, account_type, currency, overdraft_minor, metadata),
    )
    row = await cur.fetchone()
    if row is None:
        raise LedgerError(E.INVALID_REQUEST, "account was not created")
    return int(row[0])


ACCOUNT_VIEW_COLS: Final = (
    "id, owner_id, account_type, currency, status, overdraft_limit_minor, system_code, metadata, "
    "debits_posted, credits_posted, debits_pending, credits_pending, created_at"
)


async def fetch_account(conn: AConn, account_id: int) -> tuple[Any, ...] | None:
    cur = await conn.execute(f"SELECT {ACCOUNT_VIEW_COLS} FROM ledger_accounts WHERE id = %s", (account_id,))
    return await cur.fetchone()


def _admin_check(row: tuple[Any, ...] | None, account_id: int, status: str | None,
                 overdraft_minor: int | None) -> None:
    if row is None:
        raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
    if row[6] is not None:
        raise LedgerError(E.INVALID_REQUEST, f"account {account_id} is a system account")
    if row[4] == "closed":
        raise LedgerError(E.ACCOUNT_CLOSED, f"account {account_id} is closed")
    if overdraft_minor is not None and row[2] not in DEPOSIT_TYPES:
        raise LedgerError(E.INVALID_REQUEST, "only CHECKING and SAVINGS accounts take an overdraft limit")
    if status == "closed" and (row[8] != row[9] or row[10] or row[11]):
        raise LedgerError(E.ACCOUNT_NOT_EMPTY, f"account {account_id} must have a zero balance to close")


async def update_account_admin(conn: AConn, account_id: int, *, status: str | None = None,
                               overdraft_minor: int | None = None, key: str | None = None,
                               digest: bytes = b"", note: Any = None
                               ) -> tuple[tuple[Any, ...] | None, LedgerError | None]:
    """Change status or overdraft limit under the ledger lock, so it orders with postings.

    With ``key``: a retry of the same request answers the original outcome (the account as it is
    now, or the original rejection) and changes nothing; a different request conflicts.
    Returns the committed outcome: (account row, None), or (None, the rejection that was
    committed with its idempotency record and outbox ``note``). A rejection that commits
    nothing is raised."""
    error: LedgerError | None = None
    async with conn.transaction():
        await lock_ledger(conn)
        known = None if key is None else await idempotent_lookup(conn, key, digest)
        if isinstance(known, LedgerError):
            error = known
        elif known is not None:
            account_id = known
        else:
            row = await fetch_account(conn, account_id)
            try:
                _admin_check(row, account_id, status, overdraft_minor)
            except LedgerError as exc:
                if key is None:
                    raise
                await record_idempotency_error(conn, key, digest, exc)
                error = exc
            else:
                if status is not None:
                    await conn.execute("UPDATE ledger_accounts SET status = %s WHERE id = %s", (status, account_id))
                if overdraft_minor is not None:
                    await conn.execute("UPDATE ledger_accounts SET overdraft_limit_minor = %s WHERE id = %s",
                                       (overdraft_minor, account_id))
                if key is not None:
                    await record_idempotency(conn, key, digest, account_id)
        updated = None if error is not None else await fetch_account(conn, account_id)
        if note is not None:
            replayed = known is not None
            outcome = [ItemResult(None, error) if error is not None else ItemResult(account_id, None, replayed)]
            await insert_outbox(conn, outbox_payloads([(0, 1, note)], outcome))
    if error is not None:  # returned after the commit, which keeps the rejection's record
        return None, error
    if updated is None:
        raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
    return updated, None


async def list_accounts(conn: AConn, owner_id: str | None, status: str | None, after: int | None,
                        limit: int, *, include_system: bool = False) -> list[tuple[Any, ...]]:
    """Accounts in id order: customer accounts only, or with ``include_system`` the general-ledger
    (system) accounts too."""
    where = [] if include_system else ["system_code IS NULL"]
    params: list[Any] = []
    if owner_id is not None:
        where.append("owner_id = %s")
        params.append(owner_id)
    if status is not None:
        where.append("status = %s")
        params.append(status)
    if after is not None:
        where.append("id > %s")
        params.append(after)
    params.append(limit)
    cur = await conn.execute(
        f"SELECT {ACCOUNT_VIEW_COLS} FROM ledger_accounts WHERE {' AND '.join(where) or 'TRUE'} ORDER BY id LIMIT %s",
        params,
    )
    return await cur.fetchall()


async def account_currencies(conn: AConn, ids: Sequence[int]) -> dict[int, str]:
    cur = await conn.execute("SELECT id, currency FROM ledger_accounts WHERE id = ANY(%s::bigint[])", (list(ids),))
    return {r[0]: r[1] for r in await cur.fetchall()}


# ---- transactions and statements ---------------------------------------------------------------

TX_COLS: Final = (
    "seq, tx_id, leg, kind, tx_type, debit_account, credit_account, amount_minor, currency, ref_tx, "
    "fx_rate, metadata, created_at"
)


async def fetch_transaction(conn: AConn, tx_id: int) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None,
                                                              int | None]:
    """Legs of a transaction, its pending state row (if a reservation) and its reversal id."""
    async with conn.pipeline():
        c1, c2, c3 = conn.cursor(), conn.cursor(), conn.cursor()
        await c1.execute(
            f"SELECT {TX_COLS} FROM ledger_journal WHERE seq >= %s AND seq < %s AND tx_id = %s ORDER BY seq",
            (tx_id, tx_id + LEGS_PER_TRANSACTION_MAX, tx_id),
        )
        await c2.execute("SELECT state, resolved_tx, expires_at FROM ledger_pending WHERE tx_id = %s", (tx_id,))
        await c3.execute("SELECT reversal_tx_id FROM ledger_reversals WHERE tx_id = %s", (tx_id,))
    legs = await c1.fetchall()  # after the Sync: one wait on the server, not one per fetch
    pend = await c2.fetchone()
    rev = await c3.fetchone()
    return legs, pend, (rev[0] if rev else None)


async def statement_rows(conn: AConn, account_id: int, start: datetime, end: datetime,
                         entries_max: int) -> tuple[int, int, list[tuple[Any, ...]]]:
    """Opening posted debits/credits before ``start`` and the posted rows in [start, end)."""
    posted = "kind IN (0, 2)"
    async with conn.pipeline():
        c1, c2 = conn.cursor(), conn.cursor()
        await c1.execute(
            f"SELECT coalesce(sum(amount_minor) FILTER (WHERE debit_account = %(a)s), 0), "
            f"coalesce(sum(amount_minor) FILTER (WHERE credit_account = %(a)s), 0) FROM ledger_journal "
            f"WHERE (debit_account = %(a)s OR credit_account = %(a)s) AND {posted} AND created_at < %(s)s",
            {"a": account_id, "s": start},
        )
        await c2.execute(
            f"SELECT {TX_COLS} FROM ledger_journal WHERE (debit_account = %(a)s OR credit_account = %(a)s) "
            f"AND {posted} AND created_at >= %(s)s AND created_at < %(e)s ORDER BY seq LIMIT %(n)s",
            {"a": account_id, "s": start, "e": end, "n": entries_max + 1},
        )
    opening = await c1.fetchone()  # after the Sync: one wait on the server, not one per fetch
    rows = await c2.fetchall()
    if len(rows) > entries_max:
        raise LedgerError(E.INVALID_REQUEST, f"statement period holds more than {entries_max} entries; narrow it")
    return (int(opening[0]), int(opening[1]), rows) if opening else (0, 0, rows)


async def journal_after(conn: AConn, after_seq: int, limit: int) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        f"SELECT {TX_COLS} FROM ledger_journal WHERE seq > %s AND leg = 0 ORDER BY seq LIMIT %s", (after_seq, limit)
    )
    return await cur.fetchall()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
