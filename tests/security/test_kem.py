"""ML-KEM-768 key exchange for service-to-service secrets."""

from __future__ import annotations

import pytest

from qenex.security import kem
from qenex.security.kem import KemError


def test_encapsulate_decapsulate_agree() -> None:
    pair = kem.generate_keypair()
    assert len(pair.public_bytes) == kem.PUBLIC_KEY_BYTES
    shared, ct = kem.encapsulate(pair.public_bytes)
    assert len(shared) == 32 and len(ct) == kem.KEM_CIPHERTEXT_BYTES
    assert kem.decapsulate(pair, ct) == shared
    # A fresh encapsulation yields a different secret.
    assert kem.encapsulate(pair.public_bytes)[0] != shared


def test_seal_and_open_between_services() -> None:
    ledger = kem.generate_keypair()
    sealed = kem.seal_for_peer(ledger.public_bytes, b"db-password-123", b"payments->ledger")
    assert b"db-password-123" not in sealed and sealed.startswith(kem.MAGIC)
    assert kem.open_from_peer(ledger, sealed, b"payments->ledger") == b"db-password-123"
    # Same secret sealed twice gives unrelated messages.
    assert kem.seal_for_peer(ledger.public_bytes, b"db-password-123", b"payments->ledger") != sealed


def test_key_restored_from_seed_opens() -> None:
    pair = kem.generate_keypair()
    sealed = kem.seal_for_peer(pair.public_bytes, b"s")
    restored = kem.keypair_from_seed(pair.seed)
    assert restored.public_bytes == pair.public_bytes
    assert kem.open_from_peer(restored, sealed) == b"s"
    assert "seed" not in repr(pair) and pair.seed.hex() not in repr(pair)


def test_wrong_key_context_or_tampering_fail() -> None:
    pair, other = kem.generate_keypair(), kem.generate_keypair()
    sealed = kem.seal_for_peer(pair.public_bytes, b"secret", b"ctx")
    with pytest.raises(KemError):
        kem.open_from_peer(other, sealed, b"ctx")
    with pytest.raises(KemError):
        kem.open_from_peer(pair, sealed, b"other-ctx")
    for index in (10, len(kem.MAGIC) + kem.KEM_CIPHERTEXT_BYTES + 3, len(sealed) - 1):
        broken = bytearray(sealed)
        broken[index] ^= 1
        with pytest.raises(KemError):
            kem.open_from_peer(pair, bytes(broken), b"ctx")
    with pytest.raises(KemError) as exc:
        kem.open_from_peer(pair, sealed[:100], b"ctx")
    assert exc.value.code == "kem_ciphertext_invalid"


def test_input_validation() -> None:
    with pytest.raises(KemError) as exc:
        kem.load_public_key(b"\x00" * 10)
    assert exc.value.code == "kem_key_invalid"
    with pytest.raises(KemError):
        kem.keypair_from_seed(b"short")
    pair = kem.generate_keypair()
    with pytest.raises(KemError):
        kem.seal_for_peer(pair.public_bytes, b"x" * (kem.SECRET_BYTES_MAX + 1))
    with pytest.raises(KemError):
        kem.seal_for_peer(pair.public_bytes, b"x", b"c" * 300)
