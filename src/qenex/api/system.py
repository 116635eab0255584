"""``GET /health`` (liveness), ``GET /ready`` (database reachable, migrations current),
``GET /api/v1/system/status`` and ``GET /metrics``."""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from qenex import __version__
from qenex.api.deps import context, require
from qenex.api.problems import READ_RESPONSES
from qenex.api.schemas import HealthOut, ReadyOut, StatusOut
from qenex.observability.metrics import render_metrics
from qenex.security import rbac
from qenex.store.migrate import available

READY_TIMEOUT_S: Final = 2.0
# Roles that see only version, uptime and status on /system/status.
CUSTOMER_ROLES: Final = frozenset({"customer"})


async def _database_state(request: Request) -> tuple[bool, int, int]:
    """(reachable, applied version, pending migrations)."""
    shipped = {m.version for m in available()}
    try:
        async with context(request).pool.connection(timeout=READY_TIMEOUT_S) as conn:
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {int(r[0]) for r in await cur.fetchall()}
    except Exception:  # noqa: BLE001 - any failure to reach the database means "not ready"
        return False, 0, len(shipped)
    return True, max(applied, default=0), len(shipped - applied)


def system_router(*, metrics: bool = True) -> APIRouter:
    """``/health`` and ``/ready``; ``/metrics`` too unless ``metrics.enabled`` is false (then the
    main port answers 404 there, and no standalone metrics port is opened either)."""
    router = APIRouter(tags=["system"])

    @router.get("/health", response_model=HealthOut)
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
    async def ready(request: Request) -> Response:
        """Readiness: the database answers and every shipped migration is applied."""
        reachable, _version, pending = await _database_state(request)
        ok = reachable and pending == 0
        return JSONResponse({"status": "ready" if ok else "not_ready", "database": reachable,
                             "migrations_current": reachable and pending == 0}, status_code=200 if ok else 503)

    if metrics:
        @router.get("/metrics", response_class=PlainTextResponse,
                    responses={200: {"description": "Prometheus text exposition",
                                     "content": {"text/plain": {"schema": {"type": "string"}}}}})
        async def metrics_route() -> Response:
            """Prometheus metrics (``metrics.port`` serves them on a port of their own as well)."""
            body, content_type = render_metrics()
            return Response(body, media_type=content_type)

    return router


def status_router(prefix: str = "") -> APIRouter:
    router = APIRouter(prefix=prefix + "/system", tags=["system"])

    @router.get("/status", response_model=StatusOut, responses=READ_RESPONSES)
    async def status(request: Request,
                     principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_READ))) -> Response:
        """Version, uptime and status for every credential; database state, counts, stream
        subscribers and Redis for staff only (a customer credential never sees bank-wide figures)."""
        ctx = context(request)
        reachable, version, pending = await _database_state(request)
        health = "ok" if reachable and pending == 0 else "degraded"
        basics = {"version": __version__, "uptime_seconds": int(time.monotonic() - ctx.started_monotonic),
                  "status": health}
        if principal.role in CUSTOMER_ROLES:
            return JSONResponse(basics)
        accounts = transactions = 0
        if reachable:
            async with ctx.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT (SELECT count(*) FROM ledger_accounts WHERE system_code IS NULL),"
                    " (SELECT count(*) FROM ledger_journal WHERE leg = 0)")
                row = await cur.fetchone()
                if row is not None:
                    accounts, transactions = int(row[0]), int(row[1])
        return JSONResponse(basics | {
            "environment": ctx.settings.env,
            "database": {"reachable": reachable, "migration_version": version, "pending_migrations": pending},
            "counts": {"accounts": accounts, "transactions": transactions},
            "stream_subscribers": ctx.hub.subscribers, "redis": ctx.source.redis_url is not None,
        })

    return router
