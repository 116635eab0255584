"""Post-quantum key exchange for service-to-service secrets: ML-KEM-768 (FIPS 203) + HKDF + AES-GCM.

A service publishes its ML-KEM public key. A peer that wants to hand it a secret (a database
password, an API key for another system) calls ``seal_for_peer``: it encapsulates a fresh shared
secret to the public key, derives an AES-256 key from it with HKDF-SHA256, and encrypts the secret.
Only the holder of the private key can ``open_from_peer``. Each message has its own shared secret,
so nothing is reused between messages.

Sealed message format (version 1):

    b"QXK1" | ML-KEM ciphertext (1088 bytes) | nonce (12 bytes) | AES-GCM ciphertext || tag

The 4-byte header and the KEM ciphertext are authenticated as associated data, along with the
caller's ``context`` (e.g. ``b"payments->ledger:db-password"``), which must match on both sides.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qenex.errors import QenexError

ALGORITHM = "ML-KEM-768"
MAGIC = b"QXK1"
KEM_CIPHERTEXT_BYTES = 1088
PUBLIC_KEY_BYTES = 1184
SEED_BYTES = 64
NONCE_BYTES = 12
TAG_BYTES = 16
AES_KEY_BYTES = 32
SECRET_BYTES_MAX = 65_536
CONTEXT_BYTES_MAX = 256
_HKDF_INFO = b"qenex-kem-seal-v1"


class KemError(QenexError):
    code = "kem_failed"
    http_status = 400


@dataclass(frozen=True)
class KemKeyPair:
    """A service's ML-KEM key pair. Persist ``seed`` as a secret (e.g. sealed by the envelope)."""

    private_key: MLKEM768PrivateKey

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes_raw()

    @property
    def seed(self) -> bytes:
        return self.private_key.private_bytes_raw()

    def __repr__(self) -> str:  # never print the private key
        return f"KemKeyPair(algorithm={ALGORITHM!r})"


def generate_keypair() -> KemKeyPair:
    return KemKeyPair(MLKEM768PrivateKey.generate())


def keypair_from_seed(seed: bytes) -> KemKeyPair:
    if len(seed) != SEED_BYTES:
        raise KemError(f"an ML-KEM-768 seed is {SEED_BYTES} bytes", code="kem_key_invalid")
    return KemKeyPair(MLKEM768PrivateKey.from_seed_bytes(seed))


def load_public_key(data: bytes) -> MLKEM768PublicKey:
    if len(data) != PUBLIC_KEY_BYTES:
        raise KemError(f"an ML-KEM-768 public key is {PUBLIC_KEY_BYTES} bytes", code="kem_key_invalid")
    try:
        return MLKEM768PublicKey.from_public_bytes(data)
    except ValueError:
        raise KemError("not a valid ML-KEM-768 public key", code="kem_key_invalid") from None


def encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    """(shared_secret, kem_ciphertext) for the holder of ``public_key``."""
    return load_public_key(public_key).encapsulate()


def decapsulate(keypair: KemKeyPair, kem_ciphertext: bytes) -> bytes:
    if len(kem_ciphertext) != KEM_CIPHERTEXT_BYTES:
        raise KemError(f"an ML-KEM-768 ciphertext is {KEM_CIPHERTEXT_BYTES} bytes", code="kem_ciphertext_invalid")
    return keypair.private_key.decapsulate(kem_ciphertext)


def derive_key(shared_secret: bytes, context: bytes, kem_ciphertext: bytes) -> bytes:
    """AES-256 key from the shared secret; salted with the KEM ciphertext so every message differs."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=AES_KEY_BYTES, salt=kem_ciphertext, info=_HKDF_INFO + context)
    return hkdf.derive(shared_secret)


def _check_context(context: bytes) -> None:
    if len(context) > CONTEXT_BYTES_MAX:
        raise KemError(f"context is longer than {CONTEXT_BYTES_MAX} bytes")


def seal_for_peer(peer_public_key: bytes, secret: bytes, context: bytes = b"") -> bytes:
    """Encrypt ``secret`` so that only the owner of ``peer_public_key`` can read it."""
    _check_context(context)
    if len(secret) > SECRET_BYTES_MAX:
        raise KemError(f"secret is larger than {SECRET_BYTES_MAX} bytes")
    shared, kem_ct = encapsulate(peer_public_key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = MAGIC + kem_ct + context
    return MAGIC + kem_ct + nonce + AESGCM(derive_key(shared, context, kem_ct)).encrypt(nonce, secret, aad)


def open_from_peer(keypair: KemKeyPair, sealed: bytes, context: bytes = b"") -> bytes:
    _check_context(context)
    head = len(MAGIC) + KEM_CIPHERTEXT_BYTES
    if len(sealed) < head + NONCE_BYTES + TAG_BYTES or not sealed.startswith(MAGIC):
        raise KemError("sealed message is malformed", code="kem_ciphertext_invalid")
    kem_ct = sealed[len(MAGIC) : head]
    nonce = sealed[head : head + NONCE_BYTES]
    key = derive_key(decapsulate(keypair, kem_ct), context, kem_ct)
    try:
        return AESGCM(key).decrypt(nonce, sealed[head + NONCE_BYTES :], MAGIC + kem_ct + context)
    except InvalidTag:
        # ML-KEM decapsulation never fails outright (implicit rejection): a wrong key or a
        # tampered message shows up here.
        raise KemError("sealed message cannot be opened (wrong key, wrong context or tampered)") from None
