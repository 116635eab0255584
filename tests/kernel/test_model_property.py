"""Random operation sequences against a simple reference model (a test oracle, not storage): the
ledger under test is the real kernel on PostgreSQL.

The model keeps every account's four balance columns (customers and the general-ledger accounts
of three currencies with different minor units) and statuses, and predicts each operation's
outcome, including the rejection code, from the rules the ledger documents: transfers, deposits
and withdrawals, two-phase reserve then post (in full or in part) or void, exchanges at a rate,
reversals, freeze/unfreeze/close, linked pairs, and idempotent retries (a retry answers the first
outcome, success or rejection, and changes nothing; the key with another request conflicts).
After every step every balance and status is compared with the model.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qenex import FinancialKernel, LedgerError
from qenex.kernel.money import from_minor
from qenex.store.ledger_audit import check_invariants
from qenex.store.migrate import migrate

MINOR_UNITS = {"USD": 2, "EUR": 2, "JPY": 0}
# Customer accounts: (currency, type, opening balance, overdraft limit), minor units. The empty
# ones let close succeed and make overdraft attempts frequent.
CUSTOMERS = (
    ("USD", "CHECKING", 10_000, 0),
    ("USD", "SAVINGS", 2_000, 0),
    ("USD", "CHECKING", 0, 5_000),
    ("USD", "CHECKING", 0, 0),
    ("EUR", "CHECKING", 5_000, 0),
    ("EUR", "SAVINGS", 0, 0),
    ("JPY", "CHECKING", 3_000, 0),
)
RATES = ("0.9215", "1.0850", "151.37", "0.0066", "0.5")
_keys = itertools.count()

Outcome = tuple[Any, ...]  # ("ok", id) or ("err", code, message)


class Reject(Exception):
    """The model's predicted rejection."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Acct:
    currency: str
    kind: str
    limit: int = 0
    status: str = "active"
    cols: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # dp, cp, dpend, cpend


class Model:
    def __init__(self) -> None:
        self.accts: dict[int, Acct] = {}
        self.pendings: dict[int, tuple[int, int, int]] = {}  # open reservation: debit, credit, amount
        self.postings: dict[int, tuple[tuple[int, int, int], ...]] = {}  # posted tx -> legs
        self.reversed: set[int] = set()
        self.reversals: set[int] = set()

    # The checks the ledger makes, in the order it makes them.
    def require_open(self, *ids: int) -> None:
        for i in ids:
            if self.accts[i].status == "frozen":
                raise Reject("account_frozen")
            if self.accts[i].status == "closed":
                raise Reject("account_closed")

    def apply(self, deltas: dict[int, list[int]]) -> None:
        for i, d in deltas.items():
            a = self.accts[i]
            dp, cp, dpend = a.cols[0] + d[0], a.cols[1] + d[1], a.cols[2] + d[2]
            if a.kind in ("CHECKING", "SAVINGS") and (d[0] > 0 or d[2] > 0) and cp - dp - dpend < -a.limit:
                raise Reject("insufficient_funds")
        for i, d in deltas.items():
            for c in range(4):
                self.accts[i].cols[c] += d[c]

    @staticmethod
    def deltas(legs: list[tuple[int, int, int]], offset: int = 0) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for debit, credit, amount in legs:
            out.setdefault(debit, [0, 0, 0, 0])[offset] += amount
            out.setdefault(credit, [0, 0, 0, 0])[offset + 1] += amount
        return out

    def post_legs(self, legs: list[tuple[int, int, int]], pending: bool = False) -> None:
        for debit, credit, _ in legs:
            if self.accts[debit].currency != self.accts[credit].currency:
                raise Reject("currency_mismatch")
        for debit, credit, _ in legs:
            self.require_open(debit, credit)
        self.apply(self.deltas(legs, 2 if pending else 0))


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    kernel: FinancialKernel
    seen: Counter[str] = Counter()  # outcomes across all examples: proof the rules really ran

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    # ---- set-up -----------------------------------------------------------------------------------
    @initialize()
    def open_accounts(self) -> None:
        k = self.kernel
        self.m = Model()
        self.ids: list[int] = []
        for cur, kind, opening, limit in CUSTOMERS:
            acct = self.run(k.create_account(owner_id="prop", account_type=kind, currency=cur,
                                             initial_balance=from_minor(opening, cur),
                                             overdraft_limit=from_minor(limit, cur) if limit else None))
            self.ids.append(acct.id)
            self.m.accts[acct.id] = Acct(cur, kind, limit, cols=[0, opening, 0, 0])
        # The general-ledger accounts carry what earlier examples left: start from their balances.
        self.system: dict[tuple[str, str], int] = {}
        for acct in self.run(k.list_accounts(include_system=True, limit=1000)):
            if acct.system_code is not None:
                self.system[(acct.currency, acct.system_code)] = acct.id
                b = acct.balances
                cols = [_minor(v, acct.currency) for v in (b.debits_posted, b.credits_posted, b.debits_pending,
                                                            b.credits_pending)]
                self.m.accts[acct.id] = Acct(acct.currency, acct.account_type, cols=cols)
        self.recorded: list[tuple[str, Callable[[], Awaitable[Any]], Outcome, tuple[Any, ...]]] = []

    def cur(self, i: int) -> str:
        return self.m.accts[i].currency

    # ---- running one operation against both ---------------------------------------------------------
    def check(self, call: Callable[[], Awaitable[Any]], predict: Callable[[], Any], key: str | None = None,
              signature: tuple[Any, ...] = (), recorded: bool = True) -> Outcome:
        """Run the kernel call and the model's prediction; they must agree. Records keyed outcomes
        the ledger remembers, for later retries."""
        try:
            got: Outcome = ("ok", _result_id(self.run(call())))
        except LedgerError as exc:
            got = ("err", exc.code, exc.message)
        try:
            predict_result = predict()
            expected_ok = True
        except Reject as rej:
            expected_ok, predict_result = False, rej.code
        if expected_ok:
            assert got[0] == "ok", (got, "model expected success")
            if callable(predict_result):
                predict_result(got[1])  # bookkeeping that needs the id
        else:
            assert got[:2] == ("err", predict_result), (got, predict_result)
        if key is not None and recorded:
            self.recorded.append((key, call, got, signature))
        self.seen[signature[0] if got[0] == "ok" else got[1]] += 1
        return got

    def key(self, use: bool) -> str | None:
        return f"prop-{next(_keys)}-{id(self)}" if use else None

    # ---- rules ------------------------------------------------------------------------------------
    def counterpart(self, data: st.DataObject, a: int) -> int | None:
        """Mostly an account in the same currency (one draw in ten: any other account)."""
        same = [x for x in self.ids if x != a and self.cur(x) == self.cur(a)]
        others = [x for x in self.ids if x != a]
        pool = others if data.draw(st.integers(0, 9)) == 0 or not same else same
        return data.draw(st.sampled_from(pool))

    @rule(data=st.data(), i=st.integers(0, len(CUSTOMERS) - 1), amount=st.integers(1, 6_000),
          pending=st.booleans(), keyed=st.booleans())
    def transfer(self, data, i, amount, pending, keyed):
        a = self.ids[i]
        b = self.counterpart(data, a)
        key = self.key(keyed)
        cur = self.cur(a)

        def predict():
            self.m.post_legs([(a, b, amount)], pending=pending)
            if pending:
                return lambda tx: self.m.pendings.__setitem__(tx, (a, b, amount))
            return lambda tx: self.m.postings.__setitem__(tx, ((a, b, amount),))

        self.check(lambda: self.kernel.process_transaction(
            "TRANSFER", from_account=a, to_account=b, amount=from_minor(amount, cur), currency=cur,
            idempotency_key=key, pending=pending), predict, key, ("reserve" if pending else "transfer", a, b, amount))

    @rule(i=st.integers(0, len(CUSTOMERS) - 1), amount=st.integers(1, 20_000), deposit=st.booleans(),
          keyed=st.booleans())
    def cash(self, i: int, amount: int, deposit: bool, keyed: bool) -> None:
        a = self.ids[i]
        cur = self.cur(a)
        cash = self.system[(cur, "cash")]
        key = self.key(keyed)
        legs = [(cash, a, amount)] if deposit else [(a, cash, amount)]
        kind = "DEPOSIT" if deposit else "WITHDRAWAL"
        side = {"to_account": a} if deposit else {"from_account": a}

        def predict():
            self.m.post_legs(legs)
            return lambda tx: self.m.postings.__setitem__(tx, tuple(legs))

        self.check(lambda: self.kernel.process_transaction(kind, amount=from_minor(amount, cur), currency=cur,
                                                           idempotency_key=key, **side),
                   predict, key, (kind, a, amount))

    @rule(i=st.integers(0, len(CUSTOMERS) - 1), j=st.integers(0, len(CUSTOMERS) - 1), amount=st.integers(1, 8_000),
          rate=st.sampled_from(RATES), keyed=st.booleans())
    def exchange(self, i, j, amount, rate, keyed):
        a, b = self.ids[i], self.ids[j]
        if a == b:
            return
        src, dst = self.cur(a), self.cur(b)
        key = self.key(keyed)
        exact = Fraction(amount, 10 ** MINOR_UNITS[src]) * Fraction(Decimal(rate)) * 10 ** MINOR_UNITS[dst]
        converted = round(exact)  # half to even, as the ledger's ROUND_HALF_EVEN
        refused_before_the_ledger = src == dst or converted <= 0

        def predict():
            if src == dst:
                raise Reject("currency_mismatch")
            if converted <= 0:
                raise Reject("invalid_amount")
            legs = [(a, self.system[(src, "fx_position")], amount), (self.system[(dst, "fx_position")], b, converted)]
            for debit, credit, _ in legs:
                self.m.require_open(debit, credit)
            self.m.apply(self.m.deltas(legs))
            return lambda tx: self.m.postings.__setitem__(tx, tuple(legs))

        self.check(lambda: self.kernel.process_transaction(
            "EXCHANGE", from_account=a, to_account=b, amount=from_minor(amount, src), currency=src, rate=rate,
            idempotency_key=key), predict, key, ("exchange", a, b, amount, rate),
            recorded=not refused_before_the_ledger)

    def some_reservation(self, data: st.DataObject) -> int | None:
        """An open reservation to resolve; when there is none, this step makes one instead."""
        if self.m.pendings:
            return data.draw(st.sampled_from(sorted(self.m.pendings)))
        self.transfer(data, data.draw(st.integers(0, len(CUSTOMERS) - 1)), data.draw(st.integers(1, 2_000)),
                      True, False)
        return None

    @rule(data=st.data(), keyed=st.booleans(), in_full=st.booleans())
    def post(self, data, keyed, in_full):
        p = self.some_reservation(data)
        if p is None:
            return
        debit, credit, amount = self.m.pendings[p]
        part = None if in_full else data.draw(st.integers(1, amount))
        cur = self.cur(debit)
        key = self.key(keyed)

        def predict():
            self.m.require_open(debit, credit)
            posted = amount if part is None else part
            self.m.apply({debit: [posted, 0, -amount, 0], credit: [0, posted, 0, -amount]})
            del self.m.pendings[p]
            return lambda tx: self.m.postings.__setitem__(tx, ((debit, credit, posted),))

        self.check(lambda: self.kernel.post_pending(p, amount=None if part is None else from_minor(part, cur),
                                                    idempotency_key=key), predict, key, ("post", p, part))

    @rule(data=st.data(), keyed=st.booleans())
    def void(self, data, keyed):
        p = self.some_reservation(data)
        if p is None:
            return
        debit, credit, amount = self.m.pendings[p]
        key = self.key(keyed)

        def predict():  # releasing a hold needs no open account
            self.m.apply({debit: [0, 0, -amount, 0], credit: [0, 0, 0, -amount]})
            del self.m.pendings[p]

        self.check(lambda: self.kernel.void_pending(p, idempotency_key=key), predict, key, ("void", p))

    @rule(data=st.data(), keyed=st.booleans())
    def reverse(self, data, keyed):
        candidates = sorted(set(self.m.postings) | self.m.reversals)
        if not candidates:
            return
        tx = data.draw(st.sampled_from(candidates))
        key = self.key(keyed)

        def predict():
            if tx in self.m.reversals:
                raise Reject("not_reversible")
            if tx in self.m.reversed:
                raise Reject("already_reversed")
            legs = [(credit, debit, amount) for debit, credit, amount in self.m.postings[tx]]
            for debit, credit, _ in legs:
                self.m.require_open(debit, credit)
            self.m.apply(self.m.deltas(legs))

            def done(rev: int) -> None:
                self.m.reversed.add(tx)
                self.m.reversals.add(rev)

            return done

        self.check(lambda: self.kernel.reverse_transaction(tx, idempotency_key=key), predict, key, ("reverse", tx))

    @rule(i=st.integers(0, len(CUSTOMERS) - 1), action=st.sampled_from(["freeze", "unfreeze", "unfreeze", "close"]),
          keyed=st.booleans())
    def admin(self, i, action, keyed):
        a = self.ids[i]
        key = self.key(keyed)
        call = {"freeze": self.kernel.freeze_account, "unfreeze": self.kernel.unfreeze_account,
                "close": self.kernel.close_account}[action]

        def predict():
            acct = self.m.accts[a]
            if acct.status == "closed":
                raise Reject("account_closed")
            dp, cp, dpend, cpend = acct.cols
            if action == "close" and (dp != cp or dpend or cpend):
                raise Reject("account_not_empty")
            acct.status = {"freeze": "frozen", "unfreeze": "active", "close": "closed"}[action]

        got = self.check(lambda: call(a, idempotency_key=key), predict, key, (action, a))
        if action == "freeze" and got[0] == "ok" and i < len(CUSTOMERS):
            self.cash(i, 1, False, False)  # a frozen account refuses a withdrawal (account_frozen)

    @rule(cur=st.sampled_from(sorted(MINOR_UNITS)), keyed=st.booleans())
    def open_and_close(self, cur, keyed):
        """A new empty account closes at once; from then on postings to it are account_closed."""
        acct = self.run(self.kernel.create_account(owner_id="prop", currency=cur))
        self.m.accts[acct.id] = Acct(cur, "CHECKING")
        self.ids.append(acct.id)
        self.admin(len(self.ids) - 1, "close", keyed)
        self.cash(len(self.ids) - 1, 1, True, False)  # a closed account refuses a deposit (account_closed)

    @rule(x=st.integers(1, 6_000), y=st.integers(1, 6_000), keyed=st.booleans())
    def linked_pair(self, x, y, keyed):
        a, b, c = self.ids[0], self.ids[1], self.ids[2]
        k1, k2 = self.key(keyed), self.key(keyed)
        items = [{"type": "TRANSFER", "from_account": a, "to_account": b, "amount": from_minor(x, "USD"),
                  "currency": "USD", "linked": True, "idempotency_key": k1},
                 {"type": "TRANSFER", "from_account": b, "to_account": c, "amount": from_minor(y, "USD"),
                  "currency": "USD", "idempotency_key": k2}]
        snapshot = {i: list(acct.cols) for i, acct in self.m.accts.items()}
        try:
            self.m.post_legs([(a, b, x)])
            self.m.post_legs([(b, c, y)])
            ok = True
        except Reject:
            for i, cols in snapshot.items():  # the chain fails as one: nothing of it stays
                self.m.accts[i].cols = cols
            ok = False
        results = self.run(self.kernel.process_transactions(items))
        assert [r.ok for r in results] == [ok, ok], results
        self.seen["linked_ok" if ok else "linked_failed"] += 1
        if ok:
            self.m.postings[results[0].transaction_id] = ((a, b, x),)
            self.m.postings[results[1].transaction_id] = ((b, c, y),)

    @rule(data=st.data())
    def retry(self, data):
        """A keyed request again: the first outcome, success or rejection, and no change."""
        if not self.recorded:
            return
        key, call, first, _ = data.draw(st.sampled_from(self.recorded))
        try:
            again: Outcome = ("ok", _result_id(self.run(call())))
        except LedgerError as exc:
            again = ("err", exc.code, exc.message)
        assert again == first, (key, first, again)
        self.seen["retry"] += 1

    @rule(data=st.data())
    def conflict(self, data):
        """A recorded key with a different request is refused and changes nothing."""
        if not self.recorded:
            return
        key, _, _, signature = data.draw(st.sampled_from(self.recorded))
        a = self.ids[0]
        if signature == ("DEPOSIT", a, 1):
            return
        with pytest.raises(LedgerError) as info:
            self.run(self.kernel.process_transaction("DEPOSIT", to_account=a, amount="0.01", currency="USD",
                                                     idempotency_key=key))
        assert info.value.code == "idempotency_conflict"
        self.seen["conflict"] += 1

    # ---- after every step -------------------------------------------------------------------------
    @invariant()
    def every_balance_and_status_matches_the_model(self):
        if not hasattr(self, "m"):
            return
        seen = 0
        for acct in self.run(self.kernel.list_accounts(include_system=True, limit=1000)):
            model = self.m.accts.get(acct.id)
            if model is None:  # an earlier example's customers: no longer modelled
                continue
            b = acct.balances
            cols = [_minor(v, acct.currency) for v in (b.debits_posted, b.credits_posted, b.debits_pending,
                                                        b.credits_pending)]
            assert (cols, acct.status) == (model.cols, model.status), (acct.id, acct.account_type)
            seen += 1
        assert seen == len(self.m.accts)


def _minor(value: Decimal, currency: str) -> int:
    return int(value.scaleb(MINOR_UNITS[currency]))


def _result_id(value: Any) -> int:
    return value if isinstance(value, int) else value.id  # admin calls return the account


@pytest.mark.slow
def test_random_operation_sequences_match_the_model(fresh_db_url):
    migrate(fresh_db_url)
    loop = asyncio.new_event_loop()
    kernel = FinancialKernel({"database": {"url": fresh_db_url}})
    loop.run_until_complete(kernel.initialize())
    LedgerMachine.loop = loop
    LedgerMachine.kernel = kernel
    try:
        runner = LedgerMachine.TestCase
        runner.settings = settings(max_examples=25, stateful_step_count=40, deadline=None,
                                   suppress_health_check=list(HealthCheck))
        runner().runTest()
    finally:
        loop.run_until_complete(kernel.shutdown())
        loop.close()
    assert check_invariants(fresh_db_url) == []
    # Every kind of operation, success and rejection, really ran.
    expected = {"transfer", "reserve", "DEPOSIT", "WITHDRAWAL", "exchange", "post", "void", "reverse", "freeze",
                "unfreeze", "close", "retry", "conflict", "linked_ok", "linked_failed", "insufficient_funds",
                "currency_mismatch", "account_frozen", "account_closed"}
    assert expected <= set(LedgerMachine.seen), expected - set(LedgerMachine.seen)
