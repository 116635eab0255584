"""Random operation sequences against a simple reference model (a test oracle, not storage):
the ledger under test is the real kernel on PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qenex import FinancialKernel, LedgerError
from qenex.kernel.money import from_minor
from qenex.store.ledger_audit import check_invariants

LIMITS = (0, 0, 5_000)  # overdraft limits in cents of the three accounts
OPENING = (10_000, 2_000, 0)
_keys = itertools.count()


@dataclass
class Model:
    posted: list[int] = field(default_factory=lambda: list(OPENING))
    holds: list[int] = field(default_factory=lambda: [0, 0, 0])
    pendings: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    reversible: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def can_debit(self, i: int, amount: int) -> bool:
        return self.posted[i] - self.holds[i] - amount >= -LIMITS[i]


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    kernel: FinancialKernel

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @initialize()
    def open_accounts(self):
        self.model = Model()
        self.ids = [
            self.run(self.kernel.create_account(owner_id="prop", currency="USD", initial_balance=from_minor(o, "USD"),
                                                overdraft_limit=from_minor(lim, "USD"))).id
            for o, lim in zip(OPENING, LIMITS, strict=True)
        ]

    def _transfer(self, a: int, b: int, cents: int, **kw) -> int | None:
        try:
            return self.run(self.kernel.process_transaction(
                "TRANSFER", from_account=self.ids[a], to_account=self.ids[b], amount=from_minor(cents, "USD"),
                currency="USD", **kw))
        except LedgerError as exc:
            assert exc.code == "insufficient_funds", exc
            return None

    @rule(a=st.integers(0, 2), b=st.integers(0, 2), cents=st.integers(1, 15_000))
    def transfer(self, a, b, cents):
        if a == b:
            return
        ok = self.model.can_debit(a, cents)
        tx = self._transfer(a, b, cents)
        assert (tx is not None) == ok
        if ok:
            self.model.posted[a] -= cents
            self.model.posted[b] += cents
            self.model.reversible[tx] = (a, b, cents)

    @rule(a=st.integers(0, 2), b=st.integers(0, 2), cents=st.integers(1, 5_000))
    def idempotent_retry(self, a, b, cents):
        if a == b:
            return
        key = f"prop-{next(_keys)}-{id(self)}"
        ok = self.model.can_debit(a, cents)
        first = self._transfer(a, b, cents, idempotency_key=key)
        second = self._transfer(a, b, cents, idempotency_key=key)
        assert first == second and (first is not None) == ok
        if ok:
            self.model.posted[a] -= cents
            self.model.posted[b] += cents

    @rule(a=st.integers(0, 2), b=st.integers(0, 2), cents=st.integers(1, 8_000))
    def reserve(self, a, b, cents):
        if a == b:
            return
        ok = self.model.can_debit(a, cents)
        p = self._transfer(a, b, cents, pending=True, timeout_seconds=3600)
        assert (p is not None) == ok
        if ok:
            self.model.holds[a] += cents
            self.model.pendings[p] = (a, b, cents)

    @rule(data=st.data())
    def resolve(self, data):
        if not self.model.pendings:
            return
        p = data.draw(st.sampled_from(sorted(self.model.pendings)))
        a, b, cents = self.model.pendings.pop(p)
        self.model.holds[a] -= cents
        if data.draw(st.booleans()):
            part = data.draw(st.integers(1, cents))
            self.run(self.kernel.post_pending(p, amount=from_minor(part, "USD")))
            self.model.posted[a] -= part
            self.model.posted[b] += part
        else:
            self.run(self.kernel.void_pending(p))

    @rule(data=st.data())
    def reverse(self, data):
        if not self.model.reversible:
            return
        tx = data.draw(st.sampled_from(sorted(self.model.reversible)))
        a, b, cents = self.model.reversible.pop(tx)
        ok = self.model.can_debit(b, cents)
        try:
            self.run(self.kernel.reverse_transaction(tx))
            assert ok
            self.model.posted[b] -= cents
            self.model.posted[a] += cents
        except LedgerError as exc:
            assert not ok and exc.code == "insufficient_funds"

    @rule(x=st.integers(1, 6_000), y=st.integers(1, 6_000))
    def linked_pair(self, x, y):
        m = self.model
        ok = m.can_debit(0, x) and (m.posted[1] + x - m.holds[1] - y >= -LIMITS[1])
        items = [{"type": "TRANSFER", "from_account": self.ids[0], "to_account": self.ids[1],
                  "amount": from_minor(x, "USD"), "currency": "USD", "linked": True},
                 {"type": "TRANSFER", "from_account": self.ids[1], "to_account": self.ids[2],
                  "amount": from_minor(y, "USD"), "currency": "USD"}]
        results = self.run(self.kernel.process_transactions(items))
        assert [r.ok for r in results] == [ok, ok]
        if ok:
            m.posted[0] -= x
            m.posted[1] += x - y
            m.posted[2] += y

    @invariant()
    def balances_match_model(self):
        if not hasattr(self, "ids"):
            return
        for i, account_id in enumerate(self.ids):
            acct = self.run(self.kernel.get_account(account_id))
            assert acct.balances.posted == from_minor(self.model.posted[i], "USD") or (
                self.model.posted[i] < 0 and acct.balances.posted == -from_minor(-self.model.posted[i], "USD"))
            avail = self.model.posted[i] - self.model.holds[i]
            assert acct.balances.available == (from_minor(avail, "USD") if avail >= 0 else -from_minor(-avail, "USD"))


@pytest.mark.slow
def test_random_operation_sequences_match_the_model(ledger_url):
    loop = asyncio.new_event_loop()
    kernel = FinancialKernel({"database": {"url": ledger_url}})
    loop.run_until_complete(kernel.initialize())
    LedgerMachine.loop = loop
    LedgerMachine.kernel = kernel
    try:
        runner = LedgerMachine.TestCase
        runner.settings = settings(max_examples=20, stateful_step_count=15, deadline=None,
                                   suppress_health_check=list(HealthCheck))
        runner().runTest()
    finally:
        loop.run_until_complete(kernel.shutdown())
        loop.close()
    assert check_invariants(ledger_url) == []
