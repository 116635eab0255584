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

from qenex.api.deps import ApiContext, audited, context, customer_owns, not_found, transaction_dict, visible_transaction
from qenex.api.idempotency import idempotent
from qenex.api.problems import READ_RESPONSES, WRITE_RESPONSES
from qenex.api.schemas import ID_MAX, BatchIn, BatchOut, PostPendingIn, ResolveIn, TransactionIn, TransactionOut
from qenex.kernel.errors import INVALID_REQUEST, LedgerError
from qenex.observability.metrics import observe_results
from qenex.security import rbac
from qenex.security.errors import FORBIDDEN, SecurityError
from qenex.security.fastapi_deps import require_scopes

# What a customer may initiate: moving its own money. Deposits, fees, adjustments, reversals
# and the like are staff operations.
CUSTOMER_TYPES: Final = frozenset({"TRANSFER", "PAYMENT"})
# Staff types that move money between the bank's own books need the manage scope.
MANAGE_TYPES: Final = frozenset({"REVERSAL", "ADJUSTMENT"})

TransactionId = Annotated[int, Path(gt=0, le=ID_MAX, description="Transaction id")]


def _item(tx: TransactionIn, key: str | None) -> dict[str, Any]:
    item = tx.model_dump(exclude_none=True, exclude={"idempotency_key"})
    if "currency" in item:
        item["currency"] = item["currency"].upper()
    if key is not None:
        item["idempotency_key"] = key
    return item


async def _authorize_items(ctx: ApiContext, principal: rbac.Principal, items: Sequence[TransactionIn]) -> None:
    """Customers move only their own money; reversals and adjustments need transactions:manage."""
    types = {tx.type for tx in items}
    if types & MANAGE_TYPES and not principal.has_scope(rbac.TRANSACTIONS_MANAGE):
        await run_in_threadpool(ctx.security.authorize, principal, rbac.TRANSACTIONS_MANAGE,
                                resource="transactions " + ",".join(sorted(types & MANAGE_TYPES)))
    if rbac.owner_filter(principal) is None:
        return
    if not types <= CUSTOMER_TYPES:
        raise SecurityError(FORBIDDEN, "a customer credential may only make TRANSFER and PAYMENT transactions")
    for source in sorted({tx.from_account for tx in items if tx.from_account is not None}):
        if not await customer_owns(ctx, principal, source):
            raise not_found("account", source)
    if any(tx.from_account is None for tx in items):
        raise LedgerError(INVALID_REQUEST, "from_account is required")


def _own_key(principal: rbac.Principal, key: str | None) -> str | None:
    """An item's own idempotency key, namespaced by principal."""
    return None if key is None else f"{principal.actor}|{key}"


def _error(exc: LedgerError | None) -> dict[str, str] | None:
    return None if exc is None else {"code": exc.code, "message": exc.message}


def transactions_router() -> APIRouter:
    router = APIRouter(prefix="/transactions", tags=["transactions"])

    @router.post("", status_code=201, response_model=TransactionOut, responses=WRITE_RESPONSES)
    async def create_transaction(request: Request, body: TransactionIn,
                                 principal: rbac.Principal = Depends(require_scopes(rbac.TRANSACTIONS_WRITE))
                                 ) -> Response:
        """Process one transaction (the seed's body, plus ``metadata`` and ``pending``).
        Honours ``Idempotency-Key``."""
        ctx = context(request)
        await _authorize_items(ctx, principal, [body])

        async def run(key: str | None) -> Response:
            item = _item(body, key or _own_key(principal, body.idempotency_key))

            async def work() -> Any:
                start = time.perf_counter()
                result = (await ctx.kernel.process_transactions([item]))[0]
                observe_results([item], [result], time.perf_counter() - start)
                if result.error is not None:
                    raise result.error
                return result

            result = await audited(request, principal, "transaction.create", f"account:{body.from_account}", work,
                                   {"type": body.type, "amount": body.amount, "currency": body.currency})
            tx = await ctx.kernel.get_transaction(result.transaction_id)
            if tx is None:
                raise not_found("transaction", result.transaction_id)
            return JSONResponse(transaction_dict(tx, replayed=result.replayed), status_code=201,
                                headers={"Location": f"/api/v1/transactions/{tx.id}"})

        return await idempotent(ctx.pool, request, principal.actor, body.model_dump_json(), run)

    @router.post("/batch", response_model=BatchOut, responses=WRITE_RESPONSES)
    async def create_batch(request: Request, body: BatchIn,
                           principal: rbac.Principal = Depends(require_scopes(rbac.TRANSACTIONS_WRITE))) -> Response:
        """Up to 8,000 transactions in one call; one result per item, in order. Items are
        independent unless ``linked`` (a linked chain succeeds or fails as one)."""
        ctx = context(request)
        await _authorize_items(ctx, principal, body.items)

        async def run(key: str | None) -> Response:
            items = [_item(tx, f"{key}#{i}" if key else _own_key(principal, tx.idempotency_key))
                     for i, tx in enumerate(body.items)]

            async def work() -> Any:
                start = time.perf_counter()
                results = await ctx.kernel.process_transactions(items)
                observe_results(items, results, time.perf_counter() - start)
                return results

            results = await audited(request, principal, "transaction.batch", "transactions", work,
                                    {"items": len(items)})
            out = [{"index": i, "ok": r.ok, "transaction_id": r.transaction_id, "replayed": r.replayed,
                    "error": _error(r.error)} for i, r in enumerate(results)]
            ok = sum(1 for r in results if r.ok)
            return Response(json.dumps({"results": out, "succeeded": ok, "failed": len(out) - ok}),
                            media_type="application/json")

        return await idempotent(ctx.pool, request, principal.actor, body.model_dump_json(), run)

    @router.get("/{transaction_id}", response_model=TransactionOut, responses=READ_RESPONSES)
    async def get_transaction(request: Request, transaction_id: TransactionId,
                              principal: rbac.Principal = Depends(require_scopes(rbac.TRANSACTIONS_READ))
                              ) -> Response:
        tx = await visible_transaction(context(request), principal, transaction_id)
        return JSONResponse(transaction_dict(tx))

    def _operation(name: str, summary: str) -> None:
        body_model = PostPendingIn if name == "post" else ResolveIn

        async def operate(request: Request, transaction_id: TransactionId, body: body_model | None = None,  # type: ignore[valid-type]
                          principal: rbac.Principal = Depends(require_scopes(rbac.TRANSACTIONS_MANAGE))) -> Response:
            ctx = context(request)
            await visible_transaction(ctx, principal, transaction_id)
            payload = body or body_model()

            async def run(key: str | None) -> Response:
                async def work() -> int:
                    meta = payload.metadata
                    if name == "post":
                        return int(await ctx.kernel.post_pending(transaction_id, getattr(payload, "amount", None),
                                                                 metadata=meta,
                                                                 idempotency_key=key))
                    if name == "void":
                        return int(await ctx.kernel.void_pending(transaction_id, metadata=meta, idempotency_key=key))
                    return int(await ctx.kernel.reverse_transaction(transaction_id, metadata=meta,
                                                                    idempotency_key=key))

                new_id = await audited(request, principal, f"transaction.{name}", f"transaction:{transaction_id}",
                                       work)
                tx = await ctx.kernel.get_transaction(new_id)
                if tx is None:
                    raise not_found("transaction", new_id)
                return JSONResponse(transaction_dict(tx), status_code=201,
                                    headers={"Location": f"/api/v1/transactions/{tx.id}"})

            return await idempotent(ctx.pool, request, principal.actor, payload.model_dump_json(), run)

        operate.__name__ = f"{name}_transaction"
        operate.__doc__ = summary
        router.add_api_route(f"/{{transaction_id}}/{name}", operate, methods=["POST"], status_code=201,
                             response_model=TransactionOut, responses=WRITE_RESPONSES, name=f"{name}_transaction")

    _operation("post", "Post a pending transaction (a hold) in full, or in part with ``amount``.")
    _operation("void", "Release a pending transaction (a hold) without moving money.")
    _operation("reverse", "Reverse a posted transaction with a compensating entry.")
    return router
