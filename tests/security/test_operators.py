"""Operators: argon2id password + TOTP login, replay refusal, lockout after N failures, sessions."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from qenex.config import Settings
from qenex.security import operators, sessions, totp
from qenex.security._common import utcnow
from qenex.security.errors import SecurityError

from .conftest import audit_trail

PASSWORD = "correct horse battery staple"


def new_operator(
    conn: psycopg.Connection[Any], settings: Settings, role: str = "operator"
) -> operators.CreatedOperator:
    username = f"op-{secrets.token_hex(4)}"
    return operators.create_operator(conn, settings, username=username, password=PASSWORD, role=role)


def test_password_is_argon2id_and_totp_seed_is_sealed(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    assert op.totp_secret not in repr(op)
    assert op.provisioning_uri.startswith("otpauth://totp/QENEX:")
    row = conn.execute("SELECT password_hash, totp_sealed FROM security_operators WHERE id = %s", (op.id,)).fetchone()
    assert row is not None
    assert row[0].startswith("$argon2id$") and PASSWORD not in row[0]
    assert op.totp_secret.encode() not in bytes(row[1])


def test_login_with_password_and_totp_opens_a_session(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings, role="auditor")
    now = utcnow()
    result = operators.login(conn, settings, username=op.username, password=PASSWORD,
                             totp_code=totp.code_at(op.totp_secret, now), source_ip="10.1.2.3", now=now)
    assert result.session.token not in repr(result)
    assert result.principal.kind == "operator" and result.principal.role == "auditor"
    principal = sessions.validate_session(conn, settings, result.session.token, now=now + timedelta(minutes=1))
    assert principal.id == op.id and principal.name == op.username
    assert not principal.has_scope("accounts:write")
    stored = conn.execute("SELECT count(*) FROM security_sessions WHERE token_sha256 = %s",
                          (result.session.token.encode(),)).fetchone()
    assert stored == (0,)  # the token itself is not stored


def test_totp_is_required_and_checked(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    for missing in (None, "", "  "):
        with pytest.raises(SecurityError) as info:
            operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=missing)
        assert info.value.code == "mfa_required" and info.value.http_status == 401
    now = utcnow()
    wrong = f"{(int(totp.code_at(op.totp_secret, now)) + 1) % 1_000_000:06d}"
    with pytest.raises(SecurityError) as info:
        operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=wrong, now=now)
    assert info.value.code == "invalid_credentials"
    stale = totp.code_at(op.totp_secret, now - timedelta(minutes=5))
    with pytest.raises(SecurityError):
        operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=stale, now=now)
    # mfa_required does not count as a failure; the two wrong codes did.
    row = conn.execute("SELECT failed_attempts FROM security_operators WHERE id = %s", (op.id,)).fetchone()
    assert row == (2,)


def test_a_totp_code_cannot_be_replayed(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    now = utcnow()
    code = totp.code_at(op.totp_secret, now)
    operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=code, now=now)
    with pytest.raises(SecurityError) as info:
        operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=code, now=now)
    assert info.value.code == "invalid_credentials"
    later = now + timedelta(seconds=totp.TOTP_PERIOD_S)
    operators.login(conn, settings, username=op.username, password=PASSWORD,
                    totp_code=totp.code_at(op.totp_secret, later), now=later)


def test_lockout_after_max_failed_attempts_until_unlocked(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    now = utcnow()
    good_code = totp.code_at(op.totp_secret, now)
    earlier = operators.login(conn, settings, username=op.username, password=PASSWORD, totp_code=good_code, now=now)
    codes = []
    for attempt in range(settings.security.max_login_attempts):
        with pytest.raises(SecurityError) as info:
            operators.login(conn, settings, username=op.username, password="wrong password!!", totp_code="123456",
                            now=now)
        codes.append(info.value.code)
        assert attempt < settings.security.max_login_attempts
    assert codes == ["invalid_credentials"] * (settings.security.max_login_attempts - 1) + ["account_locked"]
    later = now + timedelta(seconds=60)
    with pytest.raises(SecurityError) as info:  # even the right password and code are refused now
        operators.login(conn, settings, username=op.username, password=PASSWORD,
                        totp_code=totp.code_at(op.totp_secret, later), now=later)
    assert info.value.code == "account_locked" and info.value.http_status == 403
    with pytest.raises(SecurityError):  # the lockout ended the existing session
        sessions.validate_session(conn, settings, earlier.session.token, now=later)
    trail = audit_trail(conn, f"operator:{op.id}")
    assert trail == [("operator.created", "success"), ("auth.login", "success")] + [
        ("auth.login", "failure")
    ] * settings.security.max_login_attempts + [("auth.lockout", "success"), ("auth.login", "failure")]
    operators.unlock_operator(conn, op.username, actor="operator:admin")
    operators.login(conn, settings, username=op.username, password=PASSWORD,
                    totp_code=totp.code_at(op.totp_secret, later), now=later)


def test_unknown_and_disabled_operators_get_the_same_answer(
    conn: psycopg.Connection[Any], settings: Settings
) -> None:
    op = new_operator(conn, settings)
    operators.disable_operator(conn, op.username)
    now = utcnow()
    for username in ("nobody-here", op.username, "NOT VALID!"):
        with pytest.raises(SecurityError) as info:
            operators.login(conn, settings, username=username, password=PASSWORD,
                            totp_code=totp.code_at(op.totp_secret, now), now=now)
        assert info.value.code == "invalid_credentials"


def test_session_expires_after_idle_timeout_and_slides_with_use(
    conn: psycopg.Connection[Any], settings: Settings
) -> None:
    op = new_operator(conn, settings)
    now = utcnow()
    token = operators.login(conn, settings, username=op.username, password=PASSWORD,
                            totp_code=totp.code_at(op.totp_secret, now), now=now).session.token
    timeout = timedelta(minutes=settings.security.session_timeout_minutes)
    sessions.validate_session(conn, settings, token, now=now + timeout - timedelta(minutes=1))
    sessions.validate_session(conn, settings, token, now=now + 2 * timeout - timedelta(minutes=3))
    with pytest.raises(SecurityError) as info:
        sessions.validate_session(conn, settings, token, now=now + 3 * timeout)
    assert info.value.code == "invalid_token"


def test_absolute_session_limit_and_logout(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    now = utcnow()
    token = operators.login(conn, settings, username=op.username, password=PASSWORD,
                            totp_code=totp.code_at(op.totp_secret, now), now=now).session.token
    step = timedelta(minutes=settings.security.session_timeout_minutes - 1)
    t = now
    while t + step < now + timedelta(hours=sessions.SESSION_ABSOLUTE_HOURS_MAX):
        t += step
        sessions.validate_session(conn, settings, token, now=t)
    with pytest.raises(SecurityError):
        sessions.validate_session(conn, settings, token, now=now + timedelta(hours=sessions.SESSION_ABSOLUTE_HOURS_MAX))
    second = operators.login(conn, settings, username=op.username, password=PASSWORD,
                             totp_code=totp.code_at(op.totp_secret, now + timedelta(minutes=1)),
                             now=now + timedelta(minutes=1)).session.token
    assert sessions.end_session(conn, second) is True
    assert sessions.end_session(conn, second) is False
    with pytest.raises(SecurityError):
        sessions.validate_session(conn, settings, second)


def test_operator_creation_rules(conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = new_operator(conn, settings)
    bad: list[dict[str, str]] = [
        {"username": op.username},  # duplicate
        {"password": "short"},
        {"role": "customer"},
        {"username": "Bad Name"},
    ]
    for override in bad:
        args: dict[str, Any] = {"username": f"u-{secrets.token_hex(3)}", "password": PASSWORD, "role": "teller"}
        args.update(override)
        with pytest.raises(SecurityError) as info:
            operators.create_operator(conn, settings, **args)
        assert info.value.http_status == 400
    no_secret = settings.model_copy(update={"security": settings.security.model_copy(update={"secret_key": None})})
    with pytest.raises(SecurityError) as info:
        operators.create_operator(conn, no_secret, username="someone", password=PASSWORD, role="teller")
    assert info.value.code == "security_not_configured"


def test_concurrent_failed_attempts_are_counted_one_by_one(security_db_url: str, settings: Settings,
                                                          conn: psycopg.Connection[Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    op = new_operator(conn, settings)
    attempts = settings.security.max_login_attempts + 3

    def attempt(_: int) -> str:
        with psycopg.connect(security_db_url, autocommit=True) as own:
            try:
                operators.login(own, settings, username=op.username, password="wrong password!!", totp_code="000000")
            except SecurityError as exc:
                return exc.code
        return "logged_in"

    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = sorted(pool.map(attempt, range(attempts)))
    assert codes.count("invalid_credentials") == settings.security.max_login_attempts - 1
    assert codes.count("account_locked") == attempts - settings.security.max_login_attempts + 1
    row = conn.execute("SELECT failed_attempts, locked_at IS NOT NULL FROM security_operators WHERE id = %s",
                       (op.id,)).fetchone()
    assert row == (settings.security.max_login_attempts, True)
