"""Batches (independent and linked items), idempotency keys, reversal and currency exchange."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from qenex import FinancialKernel, LedgerError, TransactionType

D = Decimal


async def _accounts(k: FinancialKernel, *balances: str, cur: str = "USD") -> list[int]:
    return [(await k.create_account(owner_id="batch", currency=cur, initial_balance=bal)).id for bal in balances]


def _t(a: int, b: int, amount: str, **extra) -> dict:
    return {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": amount, "currency": "USD", **extra}


def test_batch_items_are_independent_and_in_order(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        results = await k.process_transactions([_t(a, b, "6.00"), _t(a, b, "6.00"), _t(a, b, "4.00"),
                                                _t(a, b, "1.001")])
        assert [r.ok for r in results] == [True, False, True, False]
        assert results[1].error.code == "insufficient_funds" and results[3].error.code == "amount_precision"
        assert results[0].transaction_id < results[2].transaction_id
        assert await k.get_account_balance(a) == D("0.00")

    kx(body)


def test_linked_chain_fails_as_one(kx):
    async def body(k: FinancialKernel):
        a, b, c = await _accounts(k, "10.00", "0", "0")
        results = await k.process_transactions([
            _t(a, b, "5.00", linked=True), _t(b, c, "5.00", linked=True), _t(c, a, "99.00"),  # chain fails
            _t(a, c, "1.00"),  # independent, succeeds
        ])
        assert [r.ok for r in results] == [False, False, False, True]
        assert [r.error.code for r in results[:3]] == ["linked_event_failed", "linked_event_failed",
                                                       "insufficient_funds"]
        assert [await k.get_account_balance(x) for x in (a, b, c)] == [D("9.00"), D("0.00"), D("1.00")]
        ok = await k.process_transactions([_t(a, b, "5.00", linked=True), _t(b, c, "5.00")])
        assert all(r.ok for r in ok)
        # A malformed item inside a chain fails the chain too.
        bad = await k.process_transactions([_t(c, a, "1.00", linked=True), _t(a, b, "-1")])
        assert [r.error.code for r in bad] == ["linked_event_failed", "invalid_amount"]

    kx(body)


def test_idempotent_replay_and_conflict(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        key = f"idem-{a}"
        t1 = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="3.00", currency="USD",
                                         idempotency_key=key)
        t2 = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="3.00", currency="USD",
                                         idempotency_key=key)
        assert t1 == t2 and await k.get_account_balance(a) == D("7.00")
        with pytest.raises(LedgerError) as info:
            await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="3.01", currency="USD",
                                        idempotency_key=key)
        assert info.value.code == "idempotency_conflict"
        # Same key twice inside one batch, and retried concurrently from many tasks.
        res = await k.process_transactions([_t(a, b, "1.00", idempotency_key=key + "x"),
                                            _t(a, b, "1.00", idempotency_key=key + "x")])
        assert res[0].transaction_id == res[1].transaction_id and res[1].replayed
        ids = await asyncio.gather(*[
            k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.00", currency="USD",
                                  idempotency_key=key + "y") for _ in range(10)])
        assert len(set(ids)) == 1
        assert await k.get_account_balance(a) == D("5.00")
        # Accounts, posts, voids and reversals take keys too.
        acct1 = await k.create_account(owner_id="ik", currency="USD", initial_balance="5", idempotency_key=key + "a")
        acct2 = await k.create_account(owner_id="ik", currency="USD", initial_balance="5", idempotency_key=key + "a")
        assert acct1.id == acct2.id and acct2.balance == D("5.00")
        with pytest.raises(LedgerError) as info:
            await k.create_account(owner_id="ik", currency="USD", initial_balance="6", idempotency_key=key + "a")
        assert info.value.code == "idempotency_conflict"
        r1 = await k.reverse_transaction(t1, idempotency_key=key + "r")
        assert await k.reverse_transaction(t1, idempotency_key=key + "r") == r1

    kx(body)


def test_batch_limit(kx):
    async def body(k: FinancialKernel):
        with pytest.raises(LedgerError) as info:
            await k.process_transactions([{}] * 8191)
        assert info.value.code == "batch_too_large"
        assert await k.process_transactions([]) == []

    kx(body)


def test_reversal_is_a_compensating_entry(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        t = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="4.00", currency="USD")
        r = await k.reverse_transaction(t)
        assert await k.get_account_balance(a) == D("10.00") and await k.get_account_balance(b) == D("0.00")
        rev = await k.get_transaction(r)
        assert rev.type == TransactionType.REVERSAL and rev.related_transaction_id == t
        assert rev.from_account == b and rev.to_account == a
        assert (await k.get_transaction(t)).status == "reversed"
        for target, code in ((t, "already_reversed"), (r, "not_reversible"), (10**12, "transaction_not_found")):
            with pytest.raises(LedgerError) as info:
                await k.reverse_transaction(target)
            assert info.value.code == code
        # Through process_transaction as well; a reversal that would overdraw the receiver is refused.
        t2 = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="4.00", currency="USD")
        await k.process_transaction("TRANSFER", from_account=b, to_account=a, amount="4.00", currency="USD")
        with pytest.raises(LedgerError) as info:
            await k.process_transaction(TransactionType.REVERSAL, original_transaction_id=t2)
        assert info.value.code == "insufficient_funds"

    kx(body)


def test_exchange_records_rate_and_balances_per_currency(kx):
    async def body(k: FinancialKernel):
        usd = await k.create_account(owner_id="fx", currency="USD", initial_balance="100.00")
        eur = await k.create_account(owner_id="fx", currency="EUR")
        jpy = await k.create_account(owner_id="fx", currency="JPY")
        t = await k.process_transaction(TransactionType.EXCHANGE, from_account=usd.id, to_account=eur.id,
                                        amount="10.00", currency="USD", rate="0.9215")
        assert await k.get_account_balance(usd.id) == D("90.00")
        assert await k.get_account_balance(eur.id) == D("9.22")  # 9.215 rounded half-even
        tx = await k.get_transaction(t)
        assert tx.fx_rate == D("0.9215") and len(tx.legs) == 2
        assert {leg.currency for leg in tx.legs} == {"USD", "EUR"}
        assert tx.legs[0].amount == D("10.00") and tx.legs[1].amount == D("9.22")
        await k.process_transaction("EXCHANGE", from_account=usd.id, to_account=jpy.id, amount="1.00",
                                    rate="151.37")
        assert await k.get_account_balance(jpy.id) == D("151")
        with pytest.raises(LedgerError) as info:
            await k.process_transaction("EXCHANGE", from_account=usd.id, to_account=eur.id, amount="1",
                                        currency="USD")
        assert info.value.code == "invalid_request"  # no rate
        with pytest.raises(LedgerError) as info:
            await k.process_transaction("EXCHANGE", from_account=usd.id, to_account=eur.id, amount="1000",
                                        currency="USD", rate="0.9")
        assert info.value.code == "insufficient_funds"

    kx(body)


def test_malformed_items_fail_alone(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        results = await k.process_transactions([
            {"type": "NOPE", "from_account": a, "to_account": b, "amount": "1", "currency": "USD"},
            _t(a, 2**70, "1.00"),
            _t(a, b, "1.00", idempotency_key="x" * 201),
            {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "1.00"},  # currency from account
            _t(a, b, "1.00", metadata=["not", "an", "object"]),
        ])
        assert [r.error.code if r.error else None for r in results] == [
            "invalid_request", "invalid_request", "invalid_request", None, "invalid_request"]
        with pytest.raises(LedgerError) as info:
            await k.create_account(owner_id="bad\x00owner", currency="USD")
        assert info.value.code == "invalid_request"
        assert await k.get_account_balance(a) == D("9.00")

    kx(body)


def test_replay_through_the_general_path_matches_the_fast_path(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        key = f"paths-{a}"
        fast = await k.process_transactions([_t(a, b, "2.00", idempotency_key=key)])
        general = await k.process_transactions([
            {"type": "transfer", "from_account": str(a), "to_account": str(b), "amount": D("2.00"),
             "currency": "USD", "idempotency_key": key}])
        assert general[0].replayed and general[0].transaction_id == fast[0].transaction_id
        assert await k.get_account_balance(a) == D("8.00")

    kx(body)


def test_large_batch_with_awkward_metadata_keeps_the_chain(kx, ledger_url):
    from qenex.store.ledger_audit import verify_journal

    awkward = {"note": "tab\there\nnew line \\ back-slash \r ünïcode ✓ \\N", "n": [1, 2.5]}

    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "0")
        items = [_t(a, b, "0.01", metadata=awkward) for _ in range(150)]  # large enough for the COPY path
        items.append({"type": "EXCHANGE", "from_account": a, "to_account": (await k.create_account(
            owner_id="batch", currency="EUR")).id, "amount": "1.00", "currency": "USD", "rate": "1.0850"})
        results = await k.process_transactions(items)
        assert all(r.ok for r in results)
        tx = await k.get_transaction(results[0].transaction_id)
        assert tx.metadata == awkward
        assert (await k.get_transaction(results[-1].transaction_id)).fx_rate == D("1.0850")
        assert await k.get_account_balance(a) == D("97.50")

    kx(body)
    assert verify_journal(ledger_url).ok


def test_fast_digest_matches_the_general_digest():
    from qenex.sdk.kernel import _digest, _fast_digest

    for args in (("TRANSFER", 1, 2, 1, "USD", False), ("PAYMENT", 2**63 - 1, 7, 10**15, "JPY", True)):
        tx_type, frm, to, amount, code, linked = args
        assert _fast_digest(*args) == _digest("tx", tx_type, frm, to, amount, code, None, False, None, None, linked)


def test_large_keyed_batch_replays_and_conflicts_through_the_copy_path(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "0")
        # Keys with COPY's special characters, in a batch large enough for the COPY path.
        keys = [f"copy-{a}-{i}-tab\there\\back\nline\r" for i in range(100)]
        first = await k.process_transactions([_t(a, b, "0.01", idempotency_key=key) for key in keys])
        assert all(r.ok and not r.replayed for r in first)
        again = await k.process_transactions([_t(a, b, "0.01", idempotency_key=key) for key in keys])
        assert [r.transaction_id for r in again] == [r.transaction_id for r in first]
        assert all(r.replayed for r in again)
        changed = await k.process_transactions([_t(a, b, "0.02", idempotency_key=key) for key in keys[:70]])
        assert {r.error.code for r in changed} == {"idempotency_conflict"}
        assert await k.get_account_balance(a) == D("99.00")

    kx(body)


def test_unhashable_type_fails_alone(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        results = await k.process_transactions([{**_t(a, b, "1.00"), "type": ["TRANSFER"]}, _t(a, b, "1.00")])
        assert results[0].error.code == "invalid_request" and results[1].ok

    kx(body)


def test_a_call_ending_on_a_linked_item_fails_its_open_chain(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        results = await k.process_transactions([_t(a, b, "1.00"), _t(a, b, "2.00", linked=True),
                                                _t(b, a, "0.50", linked=True)])
        assert [r.error.code if r.error else None for r in results] == [None, "linked_chain_open",
                                                                        "linked_chain_open"]
        assert await k.get_account_balance(a) == D("9.00")
        [single] = await k.process_transactions([_t(a, b, "1.00", linked=True)])
        assert single.error.code == "linked_chain_open" and single.error.http_status == 400
        # A malformed item ending the call leaves the chain open just the same.
        bad = await k.process_transactions([_t(a, b, "1.00", linked=True), _t(a, b, "x", linked=True)])
        assert [r.error.code for r in bad] == ["linked_chain_open", "linked_chain_open"]
        assert await k.get_account_balance(a) == D("9.00")

    kx(body)


def test_one_callers_open_chain_never_absorbs_another_callers_items(kx):
    """The writer groups concurrent calls into one database transaction. Caller A's call ends on
    a linked item; caller B's item fails (or succeeds). A's answer must not depend on B's, and B's
    items must never be decided as part of A's chain."""
    from qenex.sdk.kernel import _Job

    async def body(k: FinancialKernel):
        a, b, c = await _accounts(k, "100.00", "0", "0")
        for _ in range(10):  # concurrent callers, grouped by the writer whenever they meet
            ra, rb, rc = await asyncio.gather(
                k.process_transactions([_t(a, b, "1.00", linked=True)]),
                k.process_transactions([_t(c, a, "5.00")]),  # fails: c is empty
                k.process_transactions([_t(a, c, "1.00", linked=True), _t(c, b, "1.00")]),  # a closed chain
            )
            assert [r.error.code for r in ra] == ["linked_chain_open"]
            assert rb[0].error.code == "insufficient_funds"
            assert all(r.ok for r in rc)
        assert await k.get_account_balance(a) == D("90.00") and await k.get_account_balance(b) == D("10.00")

        # The same two calls in one group, deterministically (what the writer does when both are queued).
        loop = asyncio.get_running_loop()
        prepared = [await k._prepare(items) for items in ([_t(a, b, "1.00", linked=True)], [_t(c, a, "5.00")],
                                                         [_t(a, b, "2.00")])]
        jobs = [_Job(cmds, loop.create_future()) for cmds in prepared]
        await k._execute(jobs)
        answers = [[r.error.code if r.error else None for r in job.future.result()] for job in jobs]
        assert answers == [["linked_chain_open"], ["insufficient_funds"], [None]]
        assert await k.get_account_balance(a) == D("88.00")

    kx(body)


def test_settlement_types_need_a_general_ledger_account_on_the_bank_side(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "50.00")
        loan = (await k.create_account(owner_id="batch", account_type="LOAN", currency="USD")).id
        cases = [("DEPOSIT", {"from_account": b, "to_account": a}),
                 ("DEPOSIT", {"from_account": loan, "to_account": a}),
                 ("WITHDRAWAL", {"from_account": a, "to_account": b}),
                 ("FEE", {"from_account": a, "to_account": b}),
                 ("INTEREST", {"from_account": b, "to_account": a})]
        for tx_type, accounts in cases:
            with pytest.raises(LedgerError) as info:
                await k.process_transaction(tx_type, amount="1.00", currency="USD", **accounts)
            assert info.value.code == "settlement_account_required", (tx_type, accounts)
            with pytest.raises(LedgerError) as info:  # the two-phase form too
                await k.process_transaction(tx_type, amount="1.00", currency="USD", pending=True, **accounts)
            assert info.value.code == "settlement_account_required"
        assert [await k.get_account_balance(x) for x in (a, b)] == [D("100.00"), D("50.00")]
        # The defaults (cash, fee_income, interest_expense) and an explicit GL account still work.
        system = {x.system_code: x.id for x in await k.list_accounts(include_system=True, limit=1000)
                  if x.currency == "USD" and x.system_code}
        await k.process_transaction("DEPOSIT", to_account=a, amount="1.00", currency="USD")
        await k.process_transaction("DEPOSIT", from_account=system["adjustments"], to_account=a, amount="1.00",
                                    currency="USD")
        await k.process_transaction("WITHDRAWAL", from_account=a, amount="1.00", currency="USD")
        await k.process_transaction("FEE", from_account=a, amount="0.50", currency="USD")
        await k.process_transaction("INTEREST", to_account=a, amount="0.25", currency="USD")
        fee = await k.process_transaction("FEE", from_account=a, to_account=system["fee_income"], amount="0.25",
                                          currency="USD")
        assert (await k.get_transaction(fee)).to_account == system["fee_income"]
        assert await k.get_account_balance(a) == D("100.50")

    kx(body)
