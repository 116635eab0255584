"""`qenex demo` (what `make run` runs) loads its data set once: a second run replays, adds nothing."""

from __future__ import annotations

import psycopg

from .conftest import run_cli


def _counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM ledger_accounts), (SELECT count(*) FROM ledger_journal),
                      (SELECT count(*) FROM ledger_idempotency)"""
        ).fetchone()
    return row


def test_demo_twice_does_not_duplicate(fresh_db_url):
    first = run_cli("demo", "--no-serve", url=fresh_db_url)
    assert first.returncode == 0, first.stderr
    assert "What to try next" in first.stdout and "qenex account list" in first.stdout
    counts = _counts(fresh_db_url)
    assert counts[0] >= 5 and counts[1] > 0

    second = run_cli("demo", "--no-serve", url=fresh_db_url)
    assert second.returncode == 0, second.stderr
    assert _counts(fresh_db_url) == counts
    # Same balances printed both times.
    table = lambda out: [ln for ln in out.splitlines() if "│" in ln]  # noqa: E731
    assert table(first.stdout) == table(second.stdout)

    with psycopg.connect(fresh_db_url) as conn:
        demo = "SELECT DISTINCT currency FROM ledger_accounts WHERE owner_id LIKE 'demo_%%'"
        currencies = {r[0] for r in conn.execute(demo)}
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT tx_type FROM ledger_journal")}
        open_holds = conn.execute("SELECT count(*) FROM ledger_pending WHERE state = 0").fetchone()[0]
        reversals = conn.execute("SELECT count(*) FROM ledger_reversals").fetchone()[0]
        rates = conn.execute("SELECT count(*) FROM ledger_journal WHERE fx_rate IS NOT NULL").fetchone()[0]
    assert currencies == {"USD", "EUR", "GBP"}
    assert {"TRANSFER", "EXCHANGE"} <= kinds
    assert open_holds == 1 and reversals == 1 and rates >= 1


def test_demo_hands_over_to_the_api_server(fresh_db_url):
    """`make run` ends with a running API server: the demo execs `qenex serve` in its place."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from .conftest import child_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env()
    env.update(QENEX_DATABASE_URL=fresh_db_url, QENEX_API_PORT=str(port), QENEX_API_HOST="127.0.0.1")
    env.pop("QENEX_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "qenex", "demo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        body = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.3)
        assert b"ok" in body, "the API server did not answer /health"
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the same process: exec kept the pid
        out, _ = proc.communicate(timeout=30)
    assert "What to try next" in out and "The API server starts now" in out
