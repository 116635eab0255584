"""Encryption at rest of sensitive metadata, applied by the kernel SDK itself.

Metadata fields that are sensitive (well-known PII names such as ``ssn`` or ``email``, plus any
listed in a ``"sensitive": [...]`` marker, see `qenex.security.envelope.sensitive_fields`) are
sealed with AES-256-GCM envelope encryption before the ledger stores them, and opened when the
SDK reads them back: every path that writes through ``FinancialKernel`` (API, CLI, batch jobs,
the SDK itself) stores ciphertext, and every reader gets clear text. Each ciphertext is bound
(AAD) to its table and field, and account metadata to its owner, so a value copied to another
owner's account does not decrypt.

Metadata without sensitive fields needs no key: the envelope (master key, data keys in
PostgreSQL) is only set up the first time a sensitive field is written or read, so the ledger's
hot paths and a deployment that stores no PII never touch it. Without a usable master key
(production with none configured) a sensitive field is refused (`EnvelopeError`), never stored in
clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from qenex.config import Settings, with_development_secrets
from qenex.errors import QenexError
from qenex.security.envelope import (
    ENCRYPTED_VALUE_KEY,
    Envelope,
    open_metadata,
    seal_metadata,
    sensitive_fields,
)

ACCOUNTS_TABLE: Final = "accounts"
TRANSACTIONS_TABLE: Final = "transactions"
_FINGERPRINT_CONTEXT: Final = b"qenex-sealed-metadata-fingerprint-v1\x00"
# Transaction metadata is sealed before the ledger assigns the transaction its id, so it is bound
# to its table and field only.
TRANSACTION_BINDING: Final = "transaction"


def account_binding(owner_id: str) -> str:
    return f"owner:{owner_id}"


def has_sealed(metadata: Mapping[str, Any]) -> bool:
    return any(isinstance(v, dict) and ENCRYPTED_VALUE_KEY in v for v in metadata.values())


def needs_sealing(metadata: object) -> bool:
    """True when ``metadata`` is a mapping with a sensitive field (raises EnvelopeError, code
    invalid_request, for a malformed ``sensitive`` marker)."""
    return isinstance(metadata, Mapping) and bool(metadata) and bool(sensitive_fields(metadata))


class MetadataSealer:
    """Seals and opens sensitive metadata fields; builds its Envelope on first need."""

    def __init__(self, settings: Settings, conninfo: Callable[[], str], envelope: Envelope | None = None) -> None:
        self._settings = settings
        self._conninfo = conninfo
        self._envelope = envelope
        self._fingerprint_key: bytes | None = None
        self._lock = threading.Lock()

    def fingerprint(self, metadata: Mapping[str, Any]) -> str:
        """What an idempotency digest takes for metadata that is stored sealed: a keyed hash
        (HMAC-SHA256 under QENEX_SECRET_KEY) of its clear JSON. Ciphertext is randomised, so a
        retry must not be compared by it, and a plain hash of low-entropy PII (an SSN) could be
        reversed by brute force from the stored digest."""
        if self._fingerprint_key is None:
            secret = with_development_secrets(self._settings).security.secret_key
            if secret is None or not secret.get_secret_value():
                raise QenexError("QENEX_SECRET_KEY is required to store sensitive metadata",
                                 code="encryption_unavailable")
            self._fingerprint_key = secret.get_secret_value().encode()
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        mac = hmac.new(self._fingerprint_key, _FINGERPRINT_CONTEXT + text.encode(), hashlib.sha256)
        return "hmac:" + mac.hexdigest()

    def envelope(self) -> Envelope:
        with self._lock:
            if self._envelope is None:
                self._envelope = Envelope.from_settings(self._settings, conninfo=self._conninfo())
            return self._envelope

    def seal_sync(self, metadata: Mapping[str, Any], table: str, binding: str) -> dict[str, Any]:
        return seal_metadata(self.envelope(), metadata, table=table, row_id=binding)

    async def open(self, metadata: dict[str, Any], table: str, binding: str) -> dict[str, Any]:
        """``metadata`` as it was given: sealed fields decrypted (unchanged when none is sealed)."""
        if not has_sealed(metadata):
            return metadata
        return await asyncio.to_thread(open_metadata, self.envelope(), metadata, table=table, row_id=binding)

    async def open_many(self, metas: list[Any], table: str, binding: str) -> list[Any]:
        """``open`` for many metadata values (a statement's entries) in one thread hop; values
        without a sealed field are returned as they are."""
        sealed = [i for i, m in enumerate(metas) if isinstance(m, dict) and has_sealed(m)]
        if not sealed:
            return metas

        def open_all() -> list[Any]:
            envelope, out = self.envelope(), list(metas)
            for i in sealed:
                out[i] = open_metadata(envelope, metas[i], table=table, row_id=binding)
            return out

        return await asyncio.to_thread(open_all)
