"""Envelope encryption at rest against a real PostgreSQL: format, AAD binding, tamper detection,
data-key rotation, master rotation (old data stays readable), key providers, metadata and PII."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import psycopg
import pytest

from qenex.config import load_settings
from qenex.security.envelope import (
    ENCRYPTED_VALUE_KEY,
    Envelope,
    EnvelopeError,
    aad_for,
    key_status,
    open_metadata,
    open_pii,
    rotate_master,
    seal_metadata,
    seal_pii,
)
from qenex.security.keyproviders import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProviderError,
    provider_from_settings,
)

from .conftest import reset_s2_tables


def _key_b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture()
def db(module_db: str) -> str:
    reset_s2_tables(module_db)
    return module_db


@pytest.fixture()
def master_b64() -> str:
    return _key_b64()


@pytest.fixture()
def env(db: str, master_b64: str) -> Envelope:
    return Envelope(db, EnvKeyProvider(master_b64), rotation_days=30)


def test_round_trip_and_format(env: Envelope, db: str) -> None:
    aad = aad_for("customers", "national_id", "c-1")
    blob = env.encrypt(b"AB123456C", aad)
    assert b"AB123456C" not in blob
    assert blob[0] == 1  # format version
    dek_id = int.from_bytes(blob[1:9], "big")
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT purpose, wrapped_key FROM security_data_keys WHERE id = %s", (dek_id,)).fetchone()
    assert row is not None and row[0] == "default"
    assert len(row[1]) == 12 + 32 + 16  # wrapped, never the raw key
    assert env.decrypt(blob, aad) == b"AB123456C"
    # Two encryptions of one value differ (random nonce).
    assert env.encrypt(b"AB123456C", aad) != blob


def test_aad_binds_row_and_column(env: Envelope) -> None:
    blob = env.encrypt(b"secret", aad_for("customers", "ssn", "1"))
    for wrong in (aad_for("customers", "ssn", "2"), aad_for("customers", "email", "1"), b""):
        with pytest.raises(EnvelopeError) as exc:
            env.decrypt(blob, wrong)
        assert exc.value.code == "decryption_failed"


def test_tampering_is_detected(env: Envelope) -> None:
    aad = b"x"
    blob = bytearray(env.encrypt(b"hello world", aad))
    blob[-1] ^= 1
    with pytest.raises(EnvelopeError):
        env.decrypt(bytes(blob), aad)
    good = env.encrypt(b"hello world", aad)
    with pytest.raises(EnvelopeError) as exc:
        env.decrypt(good[:10], aad)
    assert exc.value.code == "ciphertext_invalid"
    with pytest.raises(EnvelopeError) as exc:
        env.decrypt(b"\x02" + good[1:], aad)
    assert exc.value.code == "ciphertext_invalid"
    # Pointing the header at another (non-existent) data key fails cleanly.
    with pytest.raises(EnvelopeError) as exc:
        env.decrypt(good[:1] + (999_999).to_bytes(8, "big") + good[9:], aad)
    assert exc.value.code == "data_key_missing"


def test_fresh_instance_reads_old_data(env: Envelope, db: str, master_b64: str) -> None:
    blob = env.encrypt(b"persisted", b"a")
    other = Envelope(db, EnvKeyProvider(master_b64))
    assert other.decrypt(blob, b"a") == b"persisted"


def test_wrong_master_key_is_refused(env: Envelope, db: str) -> None:
    blob = env.encrypt(b"persisted", b"a")
    intruder = Envelope(db, EnvKeyProvider(_key_b64()))
    with pytest.raises(KeyProviderError) as exc:
        intruder.decrypt(blob, b"a")
    assert exc.value.code == "master_key_mismatch"


def test_data_key_rotation_keeps_old_data(env: Envelope, db: str) -> None:
    old = env.encrypt(b"old", b"")
    new_id = env.rotate_data_key()
    new = env.encrypt(b"new", b"")
    assert int.from_bytes(new[1:9], "big") == new_id != int.from_bytes(old[1:9], "big")
    assert env.decrypt(old, b"") == b"old" and env.decrypt(new, b"") == b"new"
    with psycopg.connect(db) as conn:
        gens = conn.execute("SELECT generation FROM security_data_keys WHERE purpose='default' ORDER BY 1").fetchall()
    assert [g[0] for g in gens] == [1, 2]


def test_rotation_period_starts_a_new_generation(env: Envelope, db: str, master_b64: str) -> None:
    first = env.encrypt(b"a", b"")
    # Age the current generation beyond key_rotation_days, as if 31 days had passed.
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE security_data_keys SET created_at = now() - interval '31 days'")
    later = Envelope(db, EnvKeyProvider(master_b64), rotation_days=30)
    second = later.encrypt(b"b", b"")
    assert first[1:9] != second[1:9]
    assert later.decrypt(first, b"") == b"a"
    # Within the period, the generation is reused.
    assert Envelope(db, EnvKeyProvider(master_b64)).encrypt(b"c", b"")[1:9] == second[1:9]


def test_rotate_master_rewraps_and_old_data_stays_readable(db: str, master_b64: str) -> None:
    settings = load_settings({"security": {"master_key": master_b64}}, environ={})
    env = Envelope(db, provider_from_settings(settings, environ={}))
    blobs = {p: env.encrypt(p.encode(), b"z", purpose=p) for p in ("pii", "metadata", "default")}
    with psycopg.connect(db) as conn:
        before = dict(conn.execute("SELECT id, wrapped_key FROM security_data_keys").fetchall())
    result = rotate_master(settings, conninfo=db)
    assert result == {"master_version": 2, "previous_version": 1, "rewrapped_data_keys": 3, "provider": "env"}
    with psycopg.connect(db) as conn:
        after = dict(conn.execute("SELECT id, wrapped_key FROM security_data_keys").fetchall())
        versions = conn.execute("SELECT DISTINCT master_version FROM security_data_keys").fetchall()
        retired = conn.execute("SELECT version FROM security_master_keys WHERE retired_at IS NOT NULL").fetchall()
    assert set(after) == set(before) and all(after[k] != before[k] for k in after)
    assert versions == [(2,)] and retired == [(1,)]
    fresh = Envelope(db, provider_from_settings(settings, environ={}))
    for purpose, blob in blobs.items():
        assert fresh.decrypt(blob, b"z") == purpose.encode()
    assert rotate_master(settings, conninfo=db)["master_version"] == 3
    assert Envelope(db, EnvKeyProvider(master_b64)).decrypt(blobs["pii"], b"z") == b"pii"


def test_env_key_validation() -> None:
    with pytest.raises(KeyProviderError) as exc:
        EnvKeyProvider("not base64!!")
    assert exc.value.code == "master_key_invalid"
    with pytest.raises(KeyProviderError):
        EnvKeyProvider(base64.b64encode(b"short").decode())
    secret = _key_b64()
    assert secret not in repr(EnvKeyProvider(secret))


def test_key_file_permissions(tmp_path: Path, db: str) -> None:
    path = tmp_path / "master.key"
    path.write_text(_key_b64() + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(KeyProviderError) as exc:
        FileKeyProvider(path)
    assert exc.value.code == "master_key_insecure"
    os.chmod(path, 0o600)
    env = Envelope(db, FileKeyProvider(path))
    assert env.decrypt(env.encrypt(b"f", b""), b"") == b"f"
    with pytest.raises(KeyProviderError) as exc:
        FileKeyProvider(tmp_path / "missing.key")
    assert exc.value.code == "master_key_missing"


def test_provider_selection(tmp_path: Path) -> None:
    dev = load_settings({"data_dir": str(tmp_path)}, environ={})
    provider = provider_from_settings(dev, environ={})
    assert provider.name == "file"
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    prod = load_settings({"env": "production", "data_dir": str(tmp_path / "p")}, environ={})
    with pytest.raises(KeyProviderError) as exc:
        provider_from_settings(prod, environ={})
    assert exc.value.code == "master_key_missing"
    with pytest.raises(KeyProviderError):
        provider_from_settings(dev, environ={"QENEX_PKCS11_MODULE": "/nonexistent.so"})


def test_sealed_metadata(env: Envelope) -> None:
    meta = {"email": "ann@example.com", "note": "vip", "ref": 7, "sensitive": ["ref"], "Tax_ID": "123-45-6789"}
    sealed = seal_metadata(env, meta, table="accounts", row_id="acc-1")
    assert sealed["note"] == "vip"
    assert set(sealed["email"]) == {ENCRYPTED_VALUE_KEY}
    assert "ann@example.com" not in str(sealed) and "123-45-6789" not in str(sealed)
    assert sealed["sensitive"] == ["Tax_ID", "email", "ref"]
    assert seal_metadata(env, sealed, table="accounts", row_id="acc-1") == sealed  # idempotent
    opened = open_metadata(env, sealed, table="accounts", row_id="acc-1")
    assert opened["email"] == "ann@example.com" and opened["ref"] == 7 and opened["Tax_ID"] == "123-45-6789"
    with pytest.raises(EnvelopeError):
        open_metadata(env, sealed, table="accounts", row_id="acc-2")
    with pytest.raises(EnvelopeError) as exc:
        seal_metadata(env, {"sensitive": "email"}, table="accounts", row_id="x")
    assert exc.value.code == "invalid_request"


def test_pii_helpers(env: Envelope) -> None:
    token = seal_pii(env, "Ana María Núñez", table="customers", column="full_name", row_id=42)
    assert token.isascii() and "Ana" not in token
    assert open_pii(env, token, table="customers", column="full_name", row_id=42) == "Ana María Núñez"
    with pytest.raises(EnvelopeError):
        open_pii(env, token, table="customers", column="address", row_id=42)
    with pytest.raises(EnvelopeError) as exc:
        open_pii(env, "%%%", table="customers", column="full_name", row_id=42)
    assert exc.value.code == "ciphertext_invalid"


def test_limits(env: Envelope) -> None:
    with pytest.raises(EnvelopeError) as exc:
        env.encrypt(b"x" * (1_048_576 + 1), b"")
    assert exc.value.code == "invalid_request"
    with pytest.raises(EnvelopeError):
        env.encrypt(b"x", b"", purpose="bad purpose!")


def test_concurrent_first_use_creates_one_data_key(db: str, master_b64: str) -> None:
    """Several processes (here: threads with their own Envelope) starting at once agree on one
    master version and one data-key generation."""
    import threading

    blobs: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            own = Envelope(db, EnvKeyProvider(master_b64))
            blobs.append(own.encrypt(b"v", b""))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM security_master_keys").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM security_data_keys").fetchone() == (1,)
    assert len({b[1:9] for b in blobs}) == 1


def test_caller_mistakes_are_4xx_faults_are_5xx(env: Envelope) -> None:
    with pytest.raises(EnvelopeError) as exc:
        env.encrypt(b"x", b"", purpose="no spaces allowed")
    assert (exc.value.code, exc.value.http_status) == ("invalid_request", 400)
    with pytest.raises(EnvelopeError) as exc:
        env.decrypt(env.encrypt(b"x", b"a"), b"b")
    assert (exc.value.code, exc.value.http_status) == ("decryption_failed", 500)


def test_key_status_reports_rotation_due(db: str, master_b64: str) -> None:
    settings = load_settings({"security": {"master_key": master_b64, "key_rotation_days": 30}}, environ={})
    assert key_status(settings, conninfo=db)["master_version"] is None
    env = Envelope(db, provider_from_settings(settings, environ={}))
    env.encrypt(b"a", b"", purpose="pii")
    status = key_status(settings, conninfo=db)
    assert status["master_version"] == 1 and status["master_provider"] == "env"
    assert status["master_rotation_due"] is False
    assert status["data_keys"]["pii"]["current"] == 1
    assert master_b64 not in str(status)
    _age_master(db)
    assert key_status(settings, conninfo=db)["master_rotation_due"] is True
    rotate_master(settings, conninfo=db)
    assert key_status(settings, conninfo=db)["master_rotation_due"] is False


def _age_master(db: str) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE security_master_keys SET created_at = now() - interval '31 days'")


def test_root_key_replacement_with_previous_key(db: str, master_b64: str) -> None:
    old_settings = load_settings({"security": {"master_key": master_b64}}, environ={})
    env = Envelope(db, provider_from_settings(old_settings, environ={}))
    blob = env.encrypt(b"kept across roots", b"r")
    new_b64 = _key_b64()
    new_settings = load_settings({"security": {"master_key": new_b64}}, environ={})
    # Without the previous root, nothing can be re-wrapped, and nothing changes.
    with pytest.raises(KeyProviderError) as exc:
        rotate_master(new_settings, conninfo=db, environ={})
    assert exc.value.code == "master_key_mismatch"
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT max(version) FROM security_master_keys").fetchone() == (1,)
    result = rotate_master(new_settings, conninfo=db, environ={"QENEX_MASTER_KEY_PREVIOUS": master_b64})
    assert result["master_version"] == 2 and result["rewrapped_data_keys"] == 1
    assert Envelope(db, EnvKeyProvider(new_b64)).decrypt(blob, b"r") == b"kept across roots"
    with pytest.raises(KeyProviderError):
        Envelope(db, EnvKeyProvider(master_b64)).decrypt(blob, b"r")  # the old root is retired
