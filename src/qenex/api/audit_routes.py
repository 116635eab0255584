"""``GET /api/v1/audit/events``: the audit trail, for auditors (scope ``audit:read``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from qenex.api.deps import context, require
from qenex.api.problems import READ_RESPONSES
from qenex.api.schemas import AuditPage
from qenex.security import rbac
from qenex.security.audit import QUERY_LIMIT_MAX, query_events_async


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def audit_router(prefix: str = "") -> APIRouter:
    router = APIRouter(prefix=prefix + "/audit", tags=["audit"])

    @router.get("/events", response_model=AuditPage, responses=READ_RESPONSES)
    async def list_events(
        request: Request,
        actor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        action: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        since: Annotated[datetime | None, Query(description="From (inclusive), ISO 8601")] = None,
        until: Annotated[datetime | None, Query(description="Until (exclusive), ISO 8601")] = None,
        cursor: Annotated[str | None, Query(max_length=19, pattern=r"^[0-9]{1,18}$")] = None,
        limit: Annotated[int, Query(ge=1, le=QUERY_LIMIT_MAX)] = 100,
        principal: rbac.Principal = Depends(require(rbac.AUDIT_READ)),
    ) -> Response:
        """Audit records in id order (who, what, when, source IP, outcome), with hash-chain fields."""
        async with context(request).pool.connection() as conn:
            records = await query_events_async(conn, actor=actor, action=action, since=_aware(since),
                                               until=_aware(until), limit=limit,
                                               after_id=int(cursor) if cursor else None)
        items = [r.to_dict() for r in records]
        return JSONResponse({"items": items, "next_cursor": str(records[-1].id) if len(records) == limit else None})

    return router
