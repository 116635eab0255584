"""Structured JSON logs with a request id, and a redaction filter in front of every handler.

* ``configure_logging(settings)`` installs one handler on the root logger: one JSON object per
  line (``ts, level, logger, msg, request_id`` plus any ``extra=`` fields), or plain text when
  ``observability.log_json`` is false. Idempotent.
* ``RequestIdMiddleware`` (ASGI) takes a well-formed ``X-Request-ID`` from the client or makes a
  new one, stores it in a context variable for every log line of the request, and echoes it in
  the response headers.
* ``RedactionFilter`` scrubs bearer tokens, API keys, ``password=...``-style pairs and card
  numbers from the message and the extra fields, and drops secret-named extras entirely.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from qenex.config import Settings
from qenex.observability.asgi import ASGIApp, Message, Receive, Scope, Send
from qenex.observability.redaction import REDACTED, is_secret_key, redact_text, redact_value

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_CHARS_MAX = 64
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_HANDLER_NAME = "qenex-root"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

request_id_var: ContextVar[str | None] = ContextVar("qenex_request_id", default=None)

# Attributes every LogRecord has; anything else came from `extra=` and is emitted as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys() | {"message", "asctime", "request_id"}
)


def get_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """The client's id if it is short and plain (it is echoed into logs), else a new one."""
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return new_request_id()


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Bind a request id to the current context (for workers and CLI jobs, outside ASGI)."""
    rid = accept_request_id(request_id)
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


class RedactionFilter(logging.Filter):
    """Rewrites each record in place so that no handler can see a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key in list(vars(record)):
            if key in _STANDARD_ATTRS:
                continue
            value = getattr(record, key)
            setattr(record, key, REDACTED if is_secret_key(key) else redact_value(value))
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", None) or request_id_var.get() or "-"
        text = super().format(record)
        return redact_text(text) if record.exc_info else text


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install (or replace) the QENEX handler on the root logger; returns it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactionFilter())
    if settings.observability.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_PlainFormatter(PLAIN_FORMAT))
    root.addHandler(handler)
    root.setLevel(settings.observability.log_level)
    return handler


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping for ``uvicorn.run(..., log_config=...)``: uvicorn's
    own loggers (including the access log, whose query strings may carry secrets) go through the
    same redaction filter and formatter as QENEX's."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if settings.observability.log_json
        else {"()": f"{__name__}._PlainFormatter", "fmt": PLAIN_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "qenex",
        "filters": ["redact"],
    }
    level = settings.observability.log_level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.RedactionFilter"}},
        "formatters": {"qenex": formatter},
        "handlers": {_HANDLER_NAME: handler},
        "loggers": {
            name: {"handlers": [_HANDLER_NAME], "level": level, "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": [_HANDLER_NAME], "level": level},
    }


# -- ASGI ----------------------------------------------------------------------------------------

def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            try:
                return str(value.decode("latin-1"))[: REQUEST_ID_CHARS_MAX + 1]
            except (AttributeError, UnicodeDecodeError):
                return None
    return None


class RequestIdMiddleware:
    """Binds a request id for the duration of each HTTP/WebSocket request and returns it as a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = accept_request_id(_header(scope, REQUEST_ID_HEADER.encode()))
        scope.setdefault("state", {})["request_id"] = rid

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message["headers"] = headers
            await send(message)

        token = request_id_var.set(rid)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id_var.reset(token)
