"""Human operators (the dashboard's users): argon2id password plus TOTP, lockout, sessions.

Login takes the username, password and TOTP code together. A missing code is refused before
the password is even checked (``mfa_required``), so that answer reveals nothing about the
password. A wrong password or code counts as one failed attempt; after
``security.max_login_attempts`` consecutive failures the operator is locked (and their
sessions ended) until an administrator unlocks them. Every attempt, the lockout and the
unlock are recorded in the audit trail.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from qenex.config import Settings
from qenex.security import rbac, sessions, totp
from qenex.security._common import audit, clip, standalone_transaction, utcnow
from qenex.security._sealing import require_secret, seal, unseal
from qenex.security.errors import (
    ACCOUNT_LOCKED,
    INVALID_CREDENTIALS,
    MFA_REQUIRED,
    OPERATOR_NOT_FOUND,
    SecurityError,
    bad_request,
)
from qenex.security.passwords import check_password_policy, hash_secret, needs_rehash, verify_secret

USERNAME_CHARS_MAX = 64
OPERATOR_ROLES: tuple[rbac.Role, ...] = ("admin", "operator", "teller", "auditor")
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_SEAL_PURPOSE = "totp-seed"
_SECRET_ENV = "QENEX_SECRET_KEY"  # noqa: S105 - the variable's name, not its value


@dataclass(frozen=True, slots=True)
class CreatedOperator:
    """A new operator. ``totp_secret`` / ``provisioning_uri`` are shown once for enrolment."""

    id: str
    username: str
    role: rbac.Role
    totp_secret: str
    provisioning_uri: str

    def __repr__(self) -> str:
        return f"CreatedOperator(id={self.id!r}, username={self.username!r}, role={self.role!r}, totp='***')"


@dataclass(frozen=True, slots=True)
class LoginResult:
    session: sessions.Session
    principal: rbac.Principal

    def __repr__(self) -> str:
        return f"LoginResult(principal={self.principal!r}, session={self.session!r})"


def _check_username(username: str) -> str:
    username = username.strip().lower()
    if not _USERNAME_RE.match(username):
        raise bad_request("a username has 2 to 64 characters: lower-case letters, digits, '.', '_' or '-'")
    return username


def create_operator(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    created_by: str = "system",
    source_ip: str | None = None,
    now: datetime | None = None,
) -> CreatedOperator:
    checked_role = rbac.parse_role(role)
    if checked_role not in OPERATOR_ROLES:
        raise bad_request(f"an operator's role is one of {', '.join(OPERATOR_ROLES)}")
    username = _check_username(username)
    check_password_policy(password)
    key = require_secret(settings.security.secret_key, _SECRET_ENV)
    operator_id = "op_" + secrets.token_hex(8)
    seed = totp.new_secret()
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM security_operators WHERE username = %s", (username,)).fetchone()
        if exists:
            raise bad_request(f"operator {username!r} already exists")
        conn.execute(
            "INSERT INTO security_operators (id, username, role, password_hash, totp_sealed, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (operator_id, username, checked_role, hash_secret(password),
             seal(key, _SEAL_PURPOSE, seed.encode("ascii"), operator_id), now or utcnow()),
        )
        audit(conn, created_by, "operator.created", resource=f"operator:{operator_id}", source_ip=source_ip,
              details={"username": username, "role": checked_role})
    return CreatedOperator(operator_id, username, checked_role, seed, totp.provisioning_uri(seed, username))


def _fail(
    conn: psycopg.Connection[Any], settings: Settings, row: dict[str, Any], source_ip: str | None, now: datetime
) -> SecurityError:
    """Count one failed attempt, lock at the threshold. Runs inside the login transaction."""
    attempts = row["failed_attempts"] + 1
    locked = attempts >= settings.security.max_login_attempts
    conn.execute(
        "UPDATE security_operators SET failed_attempts = %s, locked_at = CASE WHEN %s THEN %s ELSE locked_at END"
        " WHERE id = %s",
        (attempts, locked, now, row["id"]),
    )
    actor = f"operator:{row['id']}"
    audit(conn, actor, "auth.login", resource=f"operator:{row['id']}", outcome="failure", source_ip=source_ip,
          details={"reason": "bad password or code", "failed_attempts": attempts})
    if locked:
        sessions.end_operator_sessions(conn, row["id"], now)
        audit(conn, actor, "auth.lockout", resource=f"operator:{row['id']}", source_ip=source_ip,
              details={"failed_attempts": attempts})
        return SecurityError(ACCOUNT_LOCKED, "too many failed attempts; the account is locked")
    return SecurityError(INVALID_CREDENTIALS, "username, password or code is wrong")


def _attempt(
    conn: psycopg.Connection[Any], settings: Settings, username: str, password: str, code: str,
    source_ip: str | None, now: datetime,
) -> LoginResult | SecurityError:
    """One login attempt inside a transaction. Returns the error instead of raising it, so the
    failure count and audit records are committed."""
    with conn.cursor(row_factory=dict_row) as cur:
        # FOR UPDATE: concurrent attempts on one operator are counted one after the other.
        cur.execute("SELECT * FROM security_operators WHERE username = %s FOR UPDATE", (username,))
        row = cur.fetchone()
    if row is None or row["disabled_at"] is not None:
        verify_secret(None, password)  # same cost as a real check: usernames cannot be probed by timing
        audit(conn, f"user:{clip(username, 64)}", "auth.login", resource="operator", outcome="failure",
              source_ip=source_ip, details={"reason": "unknown or disabled operator"})
        return SecurityError(INVALID_CREDENTIALS, "username, password or code is wrong")
    if row["locked_at"] is not None:
        audit(conn, f"operator:{row['id']}", "auth.login", resource=f"operator:{row['id']}", outcome="failure",
              source_ip=source_ip, details={"reason": "locked"})
        return SecurityError(ACCOUNT_LOCKED, "the account is locked; an administrator must unlock it")
    seed = unseal(require_secret(settings.security.secret_key, _SECRET_ENV), _SEAL_PURPOSE,
                  bytes(row["totp_sealed"]), row["id"], _SECRET_ENV).decode("ascii")
    password_ok = verify_secret(row["password_hash"], password)
    step = totp.matching_step(seed, code, now, row["last_totp_step"])
    if not password_ok or step is None:
        return _fail(conn, settings, row, source_ip, now)
    new_hash = hash_secret(password) if needs_rehash(row["password_hash"]) else row["password_hash"]
    conn.execute(
        "UPDATE security_operators SET failed_attempts = 0, last_totp_step = %s, password_hash = %s WHERE id = %s",
        (step, new_hash, row["id"]),
    )
    session = sessions.create_session(conn, settings, row["id"], source_ip=source_ip, now=now)
    audit(conn, f"operator:{row['id']}", "auth.login", resource=f"operator:{row['id']}", source_ip=source_ip)
    role = rbac.parse_role(row["role"])
    principal = rbac.Principal(kind="operator", id=row["id"], name=row["username"], role=role,
                               scopes=rbac.ROLE_SCOPES[role])
    return LoginResult(session, principal)


def login(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    username: str,
    password: str,
    totp_code: str | None,
    source_ip: str | None = None,
    now: datetime | None = None,
) -> LoginResult:
    """Password + TOTP login. Raises ``mfa_required``, ``invalid_credentials`` (401) or ``account_locked`` (403).

    ``conn`` must not be inside a caller's transaction: failed attempts are committed before raising.
    """
    if not totp_code or not totp_code.strip():
        raise SecurityError(MFA_REQUIRED, "a one-time code from the authenticator app is required")
    now = now or utcnow()
    try:
        username = _check_username(username)
    except SecurityError:
        raise SecurityError(INVALID_CREDENTIALS, "username, password or code is wrong") from None
    with standalone_transaction(conn):
        outcome = _attempt(conn, settings, username, password, totp_code.strip(), source_ip, now)
    if isinstance(outcome, SecurityError):
        raise outcome
    return outcome


def unlock_operator(
    conn: psycopg.Connection[Any], username: str, *, actor: str = "system", source_ip: str | None = None
) -> None:
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_operators SET locked_at = NULL, failed_attempts = 0 WHERE username = %s RETURNING id",
            (_check_username(username),),
        ).fetchone()
        if row is None:
            raise SecurityError(OPERATOR_NOT_FOUND, "no operator has that username")
        audit(conn, actor, "operator.unlocked", resource=f"operator:{row[0]}", source_ip=source_ip)


def disable_operator(
    conn: psycopg.Connection[Any], username: str, *, actor: str = "system", source_ip: str | None = None,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_operators SET disabled_at = COALESCE(disabled_at, %s) WHERE username = %s RETURNING id",
            (now, _check_username(username)),
        ).fetchone()
        if row is None:
            raise SecurityError(OPERATOR_NOT_FOUND, "no operator has that username")
        sessions.end_operator_sessions(conn, row[0], now)
        audit(conn, actor, "operator.disabled", resource=f"operator:{row[0]}", source_ip=source_ip)


def list_operators(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Operators without their secrets: id, username, role, status, failed attempts, dates."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, username, role, failed_attempts, locked_at, disabled_at, created_at,"
            " CASE WHEN disabled_at IS NOT NULL THEN 'disabled' WHEN locked_at IS NOT NULL THEN 'locked'"
            " ELSE 'active' END AS status FROM security_operators ORDER BY username LIMIT 10000"
        )
        return [dict(row) for row in cur.fetchall()]
