"""Two-phase transfers: reserve, then post (full or partial) or void; expiry releases funds."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from qenex import FinancialKernel, LedgerError, TransactionType

D = Decimal


async def _pair(k: FinancialKernel) -> tuple[int, int]:
    a = await k.create_account(owner_id="tp_a", currency="USD", initial_balance="100.00")
    b = await k.create_account(owner_id="tp_b", currency="USD")
    return a.id, b.id


async def _reserve(k: FinancialKernel, a: int, b: int, amount: str, timeout: int | None = None) -> int:
    return await k.process_transaction(TransactionType.TRANSFER, from_account=a, to_account=b, amount=amount,
                                       currency="USD", pending=True, timeout_seconds=timeout)


def test_reserve_then_post_in_full(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        p = await _reserve(k, a, b, "30.00")
        acct = await k.get_account(a)
        assert acct.balances.posted == D("100.00") and acct.balances.available == D("70.00")
        assert acct.balances.debits_pending == D("30.00")
        # The reservation holds: a transfer of more than what is available fails.
        with pytest.raises(LedgerError) as info:
            await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="70.01", currency="USD")
        assert info.value.code == "insufficient_funds"
        assert (await k.get_transaction(p)).status == "pending"
        posted = await k.post_pending(p)
        assert await k.get_account_balance(a) == D("70.00") and await k.get_account_balance(b) == D("30.00")
        tx = await k.get_transaction(p)
        assert tx.status == "posted" and tx.resolved_by == posted
        assert (await k.get_transaction(posted)).related_transaction_id == p
        with pytest.raises(LedgerError) as info:
            await k.post_pending(p)
        assert info.value.code == "pending_already_resolved"

    kx(body)


def test_partial_post_releases_the_rest(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        p = await _reserve(k, a, b, "30.00")
        with pytest.raises(LedgerError) as info:
            await k.post_pending(p, amount="30.01")
        assert info.value.code == "invalid_amount"
        await k.post_pending(p, amount=D("12.34"))
        acct = await k.get_account(a)
        assert acct.balances.posted == D("87.66") and acct.balances.available == D("87.66")
        assert acct.balances.pending == D("0.00")

    kx(body)


def test_void_releases_everything(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        p = await _reserve(k, a, b, "100.00")
        await k.void_pending(p)
        acct = await k.get_account(a)
        assert acct.balances.available == D("100.00") and acct.balances.posted == D("100.00")
        assert (await k.get_transaction(p)).status == "voided"
        with pytest.raises(LedgerError) as info:
            await k.void_pending(p)
        assert info.value.code == "pending_already_resolved"
        tx = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1", currency="USD")
        with pytest.raises(LedgerError) as info:
            await k.post_pending(tx)
        assert info.value.code == "not_pending"
        with pytest.raises(LedgerError) as info:
            await k.void_pending(10**12)
        assert info.value.code == "transaction_not_found"

    kx(body)


def test_expiry_releases_funds_and_post_after_expiry_fails(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        p = await _reserve(k, a, b, "80.00", timeout=1)
        assert (await k.get_account(a)).balances.available == D("20.00")
        await asyncio.sleep(1.3)
        with pytest.raises(LedgerError) as info:
            await k.post_pending(p)
        assert info.value.code == "pending_expired"
        acct = await k.get_account(a)
        assert acct.balances.available == D("100.00") and acct.balances.posted == D("100.00")
        assert (await k.get_transaction(p)).status == "expired"
        with pytest.raises(LedgerError) as info:
            await k.void_pending(p)
        assert info.value.code == "pending_expired"

    kx(body)


def test_expired_reservation_is_swept_without_being_touched(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        p = await _reserve(k, a, b, "80.00", timeout=1)
        # The kernel's sweeper (or any later batch) releases it; nobody posts or voids it.
        for _ in range(40):
            await asyncio.sleep(0.1)
            if (await k.get_transaction(p)).status == "expired":
                break
        assert (await k.get_transaction(p)).status == "expired"
        assert (await k.get_account(a)).balances.available == D("100.00")

    kx(body)
