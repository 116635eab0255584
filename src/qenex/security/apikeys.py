"""API keys: shown once, stored only as a SHA-256 digest, looked up by their public id.

Format: ``qnx_<16 hex id>_<43 url-safe secret chars>`` (256 bits of secret). A key is a
high-entropy random value, so a fast digest is the right store (argon2 is for passwords,
whose entropy is low); the comparison is constant-time. Keys carry a name, a role, scopes,
an optional owner (customers) and expiry, and can be rotated and revoked.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from qenex.security import rbac
from qenex.security._common import ConnectionSource, audit, sha256, utcnow
from qenex.security.errors import INVALID_TOKEN, KEY_NOT_FOUND, SecurityError, bad_request

KEY_PREFIX = "qnx"
KEY_ID_BYTES = 8
KEY_SECRET_BYTES = 32
KEY_CHARS_MAX = 128
NAME_CHARS_MAX = 100
KEYS_LIST_MAX = 10_000
# How long a process trusts its cached view of a key; a revocation made by another process
# takes effect within this delay (the revoking process drops its own cache at once).
API_KEY_CACHE_TTL_S = 5.0
KEY_CACHE_ENTRIES_MAX = 10_000
# last_used_at is refreshed at most this often per key, so authentication stays read-mostly.
LAST_USED_RESOLUTION_S = 60

_KEY_RE = re.compile(r"^qnx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_COLUMNS = (
    "id, name, role, scopes, owner_id, created_at, expires_at, revoked_at, last_used_at, rotated_from, created_by"
)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key. ``key`` is the only copy of the secret: show it once, never log it."""

    id: str
    key: str
    name: str
    role: rbac.Role
    scopes: tuple[str, ...]
    owner_id: str | None
    expires_at: datetime | None

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"CreatedKey(id={self.id!r}, name={self.name!r}, role={self.role!r}, key='qnx_{self.id}_***')"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "role": self.role,
            "scopes": list(self.scopes),
            "owner_id": self.owner_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What is stored about a key: everything but the secret, which is not stored at all."""

    id: str
    name: str
    role: rbac.Role
    scopes: tuple[str, ...]
    owner_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: str | None
    created_by: str

    def status(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "scopes": list(self.scopes),
            "owner_id": self.owner_id,
            "status": self.status(),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
            "rotated_from": self.rotated_from,
            "created_by": self.created_by,
        }


def _info(row: dict[str, Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        name=row["name"],
        role=rbac.parse_role(row["role"]),
        scopes=tuple(row["scopes"]),
        owner_id=row["owner_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        rotated_from=row["rotated_from"],
        created_by=row["created_by"],
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_CHARS_MAX or not name.isprintable():
        raise bad_request(f"a key name must have 1 to {NAME_CHARS_MAX} printable characters")
    return name


def _check_id(key_id: str) -> str:
    if not _ID_RE.match(key_id):
        raise SecurityError(KEY_NOT_FOUND, "no API key has that id")
    return key_id


def _insert(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: rbac.Role,
    scopes: tuple[str, ...],
    owner_id: str | None,
    expires_at: datetime | None,
    created_by: str,
    now: datetime,
    rotated_from: str | None = None,
) -> CreatedKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(KEY_SECRET_BYTES)
    conn.execute(
        "INSERT INTO security_api_keys (id, name, role, scopes, owner_id, secret_sha256, created_at, expires_at,"
        " rotated_from, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (key_id, name, role, list(scopes), owner_id, sha256(secret), now, expires_at, rotated_from, created_by),
    )
    return CreatedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", name, role, scopes, owner_id, expires_at)


def create_key(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: str,
    scopes: list[str] | tuple[str, ...] | None = None,
    owner_id: str | None = None,
    expires_in: timedelta | None = None,
    created_by: str = "system",
    source_ip: str | None = None,
    now: datetime | None = None,
) -> CreatedKey:
    """Create a key and record it in the audit trail; the returned secret is never retrievable again."""
    now = now or utcnow()
    checked_role = rbac.parse_role(role)
    checked_scopes = rbac.normalize_scopes(checked_role, scopes)
    checked_owner = rbac.check_owner(checked_role, owner_id)
    if expires_in is not None and expires_in <= timedelta(0):
        raise bad_request("a key's lifetime must be positive")
    expires_at = now + expires_in if expires_in is not None else None
    with conn.transaction():
        created = _insert(
            conn, name=_check_name(name), role=checked_role, scopes=checked_scopes, owner_id=checked_owner,
            expires_at=expires_at, created_by=created_by, now=now,
        )
        audit(conn, created_by, "api_key.created", resource=f"key:{created.id}", source_ip=source_ip,
              details={"role": checked_role, "scopes": list(checked_scopes), "name": created.name})
    return created


def get_key(conn: psycopg.Connection[Any], key_id: str) -> ApiKeyInfo:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM security_api_keys WHERE id = %s", (_check_id(key_id),))
        row = cur.fetchone()
    if row is None:
        raise SecurityError(KEY_NOT_FOUND, "no API key has that id")
    return _info(row)


def list_keys(conn: psycopg.Connection[Any], *, include_revoked: bool = True, limit: int = KEYS_LIST_MAX) -> list[
    ApiKeyInfo
]:
    limit = max(1, min(limit, KEYS_LIST_MAX))
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM security_api_keys {where} ORDER BY created_at, id LIMIT %s", (limit,))
        return [_info(row) for row in cur.fetchall()]


def revoke_key(
    conn: psycopg.Connection[Any],
    key_id: str,
    *,
    actor: str = "system",
    source_ip: str | None = None,
    now: datetime | None = None,
) -> ApiKeyInfo:
    """Revoke a key at once. Revoking an already revoked key is a no-op that keeps the first date."""
    now = now or utcnow()
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s RETURNING id",
            (now, _check_id(key_id)),
        ).fetchone()
        if row is None:
            raise SecurityError(KEY_NOT_FOUND, "no API key has that id")
        audit(conn, actor, "api_key.revoked", resource=f"key:{key_id}", source_ip=source_ip)
    _forget_everywhere(key_id)
    return get_key(conn, key_id)


def rotate_key(
    conn: psycopg.Connection[Any],
    key_id: str,
    *,
    grace: timedelta = timedelta(0),
    actor: str = "system",
    source_ip: str | None = None,
    now: datetime | None = None,
) -> CreatedKey:
    """Issue a replacement with the same name, role, scopes, owner and lifetime; the old key is
    revoked now, or keeps working for ``grace`` so clients can switch without downtime."""
    now = now or utcnow()
    with conn.transaction():
        # Row lock: two concurrent rotations of one key must not both issue a replacement.
        conn.execute("SELECT 1 FROM security_api_keys WHERE id = %s FOR UPDATE", (_check_id(key_id),))
        old = get_key(conn, key_id)
        if old.status(now) != "active":
            raise bad_request(f"key {key_id} is {old.status(now)} and cannot be rotated")
        lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
        created = _insert(
            conn, name=old.name, role=old.role, scopes=old.scopes, owner_id=old.owner_id,
            expires_at=now + lifetime if lifetime is not None else None, created_by=actor, now=now,
            rotated_from=old.id,
        )
        if grace > timedelta(0):
            conn.execute(
                "UPDATE security_api_keys SET expires_at = LEAST(COALESCE(expires_at, %s), %s) WHERE id = %s",
                (now + grace, now + grace, key_id),
            )
        else:
            conn.execute("UPDATE security_api_keys SET revoked_at = %s WHERE id = %s", (now, key_id))
        audit(conn, actor, "api_key.rotated", resource=f"key:{key_id}", source_ip=source_ip,
              details={"new_key_id": created.id, "grace_seconds": int(grace.total_seconds())})
    _forget_everywhere(key_id)
    return created


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX + "_")


def _split(presented: str) -> tuple[str, str]:
    match = _KEY_RE.match(presented) if len(presented) <= KEY_CHARS_MAX else None
    if match is None:
        raise SecurityError(INVALID_TOKEN, "the API key is malformed")
    return match.group(1), match.group(2)


@dataclass(frozen=True, slots=True)
class _Cached:
    digest: bytes
    principal: rbac.Principal
    expires_at: datetime | None
    revoked: bool
    fetched_at_s: float


def _load(conn: psycopg.Connection[Any], key_id: str) -> _Cached | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, name, role, scopes, owner_id, secret_sha256, expires_at, revoked_at"
            " FROM security_api_keys WHERE id = %s",
            (key_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    principal = rbac.Principal(
        kind="api_key", id=row["id"], name=row["name"], role=rbac.parse_role(row["role"]),
        scopes=frozenset(row["scopes"]), owner_id=row["owner_id"], expires_at=row["expires_at"],
    )
    return _Cached(bytes(row["secret_sha256"]), principal, row["expires_at"], row["revoked_at"] is not None,
                   time.monotonic())


def _verify(entry: _Cached | None, secret: str, now: datetime) -> rbac.Principal:
    # One message for every failure: a caller learns nothing about which ids exist.
    refused = SecurityError(INVALID_TOKEN, "the API key is unknown, revoked or expired")
    if entry is None:
        hmac.compare_digest(sha256(secret), bytes(32))  # same work whether or not the id exists
        raise refused
    if not hmac.compare_digest(sha256(secret), entry.digest):
        raise refused
    if entry.revoked or (entry.expires_at is not None and entry.expires_at <= now):
        raise refused
    return entry.principal


def _touch(conn: psycopg.Connection[Any], key_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE security_api_keys SET last_used_at = %s WHERE id = %s"
        " AND (last_used_at IS NULL OR last_used_at < %s)",
        (now, key_id, now - timedelta(seconds=LAST_USED_RESOLUTION_S)),
    )


def authenticate_key(conn: psycopg.Connection[Any], presented: str, *, now: datetime | None = None) -> rbac.Principal:
    """Check a presented key against the database (no cache). Raises 401 ``invalid_token``."""
    now = now or utcnow()
    key_id, secret = _split(presented)
    principal = _verify(_load(conn, key_id), secret, now)
    with conn.transaction():
        _touch(conn, key_id, now)
    return principal


_AUTHENTICATORS: list[ApiKeyAuthenticator] = []
_AUTHENTICATORS_LOCK = threading.Lock()


def _forget_everywhere(key_id: str) -> None:
    with _AUTHENTICATORS_LOCK:
        for authenticator in _AUTHENTICATORS:
            authenticator.forget(key_id)


class ApiKeyAuthenticator:
    """Authenticates keys with a short in-process cache, so a busy API does not read the key
    table on every request. A revocation in this process applies at once; in another process
    within `API_KEY_CACHE_TTL_S`."""

    def __init__(self, connect: ConnectionSource, *, ttl_s: float = API_KEY_CACHE_TTL_S) -> None:
        self._connect = connect
        self._ttl_s = ttl_s
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        with _AUTHENTICATORS_LOCK:
            _AUTHENTICATORS.append(self)

    def close(self) -> None:
        with _AUTHENTICATORS_LOCK:
            if self in _AUTHENTICATORS:
                _AUTHENTICATORS.remove(self)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def authenticate(self, presented: str, *, now: datetime | None = None) -> rbac.Principal:
        now = now or utcnow()
        key_id, secret = _split(presented)
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or time.monotonic() - entry.fetched_at_s > self._ttl_s:
            with self._connect() as conn:
                entry = _load(conn, key_id)
                if entry is not None and hmac.compare_digest(sha256(secret), entry.digest):
                    with conn.transaction():
                        _touch(conn, key_id, now)
            if entry is not None:
                self._remember(key_id, entry)
        return _verify(entry, secret, now)

    def _remember(self, key_id: str, entry: _Cached) -> None:
        with self._lock:
            if len(self._cache) >= KEY_CACHE_ENTRIES_MAX:
                self._cache.clear()  # bounded memory; entries are cheap to reload
            self._cache[key_id] = entry
