"""Shared test fixtures: a real PostgreSQL for every test session, never a fake.

The server is the embedded one (pgserver) under ``.qenex-test/`` unless
``QENEX_TEST_DATABASE_URL`` names an admin URL of an external server. Each pytest process
gets its own freshly created database, dropped at the end, so parallel runs never collide.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
TEST_DATA_DIR = REPO_ROOT / ".qenex-test"


def _admin_url() -> str:
    url = os.environ.get("QENEX_TEST_DATABASE_URL")
    if url:
        return url
    from qenex.store.embedded import embedded_url

    return embedded_url(TEST_DATA_DIR)


def _with_dbname(admin_url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def create_database(admin_url: str, prefix: str = "qenex_t") -> str:
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
def pg_session_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this pytest process."""
    name = create_database(pg_admin_url)
    yield _with_dbname(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture()
def fresh_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test (for migration and crash tests)."""
    name = create_database(pg_admin_url)
    yield _with_dbname(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared is absent ({SHARED_DIR}); shared conformance data not available")
    return SHARED_DIR


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("QENEX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not _reachable(host or "127.0.0.1", int(port or 6379)):
        pytest.skip(f"Redis not reachable at {host_port}; set QENEX_TEST_REDIS_URL or start redis-server")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
