"""Encryption at rest of sensitive metadata, applied where data enters and leaves the API.

Metadata fields that are sensitive (well-known PII names such as ``ssn`` or ``email``, plus any
listed in a ``"sensitive": [...]`` marker) are sealed with AES-256-GCM envelope encryption
(`qenex.security.envelope`) before the ledger stores them, and opened when an authorised caller
reads them back. Each ciphertext is bound (AAD) to its table and field, and account metadata to
its owner, so a value copied to another owner's account does not decrypt.

Metadata without sensitive fields takes no key and no round trip: the ledger's hot paths stay as
they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from qenex.security.envelope import (
    ENCRYPTED_VALUE_KEY,
    Envelope,
    open_metadata,
    seal_metadata,
    sensitive_fields,
)

ACCOUNTS_TABLE: Final = "accounts"
TRANSACTIONS_TABLE: Final = "transactions"
# Transaction metadata is sealed before the ledger assigns the transaction its id, so it is bound to
# its table and field only.
TRANSACTION_BINDING: Final = "transaction"


def account_binding(owner_id: str) -> str:
    return f"owner:{owner_id}"


def _has_sealed(metadata: Mapping[str, Any]) -> bool:
    return any(isinstance(v, dict) and ENCRYPTED_VALUE_KEY in v for v in metadata.values())


async def seal(envelope: Envelope, metadata: Mapping[str, Any] | None, table: str,
               row_id: str) -> dict[str, Any] | None:
    """``metadata`` with its sensitive fields encrypted; unchanged when it has none."""
    if not metadata or not sensitive_fields(metadata):
        return dict(metadata) if metadata is not None else None
    # Key loads may touch the database on first use: keep them off the event loop.
    return await asyncio.to_thread(seal_metadata, envelope, metadata, table=table, row_id=row_id)


def open_(envelope: Envelope, metadata: Mapping[str, Any], table: str, row_id: str) -> dict[str, Any]:
    """``metadata`` as the caller gave it: sealed fields decrypted."""
    if not _has_sealed(metadata):
        return dict(metadata)
    return open_metadata(envelope, metadata, table=table, row_id=row_id)
