"""SIGKILL in the middle of a load: after a restart every acknowledged transaction is present,
nothing is partial, the invariants hold, and acknowledged keys still replay to the same result.
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
from decimal import Decimal

import pytest

from .books import check_acks, check_books, read_acks
from .conftest import WORKER, child_env, create_hot_accounts

ACKS_BEFORE_KILL_MIN = 300
KILL_ROUNDS = 3
WAIT_FOR_ACKS_S = 120
RETRIES_AFTER_RESTART = 20


def _wait_for_acks(path, proc, count: int) -> None:
    deadline = time.monotonic() + WAIT_FOR_ACKS_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker ended before the kill: {proc.stderr.read()[-3000:]}")
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError("worker did not acknowledge enough operations in time")


async def _replay(url: str, acks: list[dict]) -> list[str]:
    """Re-send acknowledged transfers with their keys: same id back, no balance change."""
    from qenex import FinancialKernel, LedgerError, TransactionType

    problems = []
    kernel = FinancialKernel({"database": {"url": url}})
    await kernel.initialize()
    try:
        transfers = [a for a in acks if a["kind"] == "transfer"][-RETRIES_AFTER_RESTART:]
        before = {a["from_account"]: await kernel.get_account_balance(a["from_account"]) for a in transfers}
        for a in transfers:
            try:
                tx = await kernel.process_transaction(
                    TransactionType.TRANSFER,
                    from_account=a["from_account"],
                    to_account=a["to_account"],
                    amount=Decimal(a["amount"]),
                    currency=a["currency"],
                    idempotency_key=a["key"],
                )
            except LedgerError as exc:
                problems.append(f"replay of {a} was rejected: {exc}")
                continue
            if str(tx) != a["tx"]:
                problems.append(f"replay of {a['key']} gave {tx}, acknowledged {a['tx']}")
        for acct, bal in before.items():
            if await kernel.get_account_balance(acct) != bal:
                problems.append(f"replays changed the balance of {acct}")
    finally:
        await kernel.shutdown()
    return problems


def _load_then_kill(spec: dict, acks_path, rng: random.Random) -> None:
    """Start a worker, let it acknowledge at least ACKS_BEFORE_KILL_MIN more operations, SIGKILL it."""
    before = acks_path.read_bytes().count(b"\n") if acks_path.exists() else 0
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        _wait_for_acks(acks_path, proc, before + ACKS_BEFORE_KILL_MIN)
        time.sleep(rng.uniform(0, 0.05))  # land the kill at a random point of a batch
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    data = acks_path.read_bytes()
    if data and not data.endswith(b"\n"):  # a line torn by the kill was never a completed ack
        acks_path.write_bytes(data[: data.rfind(b"\n") + 1])


@pytest.mark.slow
def test_sigkill_mid_load_loses_no_acknowledged_transaction(ledger_url, tmp_path):
    from qenex.store.ledger_audit import check_invariants

    accounts = create_hot_accounts(ledger_url)
    acks_path = tmp_path / "acks.jsonl"
    rng = random.Random(11)
    for round_no in range(KILL_ROUNDS):
        spec = {
            "url": ledger_url,
            "accounts": accounts,
            "tasks": 8,
            "ops": 100_000,  # far more than it can do before the kill
            "seed": 7 + round_no,
            "name": f"crash{round_no}",
            "acks": str(acks_path),
        }
        # Each round restarts on the books the previous kill left behind.
        _load_then_kill(spec, acks_path, rng)

    acks = read_acks(acks_path)
    assert len(acks) >= KILL_ROUNDS * ACKS_BEFORE_KILL_MIN
    # "Restart": a new process (this one) opens the ledger; the server dropped the killed
    # clients' connections and rolled back whatever they had not committed.
    assert check_invariants(ledger_url) == []
    assert check_books(ledger_url) == []
    assert check_acks(ledger_url, acks) == []
    assert asyncio.run(_replay(ledger_url, acks)) == []
