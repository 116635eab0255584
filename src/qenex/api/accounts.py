"""``/api/v1/accounts``: open, list (cursor pagination, filters), show, balance, statement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from qenex.api.deps import account_dict, audited, context, ledger_span, record_denial, require, visible_account
from qenex.api.idempotency import IdempotencyHeader, idempotent
from qenex.api.problems import READ_RESPONSES, WRITE_RESPONSES, ApiError
from qenex.api.schemas import (
    ID_MAX,
    LIST_LIMIT_MAX,
    AccountIn,
    AccountOut,
    AccountPage,
    BalanceOut,
    StatementOut,
)
from qenex.sdk.kernel import AuditNote
from qenex.security import rbac

CURSOR_CHARS_MAX: Final = 20
STATEMENT_DAYS_MAX: Final = 3_660
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

AccountId = Annotated[int, Path(gt=0, le=ID_MAX, description="Account id")]


def _aware(moment: datetime | None, default: datetime) -> datetime:
    if moment is None:
        return default
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def accounts_router(prefix: str = "") -> APIRouter:
    router = APIRouter(prefix=prefix + "/accounts", tags=["accounts"])

    @router.post("", status_code=201, response_model=AccountOut, responses=WRITE_RESPONSES)
    async def create_account(request: Request, body: AccountIn, idempotency_key: IdempotencyHeader = None,
                             principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_WRITE))) -> Response:
        """Open an account (the seed's body); a positive ``initial_balance`` is posted as a deposit.
        Honours ``Idempotency-Key``."""
        ctx = context(request)
        if not rbac.can_see_owner(principal, body.owner_id):
            await record_denial(request, principal, f"owner:{body.owner_id}", {"reason": "another owner"})
            raise ApiError("forbidden_owner", "a customer credential opens accounts for its own owner id only", 403)

        async def run(key: str | None) -> Response:
            async def work(note: AuditNote) -> Any:
                with ledger_span("create_account", **{"qenex.account.type": body.account_type,
                                                      "qenex.currency": body.currency.upper()}):
                    return await ctx.kernel.create_account(
                        body.owner_id, body.account_type, body.currency.upper(), body.initial_balance,
                        overdraft_limit=body.overdraft_limit, metadata=body.metadata, idempotency_key=key, audit=note)

            account = await audited(request, principal, "account.create", f"owner:{body.owner_id}", work,
                                    {"currency": body.currency.upper(), "account_type": body.account_type})
            return JSONResponse(account_dict(account), status_code=201,
                                headers={"Location": f"/api/v1/accounts/{account.id}"})

        return await idempotent(ctx.pool, request, principal.actor, body.model_dump_json, run)

    @router.get("", response_model=AccountPage, responses=READ_RESPONSES)
    async def list_accounts(
        request: Request,
        owner_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        status: Annotated[Literal["active", "frozen", "closed"] | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=CURSOR_CHARS_MAX, pattern=r"^[0-9]{1,19}$",
                                            description="next_cursor of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 100,
        principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_READ)),
    ) -> Response:
        """Customer accounts in id order. A customer only ever lists its own."""
        forced = rbac.owner_filter(principal)
        if forced is not None:
            if owner_id is not None and owner_id != forced:
                return JSONResponse({"items": [], "next_cursor": None})
            owner_id = forced
        after = int(cursor) if cursor else None
        if after is not None and not 0 < after <= ID_MAX:
            raise ApiError("invalid_cursor", "cursor is not one this API returned", 400)
        ctx = context(request)
        with ledger_span("list_accounts", **{"qenex.page.limit": limit}):
            items = await ctx.kernel.list_accounts(owner_id=owner_id, status=status, after=after, limit=limit)
        next_cursor = str(items[-1].id) if len(items) == limit else None
        return JSONResponse({"items": [account_dict(a) for a in items], "next_cursor": next_cursor})

    @router.get("/{account_id}", response_model=AccountOut, responses=READ_RESPONSES)
    async def get_account(request: Request, account_id: AccountId,
                          principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_READ))) -> Response:
        account = await visible_account(request, principal, account_id)
        return JSONResponse(account_dict(account))

    @router.get("/{account_id}/balance", response_model=BalanceOut, responses=READ_RESPONSES)
    async def get_balance(request: Request, account_id: AccountId,
                          principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_READ))) -> Response:
        account = await visible_account(request, principal, account_id)
        b = account.balances
        return JSONResponse({"account_id": account.id, "currency": account.currency, "posted": str(b.posted),
                             "pending": str(b.pending), "available": str(b.available)})

    @router.get("/{account_id}/statement", response_model=StatementOut,
                responses=READ_RESPONSES | {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                                  "description": "The statement (JSON, or CSV with format=csv)"}})
    async def get_statement(
        request: Request,
        account_id: AccountId,
        from_: Annotated[datetime | None, Query(alias="from", description="Start (inclusive), ISO 8601")] = None,
        to: Annotated[datetime | None, Query(description="End (exclusive), ISO 8601; default now")] = None,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
        principal: rbac.Principal = Depends(require(rbac.ACCOUNTS_READ)),
    ) -> Response:
        """Opening balance, posted entries in [from, to) and closing balance."""
        ctx = context(request)
        account = await visible_account(request, principal, account_id)
        end = _aware(to, datetime.now(UTC) + timedelta(seconds=1))
        start = _aware(from_, max(EPOCH, account.created_at - timedelta(seconds=1)))
        if end <= start:
            raise ApiError("invalid_period", "'to' must be after 'from'", 422)
        if end - start > timedelta(days=STATEMENT_DAYS_MAX):
            raise ApiError("invalid_period", f"a statement covers at most {STATEMENT_DAYS_MAX} days", 422)
        with ledger_span("statement"):
            statement = await ctx.kernel.statement(account.id, start, end)
        if format == "csv":
            return Response(statement.to_csv(), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="statement-{account.id}.csv"'})
        return Response(json.dumps(statement.to_dict()), media_type="application/json")

    return router
