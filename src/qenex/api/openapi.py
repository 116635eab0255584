"""What ``/openapi.json`` says beyond FastAPI's own generation:

* every operation documents the two problems any route can give besides its own: 500
  ``internal_error`` (a bug; the body says nothing internal, ``X-Request-ID`` identifies it in the
  log) and 503 ``database_unavailable`` (with ``Retry-After``);
* the OAuth2 client-credentials scheme (``POST /api/v1/auth/token``) is declared beside the bearer
  scheme, and each secured operation accepts either, naming the scopes it needs;
* the WebSocket ``/stream`` (which OpenAPI cannot describe as an operation) is described in the
  info description and in a top-level ``x-websocket`` extension.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from qenex.api.problems import DATABASE_UNAVAILABLE, INTERNAL_ERROR
from qenex.security import rbac
from qenex.security.fastapi_deps import problem_responses

OAUTH2_SCHEME: Final = "oauth2"
BEARER_SCHEME: Final = "bearer"
TOKEN_URL: Final = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret
SCOPES_ATTR: Final = "qenex_scopes"

SCOPE_DESCRIPTIONS: Final = {
    rbac.ACCOUNTS_READ: "Read accounts, balances and statements",
    rbac.ACCOUNTS_WRITE: "Open accounts",
    rbac.TRANSACTIONS_READ: "Read transactions; receive the event stream",
    rbac.TRANSACTIONS_WRITE: "Make transactions (single and batch)",
    rbac.TRANSACTIONS_MANAGE: "Post, void and reverse transactions",
    rbac.AUDIT_READ: "Read the audit trail",
    rbac.KEYS_MANAGE: "Manage credentials",
    rbac.ADMIN: "Everything",
}

STREAM_EVENTS: Final = ("transaction.created", "transaction.completed", "transaction.voided", "transaction.expired")

DESCRIPTION: Final = (
    "QENEX financial operating system: ledger accounts and transactions over HTTP. Money is a decimal "
    "string; errors are RFC 9457 problem+json with a stable `code`.\n\n"
    "**WebSocket `/stream`** (not an HTTP operation, so not listed under paths): connect with "
    "`Authorization: Bearer <credential>` (or `?access_token=` from a browser); the credential needs the "
    "`transactions:read` scope. Each ledger event arrives as one JSON text message with `event` ("
    + ", ".join(f"`{e}`" for e in STREAM_EVENTS)
    + "), `transaction_id`, `seq`, `type`, `amount`, `currency`, `from_account`, `to_account`. A customer "
    "credential receives only events touching its own accounts. The server re-checks the credential "
    "every few seconds and at its expiry, and closes the socket with code 1008 once it is revoked or "
    "expired (1013 for a subscriber too slow to keep up). See also `x-websocket`."
)

X_WEBSOCKET: Final[dict[str, Any]] = {
    "/stream": {
        "summary": "Ledger events, pushed as they happen",
        "authentication": ["Authorization: Bearer <credential>", "?access_token=<credential>"],
        "scope": rbac.TRANSACTIONS_READ,
        "messages": {"format": "one JSON object per text message", "events": list(STREAM_EVENTS)},
        "close_codes": {"1008": "authentication failed, or the credential was revoked or expired",
                        "1013": "subscriber too slow; reconnect"},
    }
}


def _responses() -> dict[str, Any]:
    problems = problem_responses(500, 503)
    problems[500] = problems[500] | {
        "description": f"RFC 9457 problem, code {INTERNAL_ERROR}: a server bug (X-Request-ID identifies it in the log)"}
    problems[503] = problems[503] | {
        "description": f"RFC 9457 problem, code {DATABASE_UNAVAILABLE}: retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    return {str(status): value for status, value in problems.items()}


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]  # empty for a WebSocket route
    dependant: Dependant | None


def app_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Every route of ``app`` with its full path (prefixes of included routers applied)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were kept as such: the routes are flat
        contexts: Iterable[Any] = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    for route in contexts:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield RouteInfo(path, frozenset(getattr(route, "methods", None) or ()),
                            getattr(route, "dependant", None))


def dependency_calls(dependant: Dependant | None) -> Iterator[Any]:
    """Every callable in a route's dependency tree (security schemes included)."""
    stack = list(dependant.dependencies) if dependant is not None else []
    while stack:
        dep = stack.pop()
        yield dep.call
        stack.extend(dep.dependencies)


def route_scopes(dependant: Dependant | None) -> tuple[str, ...] | None:
    """The scopes a route's authentication dependency demands, or None when it has none."""
    for call in dependency_calls(dependant):
        scopes = getattr(call, SCOPES_ATTR, None)
        if scopes is not None:
            return tuple(scopes)
    return None


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[OAUTH2_SCHEME] = {
            "type": "oauth2",
            "description": "OAuth2 client credentials (RFC 6749 section 4.4): a short-lived Ed25519-signed JWT, "
                           "presented as Authorization: Bearer.",
            "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": dict(SCOPE_DESCRIPTIONS)}},
        }
        scoped = {(route.path, method.lower()): scopes for route in app_routes(app)
                  for method in route.methods if (scopes := route_scopes(route.dependant)) is not None}
        extra = _responses()
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                responses = operation.setdefault("responses", {})
                for status, response in extra.items():
                    responses.setdefault(status, response)
                scopes = scoped.get((path, method))
                if scopes is not None and operation.get("security"):
                    operation["security"] = [{BEARER_SCHEME: []}, {OAUTH2_SCHEME: sorted(scopes)}]
        schema["x-websocket"] = X_WEBSOCKET
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
