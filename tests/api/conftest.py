"""A real API server (``python -m qenex serve`` as a subprocess on a free port) over a fresh,
migrated PostgreSQL database, plus helpers to mint credentials straight in that database."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from qenex.config import Settings, load_settings

TEST_SECRET_KEY = "api-test-secret-key-0123456789abcdef012345"
TEST_JWT_SECRET = "api-test-jwt-secret-0123456789abcdef012345"
# One master key for every test server on the shared database: data keys and the audit signing
# key sealed by one server open in another (each would otherwise make its own development key).
TEST_MASTER_KEY = "cWVuZXgtYXBpLXRlc3QtbWFzdGVyLWtleS0zMmJ5dGU="
SERVER_START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_database(admin_url: str) -> tuple[str, str]:
    """(name, url) of a new, empty database on the test server."""
    name = f"qenex_api_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return name, psycopg.conninfo.make_conninfo(**info)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class ApiServer:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    db_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def server_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QENEX_")}
    env.update({
        "QENEX_ENV": "test",
        "QENEX_DATABASE_URL": db_url,
        "QENEX_DATA_DIR": str(data_dir),
        "QENEX_SECRET_KEY": TEST_SECRET_KEY,
        "QENEX_JWT_SECRET": TEST_JWT_SECRET,
        "QENEX_LOG_LEVEL": "WARNING",
        "QENEX_SECURITY_MAX_LOGIN_ATTEMPTS": "3",
        "QENEX_MASTER_KEY": TEST_MASTER_KEY,
    })
    env.update(extra)
    return env


def start_server(db_url: str, data_dir: Path, *, args: list[str] | None = None, **extra: str) -> ApiServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qenex", "serve", "--host", "127.0.0.1", "--port", str(port), *(args or [])],
            env=server_env(db_url, data_dir, **extra), stdout=log, stderr=subprocess.STDOUT)
    server = ApiServer(f"http://127.0.0.1:{port}", port, proc, log_path, db_url)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


@pytest.fixture(scope="session")
def api_db_url(pg_admin_url: str) -> Iterator[str]:
    from qenex.store.migrate import migrate

    name, url = new_database(pg_admin_url)
    migrate(url)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def server(api_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_server(api_db_url, tmp_path_factory.mktemp("api-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings({"env": "test", "security": {"secret_key": TEST_SECRET_KEY, "jwt_secret": TEST_JWT_SECRET,
                                                      "max_login_attempts": 3}}, environ={})


def in_process_settings(db_url: str, data_dir: Path, **sections: Any) -> Settings:
    """Settings for the app run inside the test process (TestClient) on the test database, with
    the test secrets and master key and nothing from the environment; ``sections`` are added."""
    return load_settings({"env": "test", "data_dir": str(data_dir), "database": {"url": db_url},
                          "security": {"secret_key": TEST_SECRET_KEY, "jwt_secret": TEST_JWT_SECRET,
                                       "master_key": TEST_MASTER_KEY}} | sections, environ={})


def drop_app_log_handler() -> None:
    """The app's lifespan installs its root log handler on the test's captured stderr: take it away."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "qenex-root":
            root.removeHandler(handler)


@pytest.fixture()
def db(api_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(api_db_url, autocommit=True) as conn:
        yield conn


def make_key(db_url: str, role: str, *, scopes: list[str] | None = None, owner_id: str | None = None,
             **kwargs: Any) -> str:
    from qenex.security import apikeys

    with psycopg.connect(db_url, autocommit=True) as conn:
        return apikeys.create_key(conn, name=f"test-{role}", role=role, scopes=scopes, owner_id=owner_id,
                                  **kwargs).key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def admin_key(api_db_url: str) -> str:
    return make_key(api_db_url, "admin")


@pytest.fixture()
def client(server: ApiServer, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=auth(admin_key), timeout=30) as c:
        yield c


# Ledger mutations reach the audit trail through the outbox relay, a moment after the response.
AUDIT_RELAY_WAIT_S = 15.0


def await_audit(server: ApiServer, auditor: str, match: Any, **params: str) -> list[dict[str, Any]]:
    """The audit events matching ``params`` once ``match(events)`` holds (polled until
    AUDIT_RELAY_WAIT_S); the last events seen otherwise, for the caller's assertion to show."""
    deadline = time.monotonic() + AUDIT_RELAY_WAIT_S
    while True:
        response = httpx.get(server.url + "/api/v1/audit/events", params=params | {"limit": "1000"},
                             headers=auth(auditor), timeout=30)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["items"]
        if match(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)
