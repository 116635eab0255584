"""Idempotency on every mutation: the same key with the same request answers the original outcome
(a result or the original rejection, same code and message) and changes nothing; the same key
with a different request is refused with idempotency_conflict. Requests refused before reaching
the ledger (malformed, a linked chain left open) record nothing."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import pytest

from qenex import FinancialKernel, LedgerError

D = Decimal
_n = itertools.count()


def _key(name: str) -> str:
    return f"idem-{name}-{next(_n)}-{id(_n)}"


async def _accounts(k: FinancialKernel, *balances: str) -> list[int]:
    return [(await k.create_account(owner_id="idem", currency="USD", initial_balance=bal)).id for bal in balances]


def _t(a: int, b: int, amount: str, **extra) -> dict:
    return {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": amount, "currency": "USD", **extra}


async def _error(coro) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        await coro
    return info.value


async def _balances(k: FinancialKernel, *ids: int) -> list[Decimal]:
    return [await k.get_account_balance(i) for i in ids]


def test_rejected_transfer_replays_its_error_even_after_the_cause_is_gone(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "5.00", "0")
        key = _key("single")
        first = await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="8.00",
                                                   currency="USD", idempotency_key=key))
        assert first.code == "insufficient_funds"
        await k.process_transaction("DEPOSIT", to_account=a, amount="10.00", currency="USD")  # now it would pass
        again = await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="8.00",
                                                   currency="USD", idempotency_key=key))
        assert (again.code, again.message) == (first.code, first.message)
        assert await _balances(k, a, b) == [D("15.00"), D("0.00")]  # the replay changed nothing
        other = await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.00",
                                                   currency="USD", idempotency_key=key))
        assert other.code == "idempotency_conflict"
        # Through the batch API too: the stored rejection comes back flagged as a replay.
        [res] = await k.process_transactions([_t(a, b, "8.00", idempotency_key=key)])
        assert res.error.code == "insufficient_funds" and res.replayed

    kx(body)


def test_rejected_batch_items_replay_and_conflict(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        keys = [_key("batch") for _ in range(4)]
        items = [_t(a, b, "4.00", idempotency_key=keys[0]), _t(a, b, "40.00", idempotency_key=keys[1]),
                 _t(a, 10**15, "1.00", idempotency_key=keys[2]), _t(a, b, "4.00", idempotency_key=keys[3])]
        first = await k.process_transactions(items)
        codes = [r.error.code if r.error else None for r in first]
        assert codes == [None, "insufficient_funds", "account_not_found", None]
        await k.process_transaction("DEPOSIT", to_account=a, amount="100.00", currency="USD")
        again = await k.process_transactions(items)
        assert [r.error.code if r.error else None for r in again] == codes
        assert [r.transaction_id for r in again] == [r.transaction_id for r in first]
        assert all(r.replayed for r in again)
        assert [r.error.message for r in again if r.error] == [r.error.message for r in first if r.error]
        changed = await k.process_transactions([_t(a, b, "41.00", idempotency_key=keys[1]),
                                                _t(a, b, "1.00", idempotency_key=keys[2])])
        assert [r.error.code for r in changed] == ["idempotency_conflict"] * 2
        assert await _balances(k, a, b) == [D("102.00"), D("8.00")]

    kx(body)


def test_rejections_are_remembered_in_a_large_batch_too(kx):
    """From 64 items on the journal and the success records go by COPY; rejections ride along."""
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "1.00", "0")
        keys = [_key("large") for _ in range(100)]
        items = [_t(a, b, "0.01" if i % 2 else "5.00", idempotency_key=key) for i, key in enumerate(keys)]
        first = await k.process_transactions(items)
        assert sum(r.ok for r in first) == 50
        again = await k.process_transactions(items)
        assert [(r.transaction_id, r.error and r.error.code) for r in again] == [
            (r.transaction_id, r.error and r.error.code) for r in first]
        assert all(r.replayed for r in again)
        assert await _balances(k, a) == [D("0.50")]

    kx(body)


def test_a_failed_linked_chain_remembers_every_key(kx):
    async def body(k: FinancialKernel):
        a, b, c = await _accounts(k, "10.00", "0", "0")
        k1, k2, k3 = _key("c1"), _key("c2"), _key("c3")
        chain = [_t(a, b, "5.00", linked=True, idempotency_key=k1), _t(b, c, "5.00", linked=True, idempotency_key=k2),
                 _t(c, a, "50.00", idempotency_key=k3)]
        codes = ["linked_event_failed", "linked_event_failed", "insufficient_funds"]
        assert [r.error.code for r in await k.process_transactions(chain)] == codes
        await k.process_transaction("DEPOSIT", to_account=c, amount="100.00", currency="USD")
        again = await k.process_transactions(chain)
        assert [r.error.code for r in again] == codes and all(r.replayed for r in again)
        # A partner's key alone, as the same request, answers the chain's failure; changed, it conflicts.
        alone, partner = await k.process_transactions([_t(a, b, "5.00", linked=True, idempotency_key=k1),
                                                       _t(a, b, "0.01")])
        assert alone.error.code == "linked_event_failed" and alone.replayed
        assert partner.error.code == "linked_event_failed"  # its chain replayed a failure
        assert (await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="5.00",
                                                   currency="USD", idempotency_key=k1))).code == "idempotency_conflict"
        assert await _balances(k, a, b, c) == [D("10.00"), D("0.00"), D("100.00")]

    kx(body)


def test_malformed_requests_and_open_chains_record_nothing(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "10.00", "0")
        bad, open_key = _key("bad"), _key("open")
        [res] = await k.process_transactions([_t(a, b, "1.001", idempotency_key=bad)])
        assert res.error.code == "amount_precision"
        [res] = await k.process_transactions([_t(a, b, "1.00", idempotency_key=open_key, linked=True)])
        assert res.error.code == "linked_chain_open"
        # Both keys are still free: the corrected requests run.
        ok = await k.process_transactions([_t(a, b, "1.00", idempotency_key=bad), _t(a, b, "2.00",
                                                                                     idempotency_key=open_key)])
        assert all(r.ok and not r.replayed for r in ok)
        assert await _balances(k, a) == [D("7.00")]

    kx(body)


def test_post_pending_replays_conflicts_and_full_differs_from_an_explicit_amount(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "0")
        p1 = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="30.00", currency="USD",
                                         pending=True)
        key = _key("post")
        posted = await k.post_pending(p1, idempotency_key=key)
        assert await k.post_pending(p1, idempotency_key=key) == posted
        assert await _balances(k, a, b) == [D("70.00"), D("30.00")]
        # "In full" (amount None) and the explicit full amount are different requests (documented).
        assert (await _error(k.post_pending(p1, amount="30.00", idempotency_key=key))).code == "idempotency_conflict"
        assert (await _error(k.post_pending(p1, amount="10.00", idempotency_key=key))).code == "idempotency_conflict"
        # A rejected post is remembered: the key keeps answering pending_already_resolved.
        key2 = _key("post-again")
        first = await _error(k.post_pending(p1, amount="5.00", idempotency_key=key2))
        assert first.code == "pending_already_resolved"
        p2 = await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="5.00", currency="USD",
                                         pending=True)
        assert (await _error(k.post_pending(p2, amount="5.00", idempotency_key=key2))).code == "idempotency_conflict"
        again = await _error(k.post_pending(p1, amount="5.00", idempotency_key=key2))
        assert (again.code, again.message) == (first.code, first.message)
        partial_key = _key("partial")
        part = await k.post_pending(p2, amount="2.00", idempotency_key=partial_key)
        assert await k.post_pending(p2, amount=D("2.00"), idempotency_key=partial_key) == part
        assert await _balances(k, a, b) == [D("68.00"), D("32.00")]

    kx(body)


def test_void_pending_replays_and_conflicts(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "0")
        p1, p2 = [await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="10.00",
                                              currency="USD", pending=True) for _ in range(2)]
        key = _key("void")
        voided = await k.void_pending(p1, idempotency_key=key)
        assert await k.void_pending(p1, idempotency_key=key) == voided
        assert (await _error(k.void_pending(p2, idempotency_key=key))).code == "idempotency_conflict"
        assert (await _error(k.void_pending(p1, idempotency_key=key, metadata={"why": "x"}))).code == (
            "idempotency_conflict")
        assert (await k.get_account(a)).balances.available == D("90.00")  # p2 still held, p1 released once
        late = _key("void-late")
        assert (await _error(k.void_pending(p1, idempotency_key=late))).code == "pending_already_resolved"
        await k.void_pending(p2)
        assert (await _error(k.void_pending(p1, idempotency_key=late))).code == "pending_already_resolved"
        assert (await _error(k.void_pending(p2, idempotency_key=late))).code == "idempotency_conflict"

    kx(body)


def test_reverse_transaction_replays_and_conflicts(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "100.00", "0")
        t1, t2 = [await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="10.00",
                                              currency="USD") for _ in range(2)]
        key = _key("rev")
        r1 = await k.reverse_transaction(t1, idempotency_key=key)
        assert await k.reverse_transaction(t1, idempotency_key=key) == r1
        assert (await _error(k.reverse_transaction(t2, idempotency_key=key))).code == "idempotency_conflict"
        assert await _balances(k, a, b) == [D("90.00"), D("10.00")]
        # Reversing a reversal is refused, and the refusal is what the key answers from then on.
        key2 = _key("rev-rev")
        assert (await _error(k.reverse_transaction(r1, idempotency_key=key2))).code == "not_reversible"
        assert (await _error(k.reverse_transaction(r1, idempotency_key=key2))).code == "not_reversible"
        assert (await _error(k.reverse_transaction(t2, idempotency_key=key2))).code == "idempotency_conflict"

    kx(body)


def test_create_account_replays_and_conflicts(kx):
    async def body(k: FinancialKernel):
        key = _key("acct")
        first = await k.create_account(owner_id="idem-acct", currency="USD", initial_balance="5.00",
                                       idempotency_key=key)
        again = await k.create_account(owner_id="idem-acct", currency="USD", initial_balance="5.00",
                                       idempotency_key=key)
        assert again.id == first.id and again.balance == D("5.00")  # one deposit, not two
        assert len(await k.list_accounts(owner_id="idem-acct")) == 1
        for change in ({"initial_balance": "6.00"}, {"currency": "EUR"}, {"account_type": "SAVINGS"}):
            args = {"owner_id": "idem-acct", "currency": "USD", "initial_balance": "5.00", **change}
            assert (await _error(k.create_account(**args, idempotency_key=key))).code == "idempotency_conflict"
        # A key spent on a transfer cannot open an account, and the other way round.
        a, b = await _accounts(k, "1.00", "0")
        tkey = _key("acct-t")
        await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.00", currency="USD",
                                    idempotency_key=tkey)
        assert (await _error(k.create_account(owner_id="x", currency="USD", idempotency_key=tkey))).code == (
            "idempotency_conflict")
        assert (await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.00",
                                                   currency="USD", idempotency_key=key))).code == "idempotency_conflict"

    kx(body)


@pytest.mark.parametrize("call", ["freeze", "unfreeze", "close", "limit"])
def test_admin_calls_replay_and_conflict(kx, call):
    async def body(k: FinancialKernel):
        a = (await k.create_account(owner_id="idem-admin", currency="USD")).id
        if call == "unfreeze":
            await k.freeze_account(a)

        def act(key: str, acct: int = a, limit: str = "50.00"):
            return {"freeze": lambda: k.freeze_account(acct, idempotency_key=key),
                    "unfreeze": lambda: k.unfreeze_account(acct, idempotency_key=key),
                    "close": lambda: k.close_account(acct, idempotency_key=key),
                    "limit": lambda: k.set_overdraft_limit(acct, limit, idempotency_key=key)}[call]()

        key = _key(call)
        first = await act(key)
        expected = {"freeze": "frozen", "unfreeze": "active", "close": "closed", "limit": "active"}[call]
        assert first.status == expected
        if call == "limit":
            await k.set_overdraft_limit(a, "0")  # changed since: the replay must not set 50.00 again
        elif call == "freeze":
            await k.unfreeze_account(a)
        elif call == "unfreeze":
            await k.freeze_account(a)
        again = await act(key)
        assert again.id == a
        now = await k.get_account(a)
        assert (now.status, now.overdraft_limit) == (again.status, again.overdraft_limit)  # the replay changed nothing
        if call != "close":
            assert now.status != first.status or now.overdraft_limit != first.overdraft_limit
        other = (await k.create_account(owner_id="idem-admin", currency="USD")).id
        assert (await _error(act(key, acct=other))).code == "idempotency_conflict"
        if call == "limit":
            assert (await _error(act(key, limit="60.00"))).code == "idempotency_conflict"
        assert (await _error(k.freeze_account(a, idempotency_key=key) if call != "freeze"
                             else k.unfreeze_account(a, idempotency_key=key))).code == "idempotency_conflict"

    kx(body)


def test_rejected_admin_calls_are_remembered(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "3.00", "0")
        key = _key("close")
        first = await _error(k.close_account(a, idempotency_key=key))
        assert first.code == "account_not_empty"
        await k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="3.00", currency="USD")
        again = await _error(k.close_account(a, idempotency_key=key))  # now empty, but the key answers the same
        assert (again.code, again.message) == (first.code, first.message)
        assert (await k.get_account(a)).status == "active"
        assert (await k.close_account(a, idempotency_key=_key("close2"))).status == "closed"
        assert (await _error(k.freeze_account(a, idempotency_key=key))).code == "idempotency_conflict"
        cash = next(x for x in await k.list_accounts(include_system=True, limit=1000) if x.system_code == "cash")
        sys_key = _key("sys")
        assert (await _error(k.freeze_account(cash.id, idempotency_key=sys_key))).code == "invalid_request"
        assert (await _error(k.freeze_account(cash.id, idempotency_key=sys_key))).code == "invalid_request"
        unknown = _key("unknown")
        assert (await _error(k.freeze_account(10**15, idempotency_key=unknown))).code == "account_not_found"
        assert (await _error(k.freeze_account(a, idempotency_key=unknown))).code == "idempotency_conflict"

    kx(body)


def test_concurrent_retries_of_a_rejected_request_agree(kx):
    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "1.00", "0")
        key = _key("concurrent")

        async def attempt() -> str:
            return (await _error(k.process_transaction("TRANSFER", from_account=a, to_account=b, amount="2.00",
                                                       currency="USD", idempotency_key=key))).code

        assert set(await asyncio.gather(*(attempt() for _ in range(20)))) == {"insufficient_funds"}

    kx(body)


def test_rejections_replay_through_the_key_prefetch_of_a_very_large_batch(kx):
    """From PREFETCH_ITEMS_MIN items on, keys are looked up before the lock: stored rejections too."""
    from qenex.sdk.kernel import PREFETCH_ITEMS_MIN

    async def body(k: FinancialKernel):
        a, b = await _accounts(k, "0.50", "0")
        keys = [_key("prefetch") for _ in range(PREFETCH_ITEMS_MIN)]
        items = [_t(a, b, "0.01", idempotency_key=key) for key in keys]
        first = await k.process_transactions(items)
        assert sum(r.ok for r in first) == 50  # then insufficient_funds, remembered
        await k.process_transaction("DEPOSIT", to_account=a, amount="100.00", currency="USD")
        again = await k.process_transactions(items)
        assert [(r.transaction_id, r.error and r.error.code) for r in again] == [
            (r.transaction_id, r.error and r.error.code) for r in first]
        assert all(r.replayed for r in again)
        assert await _balances(k, a) == [D("100.00")]

    kx(body)
