"""Password and client-secret hashing with argon2id (RFC 9106), via argon2-cffi.

argon2-cffi's defaults are RFC 9106's second recommended profile (t=3, 64 MiB, p=4).
Verification of an unknown user still runs one argon2 verification against a fixed hash,
so response time does not reveal which usernames or client ids exist.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from qenex.security.errors import bad_request

PASSWORD_CHARS_MIN = 12
PASSWORD_CHARS_MAX = 256  # argon2 accepts more; a bound stops multi-megabyte "passwords"

_hasher = PasswordHasher()


def check_password_policy(password: str) -> None:
    if not PASSWORD_CHARS_MIN <= len(password) <= PASSWORD_CHARS_MAX:
        raise bad_request(f"a password must have {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters")
    if password.strip() != password or len(set(password)) < 4:
        raise bad_request("a password must not start or end with spaces and needs at least 4 distinct characters")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


@functools.cache
def _decoy_hash() -> str:
    return _hasher.hash("qenex-decoy-password-for-timing")


def verify_secret(stored_hash: str | None, presented: str) -> bool:
    """True when ``presented`` matches; with no stored hash, burns the same time and returns False."""
    if len(presented) > PASSWORD_CHARS_MAX:
        return False
    try:
        return _hasher.verify(stored_hash if stored_hash is not None else _decoy_hash(), presented) and (
            stored_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
