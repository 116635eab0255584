"""A bug (an unhandled exception) gives the 500 problem with the request's X-Request-ID, and the
server's log line carries the same request id. The failure is forced with a test-only dependency
override on the real application (real PostgreSQL), never with a debug route in the product."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qenex.api.app import create_app
from qenex.config import Settings
from qenex.security.fastapi_deps import bearer_scheme

from .conftest import auth, drop_app_log_handler, in_process_settings, make_key


class ForcedBug(RuntimeError):
    pass


def _boom() -> None:
    raise ForcedBug("forced by the test")


@pytest.fixture()
def app_settings(api_db_url: str, tmp_path: Path) -> Iterator[Settings]:
    yield in_process_settings(api_db_url, tmp_path)
    drop_app_log_handler()


def test_500_carries_the_request_id_in_header_and_log(api_db_url: str, app_settings: Settings,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(app_settings)
    app.dependency_overrides[bearer_scheme] = _boom  # every authenticated route now fails inside the app
    key = make_key(api_db_url, "admin")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/accounts", headers=auth(key) | {"X-Request-ID": "bug-7f3a"})
        generated = client.post("/api/v1/accounts", json={"owner_id": "x"}, headers=auth(key))
        healthy = client.get("/health")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "bug-7f3a"
    body = response.json()
    assert body["code"] == "internal_error" and "forced" not in json.dumps(body)  # nothing internal leaks
    assert generated.status_code == 500 and len(generated.headers["x-request-id"]) == 32  # a new id when none
    assert healthy.status_code == 200
    lines: list[dict[str, Any]] = []
    for line in capsys.readouterr().err.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    errors = [entry for entry in lines if entry.get("level") == "ERROR" and "unhandled error" in entry.get("msg", "")]
    assert {e["request_id"] for e in errors} == {"bug-7f3a", generated.headers["x-request-id"]}
    assert all(e["exc_type"] == "ForcedBug" for e in errors)
