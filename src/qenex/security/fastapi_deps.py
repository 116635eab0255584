"""FastAPI adapters for `SecurityService`: dependencies, the problem+json error handler, and
the auth routes (OAuth2 token endpoint, JWKS, operator login/logout).

Usage in the API::

    service = SecurityService(settings, pool.connection)
    install(app, service)
    app.include_router(auth_router(), prefix="/api/v1")

    @app.get("/api/v1/accounts")
    def list_accounts(principal: Principal = Depends(require_scopes("accounts:read"))): ...

Dependencies are plain ``def`` functions: FastAPI runs them in its thread pool, so the few
blocking database reads (cache misses) never stall the event loop.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, FastAPI, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from qenex.security.errors import (
    INVALID_CLIENT,
    INVALID_GRANT,
    INVALID_SCOPE,
    INVALID_SECURITY_REQUEST,
    SecurityError,
    bad_request,
)
from qenex.security.inputs import INVALID_CHARACTERS_MESSAGE, forbidden_text, refuse_forbidden
from qenex.security.rbac import Principal
from qenex.security.service import SecurityService

STATE_ATTR = "qenex_security"
TOKEN_FORM_BYTES_MAX = 4096
PROBLEM_JSON = "application/problem+json"
_OAUTH_ERRORS = {INVALID_CLIENT, INVALID_SCOPE, INVALID_GRANT}
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 section 5.1

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (qnx_...), an OAuth2 access token (JWT) or an operator session token (qns_...).",
)


def install(app: FastAPI, service: SecurityService) -> None:
    """Attach the service to the app and render `SecurityError` as RFC 9457 problem+json."""
    setattr(app.state, STATE_ATTR, service)
    app.add_exception_handler(SecurityError, security_error_handler)  # type: ignore[arg-type]


def security_service(request: Request) -> SecurityService:
    service = getattr(request.app.state, STATE_ATTR, None)
    if not isinstance(service, SecurityService):
        raise RuntimeError("qenex.security.fastapi_deps.install(app, service) was not called")
    return service


def client_ip(request: Request) -> str | None:
    """The peer address. Behind a reverse proxy, run uvicorn with --proxy-headers and
    --forwarded-allow-ips so this is the real client, not the proxy."""
    return request.client.host if request.client else None


def problem(exc: SecurityError, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": exc.code.replace("_", " "),
        "status": exc.http_status,
        "detail": exc.message,
        "code": exc.code,
    }
    if instance:
        body["instance"] = instance
    if exc.details:
        body["details"] = exc.details
    if exc.code in _OAUTH_ERRORS:  # RFC 6749 section 5.2 field names, for OAuth2 client libraries
        body["error"] = exc.code
        body["error_description"] = exc.message
    return JSONResponse(body, status_code=exc.http_status, headers=exc.headers, media_type=PROBLEM_JSON)


def security_error_handler(request: Request, exc: SecurityError) -> JSONResponse:
    return problem(exc, request.url.path)


def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    """Authenticate the request (401 / 429 otherwise) and remember the principal on ``request.state``."""
    service = security_service(request)
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else request.headers.get("authorization")
    principal = service.authenticate(header, source_ip=client_ip(request))
    request.state.principal = principal
    return principal


def require_scopes(*scopes: str) -> Callable[..., Principal]:
    """A dependency that authenticates and then demands every scope in ``scopes`` (403 otherwise)."""

    def dependency(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
        service = security_service(request)
        for scope in scopes:
            service.authorize(principal, scope, source_ip=client_ip(request),
                              resource=f"{request.method} {request.url.path}")
        return principal

    dependency.__name__ = "require_" + "_".join(s.replace(":", "_") for s in scopes)
    return dependency


# --- auth routes ------------------------------------------------------------------------------


class TokenResponseBody(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(refuse_forbidden)]
    password: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(refuse_forbidden)]
    totp_code: Annotated[str | None, Field(max_length=10), AfterValidator(refuse_forbidden)] = None


class LoginResponseBody(BaseModel):
    session_token: str
    token_type: str = "Bearer"  # noqa: S105 - RFC 6750 token type
    expires_at: str
    operator_id: str
    username: str
    role: str


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 section 2.3.1): form-urlencoded id and secret in HTTP Basic."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SecurityError(INVALID_CLIENT, "client authentication failed") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise SecurityError(INVALID_CLIENT, "client authentication failed")
    return unquote(client_id), unquote(secret)


async def _token_form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise bad_request("the token request must be application/x-www-form-urlencoded (RFC 6749 section 4.4.2)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > TOKEN_FORM_BYTES_MAX:
            raise SecurityError(INVALID_SECURITY_REQUEST, f"the token request is larger than {TOKEN_FORM_BYTES_MAX}"
                                " bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the token request body is not a valid form") from None
    if any(len(values) > 1 for values in fields.values()):
        raise bad_request("each token request parameter may appear once (RFC 6749 section 3.2)")
    if any(forbidden_text(key) or forbidden_text(values[0]) for key, values in fields.items()):
        raise bad_request("token request parameters " + INVALID_CHARACTERS_MESSAGE)
    return {key: values[0] for key, values in fields.items()}


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "code": {"type": "string"}, "instance": {"type": "string"},
        "error": {"type": "string"}, "error_description": {"type": "string"}, "details": {"type": "object"},
    },
}
_TOKEN_REQUEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string", "maxLength": 64},
                "client_secret": {"type": "string", "maxLength": 256},
                "scope": {"type": "string", "maxLength": 1000},
            },
        }}},
    }
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json error responses a route can give."""
    return {status: {"description": "RFC 9457 problem", "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
            for status in statuses}


# What every route behind `require_scopes` can answer besides its own responses.
SECURED_RESPONSES = problem_responses(401, 403, 429)


def auth_router(prefix: str = "") -> APIRouter:
    """``POST /auth/token``, ``GET /auth/jwks``, ``POST /auth/login``, ``POST /auth/logout``
    (under ``prefix``: give it here rather than to ``include_router``, so that each route knows its
    full path, which metrics and traces name it by)."""
    router = APIRouter(prefix=prefix + "/auth", tags=["auth"])

    @router.post("/token", response_model=TokenResponseBody, responses=problem_responses(400, 401, 429),
                 openapi_extra=_TOKEN_REQUEST_OPENAPI)
    async def token(request: Request) -> JSONResponse:
        """OAuth2 client-credentials grant (RFC 6749 section 4.4): form body with grant_type,
        client_id, client_secret (or HTTP Basic) and optional scope."""
        service = security_service(request)
        form = await _token_form(request)
        basic = _basic_credentials(request.headers.get("authorization"))
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        issued = await run_in_threadpool(
            service.issue_token, client_id, secret, form.get("scope"), grant_type=form.get("grant_type", ""),
            source_ip=client_ip(request),
        )
        return JSONResponse(issued.to_dict(), headers=_NO_STORE)

    @router.get("/jwks")
    def jwks(request: Request) -> dict[str, Any]:
        """The public keys that verify access tokens (JWK Set, RFC 7517)."""
        return security_service(request).jwks()

    @router.post("/login", response_model=LoginResponseBody, responses=problem_responses(401, 403, 429))
    def login(request: Request, body: LoginBody) -> JSONResponse:
        """Operator login: password and TOTP code together; returns a session token."""
        result = security_service(request).login(body.username, body.password, body.totp_code,
                                                 source_ip=client_ip(request))
        payload = LoginResponseBody(
            session_token=result.session.token, expires_at=result.session.expires_at.isoformat(),
            operator_id=result.principal.id, username=result.principal.name, role=result.principal.role,
        )
        return JSONResponse(payload.model_dump(), headers=_NO_STORE)

    @router.post("/logout", status_code=204, responses=problem_responses(400, 401, 429))
    async def logout(request: Request, principal: Principal = Depends(current_principal)) -> Response:
        """End the operator session presented in the Authorization header."""
        if principal.kind != "operator":
            raise bad_request("only an operator session can be logged out")
        header = request.headers.get("authorization", "")
        await run_in_threadpool(security_service(request).logout, header.partition(" ")[2].strip(),
                                actor=principal.actor, source_ip=client_ip(request))
        return Response(status_code=204)

    return router
