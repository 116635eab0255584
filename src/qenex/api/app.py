"""The ASGI application: ``create_app(settings)`` (FastAPI).

Layers, outermost first: request id, internal-error catcher (so a 500 carries the request id),
tracing, metrics, request guard (NUL in path/query/headers, body-size limit), then FastAPI with
problem+json handlers. Every ``/api/v1`` route except ``/auth/token``, ``/auth/login`` and
``/auth/jwks`` requires authentication. The lifespan opens the ledger kernel, the connection
pools, the security service, the audit writer and the event stream source, and closes them in
reverse order; it also rotates encryption keys that ``security.key_rotation_days`` says are due.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Final, cast

import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from qenex import __version__
from qenex.api.accounts import accounts_router
from qenex.api.audit_routes import audit_router
from qenex.api.auditing import AuditWriter
from qenex.api.deps import ApiContext
from qenex.api.idempotency import purge_expired
from qenex.api.openapi import install_openapi
from qenex.api.problems import (
    BODY_TOO_LARGE,
    InternalErrorMiddleware,
    install_problem_handlers,
    problem_response,
)
from qenex.api.stream import WS_POLICY_VIOLATION, EventHub, EventSource, OwnerCache, stream_router
from qenex.api.system import status_router, system_router
from qenex.api.transactions import transactions_router
from qenex.config import ConfigError, Settings, load_settings, with_development_secrets
from qenex.observability.logging import RequestIdMiddleware, configure_logging
from qenex.observability.metrics import MetricsMiddleware, mark_worker_dead, start_metrics_server
from qenex.observability.tracing import TracingMiddleware, configure_tracing, shutdown_tracing
from qenex.sdk.kernel import FinancialKernel
from qenex.security import audit as audit_log
from qenex.security.envelope import rotate_if_due
from qenex.security.errors import SecurityError
from qenex.security.fastapi_deps import STATE_ATTR, auth_router, security_error_handler
from qenex.security.inputs import INVALID_CHARACTERS
from qenex.security.keyproviders import MasterKeyProvider, provider_from_settings
from qenex.security.ratelimit import (
    IP_BURST_DEFAULT,
    IP_RATE_PER_S_DEFAULT,
    PRINCIPAL_BURST_DEFAULT,
    PRINCIPAL_RATE_PER_S_DEFAULT,
    ApiRateLimits,
)
from qenex.security.service import SecurityService

log = logging.getLogger("qenex.api")

API_PREFIX: Final = "/api/v1"
API_POOL_SIZE_MAX: Final = 8
SECURITY_POOL_SIZE_MAX: Final = 16
PURGE_INTERVAL_S: Final = 600.0
# How often a running server checks whether encryption keys are due for rotation.
KEY_ROTATION_CHECK_INTERVAL_S: Final = 6 * 3600.0
NATIVE_TELEMETRY_OFF: Final[dict[str, Any]] = {"tracing": False, "metrics": False, "logs": False,
                                               "operation_spans": False}
# Routes under /api/v1 that answer without a credential (everything else requires one).
PUBLIC_API_ROUTES: Final = frozenset({f"{API_PREFIX}/auth/token", f"{API_PREFIX}/auth/login",
                                      f"{API_PREFIX}/auth/jwks"})
# Rate-limit overrides: "<requests per second>/<burst>", e.g. QENEX_API_RATE_PRINCIPAL=5000/10000.
RATE_PRINCIPAL_ENV: Final = "QENEX_API_RATE_PRINCIPAL"
RATE_IP_ENV: Final = "QENEX_API_RATE_IP"


def rate_from_env(name: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = os.environ.get(name)
    if not raw:
        return default
    rate, sep, burst = raw.partition("/")
    if not (rate.isdigit() and burst.isdigit() and sep) or int(rate) < 1 or int(burst) < 1:
        raise ConfigError(f"environment variable {name}: expected '<rate per second>/<burst>', e.g. 1000/2000")
    return int(rate), int(burst)


def limits_from_env(settings: Settings) -> ApiRateLimits:
    return ApiRateLimits.from_settings(
        settings,
        principal=rate_from_env(RATE_PRINCIPAL_ENV, (PRINCIPAL_RATE_PER_S_DEFAULT, PRINCIPAL_BURST_DEFAULT)),
        ip=rate_from_env(RATE_IP_ENV, (IP_RATE_PER_S_DEFAULT, IP_BURST_DEFAULT)),
    )


def _has_nul(scope: MutableMapping[str, Any]) -> bool:
    """NUL in the path, the query string (raw or percent-encoded) or any header value. (Surrogates
    cannot arrive this way: percent-decoding of invalid UTF-8 gives U+FFFD.)"""
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query or "\x00" in scope.get("path", ""):
        return True
    return any(b"\x00" in value for _name, value in scope.get("headers", ()))


class RequestGuardMiddleware:
    """Before anything parses the request:

    * 400 ``invalid_characters`` for NUL in the path, the query string or a header (a WebSocket
      handshake is refused): no route, filter or audit record ever sees one;
    * 413 problem+json for a body over ``max_bytes`` (declared or actually sent); the body is
      buffered (bounded) and handed on unchanged.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket" and _has_nul(scope):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": INVALID_CHARACTERS})
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            response = problem_response(400, INVALID_CHARACTERS, "the path, query string or a header holds a NUL"
                                        " character", headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: MutableMapping[str, Any] = await receive()
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        response = problem_response(413, BODY_TOO_LARGE, f"the request body is larger than {self.max_bytes} bytes",
                                    instance=str(scope.get("path", "")), headers={"Connection": "close"})
        await response(scope, receive, send)


def database_namespace(conninfo: str) -> str:
    """A short, stable name for the database (host, port, name; never the password)."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    ident = f"{info.get('host', '')}|{info.get('port', '')}|{info.get('dbname', '')}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


async def _start_context(app: FastAPI, settings: Settings, limits: ApiRateLimits | None) -> ApiContext:
    kernel = FinancialKernel(settings)
    await kernel.initialize()
    conninfo = kernel.conninfo
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo, min_size=1, max_size=min(API_POOL_SIZE_MAX, settings.database.pool_size), open=False,
        kwargs={"autocommit": True})
    await pool.open(wait=True)
    sync_pool: ConnectionPool[Any] = ConnectionPool(
        conninfo, min_size=1, max_size=min(SECURITY_POOL_SIZE_MAX, settings.database.pool_size), open=False)
    await asyncio.to_thread(sync_pool.open, True)
    security = SecurityService(settings, sync_pool.connection, limits=limits or limits_from_env(settings))
    setattr(app.state, STATE_ATTR, security)
    provider = provider_from_settings(settings)
    audit_log.configure_signing(provider)
    await _rotate_keys(settings, conninfo, provider)
    writer = AuditWriter(conninfo, checkpoint_interval_s=settings.security.audit_checkpoint_seconds)
    writer.start()
    hub = EventHub()
    async def journal_head() -> int:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT coalesce(max(seq), 0) FROM ledger_journal")).fetchone()
        return int(row[0]) if row else 0

    source = EventSource(kernel, hub, settings.database.redis(), database_namespace(conninfo), head=journal_head)
    await source.start(await journal_head())
    return ApiContext(settings=settings, conninfo=conninfo, kernel=kernel, pool=pool, sync_pool=sync_pool,
                      security=security, audit=writer, hub=hub, source=source, owners=OwnerCache(kernel),
                      provider=provider)


async def _stop_context(ctx: ApiContext) -> None:
    await ctx.source.stop()
    await ctx.audit.stop()
    ctx.security.close()
    await ctx.kernel.shutdown()
    await ctx.pool.close()
    await asyncio.to_thread(ctx.sync_pool.close)


async def _rotate_keys(settings: Settings, conninfo: str, provider: MasterKeyProvider) -> None:
    """Rotate the master key and data keys that ``security.key_rotation_days`` says are due."""
    try:
        done = await asyncio.to_thread(rotate_if_due, settings, conninfo=conninfo, provider=provider)
    except Exception as exc:  # noqa: BLE001 - keep serving; the next check tries again, and it is logged
        log.error("encryption key rotation failed: %s", getattr(exc, "code", exc.__class__.__name__))
        return
    if done["master"] is not None:
        log.warning("master key rotated (security.key_rotation_days): version %s, %s data keys re-wrapped",
                    done["master"]["master_version"], done["master"]["rewrapped_data_keys"])
    for item in done["data_keys"]:
        log.info("new data-key generation for %s (security.key_rotation_days)", item["purpose"])


async def _housekeeping(ctx: ApiContext) -> None:
    """Purge expired idempotency records; rotate encryption keys when due."""
    loop = asyncio.get_running_loop()
    next_rotation = loop.time() + KEY_ROTATION_CHECK_INTERVAL_S
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        try:
            await purge_expired(ctx.pool)
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the server
            log.warning("idempotency purge skipped: %s", exc.__class__.__name__)
        if loop.time() >= next_rotation:
            next_rotation = loop.time() + KEY_ROTATION_CHECK_INTERVAL_S
            await _rotate_keys(ctx.settings, ctx.conninfo, ctx.provider)


def create_app(settings: Settings | None = None, *, limits: ApiRateLimits | None = None) -> FastAPI:
    """The API for ``settings`` (from config.json / QENEX_* when None). Refuses default secrets in production."""
    settings = settings or load_settings()
    settings.require_production_safe()
    settings = with_development_secrets(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        configure_tracing(settings)
        metrics_server = None
        if settings.metrics.enabled and settings.metrics.port is not None:
            try:
                metrics_server = start_metrics_server(settings)
            except OSError as exc:  # another worker of this server already serves it
                log.info("metrics port not opened in this process: %s", exc.__class__.__name__)
        ctx = await _start_context(app, settings, limits)
        app.state.qenex = ctx
        purge = asyncio.create_task(_housekeeping(ctx), name="qenex-housekeeping")
        log.info("QENEX API %s ready", __version__)
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await _stop_context(ctx)
            if metrics_server is not None:
                metrics_server.shutdown()
            mark_worker_dead()
            shutdown_tracing()

    # FastAPI's own OpenTelemetry instrumentation (newer releases) is off: TracingMiddleware makes
    # the SERVER span and the API the spans under it, through the provider configured here; left
    # on, it would add a second SERVER span per request to whatever global provider is set.
    app = FastAPI(title="QENEX API", version=__version__, lifespan=lifespan,
                  telemetry=cast(Any, NATIVE_TELEMETRY_OFF))
    install_problem_handlers(app)
    app.add_exception_handler(SecurityError, security_error_handler)  # type: ignore[arg-type]
    app.include_router(system_router(metrics=settings.metrics.enabled))
    app.include_router(stream_router())
    # Included one by one (not through a parent router): one routing level less per request. The
    # prefix is each router's own, so a route's path (which metrics and traces name it by) is the
    # full template, e.g. /api/v1/accounts/{account_id}.
    for factory in (auth_router, status_router, accounts_router, transactions_router, audit_router):
        app.include_router(factory(API_PREFIX))
    install_openapi(app)
    app.add_middleware(RequestGuardMiddleware, max_bytes=settings.api.max_body_bytes)
    if settings.metrics.enabled:
        app.add_middleware(MetricsMiddleware)
    app.add_middleware(TracingMiddleware)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory qenex.api.app:app_factory`` (settings from QENEX_CONFIG and QENEX_*)."""
    return create_app()
