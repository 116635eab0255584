"""A development server with no QENEX_SECRET_KEY / QENEX_JWT_SECRET still issues tokens: it generates
per-install secrets into the data directory, shared by the server and the `qenex keys` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from .conftest import drop_database, new_database, server_env, start_server


@pytest.fixture()
def dev_db_url(pg_admin_url: str) -> Iterator[str]:
    """Its own database: the session one holds token signing keys sealed under the test JWT secret,
    which the freshly generated development secret cannot open."""
    from qenex.store.migrate import migrate

    name, url = new_database(pg_admin_url)
    migrate(url)
    yield url
    drop_database(pg_admin_url, name)


def test_dev_server_without_secrets_issues_tokens(dev_db_url, tmp_path):
    api_db_url = dev_db_url
    data_dir = tmp_path / "dev"
    env_extra = {"QENEX_ENV": "development", "QENEX_SECRET_KEY": "", "QENEX_JWT_SECRET": ""}
    env = {k: v for k, v in server_env(api_db_url, data_dir, **env_extra).items()
           if k not in ("QENEX_SECRET_KEY", "QENEX_JWT_SECRET")}
    created = subprocess.run(
        [sys.executable, "-m", "qenex", "keys", "client-create", "--name", "dev", "--role", "auditor", "--json"],
        env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    assert (data_dir / "dev-secrets.json").exists()

    srv = start_server(api_db_url, data_dir, **env_extra)
    try:
        form = {"grant_type": "client_credentials", "client_id": client["client_id"],
                "client_secret": client["client_secret"]}
        issued = httpx.post(srv.url + "/api/v1/auth/token", data=form, timeout=30)
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        events = httpx.get(srv.url + "/api/v1/audit/events", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert events.status_code == 200, events.text
    finally:
        srv.stop()
