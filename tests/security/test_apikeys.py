"""API keys against a real PostgreSQL: shown once, stored as a hash, expiry, revocation, rotation."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from qenex.security import apikeys
from qenex.security._common import parse_duration, utcnow
from qenex.security.errors import SecurityError

from .conftest import audit_trail


def test_key_is_shown_once_and_only_its_hash_is_stored(conn: psycopg.Connection[Any]) -> None:
    created = apikeys.create_key(conn, name="ops bot", role="teller", scopes=["accounts:read"])
    assert created.key.startswith(f"qnx_{created.id}_")
    assert len(created.key) == 4 + 16 + 1 + 43
    assert created.key not in repr(created)
    row = conn.execute("SELECT * FROM security_api_keys WHERE id = %s", (created.id,)).fetchone()
    assert row is not None
    secret = created.key.split("_", 2)[2]
    assert hashlib.sha256(secret.encode()).digest() in [bytes(v) for v in row if isinstance(v, bytes | memoryview)]
    stored_text = " ".join(str(v) for v in row)
    assert secret not in stored_text and created.key not in stored_text
    info = apikeys.get_key(conn, created.id)
    assert "key" not in info.to_dict() and info.status() == "active"
    assert info.scopes == ("accounts:read",) and info.role == "teller"


def test_authenticate_returns_the_principal(conn: psycopg.Connection[Any]) -> None:
    created = apikeys.create_key(conn, name="customer app", role="customer", owner_id="cust-42")
    principal = apikeys.authenticate_key(conn, created.key)
    assert principal.kind == "api_key" and principal.id == created.id
    assert principal.role == "customer" and principal.owner_id == "cust-42"
    assert principal.has_scope("accounts:read") and not principal.has_scope("accounts:write")
    assert apikeys.get_key(conn, created.id).last_used_at is not None


@pytest.mark.parametrize(
    "presented",
    ["", "qnx_", "Bearer x", "qnx_0123456789abcdef_short", "qnx_ZZZZZZZZZZZZZZZZ_" + "a" * 43, "q" * 10_000],
)
def test_malformed_keys_are_refused(conn: psycopg.Connection[Any], presented: str) -> None:
    with pytest.raises(SecurityError) as info:
        apikeys.authenticate_key(conn, presented)
    assert info.value.http_status == 401


def test_wrong_secret_and_unknown_id_are_refused_alike(conn: psycopg.Connection[Any]) -> None:
    created = apikeys.create_key(conn, name="k", role="auditor")
    tampered = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
    unknown = "qnx_0000000000000000_" + created.key.split("_", 2)[2]
    messages = set()
    for presented in (tampered, unknown):
        with pytest.raises(SecurityError) as info:
            apikeys.authenticate_key(conn, presented)
        messages.add(info.value.message)
        assert created.key.split("_", 2)[2] not in info.value.message
    assert len(messages) == 1


def test_expired_key_is_refused(conn: psycopg.Connection[Any]) -> None:
    created = apikeys.create_key(conn, name="short", role="teller", expires_in=parse_duration("1h"))
    assert apikeys.authenticate_key(conn, created.key).id == created.id
    with pytest.raises(SecurityError):
        apikeys.authenticate_key(conn, created.key, now=utcnow() + timedelta(hours=1, seconds=1))
    assert apikeys.get_key(conn, created.id).status(utcnow() + timedelta(hours=2)) == "expired"


def test_revoked_key_is_refused_at_once_even_through_the_cache(
    conn: psycopg.Connection[Any], security_db_url: str
) -> None:
    created = apikeys.create_key(conn, name="to revoke", role="operator")

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(security_db_url, autocommit=True)

    authenticator = apikeys.ApiKeyAuthenticator(connect)
    try:
        assert authenticator.authenticate(created.key).id == created.id  # now cached
        info = apikeys.revoke_key(conn, created.id, actor="admin:test")
        assert info.status() == "revoked"
        assert ("api_key.revoked", "success") in audit_trail(conn, f"key:{created.id}")
        with pytest.raises(SecurityError):
            authenticator.authenticate(created.key)
        with pytest.raises(SecurityError):
            apikeys.authenticate_key(conn, created.key)
    finally:
        authenticator.close()


def test_rotation_issues_a_new_key_and_retires_the_old(conn: psycopg.Connection[Any]) -> None:
    old = apikeys.create_key(conn, name="rotating", role="teller", expires_in=timedelta(days=30))
    new = apikeys.rotate_key(conn, old.id)
    assert new.id != old.id and new.key != old.key
    assert (new.name, new.role, new.scopes) == (old.name, old.role, old.scopes)
    assert new.expires_at is not None and new.expires_at > utcnow() + timedelta(days=29)
    assert apikeys.get_key(conn, new.id).rotated_from == old.id
    assert apikeys.authenticate_key(conn, new.key).id == new.id
    with pytest.raises(SecurityError):
        apikeys.authenticate_key(conn, old.key)
    with pytest.raises(SecurityError, match="revoked"):
        apikeys.rotate_key(conn, old.id)
    assert audit_trail(conn, f"key:{old.id}") == [("api_key.created", "success"), ("api_key.rotated", "success")]
    assert audit_trail(conn, f"key:{new.id}") == []  # recorded under the old key, with new_key_id in details


def test_rotation_with_grace_keeps_the_old_key_for_a_while(conn: psycopg.Connection[Any]) -> None:
    old = apikeys.create_key(conn, name="graceful", role="teller")
    new = apikeys.rotate_key(conn, old.id, grace=timedelta(minutes=10))
    assert apikeys.authenticate_key(conn, old.key).id == old.id
    assert apikeys.authenticate_key(conn, new.key).id == new.id
    with pytest.raises(SecurityError):
        apikeys.authenticate_key(conn, old.key, now=utcnow() + timedelta(minutes=11))


def test_listing_and_bad_requests(conn: psycopg.Connection[Any]) -> None:
    created = apikeys.create_key(conn, name="listed", role="admin")
    apikeys.revoke_key(conn, created.id)
    assert created.id in [k.id for k in apikeys.list_keys(conn)]
    assert created.id not in [k.id for k in apikeys.list_keys(conn, include_revoked=False)]
    with pytest.raises(SecurityError) as info:
        apikeys.revoke_key(conn, "0000000000000000")
    assert info.value.http_status == 404
    with pytest.raises(SecurityError):
        apikeys.get_key(conn, "not-an-id'; drop table x")
    for bad in ({"name": ""}, {"role": "root"}, {"scopes": ["admin"]}, {"expires_in": timedelta(0)}):
        args: dict[str, Any] = {"name": "x", "role": "teller"} | bad
        with pytest.raises(SecurityError) as info:
            apikeys.create_key(conn, **args)
        assert info.value.http_status == 400


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("", "0d", "30", "1y", "-1d", "9" * 20, "99999d"):
        with pytest.raises(SecurityError):
            parse_duration(bad)
