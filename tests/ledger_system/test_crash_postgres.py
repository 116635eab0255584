"""SIGKILL of PostgreSQL itself in the middle of a load (and of the client with it): after the
server restarts (crash recovery from its WAL) every acknowledged transaction is present, nothing
is partial, the invariants hold and acknowledged keys replay to the same result.

The server is a private one (private_pg.py: pgserver's binaries, fsync, synchronous_commit and
full_page_writes on), so the test can kill the postmaster and every backend at once. The OS keeps
its page cache across a process kill, so this proves the commit protocol (an acknowledgement
follows a durable commit; an uncommitted batch leaves nothing), not the disk's fsync itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from .books import check_acks, check_books, read_acks
from .conftest import WORKER, child_env, create_hot_accounts
from .private_pg import PrivatePostgres
from .test_crash import _replay, _wait_for_acks

KILL_ROUNDS = 2
ACKS_BEFORE_KILL_MIN = 200
WORKER_EXIT_TIMEOUT_S = 30


def _load_then_kill_server(pg: PrivatePostgres, spec: dict, acks_path, rng: random.Random) -> None:
    before = acks_path.read_bytes().count(b"\n") if acks_path.exists() else 0
    proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        _wait_for_acks(acks_path, proc, before + ACKS_BEFORE_KILL_MIN)
        time.sleep(rng.uniform(0, 0.05))  # land the kill at a random point of a batch
        pg.kill()  # the postmaster and every backend, mid-transaction
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=WORKER_EXIT_TIMEOUT_S)
    data = acks_path.read_bytes()
    if data and not data.endswith(b"\n"):  # a line torn by the kill was never a completed ack
        acks_path.write_bytes(data[: data.rfind(b"\n") + 1])
    pg.start()  # crash recovery


@pytest.mark.slow
def test_sigkill_of_postgres_mid_load_loses_no_acknowledged_transaction(tmp_path):
    from qenex.store.ledger_audit import check_invariants
    from qenex.store.migrate import migrate

    with PrivatePostgres("crash-test") as pg:
        migrate(pg.url)
        accounts = create_hot_accounts(pg.url)
        acks_path = tmp_path / "acks.jsonl"
        rng = random.Random(23)
        for round_no in range(KILL_ROUNDS):
            spec = {"url": pg.url, "accounts": accounts, "tasks": 8, "ops": 100_000, "seed": 31 + round_no,
                    "name": f"pgcrash{round_no}", "acks": str(acks_path)}
            _load_then_kill_server(pg, spec, acks_path, rng)
            # Each round restarts on the books the previous crash left behind; they must be right.
            assert check_invariants(pg.url) == [], f"after crash {round_no}"

        acks = read_acks(acks_path)
        assert len(acks) >= KILL_ROUNDS * ACKS_BEFORE_KILL_MIN
        assert {a["kind"] for a in acks} >= {"transfer", "pending", "batch"}
        assert check_invariants(pg.url) == []
        assert check_books(pg.url) == []
        assert check_acks(pg.url, acks) == []
        assert asyncio.run(_replay(pg.url, acks)) == []
        # The log shows the server really crashed and recovered (not a clean shutdown).
        assert "database system was interrupted" in pg.log.read_text() or \
            "was not properly shut down" in pg.log.read_text()
