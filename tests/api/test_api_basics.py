"""The seed's curl examples (with authentication added) and the main routes, against a real
server process on a real PostgreSQL database."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import httpx

from .conftest import ApiServer

PROBLEM = "application/problem+json"


def open_account(client: httpx.Client, owner: str, initial: str | None = "1000.00", currency: str = "USD") -> int:
    body = {"owner_id": owner, "account_type": "CHECKING", "currency": currency}
    if initial is not None:
        body["initial_balance"] = initial
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_seed_curl_examples(server: ApiServer, client: httpx.Client) -> None:
    # curl http://localhost:8080/health
    health = httpx.get(server.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # curl -X POST /api/v1/accounts -d '{"owner_id": "user_001", ...}'
    created = client.post("/api/v1/accounts", json={"owner_id": "user_001", "account_type": "CHECKING",
                                                    "currency": "USD", "initial_balance": "10000.00"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["owner_id"] == "user_001" and account["balance"] == "10000.00"
    assert created.headers["location"] == f"/api/v1/accounts/{account['id']}"
    other = open_account(client, "user_002", None)
    # curl -X POST /api/v1/transactions -d '{"type": "TRANSFER", ...}'
    tx = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": account["id"],
                                                   "to_account": other, "amount": "500.00", "currency": "USD"})
    assert tx.status_code == 201, tx.text
    body = tx.json()
    assert body["status"] == "posted" and body["amount"] == "500.00" and body["type"] == "TRANSFER"
    assert client.get(f"/api/v1/accounts/{account['id']}/balance").json()["posted"] == "9500.00"
    assert client.get(f"/api/v1/accounts/{other}/balance").json()["posted"] == "500.00"
    # curl /api/v1/system/status
    status = client.get("/api/v1/system/status").json()
    assert status["database"]["reachable"] and status["database"]["pending_migrations"] == 0
    assert status["counts"]["accounts"] >= 2 and status["counts"]["transactions"] >= 2
    assert httpx.get(server.url + "/ready").json()["status"] == "ready"


def test_account_listing_paginates_and_filters(client: httpx.Client) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    ids = [open_account(client, owner, None) for _ in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"owner_id": owner, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/accounts", params=params).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert client.get("/api/v1/accounts", params={"owner_id": owner, "status": "frozen"}).json()["items"] == []
    assert client.get("/api/v1/accounts", params={"limit": 0}).status_code == 422


def test_statement_json_and_csv(client: httpx.Client) -> None:
    a = open_account(client, "stmt-a", "100.00")
    b = open_account(client, "stmt-b", None)
    for amount in ("10.00", "2.50"):
        assert client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a, "to_account": b,
                                                         "amount": amount, "currency": "USD"}).status_code == 201
    statement = client.get(f"/api/v1/accounts/{a}/statement").json()
    assert statement["opening_balance"] == "0.00" and statement["closing_balance"] == "87.50"
    assert [e["amount"] for e in statement["entries"]] == ["100.00", "-10.00", "-2.50"]
    response = client.get(f"/api/v1/accounts/{a}/statement", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "seq" and rows[-1][3] == "CLOSING_BALANCE" and rows[-1][-1] == "87.50"
    empty = client.get(f"/api/v1/accounts/{a}/statement", params={"from": "2000-01-01T00:00:00Z",
                                                                   "to": "2000-02-01T00:00:00Z"}).json()
    assert empty["entries"] == []
    bad = client.get(f"/api/v1/accounts/{a}/statement", params={"from": "2001-01-01", "to": "2000-01-01"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM


def test_pending_post_void_and_reverse(client: httpx.Client) -> None:
    a = open_account(client, "two-phase-a", "100.00")
    b = open_account(client, "two-phase-b", None)
    hold = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a, "to_account": b,
                                                     "amount": "30.00", "currency": "USD", "pending": True,
                                                     "metadata": {"description": "card hold"}}).json()
    assert hold["status"] == "pending" and hold["metadata"] == {"description": "card hold"}
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["available"] == "70.00"
    posted = client.post(f"/api/v1/transactions/{hold['id']}/post", json={"amount": "20.00"})
    assert posted.status_code == 201, posted.text
    again = client.post(f"/api/v1/transactions/{hold['id']}/void")
    assert again.status_code == 409 and again.json()["code"] == "pending_already_resolved"
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "80.00"
    hold2 = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a, "to_account": b,
                                                      "amount": "5.00", "currency": "USD", "pending": True}).json()
    assert client.post(f"/api/v1/transactions/{hold2['id']}/void").status_code == 201
    assert client.get(f"/api/v1/transactions/{hold2['id']}").json()["status"] == "voided"
    reversal = client.post(f"/api/v1/transactions/{posted.json()['id']}/reverse")
    assert reversal.status_code == 201, reversal.text
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "100.00"
    missing = client.post("/api/v1/transactions/999999999/reverse")
    assert missing.status_code == 404 and missing.json()["code"] == "transaction_not_found"


def test_batch_gives_one_result_per_item(client: httpx.Client) -> None:
    a = open_account(client, "batch-a", "10.00")
    b = open_account(client, "batch-b", None)
    items = [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "4.00", "currency": "USD"}] * 3
    items.append({"type": "TRANSFER", "from_account": a, "to_account": 999_999_999, "amount": "1.00",
                  "currency": "USD"})
    response = client.post("/api/v1/transactions/batch", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["ok"] for r in body["results"]] == [True, True, False, False]
    assert body["results"][2]["error"]["code"] == "insufficient_funds"
    assert body["results"][3]["error"]["code"] == "account_not_found"
    assert (body["succeeded"], body["failed"]) == (2, 2)
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "2.00"
    too_many = client.post("/api/v1/transactions/batch", json={"items": [items[0]] * 8001})
    assert too_many.status_code == 422 and too_many.json()["code"] == "invalid_request"
    for bad_body in ({"items": []}, {"items": {}}, {"items": [], "extra": 1}, [1, 2]):
        assert client.post("/api/v1/transactions/batch", json=bad_body).status_code == 422


def test_batch_item_that_breaks_the_schema_fails_alone(client: httpx.Client) -> None:
    a = open_account(client, "batch-schema-a", "10.00")
    b = open_account(client, "batch-schema-b", None)
    good = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
    items = [good, good | {"amount": 1.5}, "not an object", good,
             good | {"linked": True}, good | {"amount": "x"}, good]
    body = client.post("/api/v1/transactions/batch", json={"items": items}).json()
    results = body["results"]
    assert [r["ok"] for r in results] == [True, False, False, True, False, False, True]
    assert results[1]["error"]["code"] == "invalid_request" and "amount" in results[1]["error"]["message"]
    assert results[4]["error"]["code"] == "linked_event_failed"  # its chain partner broke the schema
    assert results[5]["error"]["code"] == "invalid_request"
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "7.00"


def test_ledger_rejections_are_problems_with_stable_codes(client: httpx.Client) -> None:
    a = open_account(client, "reject-a", "1.00")
    b = open_account(client, "reject-b", None)
    cases = [
        ({"amount": "5.00"}, 422, "insufficient_funds"),
        ({"amount": "0.001"}, 400, "amount_precision"),
        ({"currency": "EUR"}, 400, "currency_mismatch"),
        ({"currency": "XXQ"}, 400, "invalid_currency"),
        ({"to_account": a}, 400, "same_account"),
    ]
    for change, status, code in cases:
        body = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "0.50", "currency": "USD"} | change
        response = client.post("/api/v1/transactions", json=body)
        assert response.headers["content-type"] == PROBLEM, response.text
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert client.get("/api/v1/accounts/999999999").json()["code"] == "account_not_found"


def test_money_is_exact_decimal_text(client: httpx.Client) -> None:
    a = open_account(client, "exact-a", "0.30")
    b = open_account(client, "exact-b", "0.00")
    for _ in range(3):
        client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a, "to_account": b,
                                                  "amount": "0.10", "currency": "USD"})
    assert client.get(f"/api/v1/accounts/{b}/balance").json()["posted"] == "0.30"
    assert Decimal(client.get(f"/api/v1/accounts/{a}/balance").json()["posted"]) == 0
    float_amount = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": b, "to_account": a,
                                                             "amount": 0.1, "currency": "USD"})
    assert float_amount.status_code == 422 and float_amount.json()["code"] == "invalid_request"


def test_openapi_describes_every_route(server: ApiServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/health", "/ready", "/api/v1/system/status", "/api/v1/accounts", "/api/v1/accounts/{account_id}",
                 "/api/v1/accounts/{account_id}/balance", "/api/v1/accounts/{account_id}/statement",
                 "/api/v1/transactions", "/api/v1/transactions/batch", "/api/v1/transactions/{transaction_id}",
                 "/api/v1/transactions/{transaction_id}/post", "/api/v1/transactions/{transaction_id}/void",
                 "/api/v1/transactions/{transaction_id}/reverse", "/api/v1/auth/token", "/api/v1/audit/events"):
        assert path in paths, path
    create = paths["/api/v1/transactions"]["post"]
    assert create["security"] == [{"bearer": []}, {"oauth2": ["transactions:write"]}]
    assert {"401", "403", "409", "422", "429"} <= set(create["responses"])
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    schemes = spec["components"]["securitySchemes"]
    assert "bearer" in schemes
    assert schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/api/v1/auth/token"
    assert "transactions:manage" in schemes["oauth2"]["flows"]["clientCredentials"]["scopes"]
    for path, item in paths.items():  # every operation documents the bug and the outage problems
        for method, operation in item.items():
            for status in ("500", "503"):
                assert status in operation["responses"], (method, path, status)
                assert "application/json" in operation["responses"][status]["content"] or \
                    "application/problem+json" in operation["responses"][status]["content"], (method, path)
            assert "database_unavailable" in operation["responses"]["503"]["description"] or path == "/ready"
            if path.startswith("/api/v1/") and path not in ("/api/v1/auth/token", "/api/v1/auth/jwks",
                                                            "/api/v1/auth/login", "/api/v1/auth/logout"):
                assert {"oauth2"} == set(operation["security"][1]), (method, path)
    assert "/stream" in spec["info"]["description"]
    assert spec["x-websocket"]["/stream"]["scope"] == "transactions:read"
    assert "transaction.completed" in spec["x-websocket"]["/stream"]["messages"]["events"]


def test_metrics_and_request_id(server: ApiServer, client: httpx.Client) -> None:
    response = client.get("/api/v1/system/status", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    metrics = httpx.get(server.url + "/metrics").text
    for name in ("qenex_transactions_total", "qenex_transaction_duration_seconds", "qenex_active_connections",
                 "qenex_memory_usage_bytes", "qenex_cpu_usage_percent", "qenex_http_requests_total"):
        assert name in metrics, name
