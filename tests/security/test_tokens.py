"""OAuth2 client credentials and signed JWTs: issue/verify, expiry, bad signature, scopes, key rotation."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qenex.config import Settings
from qenex.security import tokens
from qenex.security._common import utcnow
from qenex.security.errors import SecurityError

from .conftest import audit_trail


@pytest.fixture()
def verifier(security_db_url: str) -> tokens.TokenVerifier:
    return tokens.TokenVerifier(lambda: psycopg.connect(security_db_url, autocommit=True))


def test_client_credentials_issue_a_verifiable_token(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="core banking", role="teller")
    assert client.client_secret not in repr(client)
    stored = conn.execute("SELECT secret_hash FROM security_oauth_clients WHERE client_id = %s",
                          (client.client_id,)).fetchone()
    assert stored is not None and stored[0].startswith("$argon2id$") and client.client_secret not in stored[0]
    response = tokens.issue_token(conn, settings, client.client_id, client.client_secret)
    assert response.token_type == "Bearer" and response.expires_in == settings.security.token_ttl_seconds
    assert response.access_token not in repr(response)
    header = jwt.get_unverified_header(response.access_token)
    assert header["alg"] == "EdDSA" and header["kid"]
    principal = verifier.verify(response.access_token)
    assert principal.kind == "oauth_client" and principal.id == client.client_id
    assert principal.role == "teller" and principal.scopes == frozenset(client.scopes)


def test_requested_scope_is_narrowed_and_checked(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="reader", role="customer", owner_id="cust-9")
    narrow = tokens.issue_token(conn, settings, client.client_id, client.client_secret, scope="accounts:read")
    assert narrow.scope == "accounts:read"
    principal = verifier.verify(narrow.access_token)
    assert principal.scopes == {"accounts:read"} and principal.owner_id == "cust-9"
    with pytest.raises(SecurityError) as info:
        tokens.issue_token(conn, settings, client.client_id, client.client_secret, scope="accounts:write")
    assert info.value.code == "invalid_scope" and info.value.http_status == 400


def test_bad_client_credentials_are_refused(conn: psycopg.Connection[Any], settings: Settings) -> None:
    client = tokens.create_client(conn, name="c", role="auditor")
    for client_id, secret in ((client.client_id, "wrong"), ("qnc_0000000000000000", client.client_secret),
                              ("garbage", "x")):
        with pytest.raises(SecurityError) as info:
            tokens.issue_token(conn, settings, client_id, secret)
        assert info.value.code == "invalid_client" and info.value.http_status == 401
    with pytest.raises(SecurityError) as info:
        tokens.issue_token(conn, settings, client.client_id, client.client_secret, grant_type="password")
    assert info.value.code == "unsupported_grant_type"
    tokens.revoke_client(conn, client.client_id)
    with pytest.raises(SecurityError):
        tokens.issue_token(conn, settings, client.client_id, client.client_secret)
    rows = conn.execute("SELECT outcome FROM audit_log WHERE actor = %s AND action = 'oauth.token'",
                        (f"client:{client.client_id}",)).fetchall()
    assert [r[0] for r in rows] == ["failure", "failure"]
    assert ("oauth_client.revoked", "success") in audit_trail(conn, f"client:{client.client_id}")


def test_expired_token_is_refused(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="e", role="teller")
    past = utcnow() - timedelta(seconds=settings.security.token_ttl_seconds + tokens.CLOCK_SKEW_S + 5)
    old = tokens.issue_token(conn, settings, client.client_id, client.client_secret, now=past)
    with pytest.raises(SecurityError) as info:
        verifier.verify(old.access_token)
    assert info.value.code == "invalid_token" and info.value.http_status == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tampered_or_forged_tokens_are_refused(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="t", role="customer", owner_id="cust-1")
    good = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
    head, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["owner_id"] = "cust-2"
    claims["role"] = "admin"
    forged_body = _b64(json.dumps(claims).encode())
    kid = jwt.get_unverified_header(good)["kid"]
    attacker = Ed25519PrivateKey.generate()
    candidates = [
        f"{head}.{forged_body}.{sig}",  # payload changed, signature kept
        jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": kid}),  # signed by another key
        jwt.encode(claims, "a-guessed-hmac-key-of-32-bytes-plus", algorithm="HS256", headers={"kid": kid}),  # HS256
        f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{forged_body}.",  # alg none
        jwt.encode(claims, attacker, algorithm="EdDSA", headers={"kid": "no-such-kid"}),
        "not.a.jwt",
        "x" * 5000,
    ]
    for token in candidates:
        with pytest.raises(SecurityError) as info:
            verifier.verify(token)
        assert info.value.code == "invalid_token"
    wrong_audience = dict(claims, aud="someone-else", role="customer", owner_id="cust-1")
    assert verifier.verify(good).owner_id == "cust-1"
    with pytest.raises(SecurityError):
        verifier.verify(jwt.encode(wrong_audience, attacker, algorithm="EdDSA", headers={"kid": kid}))


def test_signing_key_rotation_keeps_old_tokens_valid_until_they_expire(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="r", role="teller")
    before = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = tokens.rotate_signing_key(conn, settings)
    assert new_kid != old_kid
    after = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    fresh = tokens.TokenVerifier(verifier._connect)
    assert fresh.verify(before).id == client.client_id  # old key still verifies
    assert fresh.verify(after).id == client.client_id
    published = {k["kid"] for k in tokens.jwks(conn)["keys"]}
    assert {old_kid, new_kid} <= published
    # Once every token the old key signed has expired, the old key stops verifying.
    margin_s = settings.security.token_ttl_seconds + tokens.CLOCK_SKEW_S + tokens.SIGNING_KEY_CACHE_TTL_S
    later = utcnow() + timedelta(seconds=margin_s + 1)
    still = utcnow() + timedelta(seconds=margin_s - 5)
    assert old_kid in {k["kid"] for k in tokens.jwks(conn, still)["keys"]}
    assert old_kid not in {k["kid"] for k in tokens.jwks(conn, later)["keys"]}
    late_verifier = tokens.TokenVerifier(verifier._connect)
    with pytest.raises(SecurityError):
        late_verifier.verify(before, now=later)
    rows = conn.execute("SELECT count(*) FROM security_jwt_keys WHERE retired_at IS NULL").fetchone()
    assert rows == (1,)


def test_private_signing_keys_are_stored_sealed(conn: psycopg.Connection[Any], settings: Settings) -> None:
    kid = tokens.rotate_signing_key(conn, settings)
    row = conn.execute("SELECT public_key, private_key_sealed FROM security_jwt_keys WHERE kid = %s",
                       (kid,)).fetchone()
    assert row is not None and len(bytes(row[0])) == 32 and len(bytes(row[1])) > 32 + 12
    with pytest.raises(SecurityError) as info:
        tokens.rotate_signing_key(conn, settings.model_copy(update={"security": settings.security.model_copy(
            update={"jwt_secret": None})}))
    assert info.value.code == "security_not_configured"


def test_verified_tokens_are_cached_until_they_expire(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="cache", role="teller")
    token = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # served from the cache, no second signature check
    after_expiry = utcnow() + timedelta(seconds=settings.security.token_ttl_seconds + tokens.CLOCK_SKEW_S + 1)
    with pytest.raises(SecurityError):
        verifier.verify(token, now=after_expiry)
    fresh = tokens.TokenVerifier(verifier._connect)
    with pytest.raises(SecurityError):  # and without the cache, the expiry check uses the same clock
        fresh.verify(token, now=after_expiry)


def test_token_from_the_future_is_refused(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="future", role="teller")
    future = tokens.issue_token(conn, settings, client.client_id, client.client_secret,
                                now=utcnow() + timedelta(hours=1)).access_token
    with pytest.raises(SecurityError):
        verifier.verify(future)


def test_signing_key_rotates_by_itself_after_key_rotation_days(
    conn: psycopg.Connection[Any], settings: Settings, verifier: tokens.TokenVerifier
) -> None:
    client = tokens.create_client(conn, name="scheduled", role="teller")
    current = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
    later = utcnow() + timedelta(days=settings.security.key_rotation_days, seconds=1)
    rotated = tokens.issue_token(conn, settings, client.client_id, client.client_secret, now=later).access_token
    assert jwt.get_unverified_header(rotated)["kid"] != jwt.get_unverified_header(current)["kid"]
    reasons = conn.execute("SELECT details->>'reason' FROM audit_log WHERE action = 'jwt_signing_key.rotated'"
                           " ORDER BY id DESC LIMIT 1").fetchone()
    assert reasons == ("scheduled",)
    assert tokens.TokenVerifier(verifier._connect).verify(current).id == client.client_id


def test_credential_checks_refuse_to_run_inside_a_callers_transaction(
    security_db_url: str, settings: Settings
) -> None:
    from qenex.kernel.errors import InvariantViolation

    with psycopg.connect(security_db_url) as inside:  # not autocommit
        inside.execute("SELECT 1")
        with pytest.raises(InvariantViolation):
            tokens.issue_token(inside, settings, "qnc_0000000000000000", "secret")
