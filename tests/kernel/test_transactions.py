"""Every transaction type and every rejection code, through the SDK on real PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qenex import FinancialKernel, LedgerError, TransactionType
from qenex.store.ledger_audit import check_invariants

D = Decimal


async def _pair(k: FinancialKernel, a_bal: str = "1000.00", cur: str = "USD") -> tuple[int, int]:
    a = await k.create_account(owner_id="alice", account_type="CHECKING", currency=cur, initial_balance=D(a_bal))
    b = await k.create_account(owner_id="bob", account_type="SAVINGS", currency=cur)
    return a.id, b.id


async def _code(coro) -> str:
    with pytest.raises(LedgerError) as info:
        await coro
    return info.value.code


def test_transfer_and_payment_move_money(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        t1 = await k.process_transaction(TransactionType.TRANSFER, from_account=a, to_account=b,
                                         amount=D("250.50"), currency="USD", metadata={"note": "rent"})
        t2 = await k.process_transaction("PAYMENT", from_account=a, to_account=b, amount="49.50", currency="USD")
        assert await k.get_account_balance(a) == D("700.00")
        assert await k.get_account_balance(b) == D("300.00")
        tx = await k.get_transaction(t1)
        assert tx is not None and tx.type == TransactionType.TRANSFER and tx.status == "posted"
        assert tx.amount == D("250.50") and tx.from_account == a and tx.to_account == b
        assert tx.metadata == {"note": "rent"}
        assert (await k.get_transaction(t2)).type == TransactionType.PAYMENT
        assert await k.get_transaction(10**12) is None

    kx(body)


def test_deposit_withdrawal_fee_interest_adjustment_use_gl_accounts(kx):
    async def body(k: FinancialKernel):
        a, _ = await _pair(k, "100.00")
        await k.process_transaction(TransactionType.DEPOSIT, to_account=a, amount="50.00", currency="USD")
        await k.process_transaction(TransactionType.WITHDRAWAL, from_account=a, amount="20.00", currency="USD")
        await k.process_transaction(TransactionType.FEE, from_account=a, amount="1.25", currency="USD")
        await k.process_transaction(TransactionType.INTEREST, to_account=a, amount="0.75", currency="USD")
        await k.process_transaction(TransactionType.ADJUSTMENT, to_account=a, amount="3.00", currency="USD")
        await k.process_transaction(TransactionType.ADJUSTMENT, from_account=a, amount="1.00", currency="USD")
        assert await k.get_account_balance(a) == D("131.50")
        tx = await k.get_transaction(await k.process_transaction(
            TransactionType.DEPOSIT, to_account=a, amount="1.00", currency="USD"))
        cash = await k.get_account(tx.from_account)
        assert cash.system_code == "cash" and cash.account_type == "GL_ASSET"
        # Balance-sheet identity per currency: the cash GL (asset) grew by what customers hold, net.
        assert cash.balances.posted > 0

    kx(body)


def test_books_hold_after_everything_above(kx, ledger_url):
    async def body(k: FinancialKernel):
        a, b = await _pair(k)
        await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.00", currency="USD")

    kx(body)
    assert check_invariants(ledger_url) == []


def test_error_codes(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k, "100.00")
        e = await k.create_account(owner_id="eve", account_type="CHECKING", currency="EUR")
        t = TransactionType.TRANSFER
        assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount="100.01",
                                                 currency="USD")) == "insufficient_funds"
        assert await _code(k.process_transaction(t, from_account=a, to_account=e.id, amount="1.00",
                                                 currency="USD")) == "currency_mismatch"
        assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount="1.001",
                                                 currency="USD")) == "amount_precision"
        for bad in ("0", "-5", "abc", 10**20):
            assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount=bad,
                                                     currency="USD")) == "invalid_amount"
        with pytest.raises(LedgerError) as info:
            await k.process_transaction(t, from_account=a, to_account=b, amount=1.5, currency="USD")
        assert info.value.code == "invalid_amount"
        assert await _code(k.process_transaction(t, from_account=a, to_account=10**12, amount="1",
                                                 currency="USD")) == "account_not_found"
        assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount="1",
                                                 currency="XXZ")) == "invalid_currency"
        assert await _code(k.process_transaction(t, from_account=a, to_account=a, amount="1",
                                                 currency="USD")) == "same_account"
        await k.freeze_account(b)
        assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount="1",
                                                 currency="USD")) == "account_frozen"
        await k.unfreeze_account(b)
        await k.process_transaction(t, from_account=a, to_account=b, amount="1", currency="USD")
        assert await _code(k.close_account(b)) == "account_not_empty"
        await k.process_transaction(t, from_account=b, to_account=a, amount="1", currency="USD")
        closed = await k.close_account(b)
        assert closed.status == "closed"
        assert await _code(k.process_transaction(t, from_account=a, to_account=b, amount="1",
                                                 currency="USD")) == "account_closed"
        # Nothing was half-applied by any rejection.
        assert await k.get_account_balance(a) == D("100.00")

    kx(body)


def test_overdraft_limit_and_available_balance(kx):
    async def body(k: FinancialKernel):
        a = await k.create_account(owner_id="o", account_type="CHECKING", currency="USD",
                                   initial_balance="10.00", overdraft_limit="50.00", metadata={"tier": "gold"})
        b = await k.create_account(owner_id="p", account_type="CHECKING", currency="USD")
        assert a.overdraft_limit == D("50.00") and a.metadata == {"tier": "gold"}
        await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="60.00", currency="USD")
        assert await k.get_account_balance(a.id) == D("-50.00")
        assert await _code(k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="0.01",
                                                 currency="USD")) == "insufficient_funds"
        await k.set_overdraft_limit(a.id, "60.00")
        await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="10.00", currency="USD")
        acct = await k.get_account(a.id)
        assert acct.balances.posted == D("-60.00") and acct.balances.available == D("-60.00")
        assert acct.balances.debits_posted == D("70.00") and acct.balances.credits_posted == D("10.00")

    kx(body)


def test_three_decimal_and_zero_decimal_currencies(kx):
    async def body(k: FinancialKernel):
        a, b = await _pair(k, "5.125", "BHD")
        await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="0.001", currency="BHD")
        assert await k.get_account_balance(b) == D("0.001")
        j, _ = await _pair(k, "1000", "JPY")
        assert await _code(k.process_transaction("WITHDRAWAL", from_account=j, amount="0.5",
                                                 currency="JPY")) == "amount_precision"

    kx(body)


def test_list_accounts_paginates(kx):
    async def body(k: FinancialKernel):
        ids = [(await k.create_account(owner_id="pager", currency="USD")).id for _ in range(5)]
        await k.freeze_account(ids[0])
        page1 = await k.list_accounts(owner_id="pager", limit=2)
        page2 = await k.list_accounts(owner_id="pager", after=page1[-1].id, limit=2)
        page3 = await k.list_accounts(owner_id="pager", after=page2[-1].id, limit=2)
        assert [x.id for x in page1 + page2 + page3] == ids
        assert [x.id for x in await k.list_accounts(owner_id="pager", status="frozen")] == [ids[0]]
        assert await _code(k.list_accounts(limit=0)) == "invalid_request"

    kx(body)


def test_loan_disbursement_and_repayment(kx):
    async def body(k: FinancialKernel):
        loan = await k.create_account(owner_id="borrower", account_type="LOAN", currency="USD")
        chk = await k.create_account(owner_id="borrower", account_type="CHECKING", currency="USD")
        # Disbursement: the loan (the bank's asset) is debited, the customer's deposit credited.
        await k.process_transaction("TRANSFER", from_account=loan.id, to_account=chk.id, amount="500.00",
                                    currency="USD")
        assert await k.get_account_balance(loan.id) == D("500.00")
        assert await k.get_account_balance(chk.id) == D("500.00")
        await k.process_transaction("PAYMENT", from_account=chk.id, to_account=loan.id, amount="200.00",
                                    currency="USD")
        assert await k.get_account_balance(loan.id) == D("300.00")
        await k.process_transaction("DEPOSIT", to_account=chk.id, amount="100.00", currency="USD")
        assert await _code(k.process_transaction("PAYMENT", from_account=chk.id, to_account=loan.id,
                                                 amount="300.01", currency="USD")) == "limit_exceeded"
        assert await _code(k.create_account(owner_id="x", account_type="LOAN", currency="USD",
                                            overdraft_limit="1")) == "invalid_request"
        assert await _code(k.create_account(owner_id="x", account_type="NOPE", currency="USD")) == "invalid_request"
        gl = await k.create_account(owner_id="bank", account_type="GL_EXPENSE", currency="USD")
        await k.process_transaction("TRANSFER", from_account=gl.id, to_account=chk.id, amount="1.00", currency="USD")
        assert await k.get_account_balance(gl.id) == D("1.00")  # expense: debit-normal

    kx(body)
