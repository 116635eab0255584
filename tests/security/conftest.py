"""Fixtures for the security tests: a real, migrated PostgreSQL database and settings with secrets."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

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


@pytest.fixture(scope="module")
def module_db(pg_admin_url: str) -> Iterator[str]:
    """One migrated database for the requesting module (creating one per test is slow on a busy
    machine); its tests start from empty S2 tables through ``reset_s2_tables``."""
    name = f"qenex_s2_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)
    migrate(url)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_s2_tables(url: str) -> None:
    """Empty the audit trail and the envelope's key tables."""
    # The audit tables refuse TRUNCATE through their triggers; a superuser in replica mode skips them.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute(
            "TRUNCATE audit_checkpoints, audit_signing_keys, audit_log, security_data_keys, security_master_keys"
        )


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
