"""AES-256-GCM sealing of small secrets stored in the database (TOTP seeds, JWT private keys).

The key is derived with HKDF-SHA256 from a configured secret (``QENEX_SECRET_KEY`` or
``QENEX_JWT_SECRET``) and a purpose label, so each use has its own key. The row's id is bound
as associated data: a sealed value copied to another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from qenex.security.errors import SECURITY_NOT_CONFIGURED, SecurityError

NONCE_BYTES = 12
KEY_BYTES = 32
VERSION = b"\x01"


def require_secret(value: SecretStr | None, env_name: str) -> str:
    raw = value.get_secret_value() if value is not None else ""
    if not raw:
        raise SecurityError(SECURITY_NOT_CONFIGURED, f"{env_name} must be set for this operation")
    return raw


def _key(secret: str, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=f"qenex/{purpose}".encode())
    return hkdf.derive(secret.encode("utf-8"))


def seal(secret: str, purpose: str, plaintext: bytes, aad: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(_key(secret, purpose)).encrypt(nonce, plaintext, aad.encode("utf-8"))


def unseal(secret: str, purpose: str, sealed: bytes, aad: str, env_name: str) -> bytes:
    if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
        raise SecurityError(SECURITY_NOT_CONFIGURED, "a sealed secret in the database is malformed")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(_key(secret, purpose)).decrypt(nonce, body, aad.encode("utf-8"))
    except InvalidTag:
        raise SecurityError(
            SECURITY_NOT_CONFIGURED, f"a sealed secret does not open with the current {env_name}"
        ) from None
