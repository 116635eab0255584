"""Ledger mutations over HTTP reach the audit trail through the ledger's transactional outbox.

The note is committed with the mutation itself, so a server that dies between the ledger commit
and the audit append loses nothing: whichever server relays next appends the record. A batch is
one record with its counts, its transaction ids and the failed items' codes.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from qenex.sdk.kernel import AuditNote, FinancialKernel
from qenex.security.outbox import note_record

from .conftest import ApiServer, await_audit, make_key
from .test_api_basics import open_account


def test_a_batch_is_one_record_with_ids_and_failures(server: ApiServer, api_db_url: str,
                                                     client: httpx.Client, admin_key: str) -> None:
    a = open_account(client, "outbox-batch-a", "10.00")
    b = open_account(client, "outbox-batch-b", None)
    items = [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
             for _ in range(3)] + [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "900.00",
                                    "currency": "USD"}]
    response = client.post("/api/v1/transactions/batch", json={"items": items})
    assert response.status_code == 200, response.text
    ids = [r["transaction_id"] for r in response.json()["results"] if r["ok"]]
    auditor = make_key(api_db_url, "auditor")
    key_id = admin_key.split("_")[1]

    def mine(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in evs if e["details"].get("ids") == [[ids[0], ids[-1]]]]

    events = mine(await_audit(server, auditor, mine, action="transaction.batch", actor=f"key:{key_id}"))
    assert len(events) == 1
    event = events[0]
    assert event["outcome"] == "partial" and event["source_ip"] == "127.0.0.1"
    assert event["details"]["items"] == 4 and event["details"]["succeeded"] == 3
    assert event["details"]["failures"] == [[3, "insufficient_funds"]]


def test_a_note_left_by_a_dead_process_is_relayed_by_the_server(server: ApiServer, api_db_url: str,
                                                                client: httpx.Client) -> None:
    """A kernel in another process commits a mutation with its note and exits without relaying
    (as a server killed right after the ledger commit would): the running server relays it."""
    a = open_account(client, "outbox-orphan-a", "10.00")
    b = open_account(client, "outbox-orphan-b", None)
    note = AuditNote(note_record("key:orphan", "transaction.create", f"account:{a}", "192.0.2.9"))

    async def commit_without_relay() -> int:
        kernel = FinancialKernel({"database": {"url": api_db_url}})
        await kernel.initialize()
        try:
            return await kernel.process_transaction("TRANSFER", a, b, Decimal("2.00"), "USD", audit=note)
        finally:
            await kernel.shutdown()

    tx_id = asyncio.run(commit_without_relay())
    assert note.written
    auditor = make_key(api_db_url, "auditor")
    events = await_audit(server, auditor, lambda evs: any(e["details"].get("id") == tx_id for e in evs),
                         actor="key:orphan")
    assert [(e["action"], e["outcome"], e["source_ip"]) for e in events if e["details"].get("id") == tx_id] == [
        ("transaction.create", "success", "192.0.2.9")]
    with psycopg.connect(api_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_outbox WHERE payload LIKE '%key:orphan%'").fetchone() == (0,)
