"""What every router shares: the per-process context, object-level visibility checks (a
customer's view of someone else's object is a 404), view -> JSON conversion, and the audit
record written for every authenticated mutation."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from fastapi import Request
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from qenex.api.auditing import AuditWriter, mutation_event
from qenex.api.problems import NOT_FOUND, ApiError
from qenex.api.stream import EventHub, EventSource, OwnerCache
from qenex.config import Settings
from qenex.errors import QenexError
from qenex.kernel.errors import ACCOUNT_NOT_FOUND, TRANSACTION_NOT_FOUND
from qenex.sdk.kernel import FinancialKernel
from qenex.sdk.views import Account, Transaction
from qenex.security import rbac
from qenex.security.fastapi_deps import client_ip
from qenex.security.service import SecurityService

T = TypeVar("T")
RESOURCE_CHARS_MAX: Final = 200


@dataclass
class ApiContext:
    settings: Settings
    conninfo: str
    kernel: FinancialKernel
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]]
    sync_pool: ConnectionPool[Any]
    security: SecurityService
    audit: AuditWriter
    hub: EventHub
    source: EventSource
    owners: OwnerCache
    started_monotonic: float = field(default_factory=time.monotonic)


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.qenex
    return ctx


async def audited(request: Request, principal: rbac.Principal, action: str, resource: str,
                  work: Callable[[], Awaitable[T]], details: dict[str, Any] | None = None) -> T:
    """Run a mutation and record it (success or the rejection's code) in the audit trail."""
    ctx = context(request)
    try:
        result = await work()
    except QenexError as exc:
        await ctx.audit.record(mutation_event(principal.actor, action, resource, "failure", client_ip(request),
                                              (details or {}) | {"code": exc.code}))
        raise
    await ctx.audit.record(mutation_event(principal.actor, action, resource, "success", client_ip(request), details))
    return result


def not_found(kind: str, ident: object) -> ApiError:
    code = {"account": ACCOUNT_NOT_FOUND, "transaction": TRANSACTION_NOT_FOUND}.get(kind, NOT_FOUND)
    return ApiError(code, f"{kind} {str(ident)[:40]} does not exist", 404)


async def visible_account(ctx: ApiContext, principal: rbac.Principal, account_id: int) -> Account:
    """The account, or 404 when it does not exist or is not the customer's own."""
    account = await ctx.kernel.get_account(account_id)
    if account is None or not rbac.can_see_owner(principal, account.owner_id):
        raise not_found("account", account_id)
    return account


async def customer_owns(ctx: ApiContext, principal: rbac.Principal, account_id: int | None) -> bool:
    if account_id is None:
        return False
    return rbac.can_see_owner(principal, await ctx.owners.owner(account_id))


async def visible_transaction(ctx: ApiContext, principal: rbac.Principal, transaction_id: int) -> Transaction:
    tx = await ctx.kernel.get_transaction(transaction_id)
    if tx is None:
        raise not_found("transaction", transaction_id)
    if rbac.owner_filter(principal) is not None and not (
            await customer_owns(ctx, principal, tx.from_account) or await customer_owns(ctx, principal, tx.to_account)):
        raise not_found("transaction", transaction_id)
    return tx


def account_dict(a: Account) -> dict[str, Any]:
    b = a.balances
    return {
        "id": a.id, "owner_id": a.owner_id, "account_type": a.account_type, "currency": a.currency,
        "status": a.status, "balance": str(b.posted), "overdraft_limit": str(a.overdraft_limit),
        "balances": {"posted": str(b.posted), "pending": str(b.pending), "available": str(b.available),
                     "debits_posted": str(b.debits_posted), "credits_posted": str(b.credits_posted),
                     "debits_pending": str(b.debits_pending), "credits_pending": str(b.credits_pending)},
        "metadata": a.metadata, "created_at": a.created_at.isoformat(),
    }


def transaction_dict(t: Transaction, *, replayed: bool = False) -> dict[str, Any]:
    out = t.to_dict()
    out["fx_rate"] = None if t.fx_rate is None else str(t.fx_rate)
    out["replayed"] = replayed
    return out
