"""Identity and access over HTTP against the real server: 401 without a key, 403 for a wrong
scope or role, 404 for another customer's objects, expired and revoked keys, OAuth2 tokens,
operator login with TOTP and lockout, 429 on floods, audit records of mutations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from qenex.config import Settings
from qenex.security import operators, tokens, totp
from qenex.security._common import utcnow

from .conftest import ApiServer, auth, await_audit, make_key, start_server
from .test_api_basics import open_account

PROBLEM = "application/problem+json"


def get(server: ApiServer, path: str, key: str | None = None) -> httpx.Response:
    return httpx.get(server.url + path, headers=auth(key) if key else {}, timeout=30)


def test_every_api_route_needs_a_credential(server: ApiServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path, methods in spec["paths"].items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/auth/"):
            continue
        for method in methods:
            url = server.url + path.replace("{account_id}", "1").replace("{transaction_id}", "1")
            response = httpx.request(method.upper(), url, json={}, timeout=30)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert get(server, "/api/v1/accounts", "qnx_0123456789abcdef_" + "A" * 43).status_code == 401


def test_scopes_and_roles_give_403(server: ApiServer, api_db_url: str, client: httpx.Client) -> None:
    a = open_account(client, "scope-a", "10.00")
    b = open_account(client, "scope-b", None)
    transfer = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
    auditor = make_key(api_db_url, "auditor")
    assert get(server, f"/api/v1/accounts/{a}", auditor).status_code == 200
    denied = httpx.post(server.url + "/api/v1/transactions", json=transfer, headers=auth(auditor))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    reader = make_key(api_db_url, "teller", scopes=["accounts:read"])
    assert httpx.post(server.url + "/api/v1/transactions", json=transfer, headers=auth(reader)).status_code == 403
    teller = make_key(api_db_url, "teller")
    assert get(server, "/api/v1/audit/events", teller).status_code == 403
    ok = httpx.post(server.url + "/api/v1/transactions", json=transfer, headers=auth(teller))
    assert ok.status_code == 201
    reverse = httpx.post(server.url + f"/api/v1/transactions/{ok.json()['id']}/reverse", headers=auth(teller))
    assert reverse.status_code == 403
    events = get(server, "/api/v1/audit/events?action=permission.denied", auditor).json()["items"]
    assert any(e["details"].get("scope") == "transactions:write" for e in events)


def test_customer_sees_only_its_own(server: ApiServer, api_db_url: str, client: httpx.Client) -> None:
    mine = open_account(client, "cust-1", "50.00")
    theirs = open_account(client, "cust-2", "50.00")
    tx_theirs = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": theirs,
                                                          "to_account": mine, "amount": "1.00",
                                                          "currency": "USD"}).json()["id"]
    other_tx = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": theirs,
                                                         "to_account": open_account(client, "cust-3", None),
                                                         "amount": "1.00", "currency": "USD"}).json()["id"]
    key = make_key(api_db_url, "customer", owner_id="cust-1")
    assert get(server, f"/api/v1/accounts/{mine}", key).status_code == 200
    for path in (f"/api/v1/accounts/{theirs}", f"/api/v1/accounts/{theirs}/balance",
                 f"/api/v1/accounts/{theirs}/statement", f"/api/v1/transactions/{other_tx}"):
        response = get(server, path, key)
        assert response.status_code == 404, path
    assert get(server, f"/api/v1/transactions/{tx_theirs}", key).status_code == 200  # it credits the customer
    listing = get(server, "/api/v1/accounts?limit=1000", key).json()["items"]
    assert {a["owner_id"] for a in listing} == {"cust-1"}
    assert get(server, "/api/v1/accounts?owner_id=cust-2", key).json()["items"] == []
    steal = httpx.post(server.url + "/api/v1/transactions", headers=auth(key), json={
        "type": "TRANSFER", "from_account": theirs, "to_account": mine, "amount": "1.00", "currency": "USD"})
    assert steal.status_code == 404
    pay = httpx.post(server.url + "/api/v1/transactions", headers=auth(key), json={
        "type": "TRANSFER", "from_account": mine, "to_account": theirs, "amount": "1.00", "currency": "USD"})
    assert pay.status_code == 201
    deposit = httpx.post(server.url + "/api/v1/transactions", headers=auth(key), json={
        "type": "DEPOSIT", "to_account": mine, "amount": "1000.00", "currency": "USD"})
    assert deposit.status_code == 403
    foreign = httpx.post(server.url + "/api/v1/accounts", headers=auth(key), json={"owner_id": "cust-2"})
    assert foreign.status_code == 403
    auditor = make_key(api_db_url, "auditor")
    denials = get(server, f"/api/v1/audit/events?action=permission.denied&actor=key:{key.split('_')[1]}",
                  auditor).json()["items"]
    assert {d["resource"] for d in denials} >= {f"account:{theirs}", "transactions"}
    assert all(d["outcome"] == "denied" and d["source_ip"] == "127.0.0.1" for d in denials)


def test_expired_and_revoked_keys_are_refused(server: ApiServer, api_db_url: str, db: psycopg.Connection[Any]) -> None:
    from qenex.security import apikeys

    expired = make_key(api_db_url, "teller", expires_in=timedelta(hours=1), now=utcnow() - timedelta(hours=2))
    response = get(server, "/api/v1/accounts", expired)
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    revoked = apikeys.create_key(db, name="to-revoke", role="teller")
    assert get(server, "/api/v1/accounts", revoked.key).status_code == 200
    apikeys.revoke_key(db, revoked.id)
    deadline = time.monotonic() + apikeys.API_KEY_CACHE_TTL_S + 5
    while get(server, "/api/v1/accounts", revoked.key).status_code == 200:  # another process: within the cache TTL
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.5)
    assert get(server, "/api/v1/accounts", revoked.key).status_code == 401


def test_oauth2_client_credentials_token(server: ApiServer, db: psycopg.Connection[Any]) -> None:
    created = tokens.create_client(db, name="svc", role="teller", scopes=["accounts:read"])
    form = {"grant_type": "client_credentials", "client_id": created.client_id, "client_secret": created.client_secret}
    issued = httpx.post(server.url + "/api/v1/auth/token", data=form)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert get(server, "/api/v1/accounts", token).status_code == 200
    assert httpx.post(server.url + "/api/v1/accounts", headers=auth(token), json={"owner_id": "x"}).status_code == 403
    wrong = httpx.post(server.url + "/api/v1/auth/token", data=form | {"client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_client"
    assert "keys" in httpx.get(server.url + "/api/v1/auth/jwks").json()


def test_operator_login_needs_totp_and_locks_out(server: ApiServer, db: psycopg.Connection[Any],
                                                 settings: Settings) -> None:
    op = operators.create_operator(db, settings, username="alice.ops", password="a long operator password",
                                   role="operator")
    login = server.url + "/api/v1/auth/login"
    no_code = httpx.post(login, json={"username": "alice.ops", "password": "a long operator password"})
    assert no_code.status_code == 401 and no_code.json()["code"] == "mfa_required"
    code = totp.code_at(op.totp_secret, utcnow())
    session = httpx.post(login, json={"username": "alice.ops", "password": "a long operator password",
                                      "totp_code": code})
    assert session.status_code == 200, session.text
    token = session.json()["session_token"]
    assert get(server, "/api/v1/accounts", token).status_code == 200
    assert httpx.post(server.url + "/api/v1/auth/logout", headers=auth(token)).status_code == 204
    assert get(server, "/api/v1/accounts", token).status_code == 401
    for _ in range(settings.security.max_login_attempts):
        bad = httpx.post(login, json={"username": "alice.ops", "password": "wrong password!", "totp_code": code})
        assert bad.status_code in (401, 403)
    locked = httpx.post(login, json={"username": "alice.ops", "password": "a long operator password",
                                     "totp_code": totp.code_at(op.totp_secret, utcnow())})
    assert locked.status_code == 403 and locked.json()["code"] == "account_locked"


def test_mutations_are_audited(server: ApiServer, api_db_url: str, client: httpx.Client, admin_key: str) -> None:
    a = open_account(client, "audited-a", "5.00")
    b = open_account(client, "audited-b", None)
    client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": a, "to_account": b,
                                              "amount": "9.00", "currency": "USD"})
    auditor = make_key(api_db_url, "auditor")
    key_id = admin_key.split("_")[1]
    events = await_audit(server, auditor, lambda evs: {("account.create", "success"), ("transaction.create", "failure")}
                         <= {(e["action"], e["outcome"]) for e in evs}, actor=f"key:{key_id}")
    actions = {(e["action"], e["outcome"]) for e in events}
    assert ("account.create", "success") in actions
    assert ("transaction.create", "failure") in actions  # insufficient funds, still recorded
    failed = [e for e in events if e["action"] == "transaction.create" and e["outcome"] == "failure"]
    assert failed[-1]["details"]["code"] == "insufficient_funds" and failed[-1]["source_ip"] == "127.0.0.1"


@pytest.fixture(scope="module")
def tight_server(api_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_server(api_db_url, tmp_path_factory.mktemp("tight"), QENEX_API_RATE_PRINCIPAL="5/10",
                       QENEX_API_RATE_IP="1000/2000", QENEX_API_MAX_BODY_BYTES="2048")
    yield srv
    srv.stop()


def test_flood_gets_429_with_retry_after(tight_server: ApiServer, api_db_url: str) -> None:
    key = make_key(api_db_url, "teller")
    statuses = [get(tight_server, "/api/v1/accounts?limit=1", key) for _ in range(30)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["code"] == "rate_limited"
    assert statuses[0].status_code == 200


def test_oversized_and_malformed_bodies_are_rejected(tight_server: ApiServer, api_db_url: str) -> None:
    key = make_key(api_db_url, "teller")
    url = tight_server.url + "/api/v1/accounts"
    big = httpx.post(url, headers=auth(key), json={"owner_id": "x", "metadata": {"blob": "a" * 5000}})
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies to what is actually sent
        for _ in range(10):
            yield b" " * 1000

    streamed = httpx.post(url, headers=auth(key) | {"content-type": "application/json"}, content=chunks())
    assert streamed.status_code == 413
    for raw in (b"{not json", b"[1, 2", b"\xff\xfe", b'{"owner_id": "x"' + b"}" * 3, b"[" * 1500 + b"]" * 1500):
        response = httpx.post(url, headers=auth(key) | {"content-type": "application/json"}, content=raw)
        assert 400 <= response.status_code < 500, (raw[:20], response.status_code, response.text)
        assert response.headers["content-type"] == PROBLEM
    long_owner = httpx.post(url, headers=auth(key), json={"owner_id": "o" * 300})
    assert long_owner.status_code == 422 and long_owner.json()["code"] == "invalid_request"
    extra = httpx.post(url, headers=auth(key), json={"owner_id": "x", "surprise": 1})
    assert extra.status_code == 422
