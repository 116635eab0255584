"""`qenex keys` through a real subprocess against the real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from qenex.security import apikeys
from qenex.security.errors import SecurityError

from .conftest import TEST_JWT_SECRET, TEST_SECRET_KEY


def qenex(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QENEX_")}
    env.update(QENEX_DATABASE_URL=db_url, QENEX_SECRET_KEY=TEST_SECRET_KEY, QENEX_JWT_SECRET=TEST_JWT_SECRET)
    return subprocess.run([sys.executable, "-m", "qenex", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120)


def test_create_list_revoke(security_db_url: str, conn: psycopg.Connection[Any]) -> None:
    made = qenex(security_db_url, "keys", "create", "--name", "cli key", "--role", "teller",
                 "--scopes", "accounts:read,transactions:read", "--expires-in", "30d", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    # The shape leads: {"id": ..., "key": ...}, then the fields the README documents.
    assert list(created) == ["id", "key", "name", "role", "scopes", "owner_id", "expires_at"]
    assert made.stdout.lstrip("{ \n").startswith('"id"')
    assert created["key"].startswith(f"qnx_{created['id']}_")
    assert created["scopes"] == ["accounts:read", "transactions:read"] and created["expires_at"]
    assert apikeys.authenticate_key(conn, created["key"]).role == "teller"

    listed = qenex(security_db_url, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[created["id"]]["status"] == "active"
    assert created["key"] not in listed.stdout and created["key"].split("_", 2)[2] not in listed.stdout
    table = qenex(security_db_url, "keys", "list")
    assert table.returncode == 0 and created["id"] in table.stdout

    revoked = qenex(security_db_url, "keys", "revoke", created["id"])
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(SecurityError, match="revoked"):
        apikeys.authenticate_key(conn, created["key"])
    actor = conn.execute("SELECT actor FROM audit_log WHERE action = 'api_key.revoked' AND resource = %s",
                         (f"key:{created['id']}",)).fetchone()
    assert actor is not None and actor[0].startswith("cli:")


def test_rotate_and_plain_output(security_db_url: str, conn: psycopg.Connection[Any]) -> None:
    made = qenex(security_db_url, "keys", "create", "--name", "plain", "--role", "auditor")
    assert made.returncode == 0, made.stderr
    key = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("key: "))
    old = apikeys.authenticate_key(conn, key)
    rotated = qenex(security_db_url, "keys", "rotate", old.id, "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)
    assert new["rotated_from"] == old.id and apikeys.authenticate_key(conn, new["key"]).id == new["id"]


def test_clients_signing_keys_and_operators(security_db_url: str) -> None:
    client = qenex(security_db_url, "keys", "client-create", "--name", "partner", "--role", "customer",
                   "--owner-id", "cust-7", "--json")
    assert client.returncode == 0, client.stderr
    assert json.loads(client.stdout)["client_id"].startswith("qnc_")
    signing = qenex(security_db_url, "keys", "rotate-signing", "--json")
    assert signing.returncode == 0 and json.loads(signing.stdout)["kid"]
    operator = qenex(security_db_url, "keys", "operator-create", "--username", "cli-op", "--role", "auditor",
                     "--password-stdin", "--json", stdin="a good long password\n")
    assert operator.returncode == 0, operator.stderr
    assert json.loads(operator.stdout)["provisioning_uri"].startswith("otpauth://totp/")
    unlock = qenex(security_db_url, "keys", "operator-unlock", "cli-op")
    assert unlock.returncode == 0, unlock.stderr
    operators_listed = qenex(security_db_url, "keys", "operator-list", "--json")
    assert operators_listed.returncode == 0, operators_listed.stderr
    assert {"username": "cli-op", "status": "active"}.items() <= next(
        row for row in json.loads(operators_listed.stdout) if row["username"] == "cli-op").items()
    assert "argon2" not in operators_listed.stdout
    clients = qenex(security_db_url, "keys", "client-list")
    assert clients.returncode == 0 and "partner" in clients.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["keys", "create", "--name", "x", "--role", "root"], "invalid_security_request"),
        (["keys", "create", "--name", "x", "--role", "auditor", "--scopes", "transactions:write"],
         "invalid_security_request"),
        (["keys", "create", "--name", "x", "--role", "teller", "--expires-in", "soon"], "invalid_security_request"),
        (["keys", "create", "--name", "x", "--role", "customer"], "invalid_security_request"),
        (["keys", "revoke", "0000000000000000"], "key_not_found"),
        (["keys", "operator-unlock", "nobody"], "operator_not_found"),
    ],
)
def test_user_mistakes_are_one_line_errors(security_db_url: str, args: list[str], code: str) -> None:
    result = qenex(security_db_url, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"qenex: error: {code}:")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_required_options_are_usage_errors(security_db_url: str) -> None:
    result = qenex(security_db_url, "keys", "create", "--role", "teller")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_rotate_master_calls_the_envelope(fresh_db_url: str) -> None:
    import base64
    import secrets

    env_key = base64.b64encode(secrets.token_bytes(32)).decode()
    first = _with_master(fresh_db_url, env_key)
    second = _with_master(fresh_db_url, env_key)
    assert isinstance(first, dict) and isinstance(second, dict) and first != second


def _with_master(db_url: str, master_key: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QENEX_")}
    env.update(QENEX_DATABASE_URL=db_url, QENEX_MASTER_KEY=master_key)
    result = subprocess.run([sys.executable, "-m", "qenex", "keys", "rotate-master", "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
