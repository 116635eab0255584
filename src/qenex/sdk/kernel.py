"""The in-process SDK: ``FinancialKernel``, the ledger engine composed with the PostgreSQL store.

Writes go through one writer task per kernel that groups concurrent calls into a single
database transaction (group commit, bounded by BATCH_ITEMS_MAX). Each item is decided on
its own against the balances inside that transaction, so one caller's rejection never
affects another's. Across processes, writers serialize on the ledger advisory lock.

Identifiers are integers: an account id is its row id; a transaction id is the journal
sequence number of its first leg (legs of one transaction are consecutive). Money crosses
this edge as Decimal (results) or Decimal/decimal string/int (arguments), never float.
Every mutation takes an optional ``idempotency_key``; without one the call is simply not
retry-safe (nothing is recorded for it). With one, the outcome is remembered, success or
rejection: the same key with the same request answers the original result (or raises the
original error, same code and message) and changes nothing; the same key with a different
request raises ``idempotency_conflict``. A request refused before it reaches the ledger (a
malformed argument, a linked chain left open) records nothing, so it may be corrected and
retried with the same key.

A call's items never join another call's linked chain, even when the writer groups the two
calls into one database transaction: a call whose last item is ``linked`` fails that open
chain's items with ``linked_chain_open``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from qenex.config import Settings, load_settings
from qenex.errors import QenexError
from qenex.kernel import errors as E
from qenex.kernel.currencies import CURRENCIES, get_currency
from qenex.kernel.engine import BATCH_ITEMS_MAX, ItemResult
from qenex.kernel.errors import LedgerError, check
from qenex.kernel.model import (
    CUSTOMER_TYPES,
    DEBIT_NORMAL_TYPES,
    IDEMPOTENCY_KEY_CHARS_MAX,
    METADATA_BYTES_MAX,
    PENDING_TIMEOUT_SECONDS_MAX,
    AccountStatus,
    AccountType,
    Command,
    EntryKind,
    Leg,
    NewTransaction,
    PendingState,
    PostPending,
    Rejected,
    Reverse,
    TransactionType,
    VoidPending,
)
from qenex.kernel.money import convert_minor, currency_of, from_minor, parse_decimal, to_minor
from qenex.sdk.sealing import (
    ACCOUNTS_TABLE,
    TRANSACTION_BINDING,
    TRANSACTIONS_TABLE,
    MetadataSealer,
    account_binding,
    has_sealed,
    needs_sealing,
)
from qenex.sdk.views import (
    Account,
    Balances,
    LedgerEvent,
    Statement,
    StatementEntry,
    Transaction,
    TransactionLeg,
    TransactionResult,
)
from qenex.security.envelope import Envelope
from qenex.store import ledger_store as S
from qenex.store.connection import database_url
from qenex.store.migrate import migrate

AConn = psycopg.AsyncConnection[TupleRow]

LIST_ACCOUNTS_LIMIT_MAX: Final = 1_000
STATEMENT_ENTRIES_MAX: Final = 100_000
EVENTS_PAGE_ROWS_MAX: Final = 1_000
EVENTS_POLL_INTERVAL_SECONDS: Final = 1.0
EXPIRY_SWEEP_INTERVAL_SECONDS: Final = 1.0
OWNER_ID_CHARS_MAX: Final = 200
AMOUNT_CACHE_ENTRIES: Final = 4_096
ID_MAX: Final = 2**63 - 1  # ids are PostgreSQL bigints
FX_RATE_MAX: Final = Decimal(10) ** 9
# From this many items on, a batch's idempotency keys are looked up while its items are validated
# (below it, the extra round trip and worker thread cost more than the lookup they hide).
PREFETCH_ITEMS_MIN: Final = 1_000
PREFETCH_SEND_YIELDS: Final = 4
_KIND_NAMES: Final = {0: "posted", 1: "pending", 2: "post_pending", 3: "void", 4: "expire"}
_PENDING_STATUS: Final = {0: "pending", 1: "posted", 2: "voided", 3: "expired"}


@dataclass(slots=True)
class AuditNote:
    """A record the caller attaches to one mutation call (for the API: who, what, from where).

    The kernel writes it to the ledger outbox (``ledger_outbox``) with the call's outcome, in the
    same database transaction as the mutation, and sets ``written`` once that transaction has
    committed. A relay (``qenex.security.outbox``) then appends it to the audit trail. ``record``
    must be JSON-serialisable; the kernel does not interpret it."""

    record: Mapping[str, Any]
    written: bool = False


@dataclass(slots=True)
class _Job:
    commands: list[Command]
    future: asyncio.Future[list[ItemResult]]
    known: S.KnownKeys | None = None  # idempotency keys looked up before the lock
    note: AuditNote | None = None


def _merge_known(jobs: list[_Job]) -> S.KnownKeys | None:
    """The prefetched keys of a group: a job without a prefetch has its keys read under the lock."""
    known = [job.known for job in jobs if job.known is not None]
    if not known:
        return None
    if len(known) == 1:
        return known[0]
    return frozenset().union(*(k[0] for k in known)), {r: v for k in known for r, v in k[1].items()}


def _item_keys(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The well-formed idempotency keys of a batch (a malformed one is rejected with its item)."""
    keys = []
    for item in items:
        key = item.get("idempotency_key")
        if type(key) is str and 0 < len(key) <= IDEMPOTENCY_KEY_CHARS_MAX and "\x00" not in key:
            keys.append(key)
    return keys


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()[:16]


def _fast_digest(tx_type: str, frm: int, to: int, amount: int, code: str, linked: bool) -> bytes:
    """_digest("tx", tx_type, frm, to, amount, code, None, False, None, None, linked), the same bytes
    (a test holds them equal) without building and repr-ing a tuple per item."""
    text = f"('tx', '{tx_type}', {frm}, {to}, {amount}, '{code}', None, False, None, None, {linked})"
    return hashlib.sha256(text.encode()).digest()[:16]


@functools.lru_cache(maxsize=AMOUNT_CACHE_ENTRIES)
def _minor_cached(value: str | Decimal | int, code: str) -> int:
    return to_minor(value, code)


def _minor(value: object, code: str) -> int:
    """to_minor, memoised for the hashable edge types (amounts repeat a lot in real traffic)."""
    if type(value) in (str, Decimal, int):
        try:
            return _minor_cached(value, code)
        except TypeError:  # unhashable Decimal (NaN signalling) and the like
            pass
    return to_minor(value, code)


def _metadata_text(metadata: object) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise LedgerError(E.INVALID_REQUEST, "metadata must be a JSON object")
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    except (TypeError, ValueError) as exc:
        raise LedgerError(E.INVALID_REQUEST, f"metadata is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > METADATA_BYTES_MAX:
        raise LedgerError(E.INVALID_REQUEST, f"metadata is larger than {METADATA_BYTES_MAX} bytes")
    return text


# (metadata text as stored, metadata text for an idempotency digest): equal unless the metadata
# holds sensitive fields, which are stored sealed and digested by keyed fingerprint.
_Meta = tuple[str | None, str | None]


def _plain_meta(metadata: object) -> _Meta:
    text = _metadata_text(metadata)
    return text, text


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | datetime):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= IDEMPOTENCY_KEY_CHARS_MAX or "\x00" in value:
        raise LedgerError(E.INVALID_REQUEST, f"idempotency_key must be a string of 1-{IDEMPOTENCY_KEY_CHARS_MAX} chars")
    return value


def _account_id(value: object, name: str) -> int:
    """An account or transaction id: a positive bigint (an int, digit string or Account object)."""
    if type(value) is int and 0 < value <= ID_MAX:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        value = int(value)
    elif not isinstance(value, int | bool):
        value = getattr(value, "id", None)  # an Account object is accepted too
    if type(value) is not int or not 0 < value <= ID_MAX:
        raise LedgerError(E.INVALID_REQUEST, f"{name} must be a positive integer id")
    return value


_TYPES_BY_NAME: Final = {t.value: t for t in TransactionType}


_FAST_KEYS: Final = frozenset({"type", "from_account", "to_account", "amount", "currency", "idempotency_key",
                                "linked", "metadata", "pending", "timeout_seconds", "rate",
                                "original_transaction_id"})
# The keys of a plain batch item; an item with exactly these skips the checks for extras.
_PLAIN_KEYS: Final = frozenset({"type", "from_account", "to_account", "amount", "currency", "idempotency_key"})
_CURRENCY_CODES: Final = frozenset(CURRENCIES)
_FAST_TYPES: Final[dict[object, str]] = {
    "TRANSFER": "TRANSFER", "PAYMENT": "PAYMENT",
    TransactionType.TRANSFER: "TRANSFER", TransactionType.PAYMENT: "PAYMENT",
}


def _is_exchange(value: object) -> bool:
    try:
        return _tx_type(value) == TransactionType.EXCHANGE
    except LedgerError:
        return False


def _tx_type(value: object) -> TransactionType:
    if isinstance(value, TransactionType):
        return value
    known = _TYPES_BY_NAME.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    try:
        return TransactionType(str(value).upper())
    except ValueError:
        raise LedgerError(E.INVALID_REQUEST, f"unknown transaction type {str(value)[:20]!r}") from None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class FinancialKernel:
    """The ledger, in process. See the module docstring and docs/ARCHITECTURE.md."""

    def __init__(self, config: Mapping[str, Any] | str | os.PathLike[str] | Settings | None = None, *,
                 envelope: Envelope | None = None) -> None:
        """``envelope``: the encryption of sensitive metadata (built from the settings on first
        need when None; see qenex.sdk.sealing)."""
        self.settings = load_settings(config)
        self._url: str | None = None
        self._pool: AsyncConnectionPool[AConn] | None = None
        self._writer_conn: AConn | None = None
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._carry: _Job | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._sweeper_task: asyncio.Task[None] | None = None
        self._system: dict[str, dict[str, int]] = {}
        self._currency: dict[int, str] = {}
        self._sealer = MetadataSealer(self.settings, lambda: self.conninfo, envelope)

    # ---- lifetime ------------------------------------------------------------------------------
    @property
    def conninfo(self) -> str:
        if self._url is None:
            raise LedgerError(E.INVALID_REQUEST, "the kernel is not initialised; call initialize() first")
        return self._url

    async def initialize(self) -> None:
        """Connect (async pool), apply pending migrations, start the writer."""
        if self._pool is not None:
            return
        self._url = await asyncio.to_thread(database_url, self.settings)
        await asyncio.to_thread(migrate, self._url)
        pool: AsyncConnectionPool[AConn] = AsyncConnectionPool(
            self._url, min_size=1, max_size=self.settings.database.pool_size, open=False,
            kwargs={"autocommit": True}, configure=S.use_runtime_role,
        )
        await pool.open(wait=True)
        self._pool = pool
        self._writer_conn = await self._connect_writer()
        self._writer_task = asyncio.create_task(self._writer_loop(), name="qenex-ledger-writer")
        self._sweeper_task = asyncio.create_task(self._sweeper_loop(), name="qenex-ledger-sweeper")

    async def shutdown(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._sweeper_task is not None:
            self._sweeper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper_task
            self._sweeper_task = None
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
            self._writer_task = None
        if self._writer_conn is not None:
            await self._writer_conn.close()
            self._writer_conn = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> FinancialKernel:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def _require_pool(self) -> AsyncConnectionPool[AConn]:
        if self._pool is None:
            raise LedgerError(E.INVALID_REQUEST, "the kernel is not initialised; call initialize() first")
        return self._pool

    # ---- the writer (group commit) ---------------------------------------------------------------
    async def _writer_loop(self) -> None:
        while True:
            job = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            if job is None:
                return
            jobs, count, stop = [job], len(job.commands), False
            while count < BATCH_ITEMS_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stop = True
                    break
                if count + len(nxt.commands) > BATCH_ITEMS_MAX:
                    self._carry = nxt
                    break
                jobs.append(nxt)
                count += len(nxt.commands)
            await self._execute(jobs)
            if stop:
                if self._carry is not None:
                    await self._execute([self._carry])
                    self._carry = None
                while not self._queue.empty():  # drain what arrived meanwhile
                    rest = self._queue.get_nowait()
                    if rest is not None:
                        await self._execute([rest])
                return

    async def _writer_connection(self) -> AConn:
        conn = self._writer_conn
        if conn is None or conn.closed or conn.broken:
            conn = self._writer_conn = await self._connect_writer()
        return conn

    async def _connect_writer(self) -> AConn:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        await S.configure_writer(conn)
        return conn

    async def _execute(self, jobs: list[_Job]) -> None:
        commands = [c for job in jobs for c in job.commands]
        # Where each caller's call ends (no linked chain may run across one), and which part of
        # the batch each caller's audit note reports on.
        ends: list[int] = []
        outbox: list[tuple[int, int, Any]] = []
        total = 0
        for job in jobs:
            if job.note is not None:
                outbox.append((total, total + len(job.commands), job.note.record))
            total += len(job.commands)
            if job.commands:
                ends.append(total)
        try:
            conn = await self._writer_connection()
            results = await S.run_batch(conn, commands, _merge_known(jobs), ends if len(jobs) > 1 else None,
                                        outbox or None)
        except Exception as exc:  # noqa: BLE001 - the writer must survive; every waiting caller gets the error
            if len(jobs) > 1 and not isinstance(exc, psycopg.OperationalError):
                for job in jobs:  # one caller's bad input must not fail the others: retry each alone
                    await self._execute([job])
                return
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.commands)
            if job.note is not None:
                job.note.written = True
            if not job.future.done():
                job.future.set_result(results[start:end])
            start = end

    async def _submit(self, commands: list[Command], known: S.KnownKeys | None = None,
                      note: AuditNote | None = None) -> list[ItemResult]:
        if self._writer_task is None:
            raise LedgerError(E.INVALID_REQUEST, "the kernel is not initialised; call initialize() first")
        future: asyncio.Future[list[ItemResult]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(commands, future, known, note))
        return await future

    async def _sweeper_loop(self) -> None:
        """Releases expired reservations even when no posting touches them (each batch sweeps)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_INTERVAL_SECONDS)
            with contextlib.suppress(psycopg.Error, LedgerError, OSError):
                await self._submit([])

    # ---- helpers -------------------------------------------------------------------------------
    async def _system_accounts(self, currency: str) -> dict[str, int]:
        known = self._system.get(currency)
        if known is None:
            async with self._require_pool().connection() as conn:
                known = await S.ensure_system_accounts(conn, currency)
            self._system[currency] = known
        return known

    async def _currencies(self, ids: Sequence[int]) -> None:
        missing = [i for i in ids if i not in self._currency]
        if missing:
            async with self._require_pool().connection() as conn:
                self._currency.update(await S.account_currencies(conn, missing))

    def _currency_for(self, account_id: int) -> str:
        cur = self._currency.get(account_id)
        if cur is None:
            raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
        return cur

    async def _prepare_prefetching(self, items: Sequence[Mapping[str, Any]]
                                   ) -> tuple[list[Command], S.KnownKeys | None]:
        """_prepare, and for a large batch its idempotency keys looked up meanwhile: the lookup
        task is given a few loop turns to take a pool connection and send its query, then the
        items are built while the server runs it, so the server's part of the read overlaps the
        client's validation instead of following it under the lock. (Should the query not be
        sent yet, it only overlaps less.)"""
        keys = _item_keys(items) if len(items) >= PREFETCH_ITEMS_MIN else []
        if not keys:
            return await self._prepare(items), None
        lookup = asyncio.create_task(self._prefetch(keys))
        for _ in range(PREFETCH_SEND_YIELDS):  # let the task take a connection and send the query
            await asyncio.sleep(0)
        fast = self._build_all_fast(items)
        return await self._prepare(items, fast), await lookup

    async def _prefetch(self, keys: list[str]) -> S.KnownKeys | None:
        """None when the lookup fails: the keys are then read under the lock, as without prefetch."""
        try:
            async with self._require_pool().connection() as conn:
                return await S.prefetch_idempotency(conn, keys)
        except psycopg.Error:
            return None

    def _build_all_fast(self, items: Sequence[Mapping[str, Any]]) -> list[NewTransaction | None]:
        build_fast = self._build_fast
        return [build_fast(item) for item in items]

    async def _prepare(self, items: Sequence[Mapping[str, Any]],
                       fast: list[NewTransaction | None] | None = None) -> list[Command]:
        """Build the commands: plain transfers directly (or take ``fast``, already built); the rest
        once what they need (account currencies, system accounts) is resolved.

        Nothing here rejects: a malformed item becomes a Rejected command, so it fails alone
        (or fails its linked chain) like any other item."""
        if fast is None:
            fast = self._build_all_fast(items)
        slow = [item for item, cmd in zip(items, fast, strict=True) if cmd is None]
        if not slow:
            return fast  # type: ignore[return-value]  # no None left
        await self._resolve(slow)
        sealed = iter(await self._seal_all([item.get("metadata") for item in slow], TRANSACTIONS_TABLE,
                                           TRANSACTION_BINDING))
        return [cmd if cmd is not None else self._build_slow(item, next(sealed))
                for item, cmd in zip(items, fast, strict=True)]

    async def _resolve(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Cache the currencies of accounts the items leave it to, and the system accounts of
        every currency they name."""
        need: list[int] = []
        currencies: set[str] = set()
        for item in items:
            cur = item.get("currency")
            if isinstance(cur, str):
                currencies.add(cur.upper())
            if cur is None or _is_exchange(item.get("type")):
                for name in ("from_account", "to_account"):
                    with contextlib.suppress(LedgerError):
                        if item.get(name) is not None:
                            need.append(_account_id(item[name], name))
        if need:
            await self._currencies(need)
            currencies.update(self._currency[i] for i in need if i in self._currency)
        for cur in currencies:
            if cur not in self._system and get_currency(cur) is not None:
                await self._system_accounts(cur)

    def _build_slow(self, item: Mapping[str, Any], sealed: _Meta | QenexError | None = None) -> Command:
        linked = bool(item.get("linked", False))
        if isinstance(sealed, QenexError):
            return Rejected(sealed.code, sealed.message, linked)
        try:
            return self._build_checked(item, linked, sealed)
        except LedgerError as exc:
            return Rejected(exc.code, exc.message, linked)

    async def _seal_all(self, metas: Sequence[Any], table: str, binding: str) -> list[_Meta | QenexError | None]:
        """Per metadata value: (stored text, digest text) when it holds a sensitive field, the
        error that refuses it, or None (nothing to seal). One thread hop for all."""
        out: list[_Meta | QenexError | None] = []
        todo: list[int] = []
        for meta in metas:
            try:
                sensitive = needs_sealing(meta)
            except QenexError as exc:  # a malformed "sensitive" marker fails this value alone
                out.append(exc)
                continue
            if sensitive:
                todo.append(len(out))
            out.append(None)
        if todo:
            sealed = await asyncio.to_thread(lambda: [self._seal_now(metas[i], table, binding) for i in todo])
            for i, meta in zip(todo, sealed, strict=True):
                out[i] = meta
        return out

    def _seal_now(self, metadata: Any, table: str, binding: str) -> _Meta | QenexError:
        try:
            _metadata_text(metadata)  # the clear value's own checks (type, size) come first
            return (_metadata_text(self._sealer.seal_sync(metadata, table, binding)),
                    self._sealer.fingerprint(metadata))
        except QenexError as exc:
            return exc

    async def _meta(self, metadata: Any, table: str, binding: str) -> _Meta:
        """(stored metadata text, the text an idempotency digest takes) for one call."""
        sealed = (await self._seal_all([metadata], table, binding))[0]
        if sealed is None:
            return _plain_meta(metadata)
        if isinstance(sealed, QenexError):
            raise sealed
        return sealed

    def _build_fast(self, item: Mapping[str, Any]) -> NewTransaction | None:
        """The common item (a plain TRANSFER or PAYMENT between integer ids, no extras) with fewer
        checks to repeat; anything else, or anything doubtful, goes the general way."""
        get = item.get
        keys = item.keys()
        if keys != _PLAIN_KEYS:  # the extras must be absent or neutral (process_transaction passes all)
            if not keys <= _FAST_KEYS or get("metadata") is not None or get("pending") \
                    or get("timeout_seconds") is not None:
                return None
        kind = get("type")
        if not isinstance(kind, str):  # also keeps an unhashable value away from the dict lookup
            return None
        tx_type, frm, to, code = _FAST_TYPES.get(kind), get("from_account"), get("to_account"), get("currency")
        if (tx_type is None or type(frm) is not int or type(to) is not int or not 0 < frm <= ID_MAX
                or not 0 < to <= ID_MAX or type(code) is not str or code not in _CURRENCY_CODES):
            return None
        key = get("idempotency_key")
        if key is not None and (type(key) is not str or not 0 < len(key) <= IDEMPOTENCY_KEY_CHARS_MAX
                                or "\x00" in key):
            return None
        try:
            amount = _minor(get("amount"), code)
        except LedgerError:
            return None
        linked = bool(get("linked", False))
        digest = b"" if key is None else _fast_digest(tx_type, frm, to, amount, code, linked)
        return NewTransaction(tx_type, (Leg(frm, to, amount, code),), None, False, None, None, key, digest, linked)

    def _build_checked(self, item: Mapping[str, Any], linked: bool, sealed: _Meta | None = None) -> Command:
        tx_type = _tx_type(item.get("type"))
        key = _key(item.get("idempotency_key"))
        meta, meta_digest = sealed if sealed is not None else _plain_meta(item.get("metadata"))
        if tx_type == TransactionType.REVERSAL:
            original = _account_id(item.get("original_transaction_id"), "original_transaction_id")
            return Reverse(original, meta, key, _digest("reverse", original, meta_digest), linked)
        frm = None if item.get("from_account") is None else _account_id(item["from_account"], "from_account")
        to = None if item.get("to_account") is None else _account_id(item["to_account"], "to_account")
        code = item.get("currency")
        if code is None:
            anchor = frm if frm is not None else to
            if anchor is None:
                raise LedgerError(E.INVALID_REQUEST, "currency or an account is required")
            code = self._currency_for(anchor)
        currency = currency_of(str(code).upper() if isinstance(code, str) else code)
        amount = _minor(item.get("amount"), currency.code)
        pending = bool(item.get("pending", False))
        timeout = item.get("timeout_seconds")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                    or not 1 <= timeout <= PENDING_TIMEOUT_SECONDS_MAX):
            raise LedgerError(E.INVALID_REQUEST, f"timeout_seconds must be an integer 1-{PENDING_TIMEOUT_SECONDS_MAX}")
        rate_text: str | None = None
        if tx_type == TransactionType.EXCHANGE:
            legs, rate_text = self._exchange_legs(frm, to, amount, currency.code, item)
        else:
            legs = (self._simple_leg(tx_type, frm, to, amount, currency.code),)
        digest = b"" if key is None else _digest(
            "tx", tx_type.value, frm, to, amount, currency.code, meta_digest, pending, timeout, rate_text, linked)
        return NewTransaction(tx_type.value, legs, meta, pending, timeout, rate_text, key, digest, linked)

    def _simple_leg(self, tx_type: TransactionType, frm: int | None, to: int | None, amount: int,
                    currency: str) -> Leg:
        system = self._system.get(currency, {})
        default_from = {TransactionType.DEPOSIT: "cash", TransactionType.INTEREST: "interest_expense",
                        TransactionType.ADJUSTMENT: "adjustments"}
        default_to = {TransactionType.WITHDRAWAL: "cash", TransactionType.FEE: "fee_income",
                      TransactionType.ADJUSTMENT: "adjustments"}
        if frm is None and tx_type in default_from:
            frm = system.get(default_from[tx_type])
        if to is None and tx_type in default_to:
            to = system.get(default_to[tx_type])
        if frm is None or to is None:
            raise LedgerError(E.INVALID_REQUEST, f"{tx_type.value} needs from_account and to_account")
        return Leg(frm, to, amount, currency)

    def _exchange_legs(self, frm: int | None, to: int | None, amount: int, currency: str,
                       item: Mapping[str, Any]) -> tuple[tuple[Leg, ...], str]:
        if frm is None or to is None:
            raise LedgerError(E.INVALID_REQUEST, "EXCHANGE needs from_account and to_account")
        target = self._currency_for(to)
        if target == currency:
            raise LedgerError(E.CURRENCY_MISMATCH, "EXCHANGE needs accounts in two different currencies")
        if item.get("rate") is None:
            raise LedgerError(E.INVALID_REQUEST, "EXCHANGE needs a rate (units of the target currency per unit)")
        rate = parse_decimal(item["rate"])
        if not Decimal(0) < rate <= FX_RATE_MAX:
            raise LedgerError(E.INVALID_AMOUNT, "rate must be positive and bounded")
        converted = convert_minor(amount, currency, rate, target, ROUND_HALF_EVEN)
        if converted <= 0:
            raise LedgerError(E.INVALID_AMOUNT, "converted amount rounds to zero")
        src_fx = self._system.get(currency, {}).get("fx_position")
        dst_fx = self._system.get(target, {}).get("fx_position")
        if src_fx is None or dst_fx is None:
            raise LedgerError(E.INVALID_CURRENCY, "no FX position account for this currency pair")
        legs = (Leg(frm, src_fx, amount, currency), Leg(dst_fx, to, converted, target))
        return legs, format(rate, "f")

    @staticmethod
    def _result(r: ItemResult) -> TransactionResult:
        return TransactionResult(r.error is None, r.result_id, r.error, r.replayed)

    # ---- transactions --------------------------------------------------------------------------
    async def process_transaction(
        self,
        transaction_type: TransactionType | str,
        from_account: int | None = None,
        to_account: int | None = None,
        amount: Decimal | str | int | None = None,
        currency: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        *,
        pending: bool = False,
        timeout_seconds: int | None = None,
        rate: Decimal | str | None = None,
        original_transaction_id: int | None = None,
        audit: AuditNote | None = None,
    ) -> int:
        """Post one transaction; returns its id or raises LedgerError (``.code``)."""
        item = {"type": transaction_type, "from_account": from_account, "to_account": to_account,
                "amount": amount, "currency": currency, "metadata": metadata, "idempotency_key": idempotency_key,
                "pending": pending, "timeout_seconds": timeout_seconds, "rate": rate,
                "original_transaction_id": original_transaction_id}
        result = (await self.process_transactions([item], audit=audit))[0]
        if result.error is not None:
            raise result.error
        if result.transaction_id is None:
            raise LedgerError(E.INVALID_REQUEST, "transaction produced no id")
        return result.transaction_id

    async def process_transactions(self, items: Sequence[Mapping[str, Any]], *,
                                   audit: AuditNote | None = None) -> list[TransactionResult]:
        """Many transactions in one database transaction; one result per item, in order.

        Items are independent unless ``linked``: an item with ``linked: True`` is chained to the
        next one, and a chain succeeds or fails as one (others fail with linked_event_failed).
        The last item must not be linked: a chain left open fails as a whole with
        ``linked_chain_open`` (none of its items runs). Keyed items remember their outcome,
        rejections included (see the module docstring).
        """
        if len(items) > BATCH_ITEMS_MAX:
            raise LedgerError(E.BATCH_TOO_LARGE, f"a batch holds at most {BATCH_ITEMS_MAX} items")
        for item in items:  # a dict needs no (slower) ABC check
            if type(item) is not dict and not isinstance(item, Mapping):
                raise LedgerError(E.INVALID_REQUEST, "every batch item must be a mapping")
        if not items:
            return []
        commands, known = await self._prepare_prefetching(items)
        return [self._result(r) for r in await self._submit(commands, known, audit)]

    async def _one(self, command: Command, note: AuditNote | None = None) -> int:
        result = (await self._submit([command], None, note))[0]
        if result.error is not None:
            raise result.error
        if result.result_id is None:
            raise LedgerError(E.INVALID_REQUEST, "operation produced no id")
        return result.result_id

    async def post_pending(self, pending_id: int, amount: Decimal | str | int | None = None, *,
                           metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                           audit: AuditNote | None = None) -> int:
        """Post a reservation in full (amount None) or in part; returns the posting transaction id.

        For idempotency, "post in full" (amount None) and an explicit amount are different
        requests even when the amount equals the reservation's: the full amount is only known
        under the ledger lock, and a request is compared as the caller stated it. Reuse a key
        with the same form of the request."""
        pid = _account_id(pending_id, "pending_id")
        minor: int | None = None
        if amount is not None:
            tx = await self.get_transaction(pid)
            if tx is None:
                raise LedgerError(E.TRANSACTION_NOT_FOUND, f"transaction {pid} does not exist")
            minor = to_minor(amount, tx.currency)
        meta, meta_digest = await self._meta(metadata, TRANSACTIONS_TABLE, TRANSACTION_BINDING)
        key = _key(idempotency_key)
        return await self._one(PostPending(pid, minor, meta, key, _digest("post", pid, minor, meta_digest)), audit)

    async def void_pending(self, pending_id: int, *, metadata: Mapping[str, Any] | None = None,
                           idempotency_key: str | None = None, audit: AuditNote | None = None) -> int:
        """Release a reservation; returns the void record's transaction id."""
        pid = _account_id(pending_id, "pending_id")
        meta, meta_digest = await self._meta(metadata, TRANSACTIONS_TABLE, TRANSACTION_BINDING)
        return await self._one(VoidPending(pid, meta, _key(idempotency_key), _digest("void", pid, meta_digest)),
                               audit)

    async def reverse_transaction(self, transaction_id: int, *, metadata: Mapping[str, Any] | None = None,
                                  idempotency_key: str | None = None, audit: AuditNote | None = None) -> int:
        """A compensating entry for a posted transaction; returns the reversal's id."""
        tid = _account_id(transaction_id, "transaction_id")
        meta, meta_digest = await self._meta(metadata, TRANSACTIONS_TABLE, TRANSACTION_BINDING)
        return await self._one(Reverse(tid, meta, _key(idempotency_key), _digest("reverse", tid, meta_digest)),
                               audit)

    # ---- accounts ------------------------------------------------------------------------------
    async def create_account(
        self,
        owner_id: str,
        account_type: AccountType | str = AccountType.CHECKING,
        currency: str = "USD",
        initial_balance: Decimal | str | int | None = None,
        *,
        overdraft_limit: Decimal | str | int | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        audit: AuditNote | None = None,
    ) -> Account:
        """Open an account; a positive initial balance is posted as a DEPOSIT in the same transaction."""
        if not isinstance(owner_id, str) or not 1 <= len(owner_id) <= OWNER_ID_CHARS_MAX or "\x00" in owner_id:
            raise LedgerError(E.INVALID_REQUEST, f"owner_id must be a string of 1-{OWNER_ID_CHARS_MAX} chars")
        try:
            acct_type = AccountType(str(getattr(account_type, "value", account_type)).upper())
        except ValueError:
            raise LedgerError(E.INVALID_REQUEST, f"unknown account type {str(account_type)[:20]!r}") from None
        cur = currency_of(currency.upper() if isinstance(currency, str) else currency)
        initial = 0 if initial_balance is None else to_minor(initial_balance, cur, allow_zero=True)
        overdraft = 0 if overdraft_limit is None else to_minor(overdraft_limit, cur, allow_zero=True)
        if overdraft and acct_type.value not in ("CHECKING", "SAVINGS"):
            raise LedgerError(E.INVALID_REQUEST, "only CHECKING and SAVINGS accounts take an overdraft limit")
        if initial and acct_type.value not in CUSTOMER_TYPES - {"LOAN"}:
            raise LedgerError(E.INVALID_REQUEST, "an initial balance needs a CHECKING or SAVINGS account")
        stored, meta_digest = await self._meta(metadata, ACCOUNTS_TABLE, account_binding(owner_id))
        meta = stored or "{}"
        key = _key(idempotency_key)
        digest = _digest("account", owner_id, acct_type.value, cur.code, initial, overdraft, meta_digest or "{}")
        system = await self._system_accounts(cur.code)
        account_id = await self._create_account_tx(owner_id, acct_type.value, cur.code, initial, overdraft, meta,
                                                   key, digest, system["cash"], audit)
        account = await self.get_account(account_id)
        if account is None:
            raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
        return account

    async def _create_account_tx(self, owner_id: str, acct_type: str, currency: str, initial: int, overdraft: int,
                                 meta: str, key: str | None, digest: bytes, cash: int,
                                 audit: AuditNote | None = None) -> int:
        async with self._require_pool().connection() as conn, conn.transaction():
            await S.lock_ledger(conn)
            replayed = False
            account_id: int | None = None
            if key is not None:
                known = await S.idempotent_lookup(conn, key, digest)
                if isinstance(known, LedgerError):
                    raise known
                if known is not None:
                    account_id, replayed = known, True
            if account_id is None:
                account_id = await S.insert_account(conn, owner_id, acct_type, currency, overdraft, meta)
                if initial:
                    deposit = NewTransaction("DEPOSIT", (Leg(cash, account_id, initial, currency),),
                                             _metadata_text({"reason": "initial_balance"}))
                    result = (await S.plan_and_write(conn, [deposit]))[0]
                    if result.error is not None:
                        raise result.error
                if key is not None:
                    await S.record_idempotency(conn, key, digest, account_id)
            if audit is not None:
                outcome = [ItemResult(account_id, None, replayed)]
                await S.insert_outbox(conn, S.outbox_payloads([(0, 1, audit.record)], outcome))
        if audit is not None:
            audit.written = True
        self._currency[account_id] = currency
        return account_id

    async def get_account(self, account_id: int) -> Account | None:
        aid = _account_id(account_id, "account_id")
        async with self._require_pool().connection() as conn:
            row = await S.fetch_account(conn, aid)
        return None if row is None else await self._opened(_account_view(row))

    async def _existing_account(self, account_id: int) -> Account:
        account = await self.get_account(account_id)
        if account is None:
            raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
        return account

    async def get_account_balance(self, account_id: int) -> Decimal:
        """Posted balance on the account's normal side (a customer deposit account: credits - debits)."""
        return (await self._existing_account(account_id)).balances.posted

    async def list_accounts(self, owner_id: str | None = None, status: str | None = None, after: int | None = None,
                            limit: int = 100, *, include_system: bool = False) -> list[Account]:
        """Customer accounts in id order (with ``include_system``, the general-ledger system
        accounts too); pass the last id as ``after`` for the next page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_ACCOUNTS_LIMIT_MAX:
            raise LedgerError(E.INVALID_REQUEST, f"limit must be an integer 1-{LIST_ACCOUNTS_LIMIT_MAX}")
        if status is not None and status not in {s.value for s in AccountStatus}:
            raise LedgerError(E.INVALID_REQUEST, "status must be active, frozen or closed")
        cursor = None if after is None else _account_id(after, "after")
        async with self._require_pool().connection() as conn:
            rows = await S.list_accounts(conn, owner_id, status, cursor, limit, include_system=bool(include_system))
        return [await self._opened(_account_view(r)) for r in rows]

    async def _admin(self, account_id: int, key: object, *, status: str | None = None,
                     overdraft: int | None = None, audit: AuditNote | None = None) -> Account:
        """A status or overdraft change. With a key, the outcome is remembered like a posting's:
        a retry answers the original outcome (the account as it is now, or the same error)."""
        aid = _account_id(account_id, "account_id")
        idem = _key(key)
        digest = _digest("admin", aid, status, overdraft)
        async with self._require_pool().connection() as conn:
            row, error = await S.update_account_admin(conn, aid, status=status, overdraft_minor=overdraft, key=idem,
                                                      digest=digest, note=None if audit is None else audit.record)
        if audit is not None:
            audit.written = True
        if error is not None:
            raise error
        check(row is not None, "an admin call that committed returns the account")
        return await self._opened(_account_view(row))  # type: ignore[arg-type]  # checked just above

    async def freeze_account(self, account_id: int, *, idempotency_key: str | None = None,
                             audit: AuditNote | None = None) -> Account:
        """Freeze an account: every posting to or from it is rejected (account_frozen)."""
        return await self._admin(account_id, idempotency_key, status="frozen", audit=audit)

    async def unfreeze_account(self, account_id: int, *, idempotency_key: str | None = None,
                               audit: AuditNote | None = None) -> Account:
        return await self._admin(account_id, idempotency_key, status="active", audit=audit)

    async def close_account(self, account_id: int, *, idempotency_key: str | None = None,
                            audit: AuditNote | None = None) -> Account:
        """Close an account with a zero balance and no open reservation (account_not_empty otherwise)."""
        return await self._admin(account_id, idempotency_key, status="closed", audit=audit)

    async def set_overdraft_limit(self, account_id: int, limit: Decimal | str | int, *,
                                  idempotency_key: str | None = None, audit: AuditNote | None = None) -> Account:
        """Set how far below zero a CHECKING or SAVINGS account may go."""
        account = await self._existing_account(account_id)
        return await self._admin(account.id, idempotency_key,
                                 overdraft=to_minor(limit, account.currency, allow_zero=True), audit=audit)

    # ---- reads ---------------------------------------------------------------------------------
    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        """A transaction by id, or None if unknown."""
        if isinstance(transaction_id, bool) or not isinstance(transaction_id, int):
            try:
                transaction_id = _account_id(transaction_id, "transaction_id")
            except LedgerError:
                return None
        async with self._require_pool().connection() as conn:
            legs, pend, reversed_by = await S.fetch_transaction(conn, transaction_id)
        if not legs:
            return None
        tx = _transaction_view(legs, pend, reversed_by)
        if not has_sealed(tx.metadata):
            return tx
        return dataclasses.replace(tx, metadata=await self._sealer.open(tx.metadata, TRANSACTIONS_TABLE,
                                                                       TRANSACTION_BINDING))

    async def statement(self, account_id: int, start: datetime, end: datetime) -> Statement:
        """Opening balance, posted entries in [start, end) and closing balance of one account."""
        account = await self._existing_account(account_id)
        start, end = _as_utc(start), _as_utc(end)
        if end <= start:
            raise LedgerError(E.INVALID_REQUEST, "statement end must be after its start")
        async with self._require_pool().connection() as conn:
            open_d, open_c, rows = await S.statement_rows(conn, account.id, start, end, STATEMENT_ENTRIES_MAX)
        metas = await self._sealer.open_many([json.loads(r[11]) if r[11] else {} for r in rows],
                                             TRANSACTIONS_TABLE, TRANSACTION_BINDING)
        return _statement_view(account, start, end, open_d, open_c, rows, metas)

    async def _opened(self, account: Account) -> Account:
        """The account with its sealed metadata fields decrypted."""
        if not has_sealed(account.metadata):
            return account
        return dataclasses.replace(account, metadata=await self._sealer.open(
            account.metadata, ACCOUNTS_TABLE, account_binding(account.owner_id)))

    async def events(self, after_seq: int = 0, *,
                     poll_interval_seconds: float = EVENTS_POLL_INTERVAL_SECONDS) -> AsyncIterator[LedgerEvent]:
        """Ledger events after a journal sequence number, forever; resumable by ``event.seq``.

        The journal is the outbox: every committed batch sends one NOTIFY; the iterator reads
        the rows after its last seq, so nothing is lost while no one listens.
        """
        last = after_seq
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            await S.use_runtime_role(conn)
            await conn.execute(f"LISTEN {S.NOTIFY_CHANNEL}")
            while True:
                rows = await S.journal_after(conn, last, EVENTS_PAGE_ROWS_MAX)
                for row in rows:
                    for event in _events_of(row):
                        yield event
                    last = row[0]
                if len(rows) < EVENTS_PAGE_ROWS_MAX:
                    async for _ in conn.notifies(timeout=poll_interval_seconds, stop_after=1):
                        pass
        finally:
            await conn.close()


# ---- row -> view -------------------------------------------------------------------------------

def _balances(account_type: str, currency: str, dp: int, cp: int, dpend: int, cpend: int) -> Balances:
    if account_type in DEBIT_NORMAL_TYPES:
        posted, pending, available = dp - cp, dpend - cpend, dp - cp - cpend
    else:
        posted, pending, available = cp - dp, cpend - dpend, cp - dp - dpend
    return Balances(
        posted=_signed(posted, currency), pending=_signed(pending, currency), available=_signed(available, currency),
        debits_posted=from_minor(dp, currency), credits_posted=from_minor(cp, currency),
        debits_pending=from_minor(dpend, currency), credits_pending=from_minor(cpend, currency),
    )


def _signed(minor: int, currency: str) -> Decimal:
    return -from_minor(-minor, currency) if minor < 0 else from_minor(minor, currency)


def _account_view(row: Sequence[Any]) -> Account:
    (aid, owner, acct_type, currency, status, overdraft, system_code, meta, dp, cp, dpend, cpend, created) = row
    return Account(
        id=aid, owner_id=owner, account_type=acct_type, currency=currency, status=status,
        overdraft_limit=from_minor(overdraft, currency), metadata=json.loads(meta or "{}"),
        balances=_balances(acct_type, currency, dp, cp, dpend, cpend), created_at=created, system_code=system_code,
    )


def _transaction_view(legs: list[tuple[Any, ...]], pend: tuple[Any, ...] | None, reversed_by: int | None
                      ) -> Transaction:
    first = legs[0]
    kind = first[3]
    if kind == EntryKind.PENDING and pend is not None:
        status = _PENDING_STATUS[pend[0]]
    elif kind == EntryKind.VOID:
        status = "voided"
    elif kind == EntryKind.EXPIRE:
        status = "expired"
    else:
        status = "reversed" if reversed_by is not None else "posted"
    return Transaction(
        id=first[1], type=TransactionType(first[4]), status=status, kind=_KIND_NAMES[kind],
        amount=from_minor(first[7], first[8]), currency=first[8], from_account=first[5], to_account=legs[-1][6],
        legs=tuple(TransactionLeg(g[5], g[6], from_minor(g[7], g[8]), g[8]) for g in legs),
        metadata=json.loads(first[11]) if first[11] else {}, created_at=first[12], related_transaction_id=first[9],
        fx_rate=first[10],
        resolved_by=pend[1] if pend is not None and pend[0] != PendingState.OPEN else None,
        reversed_by=reversed_by, expires_at=pend[2] if pend is not None else None,
    )


def _statement_view(account: Account, start: datetime, end: datetime, open_d: int, open_c: int,
                    rows: list[tuple[Any, ...]], metas: list[Any]) -> Statement:
    debit_normal = account.account_type in DEBIT_NORMAL_TYPES
    cur = account.currency
    balance = (open_d - open_c) if debit_normal else (open_c - open_d)
    opening = balance
    entries = []
    for r, meta in zip(rows, metas, strict=True):
        is_debit = r[5] == account.id
        amount = r[7]
        effect = amount if is_debit == debit_normal else -amount
        balance += effect
        entries.append(StatementEntry(
            seq=r[0], transaction_id=r[1], type=r[4], created_at=r[12],
            debit=from_minor(amount if is_debit else 0, cur), credit=from_minor(0 if is_debit else amount, cur),
            amount=_signed(effect, cur), balance=_signed(balance, cur), counterparty=r[6] if is_debit else r[5],
            description=str(meta.get("description", ""))[:200] if isinstance(meta, dict) else "",
        ))
    return Statement(account.id, cur, start, end, _signed(opening, cur), _signed(balance, cur), tuple(entries))


def _events_of(row: tuple[Any, ...]) -> list[LedgerEvent]:
    kind = row[3]

    def ev(name: str, status: str) -> LedgerEvent:
        return LedgerEvent(seq=row[0], event=name, transaction_id=row[1], type=row[4], status=status,
                           amount=from_minor(row[7], row[8]), currency=row[8], from_account=row[5],
                           to_account=row[6], related_transaction_id=row[9], created_at=row[12])

    if kind == EntryKind.POSTED:
        return [ev("transaction.created", "posted"), ev("transaction.completed", "posted")]
    if kind == EntryKind.PENDING:
        return [ev("transaction.created", "pending")]
    if kind == EntryKind.POST_PENDING:
        return [ev("transaction.completed", "posted")]
    if kind == EntryKind.VOID:
        return [ev("transaction.voided", "voided")]
    return [ev("transaction.expired", "expired")]
