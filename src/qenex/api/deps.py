"""What every router shares: the per-process context, object-level visibility checks (a
customer's view of someone else's object is a 404), view -> JSON conversion, and the audit
record written for every authenticated mutation."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from fastapi import Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from qenex.api.auditing import AuditWriter, mutation_event
from qenex.api.problems import NOT_FOUND, ApiError
from qenex.api.stream import EventHub, EventSource, OwnerCache
from qenex.config import Settings
from qenex.errors import QenexError
from qenex.kernel.errors import ACCOUNT_NOT_FOUND, TRANSACTION_NOT_FOUND
from qenex.observability import tracing
from qenex.sdk.kernel import AuditNote, FinancialKernel
from qenex.sdk.views import Account, Transaction
from qenex.security import rbac
from qenex.security.fastapi_deps import bearer_scheme, client_ip, security_service
from qenex.security.keyproviders import MasterKeyProvider
from qenex.security.outbox import note_record
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
    provider: MasterKeyProvider  # the master key, for key rotation when due
    started_monotonic: float = field(default_factory=time.monotonic)


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.qenex
    return ctx


async def audited(request: Request, principal: rbac.Principal, action: str, resource: str,
                  work: Callable[[AuditNote], Awaitable[T]], details: dict[str, Any] | None = None) -> T:
    """Run a ledger mutation with an audit note. The kernel writes the note to its outbox in the
    mutation's own transaction (success or the rejection's code), and the audit writer's relay
    appends it to the trail. Only a call that never reached the ledger (refused before it, or a
    database failure) is recorded here directly, as a failure."""
    ctx = context(request)
    note = AuditNote(note_record(principal.actor, action, resource, client_ip(request), details))
    try:
        result = await work(note)
    except QenexError as exc:
        if not note.written:
            await ctx.audit.record(mutation_event(principal.actor, action, resource, "failure", client_ip(request),
                                                  (details or {}) | {"code": exc.code}))
        raise
    finally:
        if note.written:
            ctx.audit.poke()
    if not note.written:  # the kernel always writes a committed call's note; never leave one unaudited
        await ctx.audit.record(mutation_event(principal.actor, action, resource, "success", client_ip(request),
                                              details))
    return result


async def record_denial(request: Request, principal: rbac.Principal, resource: str, details: dict[str, Any]) -> None:
    """A ``permission.denied`` security event (the API's own object-level refusals)."""
    await context(request).audit.record(mutation_event(principal.actor, "permission.denied", resource, "denied",
                                                       client_ip(request), details | {"role": principal.role}))


def not_found(kind: str, ident: object) -> ApiError:
    code = {"account": ACCOUNT_NOT_FOUND, "transaction": TRANSACTION_NOT_FOUND}.get(kind, NOT_FOUND)
    return ApiError(code, f"{kind} {str(ident)[:40]} does not exist", 404)


def ledger_span(operation: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span (when tracing is on) around one SDK call made by the API, child of the request's
    SERVER span. Attributes name the operation and its shape (type, currency, item count,
    transaction id), never an owner, an amount or metadata."""
    return tracing.span(f"ledger.{operation}", **({"qenex.ledger.operation": operation} | attributes))


async def visible_account(request: Request, principal: rbac.Principal, account_id: int) -> Account:
    """The account, or 404 when it does not exist or is not the customer's own (the latter is
    also recorded as a ``permission.denied`` security event; the answer is the same 404)."""
    with ledger_span("get_account"):
        account = await context(request).kernel.get_account(account_id)
    if account is None:
        raise not_found("account", account_id)
    if not rbac.can_see_owner(principal, account.owner_id):
        await record_denial(request, principal, f"account:{account_id}", {"reason": "not the customer's account"})
        raise not_found("account", account_id)
    return account


async def customer_owns(ctx: ApiContext, principal: rbac.Principal, account_id: int | None) -> bool:
    if account_id is None:
        return False
    return rbac.can_see_owner(principal, await ctx.owners.owner(account_id))


async def visible_transaction(request: Request, principal: rbac.Principal, transaction_id: int) -> Transaction:
    """The transaction, or 404 (a customer's view of another's transaction is a recorded denial)."""
    ctx = context(request)
    with ledger_span("get_transaction", **{"qenex.transaction.id": transaction_id}):
        tx = await ctx.kernel.get_transaction(transaction_id)
    if tx is None:
        raise not_found("transaction", transaction_id)
    if rbac.owner_filter(principal) is not None and not (
            await customer_owns(ctx, principal, tx.from_account) or await customer_owns(ctx, principal, tx.to_account)):
        await record_denial(request, principal, f"transaction:{transaction_id}",
                            {"reason": "not the customer's transaction"})
        raise not_found("transaction", transaction_id)
    return tx


def account_dict(a: Account) -> dict[str, Any]:
    """An account as JSON (its metadata as the kernel returns it: sealed fields already opened)."""
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


# --- authentication on the event loop ---------------------------------------------------------

# How long this process reuses a verified credential without asking the security service again.
# Rate limits still apply to every request; a revocation or expiry takes effect within this delay
# (on top of the key cache's own cross-process delay).
PRINCIPAL_CACHE_S: Final = 1.0
PRINCIPAL_CACHE_ENTRIES_MAX: Final = 10_000


class PrincipalCache:
    """sha256(Authorization header) -> (principal, valid until): the header itself is never kept."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[rbac.Principal, float]] = {}

    def get(self, digest: bytes) -> rbac.Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: bytes, principal: rbac.Principal) -> None:
        if len(self._entries) >= PRINCIPAL_CACHE_ENTRIES_MAX:
            self._entries.clear()
        self._entries[digest] = (principal, time.monotonic() + PRINCIPAL_CACHE_S)


_PRINCIPALS = PrincipalCache()


async def authenticate(request: Request, header: str | None) -> rbac.Principal:
    """The request's principal. A credential verified in the last PRINCIPAL_CACHE_S is reused
    without a thread hop; otherwise the (blocking) security service runs in the thread pool."""
    service = security_service(request)
    ip = client_ip(request)
    digest = hashlib.sha256(header.encode("utf-8", "replace")).digest() if header else b""
    principal = _PRINCIPALS.get(digest) if header else None
    if principal is None:
        principal = await run_in_threadpool(service.authenticate, header, source_ip=ip)
        if principal.kind != "operator":  # sessions end at logout: always checked against the database
            _PRINCIPALS.put(digest, principal)
        return principal
    ip_key = f"ip:{ip or 'unknown'}"
    service.limits.screen(ip_key)
    if service.limits.ip.shared:  # a Redis round trip: keep it off the event loop
        await run_in_threadpool(service.limits.admit, ip_key, principal.actor)
    else:
        service.limits.admit(ip_key, principal.actor)
    return principal


def require(*scopes: str) -> Callable[..., Awaitable[rbac.Principal]]:
    """Like `qenex.security.fastapi_deps.require_scopes` (same OpenAPI security, same 401/403/429
    and audit of denials), as an async dependency that avoids a thread hop per request."""

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)) -> rbac.Principal:
        header = (f"{credentials.scheme} {credentials.credentials}" if credentials
                  else request.headers.get("authorization"))
        principal = await authenticate(request, header)
        request.state.principal = principal
        for scope in scopes:
            if not principal.has_scope(scope):
                await run_in_threadpool(security_service(request).authorize, principal, scope,
                                        source_ip=client_ip(request), resource=f"{request.method} {request.url.path}")
        return principal

    dependency.__name__ = "require_" + "_".join(s.replace(":", "_") for s in scopes)
    dependency.qenex_scopes = scopes  # type: ignore[attr-defined]  # read by qenex.api.openapi
    return dependency
