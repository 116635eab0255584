"""Several processes, many asyncio tasks each, over a few hot accounts: the books stay right.

3 worker processes x 8 tasks do random transfers, overdraft attempts, idempotent retries,
two-phase flows and small batches (load_worker.py). Afterwards: the engine's own invariant
check, our independent SQL recomputation (books.py), and every acknowledged transaction in the
journal exactly once with its idempotency key pointing at it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .books import check_acks, check_books, read_acks
from .conftest import WORKER, child_env, create_hot_accounts

PROCESSES_COUNT = 3
TASKS_PER_PROCESS = 10
OPS_PER_TASK = 60
WORKER_TIMEOUT_S = 240


@pytest.mark.slow
def test_processes_and_tasks_keep_the_books_right(ledger_url, tmp_path):
    from qenex.store.ledger_audit import check_invariants

    accounts = create_hot_accounts(ledger_url)
    procs = []
    for p in range(PROCESSES_COUNT):
        spec = {
            "url": ledger_url,
            "accounts": accounts,
            "tasks": TASKS_PER_PROCESS,
            "ops": OPS_PER_TASK,
            "seed": 1000 + p,
            "name": f"p{p}",
            "acks": str(tmp_path / f"acks-{p}.jsonl"),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
        )
    rejected = 0
    for proc in procs:
        out, err = proc.communicate(timeout=WORKER_TIMEOUT_S)
        assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
        rejected += json.loads(out.strip().splitlines()[-1])["rejected"]

    acks = [a for p in range(PROCESSES_COUNT) for a in read_acks(tmp_path / f"acks-{p}.jsonl")]
    kinds = {k: sum(1 for a in acks if a["kind"] == k) for k in ("transfer", "retry", "pending", "post", "void")}
    kinds["batch"] = sum(1 for a in acks if a["kind"] == "batch")
    # The load really exercised every path, including rejected overdraft attempts.
    assert all(n > 0 for n in kinds.values()), kinds
    assert rejected > 0, "no overdraft attempt was rejected: the load did not hit the limits"

    assert check_invariants(ledger_url) == []
    assert check_books(ledger_url) == []
    assert check_acks(ledger_url, acks) == []
