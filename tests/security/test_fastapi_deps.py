"""The FastAPI adapters on a tiny app with FastAPI's TestClient, over the real database:
401 without or with a bad credential, 403 for a wrong scope, 404 for another customer's
object, expired and revoked keys, OAuth2 token endpoint, operator login/logout, 429 floods."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from qenex.config import Settings
from qenex.security import apikeys, operators, rbac, tokens, totp
from qenex.security._common import utcnow
from qenex.security.fastapi_deps import auth_router, install, require_scopes
from qenex.security.ratelimit import ApiRateLimits, RateLimiter
from qenex.security.service import SecurityService

from .conftest import audit_trail

OWNERS = {"acc-1": "cust-1", "acc-2": "cust-2"}
PASSWORD = "a long operator password"


def build_app(service: SecurityService) -> FastAPI:
    app = FastAPI()
    install(app, service)
    app.include_router(auth_router(), prefix="/api/v1")

    @app.get("/api/v1/accounts/{account_id}")
    def get_account(
        account_id: str, principal: rbac.Principal = Depends(require_scopes("accounts:read"))
    ) -> dict[str, str]:
        owner = OWNERS.get(account_id)
        if owner is None or not rbac.can_see_owner(principal, owner):
            raise HTTPException(404, "account not found")
        return {"id": account_id, "owner_id": owner}

    @app.post("/api/v1/transactions")
    def transfer(principal: rbac.Principal = Depends(require_scopes("transactions:write"))) -> dict[str, str]:
        return {"by": principal.actor}

    return app


@pytest.fixture()
def pool(security_db_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(security_db_url, min_size=1, max_size=4, open=True) as p:
        yield p


@pytest.fixture()
def service(settings: Settings, pool: ConnectionPool) -> Iterator[SecurityService]:
    limits = ApiRateLimits(principal=RateLimiter(1000, 1000), ip=RateLimiter(1000, 1000), login=RateLimiter(100, 100))
    svc = SecurityService(settings, pool.connection, limits=limits)
    yield svc
    svc.close()


@pytest.fixture()
def client(service: SecurityService) -> TestClient:
    return TestClient(build_app(service))


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_no_or_bad_credentials_give_401_problem_json(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("qnx_0000000000000000_" + "a" * 43), bearer("a.b.c"),
                    bearer("qns_" + "x" * 43), bearer("x" * 9000)):
        response = client.get("/api/v1/accounts/acc-1", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert body["status"] == 401 and body["code"] in {"unauthenticated", "invalid_token"}
        assert "aaaaaaaa" not in response.text


def test_scopes_and_roles_are_enforced_with_403_and_audited(client: TestClient, conn: psycopg.Connection[Any]) -> None:
    auditor = apikeys.create_key(conn, name="auditor", role="auditor")
    assert client.get("/api/v1/accounts/acc-1", headers=bearer(auditor.key)).status_code == 200
    denied = client.post("/api/v1/transactions", headers=bearer(auditor.key))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    rows = conn.execute("SELECT outcome, details->>'scope' FROM audit_log WHERE actor = %s AND action = %s",
                        (f"key:{auditor.id}", "permission.denied")).fetchall()
    assert rows == [("denied", "transactions:write")]
    reader = apikeys.create_key(conn, name="narrow", role="teller", scopes=["accounts:read"])
    assert client.post("/api/v1/transactions", headers=bearer(reader.key)).status_code == 403
    teller = apikeys.create_key(conn, name="teller", role="teller")
    ok = client.post("/api/v1/transactions", headers=bearer(teller.key))
    assert ok.status_code == 200 and ok.json() == {"by": f"key:{teller.id}"}


def test_customer_sees_only_its_own_accounts(client: TestClient, conn: psycopg.Connection[Any]) -> None:
    customer = apikeys.create_key(conn, name="customer", role="customer", owner_id="cust-1")
    assert client.get("/api/v1/accounts/acc-1", headers=bearer(customer.key)).json()["owner_id"] == "cust-1"
    assert client.get("/api/v1/accounts/acc-2", headers=bearer(customer.key)).status_code == 404
    staff = apikeys.create_key(conn, name="staff", role="operator")
    assert client.get("/api/v1/accounts/acc-2", headers=bearer(staff.key)).status_code == 200


def test_expired_and_revoked_keys_are_refused(client: TestClient, conn: psycopg.Connection[Any]) -> None:
    past = utcnow() - timedelta(hours=2)
    expired = apikeys.create_key(conn, name="expired", role="teller", expires_in=timedelta(hours=1), now=past)
    assert client.get("/api/v1/accounts/acc-1", headers=bearer(expired.key)).status_code == 401
    revoked = apikeys.create_key(conn, name="revoked", role="teller")
    assert client.get("/api/v1/accounts/acc-1", headers=bearer(revoked.key)).status_code == 200
    apikeys.revoke_key(conn, revoked.id)
    assert client.get("/api/v1/accounts/acc-1", headers=bearer(revoked.key)).status_code == 401
    failures = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.failed' AND details->>'key_id' = %s",
                            (revoked.id,)).fetchone()
    assert failures == (1,)


def test_oauth2_token_endpoint_and_bearer_jwt(client: TestClient, conn: psycopg.Connection[Any]) -> None:
    registered = tokens.create_client(conn, name="partner", role="customer", owner_id="cust-2")
    form = {"grant_type": "client_credentials", "client_id": registered.client_id,
            "client_secret": registered.client_secret, "scope": "accounts:read"}
    response = client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "accounts:read"
    headers = bearer(body["access_token"])
    assert client.get("/api/v1/accounts/acc-2", headers=headers).status_code == 200
    assert client.get("/api/v1/accounts/acc-1", headers=headers).status_code == 404
    assert client.post("/api/v1/transactions", headers=headers).status_code == 403  # scope narrowed at issue
    basic = base64.b64encode(f"{registered.client_id}:{registered.client_secret}".encode()).decode()
    via_basic = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"},
                            headers={"Authorization": f"Basic {basic}"})
    assert via_basic.status_code == 200
    bad = client.post("/api/v1/auth/token", data=dict(form, client_secret="nope"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    # The refusal is in the audit trail even though the request failed (pooled, non-autocommit connection).
    outcomes = conn.execute("SELECT outcome FROM audit_log WHERE actor = %s AND action = 'oauth.token' ORDER BY id",
                            (f"client:{registered.client_id}",)).fetchall()
    assert [o[0] for o in outcomes] == ["success", "success", "failure"]
    assert client.post("/api/v1/auth/token", data=dict(form, grant_type="password")).status_code == 400
    assert client.post("/api/v1/auth/token", data=dict(form, scope="admin")).json()["error"] == "invalid_scope"
    assert client.post("/api/v1/auth/token", json=form).status_code == 400
    assert client.post("/api/v1/auth/token", content=b"a=" + b"x" * 5000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
    keys = client.get("/api/v1/auth/jwks").json()["keys"]
    assert keys and all(k["kty"] == "OKP" and "d" not in k for k in keys)


def test_operator_login_session_and_logout(
    client: TestClient, conn: psycopg.Connection[Any], settings: Settings
) -> None:
    op = operators.create_operator(conn, settings, username="dash-user", password=PASSWORD, role="teller")
    assert client.post("/api/v1/auth/login", json={"username": op.username, "password": PASSWORD}).json()["code"] == (
        "mfa_required"
    )
    code = totp.code_at(op.totp_secret, utcnow())
    response = client.post("/api/v1/auth/login", json={"username": op.username, "password": PASSWORD,
                                                       "totp_code": code})
    assert response.status_code == 200, response.text
    session = response.json()["session_token"]
    assert client.post("/api/v1/transactions", headers=bearer(session)).json() == {"by": f"operator:{op.id}"}
    assert client.post("/api/v1/auth/logout", headers=bearer(session)).status_code == 204
    assert client.post("/api/v1/transactions", headers=bearer(session)).status_code == 401
    assert ("auth.login", "success") in audit_trail(conn, f"operator:{op.id}")


def test_login_lockout_over_http(client: TestClient, conn: psycopg.Connection[Any], settings: Settings) -> None:
    op = operators.create_operator(conn, settings, username="lock-me", password=PASSWORD, role="teller")
    statuses = [client.post("/api/v1/auth/login", json={"username": op.username, "password": "wrong password 1",
                                                        "totp_code": "000000"}).status_code
                for _ in range(settings.security.max_login_attempts + 1)]
    assert statuses == [401] * (settings.security.max_login_attempts - 1) + [403, 403]


def test_floods_get_429_with_retry_after(
    settings: Settings, pool: ConnectionPool, conn: psycopg.Connection[Any]
) -> None:
    limits = ApiRateLimits(principal=RateLimiter(1, 3), ip=RateLimiter(1000, 1000), login=RateLimiter(1, 2))
    service = SecurityService(settings, pool.connection, limits=limits)
    try:
        flood = TestClient(build_app(service))
        key = apikeys.create_key(conn, name="flood", role="teller")
        statuses = [flood.get("/api/v1/accounts/acc-1", headers=bearer(key.key)).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = flood.get("/api/v1/accounts/acc-1", headers=bearer(key.key))
        assert limited.headers["retry-after"] == "1" and limited.json()["code"] == "rate_limited"
        login = {"username": "nobody", "password": "x" * 12, "totp_code": "123456"}
        assert flood.post("/api/v1/auth/login", json=login).status_code == 401
        # Empty the client's login bucket (a refill during slow argon2 checks would make counting flaky).
        while limits.login.allow("ip:testclient")[0]:
            pass
        throttled = flood.post("/api/v1/auth/login", json=login)
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    finally:
        service.close()


def test_a_flood_of_bad_credentials_turns_into_429(
    settings: Settings, pool: ConnectionPool, conn: psycopg.Connection[Any]
) -> None:
    limits = ApiRateLimits(principal=RateLimiter(1000, 1000), ip=RateLimiter(1000, 1000), login=RateLimiter(1, 2),
                           auth_failures=RateLimiter(1, 2))
    service = SecurityService(settings, pool.connection, limits=limits)
    try:
        flood = TestClient(build_app(service))
        before = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.failed'").fetchone()
        bad = bearer("qnx_0123456789abcdef_" + "b" * 43)
        statuses = [flood.get("/api/v1/accounts/acc-1", headers=bad).status_code for _ in range(4)]
        assert statuses == [401, 401, 429, 429]
        after = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.failed'").fetchone()
        assert before is not None and after is not None and after[0] - before[0] == 2
    finally:
        service.close()


def test_openapi_documents_bearer_security_and_the_token_form(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/accounts/{account_id}"]["get"]["security"] == [{"bearer": []}]
    token = spec["paths"]["/api/v1/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert "application/problem+json" in token["responses"]["401"]["content"]
