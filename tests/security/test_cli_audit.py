"""`qenex audit checkpoint` and the verdict of `qenex audit verify` on the security audit log,
through a real subprocess against a real database: records left unsigned longer than the window
make verify exit 1; a checkpoint makes it exit 0 again; an unattested signing key exits 1."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from qenex.security import audit

from .conftest import TEST_JWT_SECRET, TEST_SECRET_KEY, reset_s2_tables

MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def qenex(db_url: str, *args: str, master_key: str = MASTER_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QENEX_")}
    env.update(QENEX_DATABASE_URL=db_url, QENEX_SECRET_KEY=TEST_SECRET_KEY, QENEX_JWT_SECRET=TEST_JWT_SECRET,
               QENEX_MASTER_KEY=master_key)
    return subprocess.run([sys.executable, "-m", "qenex", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _append_old_records(db_url: str, count: int, age: timedelta) -> None:
    """Records written ``age`` ago (a well-formed chain: as a server that crashed long ago left it)."""
    with psycopg.connect(db_url) as conn:
        tail = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        record_id, prev = (int(tail[0]) + 1, bytes(tail[1])) if tail else (1, audit.GENESIS_HASH)
        for i in range(count):
            when = datetime.now(UTC) - age
            fields = audit._Fields("cli:old", "account.created", f"account:{i}", "success", None, {})
            digest = audit._record_hash(prev, record_id, when, fields)
            conn.execute(audit._INSERT_SQL, audit._insert_params(record_id, when, fields, prev, digest))
            prev, record_id = digest, record_id + 1


def test_unsigned_records_fail_verify_until_checkpointed(module_db: str) -> None:
    reset_s2_tables(module_db)
    _append_old_records(module_db, 3, timedelta(seconds=audit.UNSIGNED_RECORD_AGE_MAX_S + 120))
    stale = qenex(module_db, "audit", "verify", "--json")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    security = next(c for c in json.loads(stale.stdout)["checks"] if c["name"] == "security audit log")
    assert security["ok"] is False and any("unsigned" in p for p in security["problems"])

    made = qenex(module_db, "audit", "checkpoint")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "checkpoint 1 signs records 1-3"
    again = qenex(module_db, "audit", "checkpoint", "--json")
    assert json.loads(again.stdout) == {"checkpoint": 1, "last_record_id": 3}  # nothing new: the same one

    intact = qenex(module_db, "audit", "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr

    other_root = base64.b64encode(secrets.token_bytes(32)).decode()  # not the key that sealed the signing key
    unattested = qenex(module_db, "audit", "verify", "--json", master_key=other_root)
    assert unattested.returncode == 1
    security = next(c for c in json.loads(unattested.stdout)["checks"] if c["name"] == "security audit log")
    assert security["ok"] is False


def test_checkpoint_of_an_empty_log(module_db: str) -> None:
    reset_s2_tables(module_db)
    empty = qenex(module_db, "audit", "checkpoint")
    assert empty.returncode == 0 and "empty" in empty.stdout
