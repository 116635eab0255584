"""Hardening against a real server: text no request can hold (NUL, lone surrogates) is a 4xx
everywhere, idempotency remembers final rejections and keeps headers, the stream closes when its
credential is revoked, customers see no bank-wide figures, and every /api/v1 route but the three
public auth routes requires a credential."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from qenex.api.app import PUBLIC_API_ROUTES, create_app
from qenex.api.openapi import app_routes, dependency_calls
from qenex.config import Settings
from qenex.security.fastapi_deps import bearer_scheme

from .conftest import ApiServer, auth, make_key
from .test_api_basics import open_account

PROBLEM = "application/problem+json"
WS_TIMEOUT_S = 15
REVOCATION_DEADLINE_S = 30  # key cache (5 s) + re-check interval (5 s), with room for a loaded machine
FORBIDDEN_EXAMPLES_PER_FIELD = 25


def raw_post(server: ApiServer, path: str, body: Any, key: str, **headers: str) -> httpx.Response:
    """POST ``body`` encoded by json.dumps (which escapes lone surrogates as \\udxxx, as a hostile
    client would send them; httpx's own encoder cannot encode them at all)."""
    return httpx.post(server.url + path, content=json.dumps(body).encode("ascii"), timeout=30,
                      headers=auth(key) | {"content-type": "application/json"} | headers)


def assert_bad_text(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid_characters"


# -- 1. NUL and lone surrogates -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b", "\udfff tail", "\ud83d"])
def test_forbidden_text_in_bodies_is_a_400(server: ApiServer, client: httpx.Client, admin_key: str,
                                           bad: str) -> None:
    a = open_account(client, "bad-text-a", "10.00")
    b = open_account(client, "bad-text-b", None)
    transfer = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
    assert_bad_text(raw_post(server, "/api/v1/accounts", {"owner_id": "x", "metadata": {"k": bad}}, admin_key))
    assert_bad_text(raw_post(server, "/api/v1/accounts", {"owner_id": "x", "metadata": {bad: 1}}, admin_key))
    assert_bad_text(raw_post(server, "/api/v1/accounts", {"owner_id": "x", "metadata": {"n": [{"d": bad}]}},
                             admin_key))
    assert_bad_text(raw_post(server, "/api/v1/accounts", {"owner_id": f"o{bad}"}, admin_key))
    assert_bad_text(raw_post(server, "/api/v1/transactions", transfer | {"metadata": {"k": bad}}, admin_key))
    hold = client.post("/api/v1/transactions", json=transfer | {"pending": True}).json()["id"]
    assert_bad_text(raw_post(server, f"/api/v1/transactions/{hold}/post", {"metadata": {"k": bad}}, admin_key))
    # In a batch, the item fails alone (invalid_request with the reason); its neighbour is applied.
    batch = raw_post(server, "/api/v1/transactions/batch",
                     {"items": [transfer | {"metadata": {"k": bad}}, transfer]}, admin_key)
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["ok"] for r in results] == [False, True]
    assert results[0]["error"]["code"] == "invalid_request" and "surrogate" in results[0]["error"]["message"]
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "9.00"


def test_nul_in_query_path_and_auth_forms_is_a_400(server: ApiServer, api_db_url: str, admin_key: str) -> None:
    auditor = make_key(api_db_url, "auditor")
    for path, key in (("/api/v1/accounts?owner_id=a%00b", admin_key), ("/api/v1/audit/events?actor=a%00b", auditor),
                      ("/api/v1/audit/events?action=a%00", auditor), ("/api/v1/accounts/1%00", admin_key),
                      ("/api/v1/accounts?owner_id=%00", None)):
        response = httpx.get(server.url + path, headers=auth(key) if key else {}, timeout=30)
        assert_bad_text(response)
    token = httpx.post(server.url + "/api/v1/auth/token", timeout=30, content=b"grant_type=client_credentials"
                       b"&client_id=qnc_a%00b&client_secret=x",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert token.status_code == 400 and token.json()["code"] == "invalid_security_request", token.text
    login = httpx.post(server.url + "/api/v1/auth/login", timeout=30, headers={"content-type": "application/json"},
                       content=json.dumps({"username": "a\x00b", "password": "p", "totp_code": "123456"}).encode())
    assert_bad_text(login)
    login = httpx.post(server.url + "/api/v1/auth/login", timeout=30, headers={"content-type": "application/json"},
                       content=json.dumps({"username": "ab", "password": "\ud800", "totp_code": "123456"}).encode())
    assert_bad_text(login)
    with pytest.raises(InvalidStatus):
        connect(server.url.replace("http://", "ws://") + "/stream?access_token=qnx_a%00b_c",
                open_timeout=WS_TIMEOUT_S)
    assert httpx.get(server.url + "/ready").status_code == 200  # still serving


def _forbidden_text() -> st.SearchStrategy[str]:
    """Text with at least one NUL or lone surrogate somewhere in it."""
    bad = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
    return st.tuples(st.text(max_size=8), bad, st.text(max_size=8)).map("".join)


def test_generated_forbidden_text_never_gives_a_5xx(server: ApiServer, client: httpx.Client,
                                                    admin_key: str) -> None:
    a = open_account(client, "gen-text-a", "10.00")
    b = open_account(client, "gen-text-b", None)
    transfer = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
    statuses: list[int] = []

    @given(text=_forbidden_text(), where=st.sampled_from(["owner", "meta_value", "meta_key", "tx_meta", "query"]))
    @settings(max_examples=FORBIDDEN_EXAMPLES_PER_FIELD * 3, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(text: str, where: str) -> None:
        if where == "query":  # only NUL survives percent-decoding (invalid UTF-8 becomes U+FFFD)
            response = client.get("/api/v1/accounts?owner_id=" + quote(text.encode("utf-8", "surrogatepass"), safe=""))
            if "\x00" not in text:
                assert response.status_code == 200, response.text
                return
        elif where == "tx_meta":
            response = raw_post(server, "/api/v1/transactions", transfer | {"metadata": {"m": text}}, admin_key)
        else:
            body: dict[str, Any] = {"owner_id": text} if where == "owner" else {
                "owner_id": "gen", "metadata": {"k": text} if where == "meta_value" else {text: "v"}}
            response = raw_post(server, "/api/v1/accounts", body, admin_key)
        statuses.append(response.status_code)
        assert_bad_text(response)

    check()
    assert len(statuses) >= FORBIDDEN_EXAMPLES_PER_FIELD  # the generator really ran
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "10.00"  # nothing half-applied


# -- 2. Idempotency: final 4xx answers are remembered, headers are kept -----------------------------


def test_idempotent_rejection_is_replayed_and_conflicts(client: httpx.Client) -> None:
    a = open_account(client, "idem-4xx-a", "1.00")
    b = open_account(client, "idem-4xx-b", None)
    key = {"Idempotency-Key": f"fail-{uuid.uuid4().hex}"}
    body = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "5.00", "currency": "USD"}
    first = client.post("/api/v1/transactions", json=body, headers=key)
    assert first.status_code == 422 and first.json()["code"] == "insufficient_funds", first.text
    assert "idempotent-replayed" not in first.headers
    client.post("/api/v1/transactions", json={"type": "DEPOSIT", "to_account": a, "amount": "100.00",
                                              "currency": "USD"})
    again = client.post("/api/v1/transactions", json=body, headers=key)  # funds are there now: still the 422
    assert again.status_code == 422 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and again.headers["content-type"] == PROBLEM
    assert client.get(f"/api/v1/accounts/{a}/balance").json()["posted"] == "101.00"  # nothing moved
    other = client.post("/api/v1/transactions", json=body | {"amount": "2.00"}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    hold = client.post("/api/v1/transactions", json=body | {"pending": True}).json()["id"]
    assert client.post(f"/api/v1/transactions/{hold}/post").status_code == 201
    void_key = {"Idempotency-Key": f"void-{uuid.uuid4().hex}"}
    late = client.post(f"/api/v1/transactions/{hold}/void", headers=void_key)
    assert late.status_code == 409 and late.json()["code"] == "pending_already_resolved"
    replay = client.post(f"/api/v1/transactions/{hold}/void", headers=void_key)  # a 409 is final too
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true"


def test_schema_rejections_are_not_remembered(client: httpx.Client) -> None:
    """A request refused before it ran (schema validation) leaves the key unused."""
    a = open_account(client, "idem-422-a", "10.00")
    b = open_account(client, "idem-422-b", None)
    key = {"Idempotency-Key": f"schema-{uuid.uuid4().hex}"}
    body = {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00", "currency": "USD"}
    assert client.post("/api/v1/transactions", json=body | {"amount": 1.0}, headers=key).status_code == 422
    assert client.post("/api/v1/transactions", json=body, headers=key).status_code == 201


def test_replay_keeps_location_and_headers(client: httpx.Client) -> None:
    key = {"Idempotency-Key": f"loc-{uuid.uuid4().hex}"}
    body = {"owner_id": "idem-loc", "initial_balance": "5.00"}
    first = client.post("/api/v1/accounts", json=body, headers=key)
    again = client.post("/api/v1/accounts", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["location"] == first.headers["location"] == f"/api/v1/accounts/{first.json()['id']}"
    assert again.headers["idempotent-replayed"] == "true" and again.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]  # the id is the request's own
    b = open_account(client, "idem-loc-b", None)
    tx_key = {"Idempotency-Key": f"txloc-{uuid.uuid4().hex}"}
    transfer = {"type": "TRANSFER", "from_account": first.json()["id"], "to_account": b, "amount": "1.00",
                "currency": "USD"}
    one = client.post("/api/v1/transactions", json=transfer, headers=tx_key)
    two = client.post("/api/v1/transactions", json=transfer, headers=tx_key)
    assert two.headers["location"] == one.headers["location"] == f"/api/v1/transactions/{one.json()['id']}"


# -- 3. The stream closes when its credential stops being valid ------------------------------------


def test_stream_is_closed_when_its_key_is_revoked(server: ApiServer, db: psycopg.Connection[Any]) -> None:
    from qenex.security import apikeys

    created = apikeys.create_key(db, name="ws-revoke", role="teller")
    with connect(server.url.replace("http://", "ws://") + "/stream", additional_headers=auth(created.key),
                 open_timeout=WS_TIMEOUT_S) as ws:
        apikeys.revoke_key(db, created.id)  # from another process: the server learns it by re-checking
        deadline = time.monotonic() + REVOCATION_DEADLINE_S
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                ws.recv(timeout=deadline - time.monotonic())
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason == "invalid_token"


def test_stream_is_closed_when_its_key_expires(server: ApiServer, db: psycopg.Connection[Any]) -> None:
    from datetime import timedelta

    from qenex.security import apikeys

    created = apikeys.create_key(db, name="ws-expire", role="teller", expires_in=timedelta(seconds=3))
    started = time.monotonic()
    with connect(server.url.replace("http://", "ws://") + "/stream", additional_headers=auth(created.key),
                 open_timeout=WS_TIMEOUT_S) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=REVOCATION_DEADLINE_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert time.monotonic() - started < REVOCATION_DEADLINE_S


# -- 10. /system/status ----------------------------------------------------------------------------


def test_customer_status_has_no_bank_wide_figures(server: ApiServer, api_db_url: str, client: httpx.Client) -> None:
    customer = httpx.get(server.url + "/api/v1/system/status", timeout=30,
                         headers=auth(make_key(api_db_url, "customer", owner_id="status-cust")))
    assert customer.status_code == 200
    assert set(customer.json()) == {"version", "uptime_seconds", "status"} and customer.json()["status"] == "ok"
    staff = client.get("/api/v1/system/status").json()
    assert {"counts", "database", "stream_subscribers", "environment", "redis"} <= set(staff)


# -- every /api/v1 route needs a credential ---------------------------------------------------------


def test_every_api_route_but_the_public_auth_ones_requires_a_credential(server: ApiServer,
                                                                         settings: Settings) -> None:
    app = create_app(settings)
    routes = [r for r in app_routes(app) if r.path.startswith("/api/v1/")]
    assert len(routes) >= 17
    unauthenticated = []
    for route in routes:
        if route.path in PUBLIC_API_ROUTES:
            continue
        if bearer_scheme not in set(dependency_calls(route.dependant)):
            unauthenticated.append(route.path)
        for method in route.methods:
            url = server.url + route.path.replace("{account_id}", "1").replace("{transaction_id}", "1")
            response = httpx.request(method, url, json={}, timeout=30)
            if response.status_code != 401:
                unauthenticated.append(f"{method} {route.path} -> {response.status_code}")
    assert not unauthenticated, unauthenticated
    assert {r.path for r in routes} >= set(PUBLIC_API_ROUTES)
