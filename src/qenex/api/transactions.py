"""``/api/v1/transactions``: single and batch (one result per item), read, and the
post / void / reverse operations on an existing transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from qenex.api.batch_metrics import observe_batch
from qenex.api.deps import (
    ApiContext,
    audited,
    context,
    customer_owns,
    ledger_span,
    not_found,
    record_denial,
    require,
    transaction_dict,
    visible_transaction,
)
from qenex.api.idempotency import IdempotencyHeader, idempotent
from qenex.api.problems import MALFORMED_JSON, READ_RESPONSES, WRITE_RESPONSES, ApiError
from qenex.api.schemas import (
    API_BATCH_ITEMS_MAX,
    ID_MAX,
    BatchOut,
    PostPendingIn,
    ResolveIn,
    TransactionAccepted,
    TransactionIn,
    TransactionOut,
)
from qenex.kernel.errors import INVALID_REQUEST, LedgerError
from qenex.kernel.money import format_minor, to_minor
from qenex.sdk.kernel import AuditNote
from qenex.security import rbac
from qenex.security.errors import FORBIDDEN, SecurityError
from qenex.security.fastapi_deps import client_ip

# What a customer may initiate: moving its own money. Deposits, fees, adjustments, reversals
# and the like are staff operations.
CUSTOMER_TYPES: Final = frozenset({"TRANSFER", "PAYMENT"})
# Staff types that move money between the bank's own books need the manage scope.
MANAGE_TYPES: Final = frozenset({"REVERSAL", "ADJUSTMENT"})

# Single-leg types whose accepted form follows from the request alone.
SIMPLE_TYPES: Final = frozenset({"TRANSFER", "PAYMENT", "DEPOSIT", "WITHDRAWAL", "FEE", "INTEREST", "ADJUSTMENT"})

TransactionId = Annotated[int, Path(gt=0, le=ID_MAX, description="Transaction id")]


_ITEM_FIELDS: Final = tuple(name for name in TransactionIn.model_fields if name != "idempotency_key")


def _item(tx: TransactionIn, key: str | None) -> dict[str, Any]:
    """The kernel's item (None fields left out, as the kernel's fast path expects)."""
    values = tx.__dict__
    item = {name: values[name] for name in _ITEM_FIELDS if values[name] is not None}
    if not item["pending"]:
        del item["pending"]
    if not item["linked"]:
        del item["linked"]
    currency = item.get("currency")
    if currency is not None and not currency.isupper():
        item["currency"] = currency.upper()
    if key is not None:
        item["idempotency_key"] = key
    return item


async def _authorize_items(request: Request, principal: rbac.Principal, items: Sequence[TransactionIn]) -> None:
    """Customers move only their own money; reversals and adjustments need transactions:manage.
    Every refusal is a ``permission.denied`` security event in the audit trail."""
    ctx = context(request)
    types = {tx.type for tx in items}
    if types & MANAGE_TYPES and not principal.has_scope(rbac.TRANSACTIONS_MANAGE):
        await run_in_threadpool(ctx.security.authorize, principal, rbac.TRANSACTIONS_MANAGE,
                                source_ip=client_ip(request),
                                resource="transactions " + ",".join(sorted(types & MANAGE_TYPES)))
    if rbac.owner_filter(principal) is None:
        return
    if not types <= CUSTOMER_TYPES:
        await record_denial(request, principal, "transactions", {"types": sorted(types - CUSTOMER_TYPES)})
        raise SecurityError(FORBIDDEN, "a customer credential may only make TRANSFER and PAYMENT transactions")
    for source in sorted({tx.from_account for tx in items if tx.from_account is not None}):
        if not await customer_owns(ctx, principal, source):
            await record_denial(request, principal, f"account:{source}", {"reason": "not the customer's account"})
            raise not_found("account", source)
    if any(tx.from_account is None for tx in items):
        raise LedgerError(INVALID_REQUEST, "from_account is required")


async def _accepted(ctx: ApiContext, body: TransactionIn, tx_id: int, replayed: bool) -> dict[str, Any]:
    """The accepted transaction, from the request when it says everything (no database read);
    otherwise (system-account defaults, exchanges, reversals) read back from the ledger."""
    if (body.type in SIMPLE_TYPES and body.from_account is not None and body.to_account is not None
            and body.amount is not None and body.currency is not None):
        currency = body.currency.upper()
        return {"id": tx_id, "type": body.type, "status": "pending" if body.pending else "posted",
                "amount": format_minor(to_minor(body.amount, currency), currency), "currency": currency,
                "from_account": body.from_account, "to_account": body.to_account, "metadata": body.metadata or {},
                "replayed": replayed}
    with ledger_span("get_transaction", **{"qenex.transaction.id": tx_id}):
        tx = await ctx.kernel.get_transaction(tx_id)
    if tx is None:
        raise not_found("transaction", tx_id)
    full = transaction_dict(tx, replayed=replayed)
    return {name: full[name] for name in TransactionAccepted.model_fields}


_ITEM_ADAPTER: Final = TypeAdapter(TransactionIn)
# The request body as OpenAPI shows it: the same items as POST /transactions takes.
_BATCH_OPENAPI: Final[dict[str, Any]] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["items"], "additionalProperties": False, "properties": {
        "items": {"type": "array", "minItems": 1, "maxItems": API_BATCH_ITEMS_MAX,
                  "items": {"$ref": "#/components/schemas/TransactionIn"}}}}}}}}


async def _batch_items(request: Request) -> list[Any]:
    """The ``items`` list of the body (the body itself is bounded by the size-limit middleware)."""
    try:
        payload = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ApiError(MALFORMED_JSON, "the request body is not valid JSON") from None
    if not isinstance(payload, dict) or set(payload) != {"items"} or not isinstance(payload["items"], list):
        raise ApiError(INVALID_REQUEST, 'the body must be {"items": [...]} and nothing else', 422)
    items: list[Any] = payload["items"]
    if not 1 <= len(items) <= API_BATCH_ITEMS_MAX:
        raise ApiError(INVALID_REQUEST, f"a batch holds 1 to {API_BATCH_ITEMS_MAX} items", 422)
    return items


def _validate_items(raw: list[Any]) -> tuple[list[TransactionIn | None], dict[int, str]]:
    """Each item against the item schema; a failing one becomes None with its reason."""
    parsed: list[TransactionIn | None] = []
    problems: dict[int, str] = {}
    for index, value in enumerate(raw):
        try:
            parsed.append(_ITEM_ADAPTER.validate_python(value))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))[:80]
            problems[index] = (f"{where}: " if where else "") + str(first.get("msg", "invalid"))[:200]
            parsed.append(None)
    return parsed, problems


def _invalid_item(value: Any) -> dict[str, Any]:
    """What the ledger gets for an item that failed the schema: one it rejects by itself
    (invalid_request), so a linked chain around it fails as a whole, as for any rejection."""
    linked = isinstance(value, dict) and value.get("linked") is True
    return {"type": "INVALID", "linked": linked}


def _own_key(principal: rbac.Principal, key: str | None) -> str | None:
    """An item's own idempotency key, namespaced by principal."""
    return None if key is None else f"{principal.actor}|{key}"


def _error(exc: LedgerError | None) -> dict[str, str] | None:
    return None if exc is None else {"code": exc.code, "message": exc.message}


async def _resolve(request: Request, principal: rbac.Principal, transaction_id: int, name: str,
                   payload: PostPendingIn | ResolveIn) -> Response:
    ctx = context(request)
    await visible_transaction(request, principal, transaction_id)

    async def work_for(key: str | None, note: AuditNote) -> int:
        meta = payload.metadata  # sensitive fields are sealed by the kernel
        operation = {"post": "post_pending", "void": "void_pending"}.get(name, "reverse_transaction")
        with ledger_span(operation, **{"qenex.transaction.id": transaction_id}):
            if isinstance(payload, PostPendingIn):
                return int(await ctx.kernel.post_pending(transaction_id, payload.amount, metadata=meta,
                                                         idempotency_key=key, audit=note))
            if name == "void":
                return int(await ctx.kernel.void_pending(transaction_id, metadata=meta, idempotency_key=key,
                                                         audit=note))
            return int(await ctx.kernel.reverse_transaction(transaction_id, metadata=meta, idempotency_key=key,
                                                            audit=note))

    async def run(key: str | None) -> Response:
        new_id = await audited(request, principal, f"transaction.{name}", f"transaction:{transaction_id}",
                               lambda note: work_for(key, note))
        with ledger_span("get_transaction", **{"qenex.transaction.id": new_id}):
            tx = await ctx.kernel.get_transaction(new_id)
        if tx is None:
            raise not_found("transaction", new_id)
        return JSONResponse(transaction_dict(tx), status_code=201,
                            headers={"Location": f"/api/v1/transactions/{tx.id}"})

    return await idempotent(ctx.pool, request, principal.actor,
                            lambda: f"{name}:{payload.model_dump_json()}", run)


def transactions_router(prefix: str = "") -> APIRouter:
    router = APIRouter(prefix=prefix + "/transactions", tags=["transactions"])

    @router.post("", status_code=201, response_model=TransactionAccepted, responses=WRITE_RESPONSES)
    async def create_transaction(request: Request, body: TransactionIn, idempotency_key: IdempotencyHeader = None,
                                 principal: rbac.Principal = Depends(require(rbac.TRANSACTIONS_WRITE))
                                 ) -> Response:
        """Process one transaction (the seed's body, plus ``metadata`` and ``pending``).
        Honours ``Idempotency-Key``."""
        ctx = context(request)
        await _authorize_items(request, principal, [body])

        async def run(key: str | None) -> Response:
            item = _item(body, key or _own_key(principal, body.idempotency_key))

            async def work(note: AuditNote) -> Any:
                start = time.perf_counter()
                with ledger_span("process_transactions", **{"qenex.batch.items": 1,
                                                            "qenex.transaction.type": body.type}):
                    result = (await ctx.kernel.process_transactions([item], audit=note))[0]
                observe_batch([item], [result], time.perf_counter() - start)
                if result.error is not None:
                    raise result.error
                return result

            result = await audited(request, principal, "transaction.create", f"account:{body.from_account}", work,
                                   {"type": body.type, "amount": body.amount, "currency": body.currency})
            accepted = await _accepted(ctx, body, int(result.transaction_id), result.replayed)
            return JSONResponse(accepted, status_code=201,
                                headers={"Location": f"/api/v1/transactions/{result.transaction_id}"})

        return await idempotent(ctx.pool, request, principal.actor, body.model_dump_json, run)

    @router.post("/batch", response_model=BatchOut, responses=WRITE_RESPONSES, openapi_extra=_BATCH_OPENAPI)
    async def create_batch(request: Request, idempotency_key: IdempotencyHeader = None,
                           principal: rbac.Principal = Depends(require(rbac.TRANSACTIONS_WRITE))) -> Response:
        """Up to 8,000 transactions in one call; one result per item, in order. Items are
        independent unless ``linked`` (a linked chain succeeds or fails as one). An item that
        does not match the item schema fails alone, with ``invalid_request`` and the reason."""
        ctx = context(request)
        raw = await _batch_items(request)
        parsed, problems = _validate_items(raw)
        await _authorize_items(request, principal, [tx for tx in parsed if tx is not None])

        async def run(key: str | None) -> Response:
            items = [_invalid_item(raw[i]) if tx is None else
                     _item(tx, f"{key}#{i}" if key else _own_key(principal, tx.idempotency_key))
                     for i, tx in enumerate(parsed)]

            async def work(note: AuditNote) -> Any:
                start = time.perf_counter()
                with ledger_span("process_transactions", **{"qenex.batch.items": len(items)}):
                    results = await ctx.kernel.process_transactions(items, audit=note)
                observe_batch(items, results, time.perf_counter() - start)
                return results

            results = await audited(request, principal, "transaction.batch", "transactions", work,
                                    {"items": len(items)})
            out = [{"index": i, "ok": r.ok, "transaction_id": r.transaction_id, "replayed": r.replayed,
                    "error": _error(r.error) if i not in problems or r.error is None or r.error.code != INVALID_REQUEST
                    else {"code": INVALID_REQUEST, "message": problems[i]}} for i, r in enumerate(results)]
            ok = sum(1 for r in results if r.ok)
            return Response(json.dumps({"results": out, "succeeded": ok, "failed": len(out) - ok}),
                            media_type="application/json")

        return await idempotent(ctx.pool, request, principal.actor,
                                lambda: json.dumps(raw, sort_keys=True, separators=(",", ":")), run)

    @router.get("/{transaction_id}", response_model=TransactionOut, responses=READ_RESPONSES)
    async def get_transaction(request: Request, transaction_id: TransactionId,
                              principal: rbac.Principal = Depends(require(rbac.TRANSACTIONS_READ))
                              ) -> Response:
        tx = await visible_transaction(request, principal, transaction_id)
        return JSONResponse(transaction_dict(tx))

    manage = require(rbac.TRANSACTIONS_MANAGE)

    @router.post("/{transaction_id}/post", status_code=201, response_model=TransactionOut,
                 responses=WRITE_RESPONSES)
    async def post_transaction(request: Request, transaction_id: TransactionId, body: PostPendingIn | None = None,
                               idempotency_key: IdempotencyHeader = None,
                               principal: rbac.Principal = Depends(manage)) -> Response:
        """Post a pending transaction (a hold) in full, or in part with ``amount``."""
        return await _resolve(request, principal, transaction_id, "post", body or PostPendingIn())

    @router.post("/{transaction_id}/void", status_code=201, response_model=TransactionOut,
                 responses=WRITE_RESPONSES)
    async def void_transaction(request: Request, transaction_id: TransactionId, body: ResolveIn | None = None,
                               idempotency_key: IdempotencyHeader = None,
                               principal: rbac.Principal = Depends(manage)) -> Response:
        """Release a pending transaction (a hold) without moving money."""
        return await _resolve(request, principal, transaction_id, "void", body or ResolveIn())

    @router.post("/{transaction_id}/reverse", status_code=201, response_model=TransactionOut,
                 responses=WRITE_RESPONSES)
    async def reverse_transaction(request: Request, transaction_id: TransactionId, body: ResolveIn | None = None,
                                  idempotency_key: IdempotencyHeader = None,
                                  principal: rbac.Principal = Depends(manage)) -> Response:
        """Reverse a posted transaction with a compensating entry."""
        return await _resolve(request, principal, transaction_id, "reverse", body or ResolveIn())

    return router
