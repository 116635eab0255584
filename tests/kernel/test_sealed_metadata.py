"""Sensitive metadata is sealed by the kernel SDK itself, whatever path writes it (SDK, CLI, API),
and read back in clear by every reader (accounts, transactions, statements).

Retries of a request holding sensitive fields are compared by a keyed fingerprint of the clear
metadata, never by its (randomised) ciphertext, and the stored digest is not a plain hash of PII.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qenex.kernel.errors import LedgerError
from qenex.sdk.kernel import FinancialKernel

from .conftest import run_kernel

MASTER_KEY = base64.b64encode(b"qenex-kernel-test-master-key-32b").decode()
SSN = "078-05-1120"


@pytest.fixture()
def sealing_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QENEX_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("QENEX_SECRET_KEY", "kernel-test-secret-0123456789abcdef0123")
    monkeypatch.setenv("QENEX_DATA_DIR", str(tmp_path))


def _run(url: str, body: Any) -> Any:
    return run_kernel(url, body)


def _one(url: str, sql: str, *args: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def test_account_pii_is_sealed_at_rest_and_opened_for_readers(sealing_env: None, ledger_url: str) -> None:
    async def body(k: FinancialKernel) -> tuple[Any, Any, list[Any]]:
        created = await k.create_account("seal_owner_1", "CHECKING", "USD", Decimal("5.00"),
                                         metadata={"ssn": SSN, "branch": "north"})
        return created, await k.get_account(created.id), await k.list_accounts(owner_id="seal_owner_1")

    created, shown, listed = _run(ledger_url, body)
    stored = _one(ledger_url, "SELECT metadata FROM ledger_accounts WHERE id = %s", created.id)
    assert SSN not in stored and "$enc" in stored and "north" in stored
    for view in (created, shown, listed[0]):
        assert view.metadata["ssn"] == SSN and view.metadata["branch"] == "north"


def test_transaction_and_statement_readers_get_clear_text(sealing_env: None, ledger_url: str) -> None:
    meta = {"sensitive": ["description"], "description": "rent for flat 4B"}

    async def body(k: FinancialKernel) -> tuple[int, Any, Any]:
        a = await k.create_account("seal_owner_2", "CHECKING", "USD", Decimal("50.00"))
        b = await k.create_account("seal_owner_3", "CHECKING", "USD")
        tx_id = await k.process_transaction("TRANSFER", a.id, b.id, Decimal("5.00"), "USD", metadata=meta)
        now = datetime.now(UTC)
        return tx_id, await k.get_transaction(tx_id), await k.statement(a.id, now - timedelta(hours=1),
                                                                        now + timedelta(hours=1))

    tx_id, tx, stmt = _run(ledger_url, body)
    stored = _one(ledger_url, "SELECT metadata FROM ledger_journal WHERE seq = %s", tx_id)
    assert "flat 4B" not in stored and "$enc" in stored
    assert tx.metadata["description"] == "rent for flat 4B"
    entry = next(e for e in stmt.entries if e.transaction_id == tx_id)
    assert entry.description == "rent for flat 4B"
    assert "rent for flat 4B" in stmt.to_csv()


def test_retries_with_sensitive_fields_replay_and_differing_ones_conflict(sealing_env: None, ledger_url: str
                                                                          ) -> None:
    async def body(k: FinancialKernel) -> tuple[int, int, str]:
        a = await k.create_account("seal_owner_4", "CHECKING", "USD", Decimal("50.00"))
        b = await k.create_account("seal_owner_5", "CHECKING", "USD")
        args = ("TRANSFER", a.id, b.id, Decimal("1.00"), "USD")
        first = await k.process_transaction(*args, metadata={"ssn": SSN}, idempotency_key="seal-k1")
        again = await k.process_transaction(*args, metadata={"ssn": SSN}, idempotency_key="seal-k1")
        with pytest.raises(LedgerError) as err:
            await k.process_transaction(*args, metadata={"ssn": "219-09-9999"}, idempotency_key="seal-k1")
        # The same through a batch item, whose metadata takes the batch's sealing path.
        batch = await k.process_transactions([{"type": "TRANSFER", "from_account": a.id, "to_account": b.id,
                                               "amount": "1.00", "currency": "USD", "metadata": {"ssn": SSN},
                                               "idempotency_key": "seal-k1"}])
        assert batch[0].ok and batch[0].replayed and batch[0].transaction_id == first
        return first, again, err.value.code

    first, again, code = _run(ledger_url, body)
    assert first == again and code == "idempotency_conflict"
    assert _one(ledger_url, "SELECT count(*) FROM ledger_journal WHERE tx_id = %s", first) == 1


def test_account_creation_retry_with_pii_replays(sealing_env: None, ledger_url: str) -> None:
    async def body(k: FinancialKernel) -> tuple[int, int]:
        one = await k.create_account("seal_owner_6", "SAVINGS", "EUR", metadata={"email": "a@example.test"},
                                     idempotency_key="seal-acct-1")
        two = await k.create_account("seal_owner_6", "SAVINGS", "EUR", metadata={"email": "a@example.test"},
                                     idempotency_key="seal-acct-1")
        return one.id, two.id

    one, two = _run(ledger_url, body)
    assert one == two


def test_a_bad_sensitive_marker_fails_its_batch_item_alone(sealing_env: None, ledger_url: str) -> None:
    async def body(k: FinancialKernel) -> list[Any]:
        a = await k.create_account("seal_owner_7", "CHECKING", "USD", Decimal("5.00"))
        b = await k.create_account("seal_owner_8", "CHECKING", "USD")
        base = {"type": "TRANSFER", "from_account": a.id, "to_account": b.id, "amount": "1.00", "currency": "USD"}
        return await k.process_transactions([base | {"metadata": {"sensitive": "memo", "memo": "x"}}, base])

    bad, good = _run(ledger_url, body)
    assert not bad.ok and bad.error.code == "invalid_request"
    assert good.ok
