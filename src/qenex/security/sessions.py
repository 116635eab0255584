"""Server-side sessions for human operators.

The token (``qns_`` + 256 random bits) is given to the browser once and stored only as its
SHA-256 digest. A session ends after ``security.session_timeout_minutes`` without activity,
after `SESSION_ABSOLUTE_HOURS_MAX` in any case, on logout, and when its operator is locked
or disabled.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from qenex.config import Settings
from qenex.security import rbac
from qenex.security._common import clip, sha256, utcnow
from qenex.security.errors import INVALID_TOKEN, SecurityError

SESSION_TOKEN_PREFIX = "qns_"  # noqa: S105 - a public prefix, not a secret
SESSION_TOKEN_BYTES = 32
SESSION_ABSOLUTE_HOURS_MAX = 12
_TOKEN_RE = re.compile(r"^qns_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True)
class Session:
    """A new session. ``token`` is the only copy: set it in a Secure, HttpOnly cookie, never log it."""

    token: str
    operator_id: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Session(operator_id={self.operator_id!r}, expires_at={self.expires_at.isoformat()!r}, token='***')"


def looks_like_session(credential: str) -> bool:
    return credential.startswith(SESSION_TOKEN_PREFIX)


def create_session(
    conn: psycopg.Connection[Any], settings: Settings, operator_id: str, *, source_ip: str | None, now: datetime
) -> Session:
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    expires_at = now + timedelta(minutes=settings.security.session_timeout_minutes)
    conn.execute(
        "INSERT INTO security_sessions (token_sha256, operator_id, created_at, last_seen_at, expires_at,"
        " absolute_expires_at, source_ip) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (sha256(token), operator_id, now, now, expires_at, now + timedelta(hours=SESSION_ABSOLUTE_HOURS_MAX),
         clip(source_ip, 64)),
    )
    return Session(token, operator_id, expires_at)


def validate_session(
    conn: psycopg.Connection[Any], settings: Settings, token: str, *, now: datetime | None = None
) -> rbac.Principal:
    """The operator behind a live session; each use extends the idle timeout. 401 otherwise."""
    now = now or utcnow()
    refused = SecurityError(INVALID_TOKEN, "the session is invalid or has expired")
    if not _TOKEN_RE.match(token):
        raise refused
    idle = timedelta(minutes=settings.security.session_timeout_minutes)
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_sessions s SET last_seen_at = %s, expires_at = LEAST(%s, s.absolute_expires_at)"
            " FROM security_operators o"
            " WHERE s.token_sha256 = %s AND o.id = s.operator_id AND s.revoked_at IS NULL"
            " AND s.expires_at > %s AND s.absolute_expires_at > %s"
            " AND o.locked_at IS NULL AND o.disabled_at IS NULL"
            " RETURNING o.id, o.username, o.role, s.expires_at",
            (now, now + idle, sha256(token), now, now),
        ).fetchone()
    if row is None:
        raise refused
    return _principal(row)


def _principal(row: tuple[Any, ...]) -> rbac.Principal:
    role = rbac.parse_role(row[2])
    return rbac.Principal(kind="operator", id=row[0], name=row[1], role=role, scopes=rbac.ROLE_SCOPES[role],
                          expires_at=row[3])


def check_session(conn: psycopg.Connection[Any], token: str, *, now: datetime | None = None) -> rbac.Principal:
    """Like `validate_session` but read-only: the session is not extended. For re-checking a
    credential that is already in use (the WebSocket stream), where no user action took place."""
    now = now or utcnow()
    if not _TOKEN_RE.match(token):
        raise SecurityError(INVALID_TOKEN, "the session is invalid or has expired")
    row = conn.execute(
        "SELECT o.id, o.username, o.role, s.expires_at FROM security_sessions s"
        " JOIN security_operators o ON o.id = s.operator_id"
        " WHERE s.token_sha256 = %s AND s.revoked_at IS NULL AND s.expires_at > %s AND s.absolute_expires_at > %s"
        " AND o.locked_at IS NULL AND o.disabled_at IS NULL",
        (sha256(token), now, now),
    ).fetchone()
    if row is None:
        raise SecurityError(INVALID_TOKEN, "the session is invalid or has expired")
    return _principal(row)


def end_session(conn: psycopg.Connection[Any], token: str, *, now: datetime | None = None) -> bool:
    """Log out. True when a live session was ended."""
    if not _TOKEN_RE.match(token):
        return False
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_sessions SET revoked_at = %s WHERE token_sha256 = %s AND revoked_at IS NULL"
            " RETURNING operator_id",
            (now or utcnow(), sha256(token)),
        ).fetchone()
    return row is not None


def end_operator_sessions(conn: psycopg.Connection[Any], operator_id: str, now: datetime) -> int:
    cur = conn.execute(
        "UPDATE security_sessions SET revoked_at = %s WHERE operator_id = %s AND revoked_at IS NULL",
        (now, operator_id),
    )
    return cur.rowcount
