"""Fixtures for the security tests: a real, migrated PostgreSQL database and settings with secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from qenex.config import Settings, load_settings

TEST_SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"


def migrate(url: str) -> None:
    from qenex.store.migrate import migrate as run_migrations

    run_migrations(url)


@pytest.fixture(scope="session")
def security_db_url(pg_session_url: str) -> str:
    """The session database with every migration applied (security, audit, ledger)."""
    migrate(pg_session_url)
    return pg_session_url


@pytest.fixture()
def conn(security_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(security_db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture()
def settings() -> Settings:
    return load_settings(
        {
            "env": "test",
            "security": {
                "secret_key": TEST_SECRET_KEY,
                "jwt_secret": TEST_JWT_SECRET,
                "max_login_attempts": 3,
                "session_timeout_minutes": 30,
                "token_ttl_seconds": 300,
            },
        },
        environ={},
    )


def audit_trail(conn: psycopg.Connection[Any], resource: str) -> list[tuple[str, str]]:
    """(action, outcome) of the audit records about ``resource``, oldest first."""
    rows = conn.execute("SELECT action, outcome FROM audit_log WHERE resource = %s ORDER BY id", (resource,))
    return [(r[0], r[1]) for r in rows.fetchall()]
