"""RFC 9457 ``application/problem+json`` for every error the API gives.

Each body carries the stable ``code`` of the error that caused it (the kernel's, the security
layer's, or one of the API's own below), so clients branch on ``code`` and never on text.
A user's mistake is always a 4xx; only a bug is a 500, and its body says nothing internal.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from qenex.errors import QenexError
from qenex.security.fastapi_deps import PROBLEM_JSON, problem_responses

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
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))[:120]
    detail = f"{where}: {first.get('msg', 'invalid')}" if where else "the request is invalid"
    return problem_response(422, INVALID_REQUEST, detail, instance=request.url.path,
                            details={"errors": _clean(errors)})


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


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug: log it (the formatter redacts), answer without any internal detail.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, INTERNAL_ERROR, "internal error; the request id identifies it in the server log",
                            instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """QenexError (kernel, API, audit) and framework errors as problem+json. The security
    layer's own handler (`SecurityError`, with its headers) is installed by `install()`."""
    app.add_exception_handler(QenexError, _qenex_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.OperationalError, _unavailable)
    app.add_exception_handler(PoolTimeout, _unavailable)
    app.add_exception_handler(Exception, _unexpected)


# OpenAPI helpers: what each kind of route can answer besides its success.
READ_RESPONSES = problem_responses(400, 401, 403, 404, 422, 429)
WRITE_RESPONSES = problem_responses(400, 401, 403, 404, 409, 413, 422, 429)
