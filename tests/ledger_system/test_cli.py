"""The ledger CLI through real subprocesses against a real database.

Happy paths print tables or JSON; every bad input ends as one line on stderr, a non-zero exit
code and no traceback, and changes nothing.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from .conftest import run_cli


def ok_json(*args: str, url: str) -> dict:
    r = run_cli(*args, "--json", url=url)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_one_line_error(r, code: int | None = None, contains: str = "") -> None:
    assert r.returncode != 0, r.stdout
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert contains in lines[0], lines[0]


def journal_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM ledger_journal").fetchone()[0]


@pytest.fixture()
def two_accounts(ledger_url):
    a = ok_json("account", "create", "--owner", "cli_a", "--currency", "USD", "--initial-balance", "100.00",
                url=ledger_url)  # fmt: skip
    b = ok_json("account", "create", "--owner", "cli_b", "--currency", "USD", "--type", "SAVINGS", url=ledger_url)
    return str(a["id"]), str(b["id"])


def test_db_migrate_is_idempotent(fresh_db_url):
    first = ok_json("db", "migrate", url=fresh_db_url)
    assert first["applied"] and first["current_version"] >= 2
    again = ok_json("db", "migrate", url=fresh_db_url)
    assert again == {"applied": [], "current_version": first["current_version"]}
    r = run_cli("db", "migrate", url=fresh_db_url)
    assert r.returncode == 0 and "nothing to apply" in r.stdout


def test_accounts_transfer_statement_happy_path(ledger_url, two_accounts):
    a, b = two_accounts
    shown = ok_json("account", "show", a, url=ledger_url)
    assert shown["balances"]["posted"] == "100.00" and shown["currency"] == "USD"

    tx = ok_json("transfer", "--from", a, "--to", b, "--amount", "12.50", "--currency", "usd",
                 "--idempotency-key", "cli-t1", "--description", "lunch", url=ledger_url)  # fmt: skip
    rows = journal_rows(ledger_url)
    again = ok_json("transfer", "--from", a, "--to", b, "--amount", "12.50", "--currency", "USD",
                    "--idempotency-key", "cli-t1", "--description", "lunch", url=ledger_url)  # fmt: skip
    assert again["id"] == tx["id"] and journal_rows(ledger_url) == rows  # replay changed nothing

    assert ok_json("account", "show", a, url=ledger_url)["balances"]["posted"] == "87.50"
    assert ok_json("account", "show", b, url=ledger_url)["balances"]["posted"] == "12.50"

    listed = ok_json("account", "list", "--owner", "cli_a", url=ledger_url)
    assert [str(x["id"]) for x in listed["accounts"]] == [a]
    customers = ok_json("account", "list", url=ledger_url)["accounts"]
    assert customers and all(x["system_code"] is None for x in customers)
    everything = ok_json("account", "list", "--include-system", url=ledger_url)["accounts"]
    system = {x["system_code"] for x in everything if x["owner_id"] == "system"}
    assert {"cash", "fee_income", "interest_expense", "fx_position"} <= system
    cash = next(x for x in everything if x["system_code"] == "cash")
    assert cash["balances"]["posted"] == "100.00" and cash["account_type"] == "GL_ASSET"  # a's opening deposit
    page = ok_json("account", "list", "--limit", "1", url=ledger_url)
    assert len(page["accounts"]) == 1 and page["next_cursor"]
    nxt = ok_json("account", "list", "--limit", "1", "--after", page["next_cursor"], url=ledger_url)
    assert nxt["accounts"][0]["id"] != page["accounts"][0]["id"]

    r = run_cli("statement", a, "--format", "csv", url=ledger_url)
    assert r.returncode == 0, r.stderr
    assert "12.50" in r.stdout and "100.00" in r.stdout
    r = run_cli("statement", a, "--format", "json", url=ledger_url)
    assert r.returncode == 0, r.stderr
    stmt = json.loads(r.stdout)
    assert stmt["closing_balance"] == "87.50"

    r = run_cli("account", "show", a, url=ledger_url)  # human output: a Rich table
    assert r.returncode == 0 and "87.50" in r.stdout


def test_audit_verify_detects_tampering(ledger_url, two_accounts):
    a, b = two_accounts
    ok_json("transfer", "--from", a, "--to", b, "--amount", "5.00", "--currency", "USD", url=ledger_url)
    report = ok_json("audit", "verify", url=ledger_url)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert "ledger hash chain" in names and "security audit log" in names and "ledger invariants" in names

    # A side table out of step with the journal, the chain itself intact: the invariants catch it.
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute(f"UPDATE ledger_accounts SET debits_posted = debits_posted + 1 WHERE id = {a}")
        conn.execute(f"UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = {b}")
    r = run_cli("audit", "verify", "--json", url=ledger_url)
    assert r.returncode == 1, r.stdout
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["ledger hash chain"]["ok"] is True and checks["ledger invariants"]["ok"] is False
    assert any(f"account {a} totals differ" in p for p in checks["ledger invariants"]["problems"])
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute(f"UPDATE ledger_accounts SET debits_posted = debits_posted - 1 WHERE id = {a}")
        conn.execute(f"UPDATE ledger_accounts SET credits_posted = credits_posted - 1 WHERE id = {b}")

    with psycopg.connect(ledger_url, autocommit=True) as conn:  # tamper as superuser
        conn.execute("ALTER TABLE ledger_journal DISABLE TRIGGER ledger_journal_no_update_delete")
        conn.execute(
            "UPDATE ledger_journal SET amount_minor = amount_minor + 1"
            " WHERE seq = (SELECT max(seq) FROM ledger_journal)"
        )
        conn.execute("ALTER TABLE ledger_journal ENABLE TRIGGER ledger_journal_no_update_delete")
    r = run_cli("audit", "verify", "--json", url=ledger_url)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["ok"] is False
    chain = next(c for c in report["checks"] if c["name"] == "ledger hash chain")
    assert chain["ok"] is False and chain["problems"]


BAD_INPUTS = [
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "abc", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1.001", "--currency", "USD"), "amount_precision"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "-5", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "0", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1e400", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1E+999999", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1E-999999", "--currency", "USD"), "amount_precision"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1_0", "--currency", "USD"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "\u0663", "--currency", "USD"), "invalid_amount"),
    (("account", "create", "--owner", "x", "--currency", "USD", "--initial-balance", "1e+999999"), "invalid_amount"),
    (("account", "set-limit", "{a}", "--overdraft", "1E+999999"), "invalid_amount"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1.00", "--currency", "XYZ"), "invalid_currency"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1.00", "--currency", "EUR"), "currency_mismatch"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1000.00", "--currency", "USD"), "insufficient_funds"),
    (("transfer", "--from", "{a}", "--to", "999999", "--amount", "1.00", "--currency", "USD"), "account_not_found"),
    (("transfer", "--from", "{a}", "--to", "{b}", "--amount", "1.00"), "usage error"),
    (("account", "show", "999999"), "account_not_found"),
    (("account", "show", "not-an-id"), "invalid_request"),
    (("account", "create", "--owner", "x", "--currency", "USD", "--initial-balance", "1.001"), "amount_precision"),
    (("account", "create", "--owner", "x", "--currency", "USD", "--metadata", "[1]"), "JSON object"),
    (("account", "create", "--owner", "x", "--currency", "USD", "--type", "WALLET"), ""),
    (("account", "list", "--limit", "0"), "usage error"),
    (("statement", "{a}", "--from", "yesterday"), "ISO date"),
    (("statement", "{a}", "--format", "xml"), "--format"),
    (("no-such-thing",), "usage error"),
]


def test_bad_input_is_one_line_nonzero_and_changes_nothing(ledger_url, two_accounts):
    a, b = two_accounts
    before = journal_rows(ledger_url)
    for args, expected in BAD_INPUTS:
        r = run_cli(*(x.format(a=a, b=b) for x in args), url=ledger_url)
        assert_one_line_error(r, contains=expected)
    assert journal_rows(ledger_url) == before
    with psycopg.connect(ledger_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_accounts WHERE owner_id = 'x'").fetchone()[0] == 0


def test_unreachable_database_and_bad_config_are_one_line(tmp_path):
    r = run_cli("account", "list", url="postgresql://qenex@127.0.0.1:1/nothing?connect_timeout=2")
    assert_one_line_error(r, code=1, contains="database_unavailable")
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    r = run_cli("account", "list", "--config", str(bad), url=None)
    assert_one_line_error(r, code=2, contains="configuration error")


def test_two_phase_and_reversal_through_the_cli(ledger_url, two_accounts):
    a, b = two_accounts
    hold = ok_json("transfer", "--from", a, "--to", b, "--amount", "30.00", "--currency", "USD", "--pending",
                   "--timeout-seconds", "600", url=ledger_url)  # fmt: skip
    assert hold["status"] == "pending"
    assert ok_json("account", "show", a, url=ledger_url)["balances"]["available"] == "70.00"
    posted = ok_json("transaction", "post", str(hold["id"]), "--amount", "20.00", url=ledger_url)
    assert posted["amount"] == "20.00"
    shown = ok_json("account", "show", a, url=ledger_url)["balances"]
    assert (shown["posted"], shown["available"]) == ("80.00", "80.00")  # the unposted 10.00 is released

    hold2 = ok_json("transfer", "--from", a, "--to", b, "--amount", "5.00", "--currency", "USD", "--pending",
                    url=ledger_url)  # fmt: skip
    ok_json("transaction", "void", str(hold2["id"]), url=ledger_url)
    assert ok_json("account", "show", a, url=ledger_url)["balances"]["available"] == "80.00"
    assert_one_line_error(run_cli("transaction", "void", str(hold2["id"]), url=ledger_url), code=1)

    tx = ok_json("transfer", "--from", a, "--to", b, "--amount", "1.00", "--currency", "USD", url=ledger_url)
    rev = ok_json("transaction", "reverse", str(tx["id"]), "--idempotency-key", "rev-1", url=ledger_url)
    again = ok_json("transaction", "reverse", str(tx["id"]), "--idempotency-key", "rev-1", url=ledger_url)
    assert rev["id"] == again["id"]
    assert ok_json("account", "show", a, url=ledger_url)["balances"]["posted"] == "80.00"
    assert ok_json("transaction", "show", str(tx["id"]), url=ledger_url)["reversed_by"] == rev["id"]
    assert_one_line_error(run_cli("transaction", "show", "999999", url=ledger_url), code=1,
                          contains="transaction_not_found")  # fmt: skip
    assert_one_line_error(run_cli("transaction", "post", str(hold["id"]), "--amount", "0.001", url=ledger_url),
                          code=1, contains="amount_precision")  # fmt: skip
    assert_one_line_error(run_cli("transfer", "--from", a, "--to", b, "--amount", "1", "--currency", "USD",
                                  "--timeout-seconds", "5", url=ledger_url), contains="--pending")  # fmt: skip


def test_account_status_and_limits_through_the_cli(ledger_url, two_accounts):
    a, b = two_accounts
    assert ok_json("account", "freeze", b, "--idempotency-key", "cli-fz", url=ledger_url)["status"] == "frozen"
    assert ok_json("account", "freeze", b, "--idempotency-key", "cli-fz", url=ledger_url)["status"] == "frozen"
    assert_one_line_error(run_cli("account", "unfreeze", b, "--idempotency-key", "cli-fz", url=ledger_url), code=1,
                          contains="idempotency_conflict")  # fmt: skip
    r = run_cli("transfer", "--from", a, "--to", b, "--amount", "1.00", "--currency", "USD", url=ledger_url)
    assert_one_line_error(r, code=1, contains="account_frozen")
    assert ok_json("account", "unfreeze", b, url=ledger_url)["status"] == "active"

    assert ok_json("account", "set-limit", a, "--overdraft", "50.00", url=ledger_url)["overdraft_limit"] == "50.00"
    ok_json("transfer", "--from", a, "--to", b, "--amount", "150.00", "--currency", "USD", url=ledger_url)
    assert ok_json("account", "show", a, url=ledger_url)["balances"]["posted"] == "-50.00"
    r = run_cli("transfer", "--from", a, "--to", b, "--amount", "0.01", "--currency", "USD", url=ledger_url)
    assert_one_line_error(r, code=1, contains="insufficient_funds")
    assert_one_line_error(run_cli("account", "set-limit", a, "--overdraft", "1.001", url=ledger_url), code=1,
                          contains="amount_precision")  # fmt: skip

    assert_one_line_error(run_cli("account", "close", b, url=ledger_url), code=1)  # it holds 150.00
    empty = ok_json("account", "create", "--owner", "cli_c", "--currency", "USD", url=ledger_url)
    assert ok_json("account", "close", str(empty["id"]), url=ledger_url)["status"] == "closed"
    r = run_cli("transfer", "--from", a, "--to", str(empty["id"]), "--amount", "0.01", "--currency", "USD",
                url=ledger_url)  # fmt: skip
    assert_one_line_error(r, code=1, contains="account_closed")


def test_cli_mutations_reach_the_audit_trail_through_the_outbox(ledger_url, two_accounts):
    """Each CLI mutation commits its audit note with it and relays it before exiting; a failed
    one that the ledger decided is recorded as a failure with its code."""
    from qenex.security.audit import query_events

    a, b = two_accounts
    tx = ok_json("transfer", "--from", a, "--to", b, "--amount", "1.25", "--currency", "USD", url=ledger_url)
    r = run_cli("transfer", "--from", a, "--to", b, "--amount", "100000.00", "--currency", "USD", url=ledger_url)
    assert r.returncode == 1
    with psycopg.connect(ledger_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_outbox").fetchone() == (0,)
        events = [e for e in query_events(conn, action="transaction.create", limit=1000)
                  if e.resource == f"account:{a}"]
    assert events[-2].outcome == "success" and events[-2].details["id"] == tx["id"]
    assert events[-1].outcome == "failure" and events[-1].details["code"] == "insufficient_funds"
    assert all(e.actor.startswith("cli:") for e in events[-2:])
    checks = {c["name"]: c for c in ok_json("audit", "verify", url=ledger_url)["checks"]}
    assert checks["audit outbox"]["ok"] is True


def test_audit_verify_fails_on_a_stale_outbox(fresh_db_url):
    """Notes of committed mutations that no relay moved for longer than the unsigned window mean
    mutations missing from the audit trail: verify says so and exits 1."""
    ok_json("db", "migrate", url=fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger_outbox (created_at, payload) "
                     "VALUES (now() - interval '2 hours', '{}')")
    r = run_cli("audit", "verify", "--json", url=fresh_db_url)
    assert r.returncode == 1, r.stdout
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["audit outbox"]["ok"] is False and "relay" in checks["audit outbox"]["problems"][0]


def test_cli_account_create_stores_pii_sealed(ledger_url, monkeypatch, tmp_path):
    """The CLI writes through the kernel, so PII it is given is sealed at rest like the API's."""
    monkeypatch.setenv("QENEX_MASTER_KEY", "cWVuZXgta2VybmVsLXRlc3QtbWFzdGVyLWtleS0zMmI=")
    monkeypatch.setenv("QENEX_SECRET_KEY", "cli-test-secret-0123456789abcdef0123")
    monkeypatch.setenv("QENEX_DATA_DIR", str(tmp_path))
    r = run_cli("account", "create", "--owner", "seal_cli", "--currency", "USD", "--metadata",
                json.dumps({"ssn": "078-05-1120"}), "--json", url=ledger_url)
    assert r.returncode == 0, r.stderr
    account = json.loads(r.stdout)
    assert account["metadata"]["ssn"] == "078-05-1120"
    with psycopg.connect(ledger_url) as conn:
        stored = conn.execute("SELECT metadata FROM ledger_accounts WHERE id = %s", (account["id"],)).fetchone()[0]
    assert "078-05-1120" not in stored and "$enc" in stored
