"""Encryption at rest: AES-256-GCM envelope encryption with data keys stored in PostgreSQL.

Each *purpose* (``pii``, ``metadata``, ``audit-signing`` ...) has data keys (DEKs) in
``security_data_keys``, wrapped by a master version (see ``keyproviders``). A new DEK generation
starts every ``security.key_rotation_days``; older generations stay and keep decrypting.
``rotate_master`` re-wraps every DEK under a new master version; ciphertexts never change.

Ciphertext format (version 1), all authenticated:

    0x01 | data-key id (uint64, big-endian) | nonce (12 bytes) | AES-GCM ciphertext || tag (16)

The GCM associated data is the 9-byte header followed by the caller's AAD, which binds the value
to where it is stored (``aad_for(table, column, row_id)``): a ciphertext copied to another row or
column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qenex.config import Settings, load_settings
from qenex.errors import QenexError
from qenex.security.keyproviders import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyProviderError,
    MasterKeyProvider,
    previous_provider_from_env,
    provider_from_settings,
)

FORMAT_VERSION = 1
_HEADER = struct.Struct(">BQ")
TAG_BYTES = 16
PLAINTEXT_BYTES_MAX = 1_048_576
AAD_BYTES_MAX = 1024
PURPOSE_CHARS_MAX = 64
METADATA_FIELDS_MAX = 200
SECONDS_PER_DAY = 86_400
DEFAULT_PURPOSE = "default"
PII_PURPOSE = "pii"
METADATA_PURPOSE = "metadata"
# Advisory-lock namespace (first int of the two-int form) for key-table changes.
_LOCK_NAMESPACE = 0x51454E58  # "QENX"
_MASTER_LOCK_ID = 1

# Metadata keys that are always encrypted, compared case-insensitively. Callers add others per
# record with a "sensitive": ["field", ...] marker.
SENSITIVE_METADATA_FIELDS = frozenset(
    {
        "ssn",
        "tax_id",
        "tin",
        "national_id",
        "passport_number",
        "drivers_license",
        "date_of_birth",
        "dob",
        "email",
        "phone",
        "address",
        "full_name",
        "pan",
        "card_number",
        "iban",
        "account_number",
    }
)
SENSITIVE_MARKER = "sensitive"
ENCRYPTED_VALUE_KEY = "$enc"


class EnvelopeError(QenexError):
    """A ciphertext is malformed, was tampered with, or its data key is unavailable (a server-side
    fault, 500); or the caller passed something unusable (``invalid_request``, 400)."""

    code = "decryption_failed"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        if self.code == "invalid_request":
            self.http_status = 400


def aad_for(table: str, column: str, row_id: object) -> bytes:
    """Associated data binding a value to its storage place."""
    aad = f"qenex|{table}|{column}|{row_id}".encode()
    if len(aad) > AAD_BYTES_MAX:
        raise EnvelopeError(f"associated data is longer than {AAD_BYTES_MAX} bytes", code="invalid_request")
    return aad


@dataclass
class _Dek:
    id: int
    aead: AESGCM
    created_at: float  # epoch seconds


def _lock_master(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NAMESPACE, _MASTER_LOCK_ID))


def _current_master(conn: psycopg.Connection[Any], provider: MasterKeyProvider) -> tuple[int, bytes | None]:
    """The newest master version, created (version 1) on first use. Call inside a transaction."""
    row = conn.execute("SELECT version, material FROM security_master_keys ORDER BY version DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), row[1]
    _lock_master(conn)
    row = conn.execute("SELECT version, material FROM security_master_keys ORDER BY version DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), row[1]
    material = provider.new_version_material(1)
    conn.execute(
        "INSERT INTO security_master_keys (version, provider, material) VALUES (1, %s, %s)", (provider.name, material)
    )
    return 1, material


def _master_material(conn: psycopg.Connection[Any], version: int) -> bytes | None:
    row = conn.execute("SELECT material FROM security_master_keys WHERE version = %s", (version,)).fetchone()
    if row is None:
        raise EnvelopeError(f"master version {version} is missing from the keyring", code="data_key_missing")
    material: bytes | None = row[0]
    return material


class Envelope:
    """Encrypts and decrypts values; data keys are loaded once and cached in memory.

    Thread-safe. DEK reads and writes use short connections of their own to ``conninfo``, so
    encryption never interferes with the caller's transaction.
    """

    def __init__(
        self,
        conninfo: str,
        provider: MasterKeyProvider,
        *,
        rotation_days: int = 30,
        purpose: str = DEFAULT_PURPOSE,
    ) -> None:
        self._conninfo = conninfo
        self._provider = provider
        self._rotation_s = rotation_days * SECONDS_PER_DAY
        self._purpose = _check_purpose(purpose)
        self._by_id: dict[int, _Dek] = {}
        self._active: dict[str, _Dek] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Envelope(purpose={self._purpose!r}, provider={self._provider.name!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, conninfo: str | None = None, purpose: str = DEFAULT_PURPOSE
    ) -> Envelope:
        from qenex.store.connection import database_url

        settings = settings if settings is not None else load_settings()
        return cls(
            conninfo or database_url(settings),
            provider_from_settings(settings),
            rotation_days=settings.security.key_rotation_days,
            purpose=purpose,
        )

    # -- public API -------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, aad: bytes = b"", *, purpose: str | None = None) -> bytes:
        if len(plaintext) > PLAINTEXT_BYTES_MAX:
            raise EnvelopeError(f"plaintext is larger than {PLAINTEXT_BYTES_MAX} bytes", code="invalid_request")
        if len(aad) > AAD_BYTES_MAX:
            raise EnvelopeError(f"associated data is longer than {AAD_BYTES_MAX} bytes", code="invalid_request")
        dek = self._active_dek(_check_purpose(purpose) if purpose else self._purpose)
        header = _HEADER.pack(FORMAT_VERSION, dek.id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return header + nonce + dek.aead.encrypt(nonce, plaintext, header + aad)

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        if len(blob) < _HEADER.size + NONCE_BYTES + TAG_BYTES:
            raise EnvelopeError("ciphertext is truncated", code="ciphertext_invalid")
        version, dek_id = _HEADER.unpack_from(blob)
        if version != FORMAT_VERSION:
            raise EnvelopeError(f"unknown ciphertext format version {version}", code="ciphertext_invalid")
        dek = self._dek_by_id(dek_id)
        start = _HEADER.size
        nonce = blob[start : start + NONCE_BYTES]
        try:
            return dek.aead.decrypt(nonce, blob[start + NONCE_BYTES :], blob[:start] + aad)
        except InvalidTag:
            raise EnvelopeError(
                "ciphertext failed authentication (tampered, or stored under another table/column/row)"
            ) from None

    def encrypt_text(self, value: str, aad: bytes = b"", *, purpose: str | None = None) -> str:
        """A str value sealed as URL-safe base64 text (fits a text or jsonb column)."""
        return base64.urlsafe_b64encode(self.encrypt(value.encode(), aad, purpose=purpose)).decode("ascii")

    def decrypt_text(self, token: str, aad: bytes = b"") -> str:
        try:
            blob = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise EnvelopeError("ciphertext is not valid base64", code="ciphertext_invalid") from None
        return self.decrypt(blob, aad).decode()

    def rotate_data_key(self, purpose: str | None = None) -> int:
        """Start a new DEK generation now (normally automatic after key_rotation_days). Returns its id."""
        name = _check_purpose(purpose) if purpose else self._purpose
        with psycopg.connect(self._conninfo) as conn:
            dek = self._create_dek(conn, name, force=True)
        with self._lock:
            self._active[name] = dek
            self._by_id[dek.id] = dek
        return dek.id

    def forget_keys(self) -> None:
        """Drop cached plaintext data keys (e.g. after rotate_master, or before shutdown)."""
        with self._lock:
            self._by_id.clear()
            self._active.clear()

    # -- data keys --------------------------------------------------------------------------

    def _active_dek(self, purpose: str) -> _Dek:
        now = time.time()
        with self._lock:
            dek = self._active.get(purpose)
        if dek is not None and now - dek.created_at < self._rotation_s:
            return dek
        with psycopg.connect(self._conninfo) as conn:
            dek = self._create_dek(conn, purpose, force=False)
        with self._lock:
            self._active[purpose] = dek
            self._by_id[dek.id] = dek
        return dek

    def _create_dek(self, conn: psycopg.Connection[Any], purpose: str, *, force: bool) -> _Dek:
        """The current generation for ``purpose`` if still fresh (and not forced), else a new one."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, "dek:" + purpose))
            row = conn.execute(
                "SELECT id, generation, master_version, wrapped_key, created_at FROM security_data_keys"
                " WHERE purpose = %s ORDER BY generation DESC LIMIT 1",
                (purpose,),
            ).fetchone()
            fresh_after = datetime.now().astimezone() - timedelta(seconds=self._rotation_s)
            if row is not None and not force and row[4] > fresh_after:
                return self._load(conn, row[0], row[2], row[3], row[4])
            version, material = _current_master(conn, self._provider)
            key = secrets.token_bytes(KEY_BYTES)
            new = conn.execute(
                "INSERT INTO security_data_keys (purpose, generation, master_version, wrapped_key)"
                " VALUES (%s, %s, %s, %s) RETURNING id, created_at",
                (purpose, (row[1] if row else 0) + 1, version, self._provider.wrap(version, material, key)),
            ).fetchone()
            if new is None:  # RETURNING always yields a row; guard for the type checker without assert
                raise EnvelopeError("data key insert returned nothing", code="data_key_missing")
            return _Dek(int(new[0]), AESGCM(key), new[1].timestamp())

    def _load(
        self, conn: psycopg.Connection[Any], dek_id: int, version: int, wrapped: bytes, created: datetime
    ) -> _Dek:
        key = self._provider.unwrap(version, _master_material(conn, version), wrapped)
        return _Dek(int(dek_id), AESGCM(key), created.timestamp())

    def _dek_by_id(self, dek_id: int) -> _Dek:
        with self._lock:
            dek = self._by_id.get(dek_id)
        if dek is not None:
            return dek
        with psycopg.connect(self._conninfo) as conn:
            row = conn.execute(
                "SELECT master_version, wrapped_key, created_at FROM security_data_keys WHERE id = %s", (dek_id,)
            ).fetchone()
            if row is None:
                raise EnvelopeError(f"data key {dek_id} does not exist", code="data_key_missing")
            dek = self._load(conn, dek_id, row[0], row[1], row[2])
        with self._lock:
            self._by_id[dek_id] = dek
        return dek


def _check_purpose(purpose: str) -> str:
    if not purpose or len(purpose) > PURPOSE_CHARS_MAX or not purpose.replace("-", "").replace("_", "").isalnum():
        raise EnvelopeError("key purpose must be 1-64 letters, digits, '-' or '_'", code="invalid_request")
    return purpose


# -- master rotation ----------------------------------------------------------------------------


def rotate_master(
    settings: Settings | None = None,
    *,
    conninfo: str | None = None,
    previous: MasterKeyProvider | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create a new master version and re-wrap every data key under it, in one transaction.

    Ciphertexts are untouched (they name a data key, not a master version), so old data stays
    readable. Older master versions are marked retired; nothing refers to them afterwards.

    To replace the root itself (a new ``QENEX_MASTER_KEY``, or moving from a key file to an HSM),
    configure the new root as usual and name the old one in ``previous`` or in
    ``QENEX_MASTER_KEY_PREVIOUS`` / ``QENEX_MASTER_KEY_FILE_PREVIOUS``: data keys the new root
    cannot open are unwrapped with the old one. Afterwards the old root is no longer needed.
    """
    from qenex.store.connection import database_url

    settings = settings if settings is not None else load_settings()
    provider = provider_from_settings(settings, environ)
    previous = previous if previous is not None else previous_provider_from_env(environ)
    with psycopg.connect(conninfo or database_url(settings)) as conn, conn.transaction():
        _lock_master(conn)
        return _rotate_master_locked(conn, provider, previous)


def _rotate_master_locked(
    conn: psycopg.Connection[Any], provider: MasterKeyProvider, previous: MasterKeyProvider | None
) -> dict[str, Any]:
    """The body of `rotate_master`, inside its transaction and under the master lock."""
    old_version, _ = _current_master(conn, provider)
    new_version = old_version + 1
    new_material = provider.new_version_material(new_version)
    conn.execute(
        "INSERT INTO security_master_keys (version, provider, material) VALUES (%s, %s, %s)",
        (new_version, provider.name, new_material),
    )
    materials: dict[int, bytes | None] = {}
    rows = conn.execute(
        "SELECT id, master_version, wrapped_key FROM security_data_keys ORDER BY id FOR UPDATE"
    ).fetchall()
    for dek_id, version, wrapped in rows:
        if version not in materials:
            materials[version] = _master_material(conn, version)
        key = _unwrap_with_any((provider, previous), version, materials[version], wrapped)
        conn.execute(
            "UPDATE security_data_keys SET master_version = %s, wrapped_key = %s, rewrapped_at = now()"
            " WHERE id = %s",
            (new_version, provider.wrap(new_version, new_material, key), dek_id),
        )
    conn.execute(
        "UPDATE security_master_keys SET retired_at = now() WHERE version < %s AND retired_at IS NULL",
        (new_version,),
    )
    return {
        "master_version": new_version,
        "previous_version": old_version,
        "rewrapped_data_keys": len(rows),
        "provider": provider.name,
    }


def rotate_if_due(
    settings: Settings | None = None,
    *,
    conninfo: str | None = None,
    provider: MasterKeyProvider | None = None,
) -> dict[str, Any]:
    """Do what ``security.key_rotation_days`` asks for instead of only flagging it (the server
    runs this at start and then every few hours):

    * when the current master version is older than the period, `rotate_master` (every data key
      re-wrapped under a new master version; old data stays readable);
    * every purpose whose newest data-key generation is older than the period gets a new one
      (new data is encrypted under it; older generations keep decrypting).

    Several processes may run it at once: the master lock and the per-purpose lock make the
    first one do the work and the others find nothing due. Returns what was done.
    """
    from qenex.store.connection import database_url

    settings = settings if settings is not None else load_settings()
    provider = provider if provider is not None else provider_from_settings(settings)
    conninfo = conninfo or database_url(settings)
    period = timedelta(days=settings.security.key_rotation_days)
    done: dict[str, Any] = {"master": None, "data_keys": []}
    with psycopg.connect(conninfo) as conn:
        with conn.transaction():
            _lock_master(conn)
            row = conn.execute(
                "SELECT now() - created_at FROM security_master_keys ORDER BY version DESC LIMIT 1"
            ).fetchone()
            if row is not None and row[0] >= period:
                done["master"] = _rotate_master_locked(conn, provider, previous_provider_from_env())
        stale = conn.execute(
            "SELECT purpose FROM security_data_keys GROUP BY purpose HAVING max(created_at) <= now() - %s"
            " ORDER BY purpose",
            (period,),
        ).fetchall()
    if stale:
        envelope = Envelope(conninfo, provider, rotation_days=settings.security.key_rotation_days)
        for (purpose,) in stale:
            done["data_keys"].append({"purpose": purpose, "data_key_id": envelope._active_dek(purpose).id})
    return done


def _unwrap_with_any(
    providers: tuple[MasterKeyProvider, MasterKeyProvider | None], version: int, material: bytes | None, wrapped: bytes
) -> bytes:
    current, previous = providers
    try:
        return current.unwrap(version, material, wrapped)
    except KeyProviderError:
        if previous is None:
            raise
    return previous.unwrap(version, material, wrapped)


def key_status(settings: Settings | None = None, *, conninfo: str | None = None) -> dict[str, Any]:
    """The keyring at a glance (no key material): current master version and whether its
    rotation is due (older than ``security.key_rotation_days``), and data keys per purpose."""
    from qenex.store.connection import database_url

    settings = settings if settings is not None else load_settings()
    with psycopg.connect(conninfo or database_url(settings)) as conn:
        master = conn.execute(
            "SELECT version, provider, created_at, now() - created_at FROM security_master_keys"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        purposes = conn.execute(
            "SELECT purpose, count(*), max(generation), max(created_at) FROM security_data_keys"
            " GROUP BY purpose ORDER BY purpose"
        ).fetchall()
    period = timedelta(days=settings.security.key_rotation_days)
    return {
        "master_version": master[0] if master else None,
        "master_provider": master[1] if master else None,
        "master_created_at": master[2].isoformat() if master else None,
        "master_rotation_due": bool(master and master[3] >= period),
        "rotation_days": settings.security.key_rotation_days,
        "data_keys": {
            p: {"generations": n, "current": g, "current_created_at": c.isoformat()} for p, n, g, c in purposes
        },
    }


# -- sensitive metadata and PII -----------------------------------------------------------------


def sensitive_fields(metadata: Mapping[str, Any]) -> set[str]:
    """Keys of ``metadata`` to encrypt: the well-known names plus those listed in its marker."""
    marked = metadata.get(SENSITIVE_MARKER, [])
    if not isinstance(marked, list | tuple) or not all(isinstance(k, str) for k in marked):
        raise EnvelopeError(f"metadata '{SENSITIVE_MARKER}' must be a list of field names", code="invalid_request")
    wanted = {k.lower() for k in marked} | SENSITIVE_METADATA_FIELDS
    return {k for k in metadata if k != SENSITIVE_MARKER and k.lower() in wanted}


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {ENCRYPTED_VALUE_KEY}


def seal_metadata(envelope: Envelope, metadata: Mapping[str, Any], *, table: str, row_id: object) -> dict[str, Any]:
    """A copy of ``metadata`` with each sensitive value replaced by ``{"$enc": "<ciphertext>"}``.

    The value is JSON-encoded first, so numbers and nested objects survive. The marker list is
    kept (with the encrypted names added) so a reader knows what was sealed. Idempotent.
    """
    if len(metadata) > METADATA_FIELDS_MAX:
        raise EnvelopeError(f"metadata has more than {METADATA_FIELDS_MAX} fields", code="invalid_request")
    targets = sensitive_fields(metadata)
    out: dict[str, Any] = dict(metadata)
    for key in targets:
        if _is_sealed(out[key]):
            continue
        plain = json.dumps(out[key], separators=(",", ":"), ensure_ascii=False)
        aad = aad_for(table, "metadata." + key, row_id)
        out[key] = {ENCRYPTED_VALUE_KEY: envelope.encrypt_text(plain, aad, purpose=METADATA_PURPOSE)}
    if targets:
        out[SENSITIVE_MARKER] = sorted(targets | set(metadata.get(SENSITIVE_MARKER, [])))
    return out


def open_metadata(envelope: Envelope, stored: Mapping[str, Any], *, table: str, row_id: object) -> dict[str, Any]:
    """The inverse of ``seal_metadata``."""
    out: dict[str, Any] = dict(stored)
    for key, value in stored.items():
        if _is_sealed(value):
            token = value[ENCRYPTED_VALUE_KEY]
            if not isinstance(token, str):
                raise EnvelopeError(f"sealed metadata field {key!r} is malformed", code="ciphertext_invalid")
            out[key] = json.loads(envelope.decrypt_text(token, aad_for(table, "metadata." + key, row_id)))
    return out


def seal_pii(envelope: Envelope, value: str, *, table: str, column: str, row_id: object) -> str:
    """Encrypt one customer PII value (name, national id, address ...) for a text column."""
    return envelope.encrypt_text(value, aad_for(table, column, row_id), purpose=PII_PURPOSE)


def open_pii(envelope: Envelope, token: str, *, table: str, column: str, row_id: object) -> str:
    return envelope.decrypt_text(token, aad_for(table, column, row_id))
