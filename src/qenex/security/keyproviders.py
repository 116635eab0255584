"""Master-key providers: where the root of the key hierarchy lives.

The key hierarchy is three levels deep, so that rotating the master key never touches data:

    root key (this module)  ->  key-encryption keys, one per master version (KEKs)
                            ->  data-encryption keys, one per purpose and generation (DEKs)
                            ->  ciphertext

A provider answers two questions for a master *version*: "wrap these DEK bytes" and
"unwrap them". How it does so depends on where the root lives:

* ``EnvKeyProvider`` / ``FileKeyProvider``: the root is 32 bytes from ``QENEX_MASTER_KEY``
  (base64) or from a key file (``QENEX_MASTER_KEY_FILE``, owner-only permissions). Each master
  version has its own random KEK, stored in PostgreSQL wrapped by the root with AES-256-GCM; the
  provider receives that wrapped KEK through ``kek_material``.
* ``Pkcs11KeyProvider``: each master version is an AES-256 key generated *inside* a PKCS#11
  token (an HSM; SoftHSM2 in tests), non-extractable; wrapping is AES-GCM computed by the token.
  The root never exists in process memory.

The HSM is configured by environment variables (they are deployment facts, not app settings):
``QENEX_PKCS11_MODULE`` (path of the PKCS#11 library), ``QENEX_PKCS11_TOKEN_LABEL``,
``QENEX_PKCS11_PIN`` (or ``QENEX_PKCS11_PIN_FILE``) and optionally ``QENEX_PKCS11_KEY_PREFIX``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qenex.config import Settings
from qenex.errors import QenexError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM standard nonce
KEY_FILE_BYTES_MAX = 4096
PIN_CHARS_MAX = 256
DEV_KEY_FILENAME = "master.key"
HSM_KEY_PREFIX_DEFAULT = "qenex-kek-v"
# Wrapped-key framing: nonce || ciphertext||tag (32 + 16 bytes).
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + 16


class KeyProviderError(QenexError):
    """The master key is missing, malformed, unreadable or does not match the keyring."""

    code = "master_key_error"
    http_status = 500


def _kek_aad(version: int, purpose: bytes) -> bytes:
    # Binds a wrapped key to its master version and role, so blobs cannot be swapped around.
    return b"qenex-kek|" + purpose + b"|v" + str(version).encode()


def _gcm_wrap(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _gcm_unwrap(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise KeyProviderError(f"{what} is truncated", code="master_key_mismatch")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise KeyProviderError(
            f"{what} cannot be unwrapped: the configured master key does not match the keyring",
            code="master_key_mismatch",
        ) from None


class MasterKeyProvider(Protocol):
    """What the envelope needs from the root of trust."""

    name: str

    def new_version_material(self, version: int) -> bytes | None:
        """Create master version ``version``; return what must be stored with it (or None)."""

    def wrap(self, version: int, material: bytes | None, dek: bytes) -> bytes: ...

    def unwrap(self, version: int, material: bytes | None, wrapped: bytes) -> bytes: ...


class RootKeyProvider:
    """A 32-byte root held in memory (from the environment or a key file)."""

    def __init__(self, root: bytes, name: str) -> None:
        if len(root) != KEY_BYTES:
            raise KeyProviderError(f"the master key must be exactly {KEY_BYTES} bytes", code="master_key_invalid")
        self._root = root
        self.name = name

    def __repr__(self) -> str:  # never show the key
        return f"{self.__class__.__name__}(name={self.name!r})"

    def new_version_material(self, version: int) -> bytes:
        return _gcm_wrap(self._root, secrets.token_bytes(KEY_BYTES), _kek_aad(version, b"kek"))

    def _kek(self, version: int, material: bytes | None) -> bytes:
        if material is None:
            raise KeyProviderError(f"master version {version} has no stored key material", code="master_key_mismatch")
        return _gcm_unwrap(self._root, material, _kek_aad(version, b"kek"), f"master version {version}")

    def wrap(self, version: int, material: bytes | None, dek: bytes) -> bytes:
        return _gcm_wrap(self._kek(version, material), dek, _kek_aad(version, b"dek"))

    def unwrap(self, version: int, material: bytes | None, wrapped: bytes) -> bytes:
        return _gcm_unwrap(self._kek(version, material), wrapped, _kek_aad(version, b"dek"), "a data key")


def decode_master_key(text: str, source: str) -> bytes:
    """Base64 (standard or URL-safe) of exactly 32 bytes. The error names the source, never the value."""
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyProviderError(f"{source} is not valid base64", code="master_key_invalid") from None
    if len(raw) != KEY_BYTES:
        raise KeyProviderError(f"{source} must decode to exactly {KEY_BYTES} bytes", code="master_key_invalid")
    return raw


class EnvKeyProvider(RootKeyProvider):
    def __init__(self, value: str) -> None:
        super().__init__(decode_master_key(value, "QENEX_MASTER_KEY"), "env")


class FileKeyProvider(RootKeyProvider):
    """Reads a base64 key file; refuses one that the group or others can read or write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(read_key_file(Path(path)), "file")


def read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyProviderError(f"master key file {path} does not exist", code="master_key_missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProviderError(f"master key file {path} is not a regular file", code="master_key_invalid")
    if info.st_mode & 0o077:
        raise KeyProviderError(
            f"master key file {path} is accessible by group or others (mode {oct(info.st_mode & 0o777)}); "
            "chmod 600 it",
            code="master_key_insecure",
        )
    if info.st_size > KEY_FILE_BYTES_MAX:
        raise KeyProviderError(f"master key file {path} is larger than {KEY_FILE_BYTES_MAX} bytes")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise KeyProviderError(f"master key file {path} cannot be read as base64 text") from None
    return decode_master_key(text, f"master key file {path}")


def create_key_file(path: Path) -> None:
    """Write a new random key file with mode 0600, refusing to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")


class Pkcs11KeyProvider:
    """Master versions are non-extractable AES keys inside a PKCS#11 token; the token does the wrapping."""

    name = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str, key_prefix: str = HSM_KEY_PREFIX_DEFAULT) -> None:
        try:
            import pkcs11
        except ImportError:
            raise KeyProviderError("the PKCS#11 provider needs the python-pkcs11 package") from None
        self._pkcs11: Any = pkcs11
        try:
            lib = pkcs11.lib(module)
            self._token = lib.get_token(token_label=token_label)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KeyProviderError(
                f"cannot open PKCS#11 token {token_label!r} via {module}: {exc.__class__.__name__}",
                code="hsm_unavailable",
            ) from None
        self._pin = pin
        self._prefix = key_prefix
        self._lock = threading.Lock()  # one session at a time: PKCS#11 sessions are not thread-safe
        self._session: Any = None

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(prefix={self._prefix!r})"

    def _open(self) -> Any:
        if self._session is None:
            try:
                self._session = self._token.open(user_pin=self._pin, rw=True)
            except self._pkcs11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 login is per process and token: another provider instance in this
                # process already logged in, and a new session shares that state.
                self._session = self._token.open(rw=True)
            except self._pkcs11.PKCS11Error as exc:
                raise KeyProviderError(
                    f"cannot log in to the PKCS#11 token: {exc.__class__.__name__}", code="hsm_login_failed"
                ) from None
        return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def _key(self, version: int) -> Any:
        p = self._pkcs11
        try:
            return self._open().get_key(
                label=f"{self._prefix}{version}", key_type=p.KeyType.AES, object_class=p.ObjectClass.SECRET_KEY
            )
        except p.NoSuchKey:
            raise KeyProviderError(
                f"master version {version} is not present in the PKCS#11 token", code="master_key_mismatch"
            ) from None

    def new_version_material(self, version: int) -> None:
        p = self._pkcs11
        with self._lock:
            try:
                self._key(version)
                return None  # left by an earlier attempt whose database transaction failed: reuse it
            except KeyProviderError:
                pass
            self._open().generate_key(
                p.KeyType.AES,
                KEY_BYTES * 8,
                label=f"{self._prefix}{version}",
                store=True,
                template={p.Attribute.EXTRACTABLE: False, p.Attribute.SENSITIVE: True},
            )
        return None

    def wrap(self, version: int, material: bytes | None, dek: bytes) -> bytes:
        p = self._pkcs11
        nonce = secrets.token_bytes(NONCE_BYTES)
        params = p.GCMParams(nonce, _kek_aad(version, b"dek"), 128)
        with self._lock:
            sealed = self._key(version).encrypt(dek, mechanism=p.Mechanism.AES_GCM, mechanism_param=params)
        return nonce + bytes(sealed)

    def unwrap(self, version: int, material: bytes | None, wrapped: bytes) -> bytes:
        p = self._pkcs11
        params = p.GCMParams(wrapped[:NONCE_BYTES], _kek_aad(version, b"dek"), 128)
        with self._lock:
            try:
                return bytes(
                    self._key(version).decrypt(
                        wrapped[NONCE_BYTES:], mechanism=p.Mechanism.AES_GCM, mechanism_param=params
                    )
                )
            except p.PKCS11Error:
                raise KeyProviderError(
                    "a data key cannot be unwrapped by the PKCS#11 token", code="master_key_mismatch"
                ) from None


def _pin_from_env(env: Mapping[str, str]) -> str:
    if env.get("QENEX_PKCS11_PIN"):
        return env["QENEX_PKCS11_PIN"]
    pin_file = env.get("QENEX_PKCS11_PIN_FILE")
    if pin_file:
        try:
            pin = Path(pin_file).read_text(encoding="utf-8")[:PIN_CHARS_MAX].strip()
        except OSError:
            raise KeyProviderError("QENEX_PKCS11_PIN_FILE cannot be read", code="hsm_login_failed") from None
        if pin:
            return pin
    raise KeyProviderError("QENEX_PKCS11_PIN or QENEX_PKCS11_PIN_FILE is required for the HSM", code="hsm_login_failed")


def provider_from_settings(
    settings: Settings, environ: Mapping[str, str] | None = None, *, create_dev_key: bool = True
) -> MasterKeyProvider:
    """The configured provider: HSM, then environment, then key file; in development and test
    only, a key file generated under the data directory (production refuses to invent one).
    Verifiers pass ``create_dev_key=False``: a key made up on the spot could never attest anything."""
    env = os.environ if environ is None else environ
    module = env.get("QENEX_PKCS11_MODULE")
    if module:
        label = env.get("QENEX_PKCS11_TOKEN_LABEL", "")
        if not label:
            raise KeyProviderError("QENEX_PKCS11_TOKEN_LABEL is required with QENEX_PKCS11_MODULE")
        prefix = env.get("QENEX_PKCS11_KEY_PREFIX", HSM_KEY_PREFIX_DEFAULT)
        return Pkcs11KeyProvider(module, label, _pin_from_env(env), prefix)
    sec = settings.security
    if sec.master_key is not None:
        return EnvKeyProvider(sec.master_key.get_secret_value())
    if sec.master_key_file:
        return FileKeyProvider(sec.master_key_file)
    if settings.is_production:
        raise KeyProviderError(
            "no master key configured: set QENEX_MASTER_KEY, QENEX_MASTER_KEY_FILE or QENEX_PKCS11_MODULE",
            code="master_key_missing",
        )
    dev_path = Path(settings.data_dir) / DEV_KEY_FILENAME
    if not dev_path.exists() and not create_dev_key:
        raise KeyProviderError("no master key configured and no development key file", code="master_key_missing")
    if not dev_path.exists():
        try:
            create_key_file(dev_path)
        except FileExistsError:
            pass  # another process created it first
    return FileKeyProvider(dev_path)


def previous_provider_from_env(environ: Mapping[str, str] | None = None) -> MasterKeyProvider | None:
    """The root being replaced during a root rotation: ``QENEX_MASTER_KEY_PREVIOUS`` (base64) or
    ``QENEX_MASTER_KEY_FILE_PREVIOUS``; None when neither is set."""
    env = os.environ if environ is None else environ
    if env.get("QENEX_MASTER_KEY_PREVIOUS"):
        return RootKeyProvider(decode_master_key(env["QENEX_MASTER_KEY_PREVIOUS"], "QENEX_MASTER_KEY_PREVIOUS"), "env")
    if env.get("QENEX_MASTER_KEY_FILE_PREVIOUS"):
        return FileKeyProvider(env["QENEX_MASTER_KEY_FILE_PREVIOUS"])
    return None
