"""Sensitive metadata is stored encrypted (AES-256-GCM envelope) and read back in clear by the API."""

from __future__ import annotations

import psycopg


def _stored(db_url: str, sql: str, row_id: int) -> str:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, (row_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_account_pii_is_encrypted_in_the_database(server, client, api_db_url):
    body = {"owner_id": "enc_owner_1", "account_type": "CHECKING", "currency": "USD", "initial_balance": "10.00",
            "metadata": {"ssn": "123-45-6789", "email": "jane@example.test", "branch": "north"}}
    created = client.post("/api/v1/accounts", json=body)
    assert created.status_code == 201, created.text
    acct = created.json()
    assert acct["metadata"]["ssn"] == "123-45-6789"
    stored = _stored(api_db_url, "SELECT metadata FROM ledger_accounts WHERE id = %s", acct["id"])
    assert "123-45-6789" not in stored and "jane@example.test" not in stored
    assert "$enc" in stored and "north" in stored  # only the sensitive fields are sealed
    shown = client.get(f"/api/v1/accounts/{acct['id']}").json()
    assert shown["metadata"]["ssn"] == "123-45-6789" and shown["metadata"]["email"] == "jane@example.test"
    listed = client.get("/api/v1/accounts", params={"owner_id": "enc_owner_1"}).json()["items"]
    assert listed[0]["metadata"]["ssn"] == "123-45-6789"


def test_marked_transaction_metadata_is_encrypted_in_the_journal(server, client, api_db_url):
    a = client.post("/api/v1/accounts", json={"owner_id": "enc_owner_2", "account_type": "CHECKING",
                                              "currency": "USD", "initial_balance": "50.00"}).json()
    b = client.post("/api/v1/accounts", json={"owner_id": "enc_owner_3", "account_type": "CHECKING",
                                              "currency": "USD"}).json()
    meta = {"sensitive": ["memo"], "memo": "rent for flat 4B", "category": "housing"}
    tx = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a["id"], "to_account": b["id"],
                                                   "amount": "5.00", "currency": "USD", "metadata": meta})
    assert tx.status_code == 201, tx.text
    tx_id = tx.json()["id"]
    stored = _stored(api_db_url, "SELECT metadata FROM ledger_journal WHERE tx_id = %s ORDER BY seq LIMIT 1", tx_id)
    assert "rent for flat 4B" not in stored and "$enc" in stored and "housing" in stored
    shown = client.get(f"/api/v1/transactions/{tx_id}").json()
    assert shown["metadata"]["memo"] == "rent for flat 4B"


def test_bad_sensitive_marker_is_a_400_not_a_500(server, client):
    r = client.post("/api/v1/accounts", json={"owner_id": "enc_owner_4", "account_type": "CHECKING",
                                              "currency": "USD", "metadata": {"sensitive": "memo", "memo": "x"}})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
