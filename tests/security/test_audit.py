"""The tamper-evident audit trail on a real PostgreSQL: chaining, append-only triggers,
ML-DSA checkpoints, verification against modified / deleted / inserted / reordered records and
forged checkpoints, queries, async writes and concurrent writers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from qenex.security import audit
from qenex.security.audit import (
    AuditError,
    AuditEvent,
    checkpoint,
    configure_signing,
    query_events,
    query_events_async,
    record_event,
    record_event_sync,
    record_events,
    record_events_sync,
    verify_audit_log,
)
from qenex.security.keyproviders import EnvKeyProvider

from .conftest import reset_s2_tables


@pytest.fixture()
def provider() -> Iterator[EnvKeyProvider]:
    p = EnvKeyProvider(base64.b64encode(secrets.token_bytes(32)).decode())
    configure_signing(p)
    yield p
    configure_signing(None)


@pytest.fixture()
def db(module_db: str, provider: EnvKeyProvider) -> str:
    reset_s2_tables(module_db)
    return module_db


def _fill(db: str, n: int, start: int = 0) -> None:
    with psycopg.connect(db) as conn:
        for i in range(start, start + n):
            record_event_sync(
                conn, AuditEvent(actor=f"user:{i % 3}", action="account.created", resource=f"account:{i}")
            )


def _tamper(db: str, *statements: str) -> None:
    """What an attacker with database superuser rights could do: bypass the triggers."""
    with psycopg.connect(db) as conn:
        conn.execute("SET session_replication_role = replica")
        for stmt in statements:
            conn.execute(stmt)


def test_records_are_chained_and_verify(db: str) -> None:
    with psycopg.connect(db) as conn:
        first = record_event_sync(
            conn,
            AuditEvent(
                actor="api_key:abc",
                action="login",
                outcome="failure",
                source_ip="203.0.113.7",
                details={"password": "hunter2", "card": "4111 1111 1111 1111", "attempt": 2, "ratio": 1.5},
            ),
        )
        second = record_event_sync(conn, AuditEvent(actor="api_key:abc", action="key.created", resource="api_key:9"))
        rows = conn.execute(
            "SELECT id, prev_hash, hash, details, source_ip, outcome FROM audit_log ORDER BY id"
        ).fetchall()
    assert (first, second) == (1, 2)
    assert bytes(rows[0][1]) == bytes(32) and bytes(rows[1][1]) == bytes(rows[0][2])
    details = rows[0][3]
    assert details["password"] == "[REDACTED]" and "4111" not in str(details) and details["attempt"] == 2
    assert details["ratio"] == "1.5"  # never a binary float in the trail
    assert rows[0][4] == "203.0.113.7" and rows[0][5] == "failure"
    report = verify_audit_log(db)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.checked) == (2, 0, 2)


def test_append_only_triggers(db: str) -> None:
    _fill(db, 2)
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) == 1
    for stmt in (
        "UPDATE audit_log SET actor = 'x' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 2",
        "TRUNCATE audit_log",
        "UPDATE audit_checkpoints SET last_record_id = 1",
        "DELETE FROM audit_checkpoints",
        "DELETE FROM audit_signing_keys",
    ):
        with psycopg.connect(db) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(stmt)
    assert verify_audit_log(db).ok


def test_record_joins_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as conn:
        record_event_sync(conn, AuditEvent(actor="a", action="transfer.created"))
        conn.rollback()
        assert record_event_sync(conn, AuditEvent(actor="a", action="transfer.created")) == 1
        conn.commit()
    with psycopg.connect(db, autocommit=True) as conn:
        assert record_event_sync(conn, AuditEvent(actor="a", action="x")) == 2
    assert verify_audit_log(db).ok


def test_concurrent_writers_keep_one_chain(db: str) -> None:
    def worker(n: int) -> None:
        with psycopg.connect(db) as conn:
            for i in range(20):
                record_event_sync(conn, AuditEvent(actor=f"w{n}", action="op", resource=str(i)))
                conn.commit()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_audit_log(db)
    assert report.ok, report.problems
    assert report.records == 80


def test_async_record_and_query(db: str) -> None:
    async def scenario() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(db) as conn:
            for i in range(3):
                await record_event(conn, AuditEvent(actor="svc", action="transaction.posted", resource=f"tx:{i}"))
            await conn.commit()
            assert await audit.checkpoint_async(conn) == 1
            await conn.commit()
            return await query_events_async(conn, actor="svc", limit=2)

    page = asyncio.run(scenario())
    assert [r.resource for r in page] == ["tx:0", "tx:1"]
    report = verify_audit_log(db)
    assert report.ok and report.checkpoints == 1, report.problems


def test_automatic_checkpoints(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "CHECKPOINT_INTERVAL_RECORDS", 5)
    _fill(db, 12)
    with psycopg.connect(db) as conn:
        cps = conn.execute("SELECT id, last_record_id, algorithm FROM audit_checkpoints ORDER BY id").fetchall()
        keys = conn.execute("SELECT id, public_key, sealed_private_key FROM audit_signing_keys").fetchall()
    assert cps == [(1, 5, "ML-DSA-65"), (2, 10, "ML-DSA-65")]
    assert len(keys) == 1 and len(keys[0][1]) == 1952
    # The private seed is stored sealed, never in clear.
    assert len(keys[0][2]) > 32
    report = verify_audit_log(db)
    assert report.ok, report.problems
    assert any("2 record(s) after the last checkpoint" in n for n in report.notes)
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) == 3
        assert checkpoint(conn) == 3  # nothing new to sign


def test_batch_is_chained_in_order_and_joins_the_callers_transaction(db: str) -> None:
    batch = [AuditEvent(actor="svc", action="transfer.created", resource=f"tx:{i}") for i in range(3)]
    with psycopg.connect(db) as conn:
        assert record_events_sync(conn, batch) == [1, 2, 3]
        conn.rollback()
        assert record_events_sync(conn, batch) == [1, 2, 3]
        conn.commit()
        assert record_events_sync(conn, []) == []
    with psycopg.connect(db, autocommit=True) as conn:
        assert record_event_sync(conn, AuditEvent(actor="a", action="x")) == 4
        assert record_events_sync(conn, batch[:2]) == [5, 6]
        assert [r.resource for r in query_events(conn, actor="svc")] == ["tx:0", "tx:1", "tx:2", "tx:0", "tx:1"]
    report = verify_audit_log(db)
    assert report.ok and report.records == 6, report.problems


def test_batch_with_a_malformed_event_writes_nothing(db: str) -> None:
    good = AuditEvent(actor="a", action="ok")
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(AuditError) as exc:
            record_events_sync(conn, [good, AuditEvent(actor="a", action="bad action!"), good])
        assert exc.value.code == "invalid_audit_request" and exc.value.details == {"index": 1}
        with pytest.raises(AuditError, match="at most"):
            record_events_sync(conn, [good] * (audit.RECORD_BATCH_EVENTS_MAX + 1))
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_batch_crossing_the_interval_is_checkpointed(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "CHECKPOINT_INTERVAL_RECORDS", 5)

    async def scenario() -> list[int]:
        async with await psycopg.AsyncConnection.connect(db) as conn:
            first = await record_events(conn, [AuditEvent(actor="a", action="op")] * 3)
            second = await record_events(conn, [AuditEvent(actor="b", action="op")] * 4)  # ids 4-7 cross 5
            await conn.commit()
            return first + second

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5, 6, 7]
    with psycopg.connect(db) as conn:
        cps = conn.execute("SELECT id, last_record_id FROM audit_checkpoints ORDER BY id").fetchall()
    assert cps == [(1, 7)]  # signs the head of the batch that crossed the interval
    report = verify_audit_log(db)
    assert report.ok and report.checkpoints == 1, report.problems


def _problems_after(db: str, *statements: str) -> list[str]:
    _tamper(db, *statements)
    report = verify_audit_log(db)
    assert not report.ok
    return report.problems


@pytest.fixture()
def signed_db(db: str) -> str:
    _fill(db, 6)
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) == 1
    _fill(db, 2, start=6)
    assert verify_audit_log(db).ok
    return db


def test_detects_modified_record(signed_db: str) -> None:
    problems = _problems_after(signed_db, "UPDATE audit_log SET outcome = 'failure' WHERE id = 3")
    assert any("record 3: content does not match" in p for p in problems)


def test_detects_deleted_record(signed_db: str) -> None:
    problems = _problems_after(signed_db, "DELETE FROM audit_log WHERE id = 4")
    assert any("record 5: expected id 4" in p for p in problems)


def test_detects_deleted_tail_covered_by_checkpoint(signed_db: str) -> None:
    problems = _problems_after(signed_db, "DELETE FROM audit_log WHERE id >= 6")
    assert any("covered record 6 is missing" in p for p in problems)


def test_detects_inserted_record(signed_db: str) -> None:
    problems = _problems_after(
        signed_db,
        "INSERT INTO audit_log (id, occurred_at, actor, action, resource, outcome, details, prev_hash, hash)"
        " SELECT 100, now(), 'mallory', 'login', '', 'success', '{}', hash, hash FROM audit_log WHERE id = 8",
    )
    assert any("record 100: expected id 9" in p for p in problems)
    assert any("record 100: content does not match" in p for p in problems)


def test_detects_reordered_records(signed_db: str) -> None:
    problems = _problems_after(
        signed_db,
        "UPDATE audit_log SET id = 1000002 WHERE id = 2",
        "UPDATE audit_log SET id = 2 WHERE id = 3",
        "UPDATE audit_log SET id = 3 WHERE id = 1000002",
    )
    assert any(p.startswith("record 2:") for p in problems) and any(p.startswith("record 3:") for p in problems)


def test_detects_rewritten_chain_via_signed_checkpoint(signed_db: str) -> None:
    """An attacker edits record 2 and recomputes every later hash: the chain alone looks intact,
    the signed checkpoint does not."""
    with psycopg.connect(signed_db) as conn:
        rows = conn.execute(
            "SELECT id, occurred_at, actor, action, resource, outcome, source_ip, details FROM audit_log ORDER BY id"
        ).fetchall()
    prev, statements = bytes(32), []
    for rid, ts, actor, action, resource, outcome, ip, details in rows:
        if rid == 2:
            actor = "mallory"
        fields = audit._Fields(actor, action, resource, outcome, ip, details)
        digest = audit._record_hash(prev, rid, ts, fields)
        statements.append(
            f"UPDATE audit_log SET actor = '{actor}', prev_hash = '\\x{prev.hex()}', hash = '\\x{digest.hex()}'"
            f" WHERE id = {rid}"
        )
        prev = digest
    problems = _problems_after(signed_db, *statements)
    assert problems == ["checkpoint 1: chain head 6 differs from the signed hash (records rewritten)"]


def test_detects_forged_checkpoint_with_attacker_key(signed_db: str) -> None:
    """Mallory rewrites history and signs a checkpoint with her own, properly registered key."""
    forged = MLDSA65PrivateKey.generate()
    public = forged.public_key().public_bytes_raw()
    with psycopg.connect(signed_db) as conn:
        tail = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert tail is not None
    created = datetime.now(UTC)
    message = audit._checkpoint_message(2, tail[0], bytes(tail[1]), created, 2)
    signature = forged.sign(message, audit.SIGNATURE_CONTEXT)
    with psycopg.connect(signed_db) as conn:
        conn.execute(
            "INSERT INTO audit_signing_keys (id, algorithm, public_key, sealed_private_key) VALUES (2, %s, %s, %s)",
            (audit.SIGNING_ALGORITHM, public, secrets.token_bytes(80)),
        )
        conn.execute(
            "INSERT INTO audit_checkpoints VALUES (2, %s, %s, %s, 2, %s, %s, %s)",
            (tail[0], tail[1], created, audit.SIGNING_ALGORITHM, public, signature),
        )
    report = verify_audit_log(signed_db)
    assert report.problems == ["signing key 2 is not attested by the master key (forged key)"]


def test_detects_altered_checkpoint_signature_and_key(signed_db: str) -> None:
    other = MLDSA65PrivateKey.generate().public_key().public_bytes_raw()
    problems = _problems_after(
        signed_db,
        "UPDATE audit_checkpoints SET signature = set_byte(signature, 10, (get_byte(signature, 10) + 1) % 256)",
    )
    assert any("signature is invalid" in p for p in problems)
    _tamper(signed_db, f"UPDATE audit_checkpoints SET public_key = '\\x{other.hex()}'")
    assert any("public key differs" in p for p in verify_audit_log(signed_db).problems)


def test_signed_hash_must_match(signed_db: str) -> None:
    fake = hashlib.sha256(b"x").hexdigest()
    problems = _problems_after(signed_db, f"UPDATE audit_checkpoints SET last_hash = '\\x{fake}'")
    assert any("signature is invalid" in p for p in problems)


def test_attestation_needs_the_master_key(signed_db: str) -> None:
    intruder = EnvKeyProvider(base64.b64encode(secrets.token_bytes(32)).decode())
    report = verify_audit_log(signed_db, provider=intruder)
    assert not report.ok and any("not attested" in p for p in report.problems)


def test_query_events_filters_and_pages(db: str) -> None:
    _fill(db, 9)
    with psycopg.connect(db) as conn:
        record_event_sync(conn, AuditEvent(actor="user:0", action="login", outcome="denied"))
        conn.commit()
        mine = query_events(conn, actor="user:0")
        assert [r.id for r in mine] == [1, 4, 7, 10]
        assert [r.id for r in query_events(conn, actor="user:0", action="login")] == [10]
        page1 = query_events(conn, limit=4)
        page2 = query_events(conn, limit=4, after_id=page1[-1].id)
        assert [r.id for r in page1 + page2] == list(range(1, 9))
        now = datetime.now(UTC)
        assert len(query_events(conn, since=now - timedelta(minutes=5), until=now + timedelta(minutes=1))) == 10
        assert query_events(conn, since=now + timedelta(minutes=1)) == []
        as_dict = mine[0].to_dict()
        assert as_dict["hash"] == mine[0].hash.hex() and as_dict["occurred_at"].endswith("Z")
        for bad in ({"limit": 0}, {"limit": 5000}, {"since": datetime(2020, 1, 1)}, {"actor": "x" * 500}):
            with pytest.raises(AuditError):
                query_events(conn, **bad)


def test_invalid_events_are_rejected(db: str) -> None:
    with psycopg.connect(db) as conn:
        for event in (
            AuditEvent(actor="a", action=""),
            AuditEvent(actor="a", action="has space"),
            AuditEvent(actor="a", action="ok", outcome="Not OK"),
        ):
            with pytest.raises(AuditError) as exc:
                record_event_sync(conn, event)
            assert exc.value.code == "invalid_audit_request"
        # Over-long values are clipped, not refused: the trail must not lose a security event.
        rid = record_event_sync(conn, AuditEvent(actor="x" * 1000, action="ok", source_ip="1" * 500))
        conn.commit()
    assert rid == 1 and verify_audit_log(db).ok


def test_empty_log_verifies(db: str) -> None:
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) is None
    report = verify_audit_log(db)
    assert report.ok and report.records == 0


def test_without_master_key_the_keys_are_unattested_and_verify_fails(
    signed_db: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing can vouch for a signature whose key the verifier cannot attest: not intact."""
    configure_signing(None)
    monkeypatch.setattr(audit, "_default_provider", None)
    for name in ("QENEX_MASTER_KEY", "QENEX_MASTER_KEY_FILE", "QENEX_PKCS11_MODULE", "QENEX_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QENEX_DATA_DIR", str(tmp_path))
    report = verify_audit_log(signed_db)
    assert not report.ok
    assert any("not attested" in problem and "master key is unavailable" in problem for problem in report.problems)
    assert not (tmp_path / "master.key").exists()  # a verifier never makes up a key


def test_records_left_unsigned_too_long_fail_verification(db: str) -> None:
    """No checkpoint yet (fewer than 1,000 records): fine while young, a failure once the oldest
    unsigned record is older than the window; a checkpoint makes the trail intact again."""
    _fill(db, 3)
    fresh = verify_audit_log(db)
    assert fresh.ok and fresh.checkpoints == 0, fresh.problems
    assert any("3 record(s) after the last checkpoint" in n for n in fresh.notes)
    later = datetime.now(UTC) + timedelta(seconds=audit.unsigned_window_s() + 60)
    stale = verify_audit_log(db, now=later)
    assert not stale.ok
    assert any("3 record(s) after the last checkpoint are unsigned" in p for p in stale.problems), stale.problems
    assert not verify_audit_log(db, unsigned_window=0).ok  # the window is a parameter too
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) == 1
        conn.commit()
    _fill(db, 2, start=3)
    partly = verify_audit_log(db, now=later)  # the two new records are the stale ones now
    assert not partly.ok and any("2 record(s)" in p for p in partly.problems)
    with psycopg.connect(db) as conn:
        assert checkpoint(conn) == 2
        conn.commit()
    assert verify_audit_log(db, now=later).ok


def test_unsigned_window_follows_the_checkpoint_interval() -> None:
    assert audit.unsigned_window_s(60) == audit.UNSIGNED_RECORD_AGE_MAX_S
    assert audit.unsigned_window_s(3600) == 3 * 3600


def test_checkpoint_if_new_signs_only_new_records(db: str) -> None:
    async def scenario() -> list[int | None]:
        conn = await psycopg.AsyncConnection.connect(db)
        try:
            empty = await audit.checkpoint_if_new_async(conn)
            await record_event(conn, AuditEvent(actor="x", action="a"))
            await conn.commit()
            first = await audit.checkpoint_if_new_async(conn)
            again = await audit.checkpoint_if_new_async(conn)
            return [empty, first, again]
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == [None, 1, None]
    report = verify_audit_log(db)
    assert report.ok and report.checkpoints == 1 and not report.notes, report
