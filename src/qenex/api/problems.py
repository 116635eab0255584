"""RFC 9457 ``application/problem+json`` for every error the API gives.

Each body carries the stable ``code`` of the error that caused it (the kernel's, the security
layer's, or one of the API's own below), so clients branch on ``code`` and never on text.
A user's mistake is always a 4xx; only a bug is a 500, and its body says nothing internal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any, Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from qenex.errors import QenexError
from qenex.observability.logging import get_request_id
from qenex.security.errors import SecurityError
from qenex.security.fastapi_deps import PROBLEM_JSON, problem, problem_responses
from qenex.security.inputs import INVALID_CHARACTERS

log = logging.getLogger("qenex.api")

VALIDATION_ERRORS_SHOWN_MAX: Final = 20
ERROR_TEXT_CHARS_MAX: Final = 300

# The API's own stable codes (the kernel and security layers define theirs).
INVALID_REQUEST: Final = "invalid_request"
MALFORMED_JSON: Final = "malformed_json"
BODY_TOO_LARGE: Final = "body_too_large"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
IDEMPOTENCY_CONFLICT: Final = "idempotency_conflict"
INTERNAL_ERROR: Final = "internal_error"
DATABASE_UNAVAILABLE: Final = "database_unavailable"
RETRY_AFTER_UNAVAILABLE_S: Final = 1


class ApiError(QenexError):
    """An API-level rejection (not found, conflict on an idempotency key, bad query...)."""

    def __init__(self, code: str, message: str, http_status: int = 400,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.http_status = http_status


def problem_response(status: int, code: str, detail: str, *, instance: str | None = None,
                     details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail[:ERROR_TEXT_CHARS_MAX],
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def error_response(request: Request, exc: QenexError) -> JSONResponse:
    """The problem+json response the exception handlers give for ``exc`` (security errors
    with their own headers and OAuth2 fields)."""
    if isinstance(exc, SecurityError):
        return problem(exc, request.url.path)
    return _qenex_error(request, exc)


def _qenex_error(request: Request, exc: QenexError) -> JSONResponse:
    status = int(getattr(exc, "http_status", 400))
    headers = getattr(exc, "headers", None)
    return problem_response(status, exc.code, exc.message, instance=request.url.path, details=exc.details or None,
                            headers=headers if isinstance(headers, dict) else None)


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without the offending input (it may be large or sensitive)."""
    out = []
    for err in errors[:VALIDATION_ERRORS_SHOWN_MAX]:
        loc = [str(p)[:60] for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:ERROR_TEXT_CHARS_MAX], "type": err.get("type", "")})
    return out


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, MALFORMED_JSON, "the request body is not valid JSON", instance=request.url.path)
    bad_text = [e for e in errors if e.get("type") in _TEXT_ERROR_TYPES]
    if bad_text:
        where = ".".join(str(p) for p in bad_text[0].get("loc", ()))[:120]
        return problem_response(400, INVALID_CHARACTERS, f"{where}: must not contain NUL or unpaired surrogate "
                                "characters", instance=request.url.path, details={"errors": _clean(bad_text)})
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))[:120]
    detail = f"{where}: {first.get('msg', 'invalid')}" if where else "the request is invalid"
    return problem_response(422, INVALID_REQUEST, detail, instance=request.url.path,
                            details={"errors": _clean(errors)})


# Pydantic's error for a str that is not valid Unicode (a lone surrogate), and our own for NUL
# and surrogates inside free-form JSON (`qenex.api.schemas`).
_TEXT_ERROR_TYPES: Final = frozenset({"string_unicode", INVALID_CHARACTERS})

_HTTP_CODES: Final = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: BODY_TOO_LARGE, 415: UNSUPPORTED_MEDIA_TYPE}


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, INVALID_REQUEST if exc.status_code < 500 else INTERNAL_ERROR)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)[:ERROR_TEXT_CHARS_MAX]
    return problem_response(exc.status_code, code, detail, instance=request.url.path,
                            headers=dict(exc.headers) if exc.headers else None)


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The database went away or every connection is busy: the client may retry (with its
    # Idempotency-Key, a retried write applies at most once).
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return problem_response(503, DATABASE_UNAVAILABLE, "the database is unavailable; retry shortly",
                            instance=request.url.path, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)})


def _bad_data(request: Request, exc: Exception) -> JSONResponse:
    # Safety net: the database refused a value (psycopg.DataError: NUL, out of range...) or text
    # could not be encoded. The request is checked before it gets this far, so reaching this is a
    # gap in that checking: it is logged (class only) for a fix, and the client gets a 400.
    log.warning("request data refused by the database or the encoder on %s %s: %s", request.method,
                request.url.path, exc.__class__.__name__)
    return problem_response(400, INVALID_REQUEST, "the request holds a value that cannot be stored",
                            instance=request.url.path)


INTERNAL_ERROR_DETAIL: Final = "internal error; the request id identifies it in the server log"


def internal_error_response(path: str) -> JSONResponse:
    return problem_response(500, INTERNAL_ERROR, INTERNAL_ERROR_DETAIL, instance=path)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Last resort (Starlette's ServerErrorMiddleware, outside every middleware): normally
    # `InternalErrorMiddleware` has already answered, with the request id.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response(request.url.path)


class InternalErrorMiddleware:
    """Turns an unhandled exception (a bug) into the 500 problem *inside* the request-id
    middleware, so the response carries ``X-Request-ID`` and the log line (with the traceback,
    redacted) carries ``request_id``. Starlette's own last-resort handler runs outside every
    middleware, after the request id is gone."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.error("unhandled error on %s %s", scope.get("method", ""), scope.get("path", ""), exc_info=exc,
                      extra={"request_id": get_request_id()})
            if started:  # too late for a problem response: let the server drop the connection
                raise
            await internal_error_response(str(scope.get("path", "")))(scope, receive, send_wrapper)


def install_problem_handlers(app: FastAPI) -> None:
    """QenexError (kernel, API, audit) and framework errors as problem+json. The security
    layer's own handler (`SecurityError`, with its headers) is installed by `install()`."""
    app.add_exception_handler(QenexError, _qenex_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.OperationalError, _unavailable)
    app.add_exception_handler(PoolTimeout, _unavailable)
    app.add_exception_handler(psycopg.DataError, _bad_data)
    app.add_exception_handler(UnicodeError, _bad_data)
    app.add_exception_handler(Exception, _unexpected)


# OpenAPI helpers: what each kind of route can answer besides its success.
READ_RESPONSES = problem_responses(400, 401, 403, 404, 422, 429)
WRITE_RESPONSES = problem_responses(400, 401, 403, 404, 409, 413, 422, 429)
