"""`qenex.sdk.Client` / `AsyncClient` against the real server: the kernel SDK's calls and views,
errors with the kernel's codes, and retries that reuse the idempotency key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from qenex.kernel.errors import LedgerError
from qenex.kernel.model import TransactionType
from qenex.sdk import AsyncClient, Client
from qenex.sdk.client import ClientError

from .conftest import ApiServer


def test_sync_client_mirrors_the_kernel_sdk(server: ApiServer, admin_key: str) -> None:
    with Client(server.url, api_key=admin_key) as qx:
        assert qx.health() == {"status": "ok"}
        a = qx.create_account("sdk-a", "CHECKING", "USD", Decimal("100.00"))
        b = qx.create_account("sdk-b", currency="USD")
        assert a.balance == Decimal("100.00") and a.balances.available == Decimal("100.00")
        tx = qx.process_transaction(TransactionType.TRANSFER, from_account=a.id, to_account=b.id,
                                    amount=Decimal("12.34"), currency="USD", metadata={"description": "sdk"})
        view = qx.get_transaction(tx)
        assert view is not None and view.amount == Decimal("12.34") and view.type is TransactionType.TRANSFER
        assert qx.get_account_balance(b.id) == Decimal("12.34")
        hold = qx.process_transaction("TRANSFER", a.id, b.id, "1.00", "USD", pending=True)
        assert qx.get_transaction(qx.post_pending(hold)).status == "posted"
        results = qx.process_transactions([{"type": "TRANSFER", "from_account": a.id, "to_account": b.id,
                                            "amount": "1.00", "currency": "USD"},
                                           {"type": "TRANSFER", "from_account": a.id, "to_account": b.id,
                                            "amount": "1000.00", "currency": "USD"}])
        assert results[0].ok and not results[1].ok and results[1].error.code == "insufficient_funds"
        statement = qx.statement(a.id, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
        assert statement.closing_balance == Decimal("85.66")
        assert [x.id for x in qx.list_accounts(owner_id="sdk-a")] == [a.id]
        assert qx.get_account(999_999_999) is None and qx.get_transaction(999_999_999) is None
        with pytest.raises(LedgerError) as rejected:
            qx.process_transaction("TRANSFER", a.id, b.id, "5000.00", "USD")
        assert rejected.value.code == "insufficient_funds"
        with pytest.raises(LedgerError):
            qx.process_transaction("TRANSFER", a.id, b.id, 1.5, "USD")  # type: ignore[arg-type]
    with Client(server.url, api_key="qnx_0123456789abcdef_" + "A" * 43) as bad, pytest.raises(ClientError) as exc:
        bad.status()
    assert exc.value.http_status == 401 and exc.value.code == "invalid_token"


def test_async_client(server: ApiServer, admin_key: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, api_key=admin_key) as qx:
            a = await qx.create_account("sdk-async-a", initial_balance="10.00")
            b = await qx.create_account("sdk-async-b")
            ids = await asyncio.gather(*(qx.process_transaction("TRANSFER", a.id, b.id, "1.00", "USD")
                                         for _ in range(5)))
            assert len(set(ids)) == 5
            assert await qx.get_account_balance(a.id) == Decimal("5.00")

    asyncio.run(main())


def test_retries_reuse_the_idempotency_key(server: ApiServer, admin_key: str) -> None:
    """The first attempt reaches the server and commits, but the client sees a 503 (a proxy
    timing out, say); the retry carries the same key and gets the original result."""
    real = httpx.HTTPTransport()
    seen_keys: list[str | None] = []

    class FlakyAfterCommit(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = real.handle_request(request)
            if request.method == "POST" and request.url.path == "/api/v1/transactions":
                seen_keys.append(request.headers.get("idempotency-key"))
                if len(seen_keys) == 1:
                    response.read()
                    return httpx.Response(503, headers={"retry-after": "0"}, request=request)
            return response

    with Client(server.url, api_key=admin_key) as plain:
        a = plain.create_account("retry-a", initial_balance="10.00")
        b = plain.create_account("retry-b")
    with Client(server.url, api_key=admin_key, transport=FlakyAfterCommit()) as qx:
        qx.process_transaction("TRANSFER", a.id, b.id, "4.00", "USD")
        assert len(seen_keys) == 2 and seen_keys[0] == seen_keys[1] and seen_keys[0]
        assert qx.get_account_balance(a.id) == Decimal("6.00")  # applied once
