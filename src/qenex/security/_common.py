"""Small helpers shared by the security modules: clock, digests, durations, audit bridge."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import psycopg

from qenex.kernel.errors import check
from qenex.security.errors import bad_request

# Something that lends a connection for the duration of a `with` block (psycopg_pool's
# ``ConnectionPool.connection`` is one).
ConnectionSource: TypeAlias = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]

DURATION_CHARS_MAX = 16
DURATION_DAYS_MAX = 3650
_DURATION_RE = re.compile(r"^\s*(\d{1,7})\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
SOURCE_IP_CHARS_MAX = 64
ACTOR_CHARS_MAX = 120


def standalone_transaction(conn: psycopg.Connection[Any]) -> AbstractContextManager[psycopg.Transaction]:
    """A transaction that really commits when its block ends.

    Refuses to start inside a caller's transaction: a failed login or token request must leave
    its audit record and failure count even though the call then raises, and a caller's later
    rollback would erase them.
    """
    check(conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE,
          "security writes need a connection that is not inside a transaction")
    return conn.transaction()


def utcnow() -> datetime:
    return datetime.now(UTC)


def sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``3600s``, ``2w`` -> timedelta; rejects zero and anything over 10 years."""
    match = _DURATION_RE.match(text[:DURATION_CHARS_MAX]) if len(text) <= DURATION_CHARS_MAX else None
    if match is None:
        raise bad_request("a duration is a whole number followed by s, m, h, d or w (e.g. 30d)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0 or seconds > DURATION_DAYS_MAX * 86_400:
        raise bad_request(f"a duration must be positive and at most {DURATION_DAYS_MAX} days")
    return timedelta(seconds=seconds)


def clip(value: str | None, limit: int) -> str | None:
    """Bound untrusted text before it reaches the audit trail."""
    if value is None:
        return None
    return value if len(value) <= limit else value[:limit] + "..."


def audit(
    conn: psycopg.Connection[Any],
    actor: str,
    action: str,
    *,
    resource: str = "",
    outcome: str = "success",
    source_ip: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record a security event in the tamper-evident audit log, inside the caller's transaction."""
    from qenex.security.audit import AuditEvent, record_event_sync  # owned by the audit module; imported lazily

    record_event_sync(
        conn,
        AuditEvent(
            actor=clip(actor, ACTOR_CHARS_MAX) or "anonymous",
            action=action,
            resource=resource,
            outcome=outcome,
            source_ip=clip(source_ip, SOURCE_IP_CHARS_MAX),
            details=dict(details or {}),
        ),
    )
