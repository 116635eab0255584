"""The engine on its own (pure domain, no database): planning decisions and their rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qenex.kernel.chain import GENESIS_HASH, epoch_us, row_hash
from qenex.kernel.engine import BatchState, plan_batch
from qenex.kernel.model import (
    AccountState,
    EntryKind,
    Leg,
    NewTransaction,
    PendingRecord,
    PendingState,
    PostPending,
    Rejected,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _state(**balances: int) -> BatchState:
    accounts = {
        i: AccountState(i, "USD", "CHECKING", "active", 0, 0, bal, 0, 0)
        for i, bal in enumerate(balances.values(), start=1)
    }
    accounts[99] = AccountState(99, "USD", "GL_ASSET", "active", 0, 10**9, 0, 0, 0)
    return BatchState(0, GENESIS_HASH, NOW, accounts, {}, {}, set(), {})


def _t(a: int, b: int, amount: int, **kw) -> NewTransaction:
    return NewTransaction("TRANSFER", (Leg(a, b, amount, "USD"),), **kw)


def test_rows_are_sequenced_and_hash_chained():
    state = _state(a=100, b=0)
    plan = plan_batch([_t(1, 2, 30), _t(1, 2, 80), _t(2, 1, 10)], state)
    assert [r.result_id for r in plan.results] == [1, None, 2]
    assert plan.results[1].error.code == "insufficient_funds"
    assert [r[0] for r in plan.journal] == [1, 2] and plan.head_seq == 2
    prev = GENESIS_HASH
    for r, h in zip(plan.journal, plan.hashes, strict=True):
        prev = row_hash(prev, *r[:10], r[10] or "", epoch_us(NOW), r[11])
        assert prev == h
    assert plan.head_hash == prev
    assert state.accounts[1].debits_posted == 30 and state.accounts[1].credits_posted == 110


def test_failed_linked_chain_leaves_no_trace():
    state = _state(a=100, b=0, c=0)
    plan = plan_batch([_t(1, 2, 50, linked=True, key="k1", digest=b"d"), _t(2, 3, 60)], state)
    assert [r.error.code for r in plan.results] == ["linked_event_failed", "insufficient_funds"]
    assert plan.journal == [] and plan.idempotency_inserts == [] and plan.tx_count == 0
    assert state.accounts[1].debits_posted == 0 and state.accounts[2].credits_posted == 0
    # The chain's rejection is remembered under its key (a retry answers it again).
    assert [(k, d, c) for k, d, c, _ in plan.idempotency_failures] == [("k1", b"d", "linked_event_failed")]
    assert state.idempotency["k1"][1].code == "linked_event_failed"


def test_rejected_item_inside_chain_fails_it():
    state = _state(a=100, b=0)
    plan = plan_batch([_t(1, 2, 5, linked=True), Rejected("invalid_amount", "bad")], state)
    assert [r.error.code for r in plan.results] == ["linked_event_failed", "invalid_amount"]


def test_idempotency_within_a_batch():
    state = _state(a=100, b=0)
    plan = plan_batch([_t(1, 2, 5, key="k", digest=b"x"), _t(1, 2, 5, key="k", digest=b"x"),
                       _t(1, 2, 6, key="k", digest=b"y")], state)
    assert plan.results[0].result_id == plan.results[1].result_id and plan.results[1].replayed
    assert plan.results[2].error.code == "idempotency_conflict"
    assert len(plan.journal) == 1


def test_due_reservations_expire_before_items_run():
    state = _state(a=100, b=0)
    state.accounts[1].debits_pending = 100
    state.accounts[2].credits_pending = 100
    state.pendings[7] = PendingRecord(7, 1, 2, 100, "USD", "TRANSFER", NOW - timedelta(seconds=1),
                                      PendingState.OPEN)
    plan = plan_batch([_t(1, 2, 100), PostPending(7)], state)
    assert plan.journal[0][3] == EntryKind.EXPIRE and plan.journal[0][9] == 7
    assert plan.results[0].error is None and plan.results[1].error.code == "pending_expired"
    assert plan.pending_updates == {7: (PendingState.EXPIRED, 1)}


def test_multi_leg_transaction_shares_one_id():
    state = _state(a=100)
    state.accounts[50] = AccountState(50, "EUR", "CHECKING", "active", 0, 0, 0, 0, 0)
    state.accounts[98] = AccountState(98, "USD", "GL_ASSET", "active", 0, 0, 0, 0, 0)
    state.accounts[97] = AccountState(97, "EUR", "GL_ASSET", "active", 0, 0, 0, 0, 0)
    cmd = NewTransaction("EXCHANGE", (Leg(1, 98, 10, "USD"), Leg(97, 50, 9, "EUR")), fx_rate="0.9")
    plan = plan_batch([cmd], state)
    assert [(r[0], r[1], r[2]) for r in plan.journal] == [(1, 1, 0), (2, 1, 1)]
    assert plan.journal[0][10] == "0.9" and plan.journal[1][10] is None


def test_chain_hashes_equal_row_hash_for_every_column_shape():
    from qenex.kernel.chain import chain_hashes

    rows = [
        (1, 1, 0, 0, "TRANSFER", 1, 2, 5, "USD", None, None, None),
        (2, 2, 0, 2, "TRANSFER", 1, 2, 7, "USD", 1, None, '{"a":"b|c"}'),
        (3, 3, 0, 0, "EXCHANGE", 1, 8, 9, "USD", None, "1.2345", '{"x":1}'),
        (4, 3, 1, 0, "EXCHANGE", 9, 2, 11, "EUR", None, None, None),
    ]
    created = epoch_us(NOW)
    prev, expected = b"\x01" * 32, []
    for r in rows:
        prev = row_hash(prev, *r[:10], r[10] or "", created, r[11])
        expected.append(prev)
    assert chain_hashes(b"\x01" * 32, rows, created) == expected


def test_keyed_single_items_replay_and_conflict_inside_one_batch():
    state = _state(a=100, b=0)
    plan = plan_batch([_t(1, 2, 10, key="k", digest=b"d1"), _t(1, 2, 10, key="k", digest=b"d1"),
                       _t(1, 2, 10, key="k", digest=b"d2"), _t(1, 2, 500, key="k2", digest=b"d3")], state)
    first, replay, conflict, short = plan.results
    assert first.result_id == 1 and not first.replayed
    assert replay.result_id == 1 and replay.replayed and replay.error is None
    assert conflict.error.code == "idempotency_conflict"
    assert short.error.code == "insufficient_funds" and state.idempotency["k2"][1] is short.error
    assert plan.idempotency_failures == [("k2", b"d3", "insufficient_funds", short.error.message)]
    assert plan.idempotency_inserts == [("k", b"d1", 1)] and plan.tx_count == 1 and len(plan.journal) == 1
    assert state.accounts[1].debits_posted == 10


def test_chunked_planning_equals_planning_at_once_and_never_splits_a_chain():
    from qenex.kernel.engine import ChunkedPlanner

    def commands() -> list:
        cmds = []
        for i in range(40):
            linked = i % 7 in (2, 3)  # chains of three items: i%7 == 2, 3 and 4
            amount = 500 if i == 25 else 3  # item 25 is in a chain (23-25) that fails as one
            cmds.append(_t(1 + i % 2, 2 - i % 2, amount, linked=linked, key=f"k{i}", digest=b"d"))
        return cmds

    whole = plan_batch(commands(), _state(a=100, b=100))
    chunked = ChunkedPlanner(commands(), _state(a=100, b=100))
    handed_out = []
    while not chunked.done:
        rows, hashes = chunked.step(3)
        assert len(rows) == len(hashes)
        handed_out.extend(zip(rows, hashes, strict=True))
    plan = chunked.finish()
    def outcome(plan):
        return [(r.result_id, r.error and r.error.code, r.replayed) for r in plan.results]

    assert outcome(plan) == outcome(whole) and plan.journal == whole.journal and plan.hashes == whole.hashes
    assert handed_out == list(zip(whole.journal, whole.hashes, strict=True))
    assert plan.head_hash == whole.head_hash and plan.head_seq == whole.head_seq
    assert [r.error.code for r in plan.results[23:26]] == ["linked_event_failed", "linked_event_failed",
                                                           "insufficient_funds"]


def test_chain_hashes_copy_hashes_like_chain_hashes_and_formats_copy_text():
    from qenex.kernel.chain import chain_hashes, chain_hashes_copy
    from qenex.store.ledger_store import _copy_text

    rows = [
        (1, 1, 0, 0, "TRANSFER", 1, 2, 5, "USD", None, None, None),
        (2, 2, 0, 2, "TRANSFER", 1, 2, 7, "USD", 1, None, '{"a":"b|c\\d\te\nf\rg"}'),
        (3, 3, 0, 0, "EXCHANGE", 1, 8, 9, "USD", None, "1.2345", '{"x":1}'),
        (4, 3, 1, 0, "EXCHANGE", 9, 2, 11, "EUR", None, None, None),
        (5, 5, 0, 3, "PAYMENT", 3, 4, 10**15, "JPY", 4, None, None),
    ]
    created = epoch_us(NOW)
    hashes, data = chain_hashes_copy(b"\x02" * 32, rows, created, NOW.isoformat(), _copy_text)
    assert hashes == chain_hashes(b"\x02" * 32, rows, created)

    def field(value: object) -> str:  # COPY text: NULL is \N; backslash, tab, CR and LF escaped
        if value is None:
            return "\\N"
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    expected = "".join(
        "\t".join([*(field(v) for v in r), NOW.isoformat(), "\\\\x" + h.hex()]) + "\n"
        for r, h in zip(rows, hashes, strict=True)
    )
    assert data.decode() == expected


def _codes(plan) -> list[str | None]:
    return [r.error.code if r.error else None for r in plan.results]


def test_a_chain_left_open_at_the_end_of_the_batch_fails_without_running():
    state = _state(a=100, b=0)
    plan = plan_batch([_t(1, 2, 5), _t(1, 2, 6, linked=True, key="o1", digest=b"x"), _t(2, 1, 1, linked=True)],
                      state)
    assert _codes(plan) == [None, "linked_chain_open", "linked_chain_open"]
    assert len(plan.journal) == 1 and state.accounts[1].debits_posted == 5
    assert "o1" not in state.idempotency and plan.idempotency_failures == []  # malformed call: not remembered
    alone = plan_batch([_t(1, 2, 1, linked=True)], _state(a=100, b=0))
    assert _codes(alone) == ["linked_chain_open"] and alone.journal == []


def test_no_chain_runs_across_the_end_of_a_call():
    """Two callers grouped into one batch: the first call's last item is linked, the second
    call's item fails. The first call's outcome must not depend on the second's."""
    grouped = plan_batch([_t(1, 2, 5, linked=True), _t(1, 2, 999)], _state(a=100, b=0), ends=[1, 2])
    assert _codes(grouped) == ["linked_chain_open", "insufficient_funds"]
    # Nor may an open chain take a later caller's good item with it.
    plan = plan_batch([_t(1, 2, 5), _t(1, 2, 5, linked=True), _t(1, 2, 7), _t(2, 1, 1, linked=True), _t(2, 1, 2)],
                      _state(a=100, b=0), ends=[2, 3, 5])
    assert _codes(plan) == [None, "linked_chain_open", None, None, None]
    assert [r[7] for r in plan.journal] == [5, 7, 1, 2]


def test_chunked_planning_never_crosses_a_call_end():
    from qenex.kernel.engine import ChunkedPlanner

    cmds = [_t(1, 2, 1, linked=True) for _ in range(5)] + [_t(1, 2, 1)]
    planner = ChunkedPlanner(cmds, _state(a=100, b=0), ends=[3, 6])
    while not planner.done:
        planner.step(1)
    plan = planner.finish()
    assert _codes(plan) == ["linked_chain_open"] * 3 + [None] * 3
    assert len(plan.journal) == 3


def test_rejections_are_remembered_under_their_keys():
    state = _state(a=10, b=0)
    plan = plan_batch([
        _t(1, 2, 50, key="r1", digest=b"d1"),  # insufficient funds: remembered
        _t(1, 2, 50, key="r1", digest=b"d1"),  # the same request again: the same error, replayed
        _t(1, 2, 5, key="r1", digest=b"d2"),  # a different request with the key: conflict
        Rejected("invalid_amount", "bad"),  # malformed, no key: nothing to remember
        PostPending(12345, key="r2", digest=b"p"),  # unknown reservation: remembered
    ], state)
    assert _codes(plan) == ["insufficient_funds", "insufficient_funds", "idempotency_conflict",
                            "invalid_amount", "transaction_not_found"]
    assert plan.results[1].replayed and plan.results[1].error is plan.results[0].error
    assert [(k, c) for k, _, c, _ in plan.idempotency_failures] == [("r1", "insufficient_funds"),
                                                                     ("r2", "transaction_not_found")]
    assert plan.journal == [] and plan.idempotency_inserts == []
    # A later batch that reads the stored rejection answers it again, never runs the item.
    from qenex.kernel.errors import LedgerError

    later = _state(a=1_000, b=0)
    later.idempotency["r1"] = (b"d1", LedgerError("insufficient_funds", "stored message"))
    again = plan_batch([_t(1, 2, 50, key="r1", digest=b"d1")], later)
    assert again.results[0].error.message == "stored message" and again.results[0].replayed
    assert again.journal == [] and later.accounts[1].debits_posted == 0


def test_failed_chain_remembers_each_new_key_once():
    state = _state(a=100, b=0, c=0)
    state.idempotency["old"] = (b"o", 77)  # a success from an earlier batch: left as it is
    plan = plan_batch([_t(1, 2, 5, linked=True, key="old", digest=b"o"),
                       _t(1, 2, 5, linked=True, key="n1", digest=b"a"),
                       _t(1, 2, 5, linked=True, key="n1", digest=b"a"),
                       _t(2, 3, 500, key="n2", digest=b"b")], state)
    # A key answers its record whatever the chain does: "old" still reports its earlier success.
    assert [(r.result_id, r.replayed) for r in plan.results[:1]] == [(77, True)]
    assert _codes(plan) == [None] + ["linked_event_failed"] * 2 + ["insufficient_funds"]
    assert [(k, c) for k, _, c, _ in plan.idempotency_failures] == [("n1", "linked_event_failed"),
                                                                     ("n2", "insufficient_funds")]
    assert state.idempotency["old"] == (b"o", 77) and plan.journal == []


def test_a_retried_failed_chain_answers_exactly_what_it_answered_first():
    from qenex.kernel.errors import LedgerError

    state = _state(a=100, b=0, c=0)
    chain = [_t(1, 2, 5, linked=True, key="x1", digest=b"1"), _t(2, 3, 5, linked=True, key="x2", digest=b"2"),
             _t(3, 1, 500, key="x3", digest=b"3")]
    first = plan_batch(chain, state)
    assert _codes(first) == ["linked_event_failed", "linked_event_failed", "insufficient_funds"]
    state.accounts[3].credits_posted = 10_000  # the cause is gone, the keys still answer the same
    again = plan_batch(chain, state)
    assert [(r.error.code, r.error.message, r.replayed) for r in again.results] == [
        (r.error.code, r.error.message, True) for r in first.results]
    assert again.journal == [] and again.idempotency_failures == []
    # An item after the failure whose key was used for another request reports the conflict.
    state.idempotency["x9"] = (b"other", LedgerError("insufficient_funds", "m"))
    mixed = plan_batch([_t(1, 2, 500, linked=True), _t(1, 2, 5, key="x9", digest=b"mine")], state)
    assert _codes(mixed) == ["insufficient_funds", "idempotency_conflict"]


def test_deposits_withdrawals_fees_and_interest_settle_on_general_ledger_accounts():
    state = _state(a=100, b=0)
    state.accounts[98] = AccountState(98, "USD", "GL_REVENUE", "active", 0, 0, 0, 0, 0)
    state.accounts[97] = AccountState(97, "USD", "GL_EXPENSE", "active", 0, 0, 0, 0, 0)

    def tx(kind: str, a: int, b: int, **kw) -> NewTransaction:
        return NewTransaction(kind, (Leg(a, b, 5, "USD"),), **kw)

    plan = plan_batch([
        tx("DEPOSIT", 1, 2), tx("DEPOSIT", 99, 2), tx("DEPOSIT", 1, 2, pending=True),
        tx("WITHDRAWAL", 1, 2), tx("WITHDRAWAL", 1, 99),
        tx("FEE", 1, 2), tx("FEE", 1, 98),
        tx("INTEREST", 1, 2), tx("INTEREST", 97, 2),
        tx("TRANSFER", 1, 2), tx("PAYMENT", 1, 2),
    ], state)
    required = "settlement_account_required"
    assert _codes(plan) == [required, None, required, required, None, required, None, required, None, None, None]
    assert "account 1" in plan.results[0].error.message
