"""The tamper-evident audit trail: a hash-chained, append-only log with ML-DSA-signed checkpoints.

* ``record_event_sync`` / ``record_event`` append one record inside the caller's transaction;
  ``record_events_sync`` / ``record_events`` append several in order with one lock acquisition
  and one tail read (for group commit). An advisory transaction lock serializes writers, so ids
  are contiguous (1, 2, 3 ...) and each record's ``prev_hash`` is its predecessor's ``hash``:
  ``hash = SHA-256(prev_hash || canonical JSON of (id, time, actor, action, resource, outcome,
  source_ip, details))``.
* Database triggers refuse UPDATE, DELETE and TRUNCATE on the log, checkpoints and signing keys.
* ``checkpoint`` signs the chain head (record id + hash) with ML-DSA-65 (FIPS 204, from
  ``cryptography``); one is written automatically every CHECKPOINT_INTERVAL_RECORDS records, by
  the API server's audit writer every ``security.audit_checkpoint_seconds`` when records are
  new, and on demand (``qenex audit checkpoint``). The signing key's seed is stored sealed by the
  envelope (master key); its public key is recorded with every checkpoint.
* ``verify_audit_log`` re-walks the chain and checks every checkpoint signature, and that each
  signing key is attested by the master key (its sealed seed opens and derives the public key),
  so an attacker who rewrites the table and signs with a key of their own is caught.
  The trail is *not* intact (``ok`` False) when:
  - a record or checkpoint was modified, deleted, inserted or forged;
  - a signing key is not attested, including when the master key is unavailable to the
    verifier (nothing can vouch for the signatures then);
  - a record after the last checkpoint is older than the unsigned window
    (``unsigned_window_s``: UNSIGNED_RECORD_AGE_MAX_S, or three checkpoint intervals if that
    is longer): a tail rewritten by someone holding the database alone cannot be told from the
    real one, so unsigned records are tolerated only that long.

Details are passed through the redaction filter: secrets and card numbers never get stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey
from psycopg import sql
from psycopg.types.json import Jsonb

from qenex.config import load_settings
from qenex.errors import QenexError
from qenex.observability.redaction import redact_value
from qenex.security.envelope import Envelope, aad_for
from qenex.security.inputs import forbidden_text
from qenex.security.keyproviders import MasterKeyProvider, provider_from_settings

log = logging.getLogger("qenex.audit")

GENESIS_HASH = bytes(32)
RECORD_FORMAT_VERSION = 1
CHECKPOINT_INTERVAL_RECORDS = 1000
# How long a record may stay after the last signed checkpoint before `verify_audit_log` fails.
UNSIGNED_RECORD_AGE_MAX_S = 900
SIGNING_ALGORITHM = "ML-DSA-65"
SIGNATURE_CONTEXT = b"qenex-audit-checkpoint-v1"
SIGNING_PURPOSE = "audit-signing"
ACTOR_CHARS_MAX = 256
ACTION_CHARS_MAX = 128
RESOURCE_CHARS_MAX = 512
SOURCE_IP_CHARS_MAX = 128
DETAILS_BYTES_MAX = 16_384
QUERY_LIMIT_MAX = 1000
RECORD_BATCH_EVENTS_MAX = 10_000
PROBLEMS_MAX = 100
VERIFY_FETCH_ROWS = 2000
# Advisory lock (namespace, id) serializing the chain and its checkpoints.
_LOCK_NAMESPACE = 0x51454E58
_CHAIN_LOCK_ID = 2
_OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ACTION_RE = re.compile(r"^[A-Za-z0-9_.:\-/]{1,128}$")


class AuditError(QenexError):
    code = "invalid_audit_request"
    http_status = 400


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to which resource, from where, and how it ended. Never put secrets in details."""

    actor: str
    action: str
    resource: str = ""
    outcome: str = "success"
    source_ip: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    occurred_at: datetime
    actor: str
    action: str
    resource: str
    outcome: str
    source_ip: str | None
    details: dict[str, Any]
    prev_hash: bytes
    hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": _iso(self.occurred_at),
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "outcome": self.outcome,
            "source_ip": self.source_ip,
            "details": self.details,
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
        }


def unsigned_window_s(checkpoint_interval_s: int | None = None) -> int:
    """The unsigned window for a server checkpointing every ``checkpoint_interval_s`` (default:
    the configured ``security.audit_checkpoint_seconds``)."""
    if checkpoint_interval_s is None:
        checkpoint_interval_s = load_settings().security.audit_checkpoint_seconds
    return max(UNSIGNED_RECORD_AGE_MAX_S, 3 * checkpoint_interval_s)


@dataclass
class AuditVerifyReport:
    ok: bool
    problems: list[str]
    records: int
    checkpoints: int
    notes: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:  # the name the `qenex audit verify` table reads
        return self.records


# -- canonical forms -----------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Fields:
    actor: str
    action: str
    resource: str
    outcome: str
    source_ip: str | None
    details: dict[str, Any]


def _normalize(event: AuditEvent) -> _Fields:
    if not isinstance(event.action, str) or not _ACTION_RE.match(event.action):
        raise AuditError("audit action must be 1-128 characters of letters, digits and . _ : - /")
    outcome = event.outcome if isinstance(event.outcome, str) else ""
    if not _OUTCOME_RE.match(outcome):
        raise AuditError("audit outcome must be a short lowercase word such as success, failure or denied")
    details = redact_value(dict(event.details))
    encoded = json.dumps(details, sort_keys=True, ensure_ascii=False)
    if len(encoded.encode()) > DETAILS_BYTES_MAX:
        details = {"truncated": True, "size_bytes": len(encoded.encode())}
    ip = redact_value(event.source_ip) if event.source_ip else None
    return _Fields(
        actor=_clip(redact_value(event.actor or "anonymous") or "anonymous", ACTOR_CHARS_MAX),
        action=event.action,
        resource=_clip(redact_value(event.resource or ""), RESOURCE_CHARS_MAX),
        outcome=outcome,
        source_ip=_clip(ip, SOURCE_IP_CHARS_MAX) if ip else None,
        details=details,
    )


def _record_hash(prev_hash: bytes, record_id: int, occurred_at: datetime, f: _Fields) -> bytes:
    body = {
        "v": RECORD_FORMAT_VERSION,
        "id": record_id,
        "ts": _iso(occurred_at),
        "actor": f.actor,
        "action": f.action,
        "resource": f.resource,
        "outcome": f.outcome,
        "source_ip": f.source_ip,
        "details": f.details,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash + canonical.encode()).digest()


def _checkpoint_message(cp_id: int, last_id: int, last_hash: bytes, created: datetime, key_id: int) -> bytes:
    body = {
        "v": 1,
        "checkpoint": cp_id,
        "last_record_id": last_id,
        "last_hash": last_hash.hex(),
        "created_at": _iso(created),
        "signing_key_id": key_id,
        "algorithm": SIGNING_ALGORITHM,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# -- SQL -----------------------------------------------------------------------------------------

_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"
_TAIL_SQL = "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
# Lock and read the tail in one round trip (simple-query protocol; both numbers are constants).
_LOCK_AND_TAIL_SQL = f"SELECT pg_advisory_xact_lock({_LOCK_NAMESPACE}, {_CHAIN_LOCK_ID}); {_TAIL_SQL}"
_INSERT_SQL = (
    "INSERT INTO audit_log (id, occurred_at, actor, action, resource, outcome, source_ip, details, prev_hash, hash)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_LAST_CP_SQL = "SELECT id, last_record_id FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
_LAST_KEY_SQL = "SELECT id, public_key, sealed_private_key FROM audit_signing_keys ORDER BY id DESC LIMIT 1"
_INSERT_KEY_SQL = (
    "INSERT INTO audit_signing_keys (id, algorithm, public_key, sealed_private_key) VALUES (%s, %s, %s, %s)"
)
_INSERT_CP_SQL = (
    "INSERT INTO audit_checkpoints (id, last_record_id, last_hash, created_at, signing_key_id, algorithm,"
    " public_key, signature) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_RECORD_COLUMNS = "id, occurred_at, actor, action, resource, outcome, source_ip, details, prev_hash, hash"


def _insert_params(record_id: int, ts: datetime, f: _Fields, prev: bytes, digest: bytes) -> tuple[Any, ...]:
    return (record_id, ts, f.actor, f.action, f.resource, f.outcome, f.source_ip, Jsonb(f.details), prev, digest)


def _next(tail: tuple[Any, ...] | None) -> tuple[int, bytes]:
    return (int(tail[0]) + 1, bytes(tail[1])) if tail is not None else (1, GENESIS_HASH)


def _chain_rows(tail: tuple[Any, ...] | None, batch: Sequence[_Fields]) -> list[tuple[Any, ...]]:
    """Insert parameters for ``batch`` appended after ``tail``, each record linked to the one before."""
    record_id, prev = _next(tail)
    rows = []
    for fields in batch:
        ts = datetime.now(UTC)
        digest = _record_hash(prev, record_id, ts, fields)
        rows.append(_insert_params(record_id, ts, fields, prev, digest))
        prev, record_id = digest, record_id + 1
    return rows


def _normalize_all(events: Sequence[AuditEvent]) -> list[_Fields]:
    """Check every event before anything is written, so a bad one leaves the batch unwritten."""
    if len(events) > RECORD_BATCH_EVENTS_MAX:
        raise AuditError(f"at most {RECORD_BATCH_EVENTS_MAX} audit events can be recorded at once")
    batch = []
    for index, event in enumerate(events):
        try:
            batch.append(_normalize(event))
        except AuditError as exc:
            raise AuditError(exc.message, code=exc.code, details={"index": index}) from None
    return batch


def refused_index(exc: Exception, count: int) -> int | None:
    """Which of ``count`` events `record_events` refused as malformed (it then wrote nothing), or
    None when ``exc`` is not such a refusal."""
    if not isinstance(exc, AuditError):
        return None
    index = exc.details.get("index")
    return index if isinstance(index, int) and 0 <= index < count else None


def _crosses_checkpoint(first_id: int, last_id: int) -> bool:
    return last_id // CHECKPOINT_INTERVAL_RECORDS > (first_id - 1) // CHECKPOINT_INTERVAL_RECORDS


# -- signing keys --------------------------------------------------------------------------------

_configured_provider: MasterKeyProvider | None = None
_default_provider: MasterKeyProvider | None = None  # built once from the settings (HSM sessions are costly)
_envelopes: dict[tuple[str, int], Envelope] = {}
_private_keys: dict[tuple[int, bytes], MLDSA65PrivateKey] = {}
_state_lock = threading.Lock()


def configure_signing(provider: MasterKeyProvider | None) -> None:
    """Use this master-key provider for checkpoint keys (default: the one from the settings)."""
    global _configured_provider
    with _state_lock:
        _configured_provider = provider
        _envelopes.clear()
        _private_keys.clear()


def _conninfo_of(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> str:
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    return psycopg.conninfo.make_conninfo(**params)


def _envelope(conninfo: str, provider: MasterKeyProvider | None, *, create_dev_key: bool = True) -> Envelope:
    global _default_provider
    with _state_lock:
        chosen = provider or _configured_provider or _default_provider
    if chosen is None:
        chosen = provider_from_settings(load_settings(), create_dev_key=create_dev_key)
        with _state_lock:
            _default_provider = chosen
    key = (conninfo, id(chosen))
    with _state_lock:
        env = _envelopes.get(key)
        if env is None:
            env = Envelope(conninfo, chosen, purpose=SIGNING_PURPOSE)
            _envelopes[key] = env
    return env


def _seal_aad(key_id: int) -> bytes:
    return aad_for("audit_signing_keys", "sealed_private_key", key_id)


def _open_private(env: Envelope, key_id: int, public: bytes, sealed: bytes) -> MLDSA65PrivateKey:
    cache_key = (key_id, public)
    with _state_lock:
        cached = _private_keys.get(cache_key)
    if cached is not None:
        return cached
    private = MLDSA65PrivateKey.from_seed_bytes(env.decrypt(sealed, _seal_aad(key_id)))
    if private.public_key().public_bytes_raw() != public:
        raise AuditError("the audit signing key does not match its public key", code="audit_key_mismatch")
    with _state_lock:
        _private_keys[cache_key] = private
    return private


def _new_key(env: Envelope, key_id: int) -> tuple[MLDSA65PrivateKey, tuple[Any, ...]]:
    private = MLDSA65PrivateKey.generate()
    sealed = env.encrypt(private.private_bytes_raw(), _seal_aad(key_id))
    public = private.public_key().public_bytes_raw()
    with _state_lock:
        _private_keys[(key_id, public)] = private
    return private, (key_id, SIGNING_ALGORITHM, public, sealed)


def _signing_key(
    env: Envelope, key_row: tuple[Any, ...] | None
) -> tuple[int, MLDSA65PrivateKey, tuple[Any, ...] | None]:
    """(key id, private key, the key's row to insert when this first checkpoint creates it)."""
    if key_row is None:
        private, params = _new_key(env, 1)
        return 1, private, params
    key_id = int(key_row[0])
    return key_id, _open_private(env, key_id, bytes(key_row[1]), bytes(key_row[2])), None


def _sign(
    cp_id: int, tail: tuple[Any, ...], key_id: int, private: MLDSA65PrivateKey
) -> tuple[Any, ...]:
    created = datetime.now(UTC)
    message = _checkpoint_message(cp_id, int(tail[0]), bytes(tail[1]), created, key_id)
    signature = private.sign(message, SIGNATURE_CONTEXT)
    public = private.public_key().public_bytes_raw()
    return (cp_id, int(tail[0]), bytes(tail[1]), created, key_id, SIGNING_ALGORITHM, public, signature)


# -- writing (sync) ------------------------------------------------------------------------------


def _join_transaction(conn: psycopg.Connection[Any]) -> None:
    """Make sure the work lands in the caller's transaction.

    psycopg's ``conn.transaction()`` on an idle non-autocommit connection would open *and commit*
    its own transaction; taking the chain lock first opens the caller's implicit transaction, so
    the block below becomes a savepoint inside it. In autocommit mode the block is the transaction.
    """
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.execute(_LOCK_SQL, (_LOCK_NAMESPACE, _CHAIN_LOCK_ID))


async def _join_transaction_async(conn: psycopg.AsyncConnection[Any]) -> None:
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        await conn.execute(_LOCK_SQL, (_LOCK_NAMESPACE, _CHAIN_LOCK_ID))


def _append_sync(conn: psycopg.Connection[Any], batch: Sequence[_Fields]) -> list[int]:
    cur = conn.execute(_LOCK_AND_TAIL_SQL)
    cur.nextset()
    rows = _chain_rows(cur.fetchone(), batch)
    if len(rows) == 1:
        conn.execute(_INSERT_SQL, rows[0])
    else:
        with conn.cursor() as insert:
            insert.executemany(_INSERT_SQL, rows)
    return [int(row[0]) for row in rows]


def _record_sync(conn: psycopg.Connection[Any], batch: list[_Fields]) -> list[int]:
    if not batch:
        return []
    if conn.autocommit:
        with conn.transaction():
            ids = _append_sync(conn, batch)
    else:
        ids = _append_sync(conn, batch)
    if _crosses_checkpoint(ids[0], ids[-1]):
        _auto_checkpoint_sync(conn)
    return ids


def record_events_sync(conn: psycopg.Connection[Any], events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` in order inside the caller's transaction and return their ids.

    Every event is checked first: an invalid one raises AuditError (``details["index"]`` says
    which) and nothing is written. Without autocommit the records join the caller's transaction
    (opened by psycopg if idle) and commit or roll back with it; if an insert fails, that
    transaction is aborted, so nothing the caller did can commit without its audit records. In
    autocommit mode the batch is its own transaction. A checkpoint is signed when the batch
    reaches or crosses a multiple of CHECKPOINT_INTERVAL_RECORDS.
    """
    return _record_sync(conn, _normalize_all(events))


def record_event_sync(conn: psycopg.Connection[Any], event: AuditEvent) -> int:
    """Append ``event`` inside the caller's transaction and return its id (see ``record_events_sync``)."""
    return _record_sync(conn, [_normalize(event)])[0]


def _auto_checkpoint_sync(conn: psycopg.Connection[Any]) -> None:
    try:
        checkpoint(conn)
    except (QenexError, psycopg.Error) as exc:
        _checkpoint_skipped(exc)


def _checkpoint_skipped(exc: Exception) -> None:
    # The records stand; the chain protects them until the next checkpoint.
    log.warning("automatic audit checkpoint skipped: %s", getattr(exc, "code", exc.__class__.__name__))


def checkpoint(conn: psycopg.Connection[Any], *, provider: MasterKeyProvider | None = None) -> int | None:
    """Sign the current chain head. Returns the checkpoint id (the existing one when nothing is new),
    or None for an empty log."""
    _join_transaction(conn)
    with conn.transaction():
        conn.execute(_LOCK_SQL, (_LOCK_NAMESPACE, _CHAIN_LOCK_ID))
        tail = conn.execute(_TAIL_SQL).fetchone()
        if tail is None:
            return None
        last = conn.execute(_LAST_CP_SQL).fetchone()
        if last is not None and int(last[1]) == int(tail[0]):
            return int(last[0])
        env = _envelope(_conninfo_of(conn), provider)
        key_id, private, new_key = _signing_key(env, conn.execute(_LAST_KEY_SQL).fetchone())
        if new_key is not None:
            conn.execute(_INSERT_KEY_SQL, new_key)
        cp_id = int(last[0]) + 1 if last is not None else 1
        conn.execute(_INSERT_CP_SQL, _sign(cp_id, tail, key_id, private))
    return cp_id


# -- writing (async) -----------------------------------------------------------------------------


async def _append_async(conn: psycopg.AsyncConnection[Any], batch: Sequence[_Fields]) -> list[int]:
    cur = await conn.execute(_LOCK_AND_TAIL_SQL)
    cur.nextset()
    rows = _chain_rows(await cur.fetchone(), batch)
    if len(rows) == 1:
        await conn.execute(_INSERT_SQL, rows[0])
    else:
        async with conn.cursor() as insert:
            await insert.executemany(_INSERT_SQL, rows)
    return [int(row[0]) for row in rows]


async def _record_async(conn: psycopg.AsyncConnection[Any], batch: list[_Fields]) -> list[int]:
    if not batch:
        return []
    if conn.autocommit:
        async with conn.transaction():
            ids = await _append_async(conn, batch)
    else:
        ids = await _append_async(conn, batch)
    if _crosses_checkpoint(ids[0], ids[-1]):
        try:
            await checkpoint_async(conn)
        except (QenexError, psycopg.Error) as exc:
            _checkpoint_skipped(exc)
    return ids


async def record_events(conn: psycopg.AsyncConnection[Any], events: Sequence[AuditEvent]) -> list[int]:
    """Async twin of ``record_events_sync``."""
    return await _record_async(conn, _normalize_all(events))


async def record_event(conn: psycopg.AsyncConnection[Any], event: AuditEvent) -> int:
    """Async twin of ``record_event_sync``."""
    return (await _record_async(conn, [_normalize(event)]))[0]


async def checkpoint_async(
    conn: psycopg.AsyncConnection[Any], *, provider: MasterKeyProvider | None = None
) -> int | None:
    """Async twin of ``checkpoint``. Unsealing the signing key (first use only) briefly blocks."""
    await _join_transaction_async(conn)
    async with conn.transaction():
        await conn.execute(_LOCK_SQL, (_LOCK_NAMESPACE, _CHAIN_LOCK_ID))
        tail = await (await conn.execute(_TAIL_SQL)).fetchone()
        if tail is None:
            return None
        last = await (await conn.execute(_LAST_CP_SQL)).fetchone()
        if last is not None and int(last[1]) == int(tail[0]):
            return int(last[0])
        env = _envelope(_conninfo_of(conn), provider)
        key_id, private, new_key = _signing_key(env, await (await conn.execute(_LAST_KEY_SQL)).fetchone())
        if new_key is not None:
            await conn.execute(_INSERT_KEY_SQL, new_key)
        cp_id = int(last[0]) + 1 if last is not None else 1
        await conn.execute(_INSERT_CP_SQL, _sign(cp_id, tail, key_id, private))
    return cp_id


def checkpoint_database(conninfo: str, *, provider: MasterKeyProvider | None = None) -> dict[str, Any]:
    """Sign the chain head now (``qenex audit checkpoint``): the checkpoint id and the last record
    it covers (the existing checkpoint when nothing is new; None for an empty log)."""
    with psycopg.connect(conninfo) as conn:
        cp_id = checkpoint(conn, provider=provider)
        conn.commit()
        row = conn.execute("SELECT last_record_id FROM audit_checkpoints WHERE id = %s", (cp_id,)).fetchone()
    return {"checkpoint": cp_id, "last_record_id": int(row[0]) if row else None}


async def checkpoint_if_new_async(conn: psycopg.AsyncConnection[Any]) -> int | None:
    """Sign a checkpoint when records exist after the last one; commits on ``conn``. For the
    server's periodic checkpoint (a cheap read first: nothing is locked when nothing is new)."""
    row = await (await conn.execute(
        "SELECT (SELECT max(id) FROM audit_log),"
        " (SELECT last_record_id FROM audit_checkpoints ORDER BY id DESC LIMIT 1)")).fetchone()
    await conn.rollback()
    if row is None or row[0] is None or (row[1] is not None and int(row[1]) >= int(row[0])):
        return None
    async with conn.transaction():
        return await checkpoint_async(conn)


# -- querying ------------------------------------------------------------------------------------


def _query(
    actor: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    after_id: int | None,
) -> tuple[sql.Composed, list[Any]]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= QUERY_LIMIT_MAX:
        raise AuditError(f"limit must be an integer from 1 to {QUERY_LIMIT_MAX}")
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (("actor", actor), ("action", action)):
        if value is not None:
            if not isinstance(value, str) or len(value) > ACTOR_CHARS_MAX or forbidden_text(value):
                raise AuditError(f"{column} filter must be text of at most {ACTOR_CHARS_MAX} characters, without"
                                 " NUL or unpaired surrogates")
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    for op, moment in ((">=", since), ("<", until)):
        if moment is not None:
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise AuditError("since/until must be timezone-aware datetimes")
            clauses.append(sql.SQL("occurred_at " + op + " %s"))
            params.append(moment)
    if after_id is not None:
        clauses.append(sql.SQL("id > %s"))
        params.append(int(after_id))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
    query = sql.SQL("SELECT " + _RECORD_COLUMNS + " FROM audit_log{} ORDER BY id LIMIT %s").format(where)
    params.append(limit)
    return query, params


def _to_record(row: tuple[Any, ...]) -> AuditRecord:
    return AuditRecord(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], dict(row[7]), bytes(row[8]), bytes(row[9])
    )


def query_events(
    conn: psycopg.Connection[Any],
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[AuditRecord]:
    """Records in id order, filtered; page with ``after_id`` = the last id of the previous page."""
    query, params = _query(actor, action, since, until, limit, after_id)
    return [_to_record(r) for r in conn.execute(query, params).fetchall()]


async def query_events_async(
    conn: psycopg.AsyncConnection[Any],
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> list[AuditRecord]:
    query, params = _query(actor, action, since, until, limit, after_id)
    cur = await conn.execute(query, params)
    return [_to_record(r) for r in await cur.fetchall()]


# -- verification --------------------------------------------------------------------------------


class _Problems(list[str]):
    def add(self, text: str) -> None:
        if len(self) < PROBLEMS_MAX:
            self.append(text)
        elif len(self) == PROBLEMS_MAX:
            self.append("... further problems not listed")


def _walk_chain(conn: psycopg.Connection[Any], wanted: set[int], problems: _Problems) -> tuple[int, dict[int, bytes]]:
    """Check ids, links and hashes; return the record count and the stored hash at each wanted id."""
    expected_id, prev_stored, count = 1, GENESIS_HASH, 0
    hashes: dict[int, bytes] = {}
    with conn.cursor(name="qenex_audit_verify") as cur:
        cur.itersize = VERIFY_FETCH_ROWS
        cur.execute("SELECT " + _RECORD_COLUMNS + " FROM audit_log ORDER BY id")
        for row in cur:
            count += 1
            rec = _to_record(row)
            if rec.id != expected_id:
                problems.add(f"record {rec.id}: expected id {expected_id} (records deleted or inserted)")
            if rec.prev_hash != prev_stored:
                problems.add(f"record {rec.id}: prev_hash does not link to the preceding record (chain broken)")
            fields = _Fields(rec.actor, rec.action, rec.resource, rec.outcome, rec.source_ip, rec.details)
            if _record_hash(rec.prev_hash, rec.id, rec.occurred_at, fields) != rec.hash:
                problems.add(f"record {rec.id}: content does not match its hash (modified)")
            if rec.id in wanted:
                hashes[rec.id] = rec.hash
            expected_id, prev_stored = rec.id + 1, rec.hash
    return count, hashes


def _check_checkpoints(
    cps: list[tuple[Any, ...]], keys: dict[int, tuple[Any, ...]], hashes: dict[int, bytes], problems: _Problems
) -> None:
    previous_last = 0
    for index, (cp_id, last_id, last_hash, created, key_id, algorithm, public, signature) in enumerate(cps, 1):
        where = f"checkpoint {cp_id}"
        if cp_id != index:
            problems.add(f"{where}: expected checkpoint id {index} (checkpoints deleted or inserted)")
        if last_id <= previous_last:
            problems.add(f"{where}: covers record {last_id}, not after the previous checkpoint ({previous_last})")
        previous_last = last_id
        key = keys.get(key_id)
        if key is None:
            problems.add(f"{where}: signing key {key_id} is unknown (forged checkpoint)")
        elif bytes(public) != bytes(key[1]) or algorithm != key[0]:
            problems.add(f"{where}: public key differs from signing key {key_id} (forged checkpoint)")
        if algorithm != SIGNING_ALGORITHM:
            problems.add(f"{where}: unknown signature algorithm {algorithm!r}")
        else:
            message = _checkpoint_message(cp_id, last_id, bytes(last_hash), created, key_id)
            try:
                MLDSA65PublicKey.from_public_bytes(bytes(public)).verify(bytes(signature), message, SIGNATURE_CONTEXT)
            except (InvalidSignature, ValueError):
                problems.add(f"{where}: signature is invalid (forged or altered checkpoint)")
        if last_id not in hashes:
            problems.add(f"{where}: covered record {last_id} is missing (records deleted)")
        elif hashes[last_id] != bytes(last_hash):
            problems.add(f"{where}: chain head {last_id} differs from the signed hash (records rewritten)")


def _attest_keys(
    conninfo: str, keys: dict[int, tuple[Any, ...]], provider: MasterKeyProvider | None, report: AuditVerifyReport
) -> None:
    """Each signing key must be one the master-key holder created: its sealed seed opens to it."""
    if not keys:
        return
    try:
        env = _envelope(conninfo, provider, create_dev_key=False)
    except QenexError as exc:
        report.problems.append(f"signing keys not attested: the master key is unavailable ({exc.code}), so no"
                               " signature can be vouched for")
        return
    for key_id, (_alg, public, sealed) in keys.items():
        try:
            seed = env.decrypt(bytes(sealed), _seal_aad(key_id))
            derived = MLDSA65PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()
        except (QenexError, ValueError):
            derived = b""
        if derived != bytes(public):
            report.problems.append(f"signing key {key_id} is not attested by the master key (forged key)")


def verify_audit_log(
    conninfo: str,
    *,
    provider: MasterKeyProvider | None = None,
    unsigned_window: float | None = None,
    now: datetime | None = None,
) -> AuditVerifyReport:
    """Re-check the whole trail: chain links and hashes, checkpoint signatures, key attestation,
    and that no record has stayed unsigned longer than ``unsigned_window`` seconds (default
    `unsigned_window_s()`) at ``now`` (default: the database's clock)."""
    problems = _Problems()
    with psycopg.connect(conninfo) as conn:
        keys = {
            int(r[0]): (r[1], bytes(r[2]), bytes(r[3]))
            for r in conn.execute("SELECT id, algorithm, public_key, sealed_private_key FROM audit_signing_keys")
        }
        cps = conn.execute(
            "SELECT id, last_record_id, last_hash, created_at, signing_key_id, algorithm, public_key, signature"
            " FROM audit_checkpoints ORDER BY id"
        ).fetchall()
        count, hashes = _walk_chain(conn, {int(c[1]) for c in cps}, problems)
        covered = int(cps[-1][1]) if cps else 0
        oldest = conn.execute(
            "SELECT min(occurred_at), now() FROM audit_log WHERE id > %s", (covered,)
        ).fetchone()
    _check_checkpoints(cps, keys, hashes, problems)
    report = AuditVerifyReport(ok=False, problems=problems, records=count, checkpoints=len(cps))
    _attest_keys(conninfo, keys, provider, report)
    if count > covered and oldest is not None and oldest[0] is not None:
        window = unsigned_window_s() if unsigned_window is None else unsigned_window
        age_s = ((now or oldest[1]) - oldest[0]).total_seconds()
        unsigned = f"{count - covered} record(s) after the last checkpoint"
        if age_s > window:
            report.problems.append(
                f"{unsigned} are unsigned, the oldest for {age_s:.0f} s (more than the {window:.0f} s allowed):"
                " run `qenex audit checkpoint`, or keep a server running, which signs them")
        else:
            report.notes.append(f"{unsigned} are protected by the chain only (the oldest for {age_s:.0f} s)")
    report.problems = list(report.problems)
    report.ok = not report.problems
    return report
