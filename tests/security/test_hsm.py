"""The PKCS#11 (HSM) master-key path, tested with SoftHSM2.

Skips with a clear message when SoftHSM2 (Debian package `softhsm2`, installed by
`make system-deps`) or python-pkcs11 is missing, unless QENEX_REQUIRE_HSM=1 (set by `.ci/run`):
then a missing SoftHSM2 is a failure, so CI cannot pass without testing the HSM path.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from qenex.config import load_settings
from qenex.security.audit import AuditEvent, checkpoint, configure_signing, record_event_sync, verify_audit_log
from qenex.security.envelope import Envelope, rotate_master
from qenex.security.keyproviders import KeyProviderError, Pkcs11KeyProvider, provider_from_settings
from qenex.store.migrate import migrate

REQUIRE_HSM_ENV = "QENEX_REQUIRE_HSM"


def hsm_required() -> bool:
    return os.environ.get(REQUIRE_HSM_ENV, "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip, or fail when CI requires the HSM path to be tested."""
    if hsm_required():
        pytest.fail(f"{reason}, and {REQUIRE_HSM_ENV}=1 requires the HSM tests to run", pytrace=False)
    pytest.skip(reason)


try:
    import pkcs11  # noqa: F401
except ImportError:
    if hsm_required():
        raise
    pytest.skip("python-pkcs11 is not installed; the HSM path cannot be tested", allow_module_level=True)

SOFTHSM_LIBS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
USER_PIN = "4321"
SO_PIN = "87654321"


def _softhsm_module() -> str | None:
    for path in SOFTHSM_LIBS:
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    module = _softhsm_module()
    if module is None or shutil.which("softhsm2-util") is None:
        missing("SoftHSM2 is not installed (apt-get install softhsm2, or `make system-deps`)")
    # SoftHSM reads its configuration once per process, when the library is first initialised:
    # one token directory for the whole module.
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "qenex-" + secrets.token_hex(4)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    yield {"QENEX_PKCS11_MODULE": module, "QENEX_PKCS11_TOKEN_LABEL": label, "QENEX_PKCS11_PIN": USER_PIN}
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture()
def hsm_env(token: dict[str, str]) -> dict[str, str]:
    # A fresh key label prefix per test: each test sees its own master versions in the shared token.
    return {**token, "QENEX_PKCS11_KEY_PREFIX": f"t{secrets.token_hex(3)}-kek-v"}


@pytest.fixture()
def db(fresh_db_url: str) -> str:
    migrate(fresh_db_url)
    return fresh_db_url


def _provider(env: dict[str, str]) -> Pkcs11KeyProvider:
    provider = provider_from_settings(load_settings({}, environ={}), environ=env)
    assert isinstance(provider, Pkcs11KeyProvider)
    return provider


def test_wrong_pin_and_missing_token(hsm_env: dict[str, str]) -> None:
    # First in the module on purpose: PKCS#11 login state is per process, so once any session
    # of this process is logged in, the token no longer asks a new session for the PIN.
    provider = _provider({**hsm_env, "QENEX_PKCS11_PIN": "0000"})
    with pytest.raises(KeyProviderError) as exc:
        provider.wrap(1, None, b"k" * 32)
    assert exc.value.code == "hsm_login_failed"
    with pytest.raises(KeyProviderError) as exc:
        _provider({**hsm_env, "QENEX_PKCS11_TOKEN_LABEL": "no-such-token"})
    assert exc.value.code == "hsm_unavailable"
    env_without_pin = {k: v for k, v in hsm_env.items() if k != "QENEX_PKCS11_PIN"}
    with pytest.raises(KeyProviderError):
        _provider(env_without_pin)


def test_wrap_unwrap_inside_the_token(hsm_env: dict[str, str]) -> None:
    provider = _provider(hsm_env)
    assert provider.new_version_material(1) is None  # nothing to store: the key lives in the token
    dek = secrets.token_bytes(32)
    wrapped = provider.wrap(1, None, dek)
    assert dek not in wrapped and len(wrapped) == 12 + 32 + 16
    assert provider.unwrap(1, None, wrapped) == dek
    with pytest.raises(KeyProviderError) as exc:
        provider.unwrap(2, None, wrapped)  # no such master version in the token
    assert exc.value.code == "master_key_mismatch"
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(KeyProviderError):
        provider.unwrap(1, None, tampered)
    key = provider._key(1)
    import pkcs11

    assert key[pkcs11.Attribute.EXTRACTABLE] is False and key[pkcs11.Attribute.SENSITIVE] is True
    provider.close()


def test_envelope_and_master_rotation_with_hsm(
    hsm_env: dict[str, str], db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in hsm_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({}, environ={})
    env = Envelope(db, provider_from_settings(settings))
    blob = env.encrypt(b"customer national id", b"customers|nid|1")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT version, provider, material FROM security_master_keys").fetchall() == [
            (1, "pkcs11", None)
        ]
    result = rotate_master(settings, conninfo=db)
    assert result["master_version"] == 2 and result["provider"] == "pkcs11" and result["rewrapped_data_keys"] == 1
    fresh = Envelope(db, provider_from_settings(settings))
    assert fresh.decrypt(blob, b"customers|nid|1") == b"customer national id"


def test_audit_checkpoints_signed_under_hsm_master(hsm_env: dict[str, str], db: str) -> None:
    provider = _provider(hsm_env)
    configure_signing(provider)
    try:
        with psycopg.connect(db) as conn:
            for i in range(3):
                record_event_sync(conn, AuditEvent(actor="teller:1", action="account.created", resource=str(i)))
            assert checkpoint(conn) == 1
            conn.commit()
        report = verify_audit_log(db, provider=provider)
        assert report.ok and report.checkpoints == 1 and not report.notes, report
    finally:
        configure_signing(None)
        provider.close()

