"""Structured JSON logs: request id from context and middleware, redaction of secrets and PANs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qenex.config import load_settings
from qenex.observability.logging import (
    RequestIdMiddleware,
    configure_logging,
    get_request_id,
    request_context,
    uvicorn_log_config,
)


@pytest.fixture()
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = configure_logging(load_settings({"observability": {"log_level": "DEBUG"}}, environ={}), stream=buf)
    yield buf
    logging.getLogger().removeHandler(handler)


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_with_request_id_and_extras(stream: io.StringIO) -> None:
    log = logging.getLogger("qenex.test")
    log.info("outside a request")
    with request_context("req-42") as rid:
        assert rid == "req-42" and get_request_id() == "req-42"
        log.warning("transfer %s done", "tx-1", extra={"account": "acc-1", "amount": "10.00"})
    assert get_request_id() is None
    first, second = _lines(stream)
    assert first["request_id"] is None and first["level"] == "INFO" and first["logger"] == "qenex.test"
    assert second["msg"] == "transfer tx-1 done" and second["request_id"] == "req-42"
    assert second["account"] == "acc-1" and second["amount"] == "10.00"
    assert str(second["ts"]).endswith("Z")


def test_secrets_and_card_numbers_are_redacted(stream: io.StringIO) -> None:
    log = logging.getLogger("qenex.test")
    log.info("auth header Authorization: Bearer qnx_abc_def0123456789xyz for card 4111-1111-1111-1111")
    log.info("login", extra={"password": "hunter2", "note": "pin 5500 0000 0000 0004 used", "api_key": "k"})
    log.info("config password=hunter2 token: abc.def.ghi ok")
    try:
        raise ValueError("bad card 4012888888881881")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    for secret in ("hunter2", "qnx_abc_def0123456789xyz", "4111-1111-1111-1111", "5500 0000 0000 0004",
                   "abc.def.ghi", "4012888888881881"):
        assert secret not in text, secret
    lines = _lines(stream)
    assert "[PAN ****1111]" in str(lines[0]["msg"])
    assert lines[1]["password"] == "[REDACTED]" and lines[1]["api_key"] == "[REDACTED]"
    assert lines[3]["exc_type"] == "ValueError" and "****1881" in str(lines[3]["exc"])
    # Ordinary numbers (amounts, ids) are left alone.
    log.info("amount 1234567890123 cents")  # 13 digits, not Luhn-valid
    assert "1234567890123" in _lines(stream)[-1]["msg"]  # type: ignore[operator]


def test_plain_text_mode_is_redacted_too() -> None:
    buf = io.StringIO()
    handler = configure_logging(load_settings({"observability": {"log_json": False}}, environ={}), stream=buf)
    try:
        with request_context("abc"):
            logging.getLogger("qenex.test").warning("secret=topsecret value")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "topsecret" not in buf.getvalue() and "[abc]" in buf.getvalue()


def test_request_id_middleware(stream: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str | None]:
        logging.getLogger("qenex.api").info("ping")
        return {"rid": get_request_id()}

    app.add_middleware(RequestIdMiddleware)
    client = TestClient(app)
    given = client.get("/ping", headers={"X-Request-ID": "client-id-1"})
    assert given.headers["x-request-id"] == "client-id-1" and given.json()["rid"] == "client-id-1"
    made = client.get("/ping")
    assert len(made.headers["x-request-id"]) == 32 and made.json()["rid"] == made.headers["x-request-id"]
    hostile = client.get("/ping", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 100})
    assert hostile.headers["x-request-id"] != "bad id" and " " not in hostile.headers["x-request-id"]
    ids = [line["request_id"] for line in _lines(stream) if line["msg"] == "ping"]
    assert ids == ["client-id-1", made.headers["x-request-id"], hostile.headers["x-request-id"]]


def test_uvicorn_loggers_share_redaction_and_format() -> None:
    import logging.config

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buf = io.StringIO()
    config = uvicorn_log_config(load_settings({}, environ={}))
    config["handlers"]["qenex-root"]["stream"] = buf  # dictConfig passes it to StreamHandler
    access = logging.getLogger("uvicorn.access")
    saved_access = (list(access.handlers), access.propagate, access.level)
    try:
        logging.config.dictConfig(config)
        with request_context("rid-9"):
            # uvicorn's access line format, with a secret in the query string
            access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", "/x?api_key=sekrit123&a=1", "1.1", 200)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        access.handlers, access.propagate, access.level = saved_access[0], saved_access[1], saved_access[2]
    line = json.loads(buf.getvalue().splitlines()[-1])
    assert line["logger"] == "uvicorn.access" and line["request_id"] == "rid-9"
    assert "sekrit123" not in line["msg"] and "a=1" in line["msg"]
