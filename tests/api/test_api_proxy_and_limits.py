"""Client addresses behind a proxy (api.forwarded_allow_ips), the per-IP rate limit over HTTP,
metrics.enabled=false, periodic audit checkpoints by the server, and security events that must be
in the audit trail (logout; a customer's 404 on someone else's object)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from qenex.config import Settings
from qenex.security import operators, totp
from qenex.security._common import utcnow

from .conftest import ApiServer, auth, await_audit, make_key, start_server
from .test_api_basics import open_account

CHECKPOINT_WAIT_S = 20.0


@pytest.fixture(scope="module")
def proxy_server(api_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """Behind a (simulated) reverse proxy on 127.0.0.1, with a tight per-IP limit, metrics off on
    the main port, and an audit checkpoint every second."""
    srv = start_server(api_db_url, tmp_path_factory.mktemp("proxy"), QENEX_API_FORWARDED_ALLOW_IPS="127.0.0.1",
                       QENEX_API_RATE_IP="5/10", QENEX_METRICS_ENABLED="false",
                       QENEX_SECURITY_AUDIT_CHECKPOINT_SECONDS="1")
    yield srv
    srv.stop()


def client_ip_header() -> dict[str, str]:
    """A fresh documentation-range address per call (each test has its own per-IP bucket)."""
    n = uuid.uuid4().int
    return {"X-Forwarded-For": f"198.51.{n % 250}.{(n >> 8) % 250 + 1}"}


def audit_events(server: ApiServer, auditor: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/api/v1/audit/events", params=params | {"limit": "1000"},
                         headers=auth(auditor) | client_ip_header(), timeout=30)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_forwarded_for_is_honoured_from_an_allowed_proxy(proxy_server: ApiServer, api_db_url: str) -> None:
    key = make_key(api_db_url, "admin")
    client = {"X-Forwarded-For": "203.0.113.77, 127.0.0.1"}  # the proxy appended its own address
    owner = f"xff-{uuid.uuid4().hex[:8]}"
    created = httpx.post(proxy_server.url + "/api/v1/accounts", json={"owner_id": owner},
                         headers=auth(key) | client, timeout=30)
    assert created.status_code == 201, created.text
    events = await_audit(proxy_server, make_key(api_db_url, "auditor"),
                         lambda evs: any(e["resource"] == f"owner:{owner}" for e in evs), action="account.create")
    mine = [e for e in events if e["resource"] == f"owner:{owner}"]
    assert [e["source_ip"] for e in mine] == ["203.0.113.77"]


def test_forwarded_for_is_ignored_by_default(server: ApiServer, api_db_url: str) -> None:
    key = make_key(api_db_url, "admin")
    owner = f"noxff-{uuid.uuid4().hex[:8]}"
    created = httpx.post(server.url + "/api/v1/accounts", json={"owner_id": owner},
                         headers=auth(key) | {"X-Forwarded-For": "203.0.113.78"}, timeout=30)
    assert created.status_code == 201, created.text
    events = await_audit(server, make_key(api_db_url, "auditor"),
                         lambda evs: any(e["resource"] == f"owner:{owner}" for e in evs), action="account.create")
    assert [e["source_ip"] for e in events if e["resource"] == f"owner:{owner}"] == ["127.0.0.1"]


def test_per_ip_limit_gives_429_whatever_the_credential(proxy_server: ApiServer, api_db_url: str) -> None:
    keys = [make_key(api_db_url, "teller") for _ in range(4)]  # each well under its own principal limit
    address = client_ip_header()
    statuses = [httpx.get(proxy_server.url + "/api/v1/accounts?limit=1", headers=auth(keys[i % 4]) | address,
                          timeout=30) for i in range(24)]
    limited = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 200 and limited, [r.status_code for r in statuses]
    assert limited[0].json()["code"] == "rate_limited" and int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].headers["content-type"] == "application/problem+json"
    # The bucket is the client's (from X-Forwarded-For): another client behind the same proxy is served.
    other = httpx.get(proxy_server.url + "/api/v1/accounts?limit=1", headers=auth(keys[0]) | client_ip_header(),
                      timeout=30)
    assert other.status_code == 200, other.text


def test_metrics_disabled_means_no_metrics_route(proxy_server: ApiServer, server: ApiServer) -> None:
    off = httpx.get(proxy_server.url + "/metrics", headers=client_ip_header(), timeout=30)
    assert off.status_code == 404 and off.json()["code"] == "not_found"
    spec = httpx.get(proxy_server.url + "/openapi.json", headers=client_ip_header(), timeout=30).json()
    assert "/metrics" not in spec["paths"]
    assert httpx.get(server.url + "/metrics", timeout=30).status_code == 200  # on by default


def test_server_signs_new_audit_records_on_a_timer(proxy_server: ApiServer, api_db_url: str) -> None:
    key = make_key(api_db_url, "admin")
    created = httpx.post(proxy_server.url + "/api/v1/accounts", json={"owner_id": "cp-timer"},
                         headers=auth(key) | client_ip_header(), timeout=30)
    assert created.status_code == 201
    with psycopg.connect(api_db_url, autocommit=True) as conn:
        row = conn.execute("SELECT max(id) FROM audit_log").fetchone()
        assert row is not None
        newest = int(row[0])
        deadline = time.monotonic() + CHECKPOINT_WAIT_S
        while True:  # about one second; nothing else here makes 1,000 records
            covered = conn.execute("SELECT max(last_record_id) FROM audit_checkpoints").fetchone()
            if covered is not None and covered[0] is not None and int(covered[0]) >= newest:
                break
            assert time.monotonic() < deadline, f"record {newest} still unsigned:\n{proxy_server.log()}"
            time.sleep(0.2)


def test_logout_is_audited(server: ApiServer, db: psycopg.Connection[Any], api_db_url: str,
                           settings: Settings) -> None:
    name = f"bob.{uuid.uuid4().hex[:6]}"
    op = operators.create_operator(db, settings, username=name, password="a long operator password", role="teller")
    session = httpx.post(server.url + "/api/v1/auth/login", timeout=30, json={
        "username": name, "password": "a long operator password", "totp_code": totp.code_at(op.totp_secret, utcnow())})
    assert session.status_code == 200, session.text
    token = session.json()["session_token"]
    assert httpx.post(server.url + "/api/v1/auth/logout", headers=auth(token), timeout=30).status_code == 204
    events = audit_events(server, make_key(api_db_url, "auditor"), action="auth.logout", actor=f"operator:{op.id}")
    assert [(e["outcome"], e["source_ip"], e["resource"]) for e in events] == [("success", "127.0.0.1", "session")]


def test_customer_404_on_another_customers_object_is_a_recorded_denial(server: ApiServer, api_db_url: str,
                                                                       client: httpx.Client) -> None:
    theirs = open_account(client, f"deny-{uuid.uuid4().hex[:6]}", "20.00")
    elsewhere = open_account(client, f"deny-{uuid.uuid4().hex[:6]}", None)
    tx = client.post("/api/v1/transactions", json={"type": "TRANSFER", "from_account": theirs, "to_account": elsewhere,
                                                   "amount": "1.00", "currency": "USD"}).json()["id"]
    key = make_key(api_db_url, "customer", owner_id=f"deny-me-{uuid.uuid4().hex[:6]}")
    for path in (f"/api/v1/accounts/{theirs}", f"/api/v1/accounts/{theirs}/balance", f"/api/v1/transactions/{tx}"):
        assert httpx.get(server.url + path, headers=auth(key), timeout=30).status_code == 404
    missing = httpx.get(server.url + "/api/v1/accounts/999999998", headers=auth(key), timeout=30)
    assert missing.status_code == 404  # the same answer: nothing tells the two apart
    denials = audit_events(server, make_key(api_db_url, "auditor"), action="permission.denied",
                           actor=f"key:{key.split('_')[1]}")
    assert sorted(d["resource"] for d in denials) == sorted([f"account:{theirs}", f"account:{theirs}",
                                                             f"transaction:{tx}"])
    assert all(d["outcome"] == "denied" and d["details"]["role"] == "customer" for d in denials)
