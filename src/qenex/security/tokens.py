"""OAuth2 client credentials (RFC 6749 section 4.4) issuing short-lived signed JWTs (RFC 7519).

Clients have an id (``qnc_<16 hex>``) and a secret stored as an argon2id hash. Tokens are
signed with Ed25519 (JWS ``EdDSA``, RFC 8037); each signing key has a ``kid``. Private keys
are stored sealed with AES-256-GCM under a key derived from ``QENEX_JWT_SECRET``; public keys
are stored in clear, so verification needs no secret. Rotation makes a new key sign while the
old one keeps verifying until every token it signed has expired. The active key rotates
by itself every ``security.key_rotation_days``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg.rows import dict_row

from qenex.config import Settings
from qenex.kernel.errors import check
from qenex.security import rbac
from qenex.security._common import ConnectionSource, audit, clip, standalone_transaction, utcnow
from qenex.security._sealing import require_secret, seal, unseal
from qenex.security.errors import (
    INVALID_CLIENT,
    INVALID_GRANT,
    INVALID_SCOPE,
    INVALID_TOKEN,
    KEY_NOT_FOUND,
    SecurityError,
    bad_request,
)
from qenex.security.passwords import hash_secret, verify_secret

ISSUER = "qenex"
AUDIENCE = "qenex-api"
ALGORITHM = "EdDSA"
GRANT_TYPE = "client_credentials"
CLOCK_SKEW_S = 30
TOKEN_CHARS_MAX = 4096
SCOPE_CHARS_MAX = 1000
CLIENT_SECRET_BYTES = 32
CLIENT_ID_BYTES = 8
SIGNING_KEY_CACHE_TTL_S = 30.0
KEY_RELOAD_INTERVAL_MIN_S = 1.0
VERIFIED_TOKENS_MAX = 10_000
_SEAL_PURPOSE = "jwt-signing-key"
_JWT_SECRET_ENV = "QENEX_JWT_SECRET"  # noqa: S105 - the variable's name, not its value
_CLIENT_ID_RE = re.compile(r"^qnc_[0-9a-f]{16}$")
_ROTATION_LOCK_ID = 0x51E0_0001  # pg advisory lock: one rotation at a time across processes


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new OAuth2 client. ``client_secret`` is the only copy: show it once."""

    client_id: str
    client_secret: str
    name: str
    role: rbac.Role
    scopes: tuple[str, ...]
    owner_id: str | None

    def __repr__(self) -> str:
        return f"CreatedClient(client_id={self.client_id!r}, name={self.name!r}, role={self.role!r}, secret='***')"

    def to_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret, "name": self.name,
                "role": self.role, "scopes": list(self.scopes), "owner_id": self.owner_id}


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """The RFC 6749 section 5.1 response body."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"  # noqa: S105 - RFC 6750 token type

    def __repr__(self) -> str:
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in}, scope={self.scope!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": self.token_type, "expires_in": self.expires_in,
                "scope": self.scope}


def create_client(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: str,
    scopes: list[str] | tuple[str, ...] | None = None,
    owner_id: str | None = None,
    created_by: str = "system",
    source_ip: str | None = None,
    now: datetime | None = None,
) -> CreatedClient:
    checked_role = rbac.parse_role(role)
    checked_scopes = rbac.normalize_scopes(checked_role, scopes)
    checked_owner = rbac.check_owner(checked_role, owner_id)
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise bad_request("a client name must have 1 to 100 printable characters")
    client_id = "qnc_" + secrets.token_hex(CLIENT_ID_BYTES)
    secret = secrets.token_urlsafe(CLIENT_SECRET_BYTES)
    with conn.transaction():
        conn.execute(
            "INSERT INTO security_oauth_clients (client_id, name, role, scopes, owner_id, secret_hash, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (client_id, name, checked_role, list(checked_scopes), checked_owner, hash_secret(secret),
             now or utcnow()),
        )
        audit(conn, created_by, "oauth_client.created", resource=f"client:{client_id}", source_ip=source_ip,
              details={"role": checked_role, "scopes": list(checked_scopes), "name": name})
    return CreatedClient(client_id, secret, name, checked_role, checked_scopes, checked_owner)


def revoke_client(
    conn: psycopg.Connection[Any], client_id: str, *, actor: str = "system", source_ip: str | None = None
) -> None:
    """Refuse new tokens at once; tokens already issued expire within ``security.token_ttl_seconds``."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE security_oauth_clients SET revoked_at = COALESCE(revoked_at, now()) WHERE client_id = %s"
            " RETURNING client_id",
            (client_id,),
        ).fetchone()
        if row is None:
            raise SecurityError(KEY_NOT_FOUND, "no OAuth client has that id")
        audit(conn, actor, "oauth_client.revoked", resource=f"client:{client_id}", source_ip=source_ip)


def list_clients(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT client_id, name, role, scopes, owner_id, created_at, revoked_at"
                    " FROM security_oauth_clients ORDER BY created_at LIMIT 10000")
        return [dict(row) for row in cur.fetchall()]


# --- signing keys -----------------------------------------------------------------------------


def _new_kid(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(6)}"


def _insert_signing_key(conn: psycopg.Connection[Any], settings: Settings, now: datetime) -> str:
    secret = require_secret(settings.security.jwt_secret, _JWT_SECRET_ENV)
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = _new_kid(now)
    conn.execute(
        "INSERT INTO security_jwt_keys (kid, algorithm, public_key, private_key_sealed, created_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (kid, ALGORITHM, raw_public, seal(secret, _SEAL_PURPOSE, raw_private, kid), now),
    )
    return kid


def _retire_active(conn: psycopg.Connection[Any], settings: Settings, now: datetime) -> None:
    # Tokens signed a moment ago stay verifiable for their whole lifetime plus clock skew, plus the
    # time other processes may keep signing with their cached copy of this key.
    margin_s = settings.security.token_ttl_seconds + CLOCK_SKEW_S + int(SIGNING_KEY_CACHE_TTL_S)
    verify_until = now + timedelta(seconds=margin_s)
    conn.execute(
        "UPDATE security_jwt_keys SET retired_at = %s, verify_until = %s WHERE retired_at IS NULL",
        (now, verify_until),
    )


def rotate_signing_key(
    conn: psycopg.Connection[Any], settings: Settings, *, actor: str = "system", now: datetime | None = None
) -> str:
    """Make a new key the signing key; the previous one keeps verifying until its tokens expire."""
    now = now or utcnow()
    require_secret(settings.security.jwt_secret, _JWT_SECRET_ENV)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROTATION_LOCK_ID,))
        _retire_active(conn, settings, now)
        kid = _insert_signing_key(conn, settings, now)
        audit(conn, actor, "jwt_signing_key.rotated", resource=f"jwt_key:{kid}")
    _SIGNING_CACHE.clear()
    return kid


def _active_signing_key(
    conn: psycopg.Connection[Any], settings: Settings, now: datetime
) -> tuple[str, bytes, datetime]:
    """The (kid, private key, created_at) that signs now; creates or rotates the key when none or too old."""
    max_age = timedelta(days=settings.security.key_rotation_days)
    select_active = "SELECT kid, private_key_sealed, created_at FROM security_jwt_keys WHERE retired_at IS NULL"
    row = conn.execute(select_active).fetchone()
    if row is None or row[2] <= now - max_age:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROTATION_LOCK_ID,))
            row = conn.execute(select_active).fetchone()
            if row is None or row[2] <= now - max_age:  # another process may have rotated meanwhile
                _retire_active(conn, settings, now)
                kid = _insert_signing_key(conn, settings, now)
                audit(conn, "system", "jwt_signing_key.rotated", resource=f"jwt_key:{kid}",
                      details={"reason": "scheduled" if row is not None else "first key"})
                row = conn.execute(select_active).fetchone()
    check(row is not None, "an active signing key exists after creation")
    assert row is not None  # for the type checker; check() above survives -O
    secret = require_secret(settings.security.jwt_secret, _JWT_SECRET_ENV)
    return row[0], unseal(secret, _SEAL_PURPOSE, bytes(row[1]), row[0], _JWT_SECRET_ENV), row[2]


class _SigningCache:
    """The active key, decrypted, cached briefly so issuing tokens does not unseal on every call."""

    def __init__(self) -> None:
        # Keyed by database, so one process talking to two databases never mixes their keys.
        self._entries: dict[str, tuple[str, Ed25519PrivateKey, datetime, float]] = {}
        self._lock = threading.Lock()

    def get(self, conn: psycopg.Connection[Any], settings: Settings, now: datetime) -> tuple[str, Ed25519PrivateKey]:
        database = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
        max_age = timedelta(days=settings.security.key_rotation_days)
        with self._lock:
            entry = self._entries.get(database)
        if (entry is not None and time.monotonic() - entry[3] < SIGNING_KEY_CACHE_TTL_S
                and entry[2] > now - max_age):
            return entry[0], entry[1]
        kid, raw, created_at = _active_signing_key(conn, settings, now)
        key = Ed25519PrivateKey.from_private_bytes(raw)
        with self._lock:
            self._entries[database] = (kid, key, created_at, time.monotonic())
        return kid, key

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_SIGNING_CACHE = _SigningCache()


# --- issuing ----------------------------------------------------------------------------------


def _parse_scope(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if requested is None or not requested.strip():
        return allowed
    if len(requested) > SCOPE_CHARS_MAX:
        raise SecurityError(INVALID_SCOPE, f"the scope parameter is longer than {SCOPE_CHARS_MAX} characters")
    wanted = sorted(set(requested.split()))
    beyond = [s for s in wanted if s not in allowed]
    if beyond:
        raise SecurityError(INVALID_SCOPE, f"this client may not request scope {clip(beyond[0], 40)!r}")
    return tuple(wanted)


def _load_client(conn: psycopg.Connection[Any], client_id: str) -> dict[str, Any] | None:
    if not _CLIENT_ID_RE.match(client_id):
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT client_id, name, role, scopes, owner_id, secret_hash, revoked_at"
                    " FROM security_oauth_clients WHERE client_id = %s", (client_id,))
        return cur.fetchone()


def _deny(conn: psycopg.Connection[Any], client_id: str, reason: str, source_ip: str | None) -> None:
    audit(conn, f"client:{clip(client_id, 40)}", "oauth.token", resource="oauth/token", outcome="failure",
          source_ip=source_ip, details={"reason": reason})


def issue_token(
    conn: psycopg.Connection[Any],
    settings: Settings,
    client_id: str,
    client_secret: str,
    scope: str | None = None,
    *,
    grant_type: str = GRANT_TYPE,
    source_ip: str | None = None,
    now: datetime | None = None,
) -> TokenResponse:
    """RFC 6749 4.4: authenticate the client, then sign a token for the requested (or all its) scopes.

    Failures raise ``invalid_client`` (401), ``invalid_scope`` (400) or ``unsupported_grant_type`` (400)
    and are recorded in the audit trail. ``conn`` must not be inside a caller's transaction.
    """
    if grant_type != GRANT_TYPE:
        raise SecurityError(INVALID_GRANT, "only the client_credentials grant is supported")
    with standalone_transaction(conn):
        outcome = _issue(conn, settings, client_id, client_secret, scope, source_ip, now or utcnow())
    if isinstance(outcome, SecurityError):
        raise outcome
    return outcome


def _issue(
    conn: psycopg.Connection[Any], settings: Settings, client_id: str, client_secret: str, scope: str | None,
    source_ip: str | None, now: datetime,
) -> TokenResponse | SecurityError:
    """Inside the transaction; returns the error instead of raising so that its audit record commits."""
    client = _load_client(conn, client_id)
    ok = verify_secret(client["secret_hash"] if client else None, client_secret)
    if client is None or not ok or client["revoked_at"] is not None:
        _deny(conn, client_id, "bad credentials or revoked client", source_ip)
        return SecurityError(INVALID_CLIENT, "client authentication failed")
    try:
        granted = _parse_scope(scope, tuple(client["scopes"]))
    except SecurityError as exc:
        _deny(conn, client_id, "scope not allowed", source_ip)
        return exc
    kid, key = _SIGNING_CACHE.get(conn, settings, now)
    ttl = settings.security.token_ttl_seconds
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": client_id, "iat": issued_at, "nbf": issued_at,
        "exp": issued_at + ttl, "jti": secrets.token_hex(16), "scope": " ".join(granted),
        "role": client["role"], "name": client["name"],
    }
    if client["owner_id"] is not None:
        claims["owner_id"] = client["owner_id"]
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})
    audit(conn, f"client:{client_id}", "oauth.token", resource="oauth/token", source_ip=source_ip,
          details={"scope": claims["scope"], "kid": kid, "jti": claims["jti"]})
    return TokenResponse(access_token=token, expires_in=ttl, scope=claims["scope"])


# --- verifying --------------------------------------------------------------------------------


def _public_keys(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Ed25519PublicKey]:
    rows = conn.execute(
        "SELECT kid, public_key FROM security_jwt_keys WHERE verify_until IS NULL OR verify_until > %s", (now,)
    ).fetchall()
    return {kid: Ed25519PublicKey.from_public_bytes(bytes(raw)) for kid, raw in rows}


def jwks(conn: psycopg.Connection[Any], now: datetime | None = None) -> dict[str, Any]:
    """The verification keys as a JWK Set (RFC 7517, OKP keys per RFC 8037), for other services."""
    keys = []
    for kid, public in sorted(_public_keys(conn, now or utcnow()).items()):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        keys.append({"kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "use": "sig", "kid": kid, "x": x})
    return {"keys": keys}


def _principal(claims: dict[str, Any]) -> rbac.Principal:
    role = rbac.parse_role(str(claims.get("role", "")))
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise SecurityError(INVALID_TOKEN, "the access token is invalid")
    owner = claims.get("owner_id")
    if role == "customer" and not isinstance(owner, str):
        raise SecurityError(INVALID_TOKEN, "the access token is invalid")
    exp = claims.get("exp")
    expires_at = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int) and not isinstance(exp, bool) else None
    return rbac.Principal(kind="oauth_client", id=str(claims["sub"]), name=str(claims.get("name", "")), role=role,
                          scopes=frozenset(scope.split()), owner_id=owner if isinstance(owner, str) else None,
                          expires_at=expires_at)


def _check_times(claims: dict[str, Any], now_s: float) -> None:
    times = [claims.get(name) for name in ("iat", "nbf", "exp")]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        raise SecurityError(INVALID_TOKEN, "the access token is invalid")
    iat, nbf, exp = (int(t) for t in times)  # type: ignore[arg-type]
    if not (nbf - CLOCK_SKEW_S <= now_s < exp + CLOCK_SKEW_S and iat - CLOCK_SKEW_S <= now_s):
        raise SecurityError(INVALID_TOKEN, "the access token is expired or not yet valid")


class TokenVerifier:
    """Verifies access tokens against the stored public keys (cached for `SIGNING_KEY_CACHE_TTL_S`)."""

    def __init__(self, connect: ConnectionSource, *, cache_ttl_s: float = SIGNING_KEY_CACHE_TTL_S) -> None:
        self._connect = connect
        self._ttl_s = cache_ttl_s
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at_s = float("-inf")
        self._verified: dict[bytes, tuple[rbac.Principal, int]] = {}
        self._lock = threading.Lock()

    def _key(self, kid: str, now: datetime) -> Ed25519PublicKey | None:
        with self._lock:
            age_s = time.monotonic() - self._fetched_at_s
            if age_s < self._ttl_s and kid in self._keys:
                return self._keys[kid]
            if age_s < KEY_RELOAD_INTERVAL_MIN_S:
                return None  # forged kids cannot make every request read the database
        # Unknown kid or stale cache: reload (a new key may have been created by another process).
        with self._connect() as conn:
            keys = _public_keys(conn, now)
        with self._lock:
            self._keys, self._fetched_at_s = keys, time.monotonic()
        return keys.get(kid)

    def verify(self, token: str, *, now: datetime | None = None) -> rbac.Principal:
        """The principal a valid token stands for; 401 ``invalid_token`` for anything else.

        A client reuses its token for many requests, so a verified token is remembered (by its
        SHA-256) until it expires and the signature is not checked again.
        """
        refused = SecurityError(INVALID_TOKEN, "the access token is invalid or expired")
        if len(token) > TOKEN_CHARS_MAX:
            raise refused
        now = now or utcnow()
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        with self._lock:
            hit = self._verified.get(digest)
        if hit is not None and now.timestamp() < hit[1] + CLOCK_SKEW_S:
            return hit[0]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._key(kid, now) if isinstance(kid, str) else None
            if key is None:
                raise refused
            # Times are checked here against ``now`` (PyJWT would use its own clock).
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss", "aud"], "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False},
            )
            _check_times(claims, now.timestamp())
            principal = _principal(claims)
        except (jwt.PyJWTError, SecurityError):
            raise refused from None
        with self._lock:
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()  # bounded memory; a miss only costs one signature check
            self._verified[digest] = (principal, int(claims["exp"]))
        return principal
