"""The ledger engine: plans one batch of commands against the balances read under the ledger lock.

Pure domain. The store reads the state a batch needs (accounts, pending reservations, original
legs of reversed transactions, idempotency records), the engine decides every item on integer
minor units and returns the rows to write; the store writes them in the same database
transaction. Items are independent unless linked: a chain of linked items succeeds or fails
as one. A failing item changes nothing, except that its idempotency key (if any) now records the
rejection, so a retry with that key answers the same error.

A batch may carry several callers' calls (the SDK's group commit). A chain never runs across the
end of a call: a call whose last item is linked leaves its chain open, and every item of that
open chain fails with ``linked_chain_open`` without running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from qenex.kernel import errors as E
from qenex.kernel.chain import chain_hashes, chain_hashes_copy, epoch_us
from qenex.kernel.errors import LedgerError, check
from qenex.kernel.model import (
    DEPOSIT_TYPES,
    GL_TYPES,
    SETTLEMENT_SIDE,
    AccountState,
    Command,
    EntryKind,
    JournalLeg,
    Leg,
    NewTransaction,
    PendingRecord,
    PendingState,
    PostPending,
    Rejected,
    Reverse,
    VoidPending,
)
from qenex.kernel.money import BALANCE_MAX_MINOR

# Most items one batch (one database transaction) may carry.
BATCH_ITEMS_MAX: Final = 8_190
# Most expired reservations one batch releases in passing (the rest go in later batches).
EXPIRY_SWEEP_ITEMS_MAX: Final = 1_000

# Journal row tuple: seq, tx_id, leg, kind, tx_type, debit, credit, amount, currency, ref_tx, fx_rate, metadata.
JournalRow = tuple[int, int, int, int, str, int, int, int, str, int | None, str | None, str | None]
PendingInsert = tuple[int, int, int, int, str, str, datetime | None]


class ItemResult(NamedTuple):
    """One item's outcome. A NamedTuple: built once per item, thousands per batch, and a frozen
    dataclass costs several times more to construct."""

    result_id: int | None
    error: LedgerError | None
    replayed: bool = False


@dataclass(slots=True)
class BatchState:
    """What the store read for this batch, under the ledger lock."""

    head_seq: int
    head_hash: bytes
    now: datetime
    accounts: dict[int, AccountState]
    pendings: dict[int, PendingRecord]
    originals: dict[int, list[JournalLeg]]
    reversed_ids: set[int]
    # key -> (request digest, outcome): the result id of a success or the LedgerError of a rejection.
    idempotency: dict[str, tuple[bytes, int | LedgerError]]


@dataclass(slots=True)
class BatchPlan:
    results: list[ItemResult]
    journal: list[JournalRow] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    pending_inserts: list[PendingInsert] = field(default_factory=list)
    pending_updates: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    idempotency_inserts: list[tuple[str, bytes, int]] = field(default_factory=list)
    # Rejections remembered under their keys: (key, digest, error code, error message). Rare.
    idempotency_failures: list[tuple[str, bytes, str, str]] = field(default_factory=list)
    reversal_inserts: list[tuple[int, int]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    head_seq: int = 0
    head_hash: bytes = b""
    tx_count: int = 0


class _Planner:
    def __init__(self, state: BatchState) -> None:
        self.s = state
        self.seq = state.head_seq
        self.plan = BatchPlan(results=[])
        self.undo: list[Callable[[], None]] = []
        # Undo records are only needed inside linked chains (a single item checks before it changes).
        self.track = False

    # ---- balance helpers -------------------------------------------------------------------
    def _account(self, account_id: int, currency: str) -> AccountState:
        acct = self.s.accounts.get(account_id)
        if acct is None:
            raise LedgerError(E.ACCOUNT_NOT_FOUND, f"account {account_id} does not exist")
        if acct.currency != currency:
            raise LedgerError(
                E.CURRENCY_MISMATCH, f"account {account_id} holds {acct.currency}, the amount is in {currency}"
            )
        return acct

    @staticmethod
    def _require_open(acct: AccountState) -> None:
        if acct.status == "frozen":
            raise LedgerError(E.ACCOUNT_FROZEN, f"account {acct.id} is frozen")
        if acct.status == "closed":
            raise LedgerError(E.ACCOUNT_CLOSED, f"account {acct.id} is closed")

    def _apply(self, deltas: dict[int, list[int]]) -> None:
        """Check then apply per-account deltas [debits_posted, credits_posted, debits_pending, credits_pending]."""
        accounts = self.s.accounts
        for account_id, d in deltas.items():
            a = accounts[account_id]
            dp, cp = a.debits_posted + d[0], a.credits_posted + d[1]
            dpend, cpend = a.debits_pending + d[2], a.credits_pending + d[3]
            if max(dp, cp, dpend, cpend) > BALANCE_MAX_MINOR or min(dp, cp, dpend, cpend) < 0:
                raise LedgerError(E.LIMIT_EXCEEDED, f"account {account_id} would exceed the balance bounds")
            if a.account_type in DEPOSIT_TYPES:
                if (d[0] > 0 or d[2] > 0) and cp - dp - dpend < -a.overdraft_limit:
                    raise LedgerError(E.INSUFFICIENT_FUNDS, f"insufficient funds in account {account_id}")
            elif a.account_type == "LOAN" and (d[1] > 0 or d[3] > 0) and dp - cp - cpend < 0:
                raise LedgerError(E.LIMIT_EXCEEDED, f"payment would overpay loan account {account_id}")
        for account_id, d in deltas.items():
            a = accounts[account_id]
            a.debits_posted += d[0]
            a.credits_posted += d[1]
            a.debits_pending += d[2]
            a.credits_pending += d[3]
            self.plan.touched.add(account_id)
            if self.track:
                self.undo.append(_undo_deltas(a, d))

    @staticmethod
    def _add(deltas: dict[int, list[int]], account_id: int, index: int, amount: int) -> None:
        d = deltas.get(account_id)
        if d is None:
            d = deltas[account_id] = [0, 0, 0, 0]
        d[index] += amount

    # ---- journal ---------------------------------------------------------------------------
    def _emit(
        self,
        kind: int,
        tx_type: str,
        legs: Sequence[Leg],
        ref_tx: int | None,
        fx_rate: str | None,
        metadata: str | None,
    ) -> int:
        tx_id = self.seq + 1
        for i, leg in enumerate(legs):
            self.seq += 1
            meta = metadata if i == 0 else None
            self.plan.journal.append(
                (self.seq, tx_id, i, kind, tx_type, leg.debit, leg.credit, leg.amount, leg.currency, ref_tx,
                 fx_rate if i == 0 else None, meta)
            )
        return tx_id

    def _set_pending(self, rec: PendingRecord, state: int, resolved_tx: int | None) -> None:
        old_state = rec.state
        old_update = self.plan.pending_updates.get(rec.tx_id)
        rec.state = state
        self.plan.pending_updates[rec.tx_id] = (state, resolved_tx)

        def undo() -> None:
            rec.state = old_state
            if old_update is None:
                self.plan.pending_updates.pop(rec.tx_id, None)
            else:
                self.plan.pending_updates[rec.tx_id] = old_update

        if self.track:
            self.undo.append(undo)

    def _release(self, rec: PendingRecord, kind: int, state: int, metadata: str | None) -> int:
        deltas: dict[int, list[int]] = {}
        self._add(deltas, rec.debit_account, 2, -rec.amount)
        self._add(deltas, rec.credit_account, 3, -rec.amount)
        self._apply(deltas)
        leg = Leg(rec.debit_account, rec.credit_account, rec.amount, rec.currency)
        tx_id = self._emit(kind, rec.tx_type, (leg,), rec.tx_id, None, metadata)
        self._set_pending(rec, state, tx_id)
        return tx_id

    # ---- expiry ----------------------------------------------------------------------------
    def expire_due(self) -> None:
        now = self.s.now
        for rec in self.s.pendings.values():
            if rec.state == PendingState.OPEN and rec.expires_at is not None and rec.expires_at <= now:
                self._release(rec, EntryKind.EXPIRE, PendingState.EXPIRED, None)
        self.undo.clear()

    # ---- commands --------------------------------------------------------------------------
    def _simple(self, cmd: NewTransaction) -> int:
        """Fast path of the most common item: one posted leg between two deposit accounts."""
        leg = cmd.legs[0]
        accounts = self.s.accounts
        debit, credit = accounts.get(leg.debit), accounts.get(leg.credit)
        if (debit is None or credit is None or leg.debit == leg.credit or debit.currency != leg.currency
                or credit.currency != leg.currency or debit.status != "active" or credit.status != "active"
                or debit.account_type not in DEPOSIT_TYPES or credit.account_type not in DEPOSIT_TYPES
                or cmd.tx_type in SETTLEMENT_SIDE):
            return self._general(cmd)  # the general path raises the precise error
        dp = debit.debits_posted + leg.amount
        cp = credit.credits_posted + leg.amount
        if debit.credits_posted - dp - debit.debits_pending < -debit.overdraft_limit:
            raise LedgerError(E.INSUFFICIENT_FUNDS, f"insufficient funds in account {leg.debit}")
        if dp > BALANCE_MAX_MINOR or cp > BALANCE_MAX_MINOR:
            raise LedgerError(E.LIMIT_EXCEEDED, "the balance bounds would be exceeded")
        debit.debits_posted = dp
        credit.credits_posted = cp
        touched = self.plan.touched
        touched.add(leg.debit)
        touched.add(leg.credit)
        if self.track:
            self.undo.append(_undo_deltas(debit, [leg.amount, 0, 0, 0]))
            self.undo.append(_undo_deltas(credit, [0, leg.amount, 0, 0]))
        self.seq += 1
        self.plan.journal.append((self.seq, self.seq, 0, 0, cmd.tx_type, leg.debit, leg.credit, leg.amount,
                                  leg.currency, None, cmd.fx_rate, cmd.metadata))
        return self.seq

    def _new(self, cmd: NewTransaction) -> int:
        if not cmd.pending and len(cmd.legs) == 1:
            return self._simple(cmd)
        return self._general(cmd)

    def _general(self, cmd: NewTransaction) -> int:
        if cmd.pending and len(cmd.legs) != 1:
            raise LedgerError(E.INVALID_REQUEST, "only single-leg transactions can be pending")
        deltas: dict[int, list[int]] = {}
        offset = 2 if cmd.pending else 0
        side = SETTLEMENT_SIDE.get(cmd.tx_type)
        for leg in cmd.legs:
            if leg.debit == leg.credit:
                raise LedgerError(E.SAME_ACCOUNT, "debit and credit account must differ")
            debit = self._account(leg.debit, leg.currency)
            credit = self._account(leg.credit, leg.currency)
            if side is not None:
                bank = credit if side else debit
                if bank.account_type not in GL_TYPES:
                    raise LedgerError(E.SETTLEMENT_ACCOUNT_REQUIRED, (
                        f"{cmd.tx_type} {'to' if side else 'from'} account {bank.id} needs a general-ledger "
                        f"account on the bank's side, not a {bank.account_type} account"))
            self._require_open(debit)
            self._require_open(credit)
            self._add(deltas, leg.debit, offset, leg.amount)
            self._add(deltas, leg.credit, offset + 1, leg.amount)
        self._apply(deltas)
        kind = EntryKind.PENDING if cmd.pending else EntryKind.POSTED
        tx_id = self._emit(kind, cmd.tx_type, cmd.legs, None, cmd.fx_rate, cmd.metadata)
        if cmd.pending:
            leg = cmd.legs[0]
            expires = None if cmd.timeout_seconds is None else self.s.now + timedelta(seconds=cmd.timeout_seconds)
            rec = PendingRecord(tx_id, leg.debit, leg.credit, leg.amount, leg.currency, cmd.tx_type, expires, 0)
            self.s.pendings[tx_id] = rec
            self.plan.pending_inserts.append(
                (tx_id, leg.debit, leg.credit, leg.amount, leg.currency, cmd.tx_type, expires)
            )
            if self.track:
                pendings = self.s.pendings
                self.undo.append(lambda: pendings.__delitem__(tx_id))
        return tx_id

    def _open_pending(self, pending_id: int) -> PendingRecord:
        rec = self.s.pendings.get(pending_id)
        if rec is None:
            if pending_id in self.s.originals:
                raise LedgerError(E.NOT_PENDING, f"transaction {pending_id} is not a pending transfer")
            raise LedgerError(E.TRANSACTION_NOT_FOUND, f"transaction {pending_id} does not exist")
        if rec.state == PendingState.EXPIRED:
            raise LedgerError(E.PENDING_EXPIRED, f"pending transfer {pending_id} has expired")
        if rec.state != PendingState.OPEN:
            raise LedgerError(E.PENDING_ALREADY_RESOLVED, f"pending transfer {pending_id} was already resolved")
        return rec

    def _post(self, cmd: PostPending) -> int:
        rec = self._open_pending(cmd.pending_id)
        amount = rec.amount if cmd.amount is None else cmd.amount
        if amount > rec.amount:
            raise LedgerError(E.INVALID_AMOUNT, "amount to post exceeds the pending amount")
        self._require_open(self.s.accounts[rec.debit_account])
        self._require_open(self.s.accounts[rec.credit_account])
        deltas: dict[int, list[int]] = {}
        self._add(deltas, rec.debit_account, 2, -rec.amount)
        self._add(deltas, rec.credit_account, 3, -rec.amount)
        self._add(deltas, rec.debit_account, 0, amount)
        self._add(deltas, rec.credit_account, 1, amount)
        self._apply(deltas)
        leg = Leg(rec.debit_account, rec.credit_account, amount, rec.currency)
        tx_id = self._emit(EntryKind.POST_PENDING, rec.tx_type, (leg,), rec.tx_id, None, cmd.metadata)
        self._set_pending(rec, PendingState.POSTED, tx_id)
        return tx_id

    def _void(self, cmd: VoidPending) -> int:
        rec = self._open_pending(cmd.pending_id)
        return self._release(rec, EntryKind.VOID, PendingState.VOIDED, cmd.metadata)

    def _reverse(self, cmd: Reverse) -> int:
        legs = self.s.originals.get(cmd.tx_id)
        if not legs:
            raise LedgerError(E.TRANSACTION_NOT_FOUND, f"transaction {cmd.tx_id} does not exist")
        if legs[0].kind not in (EntryKind.POSTED, EntryKind.POST_PENDING) or legs[0].tx_type == "REVERSAL":
            raise LedgerError(E.NOT_REVERSIBLE, f"transaction {cmd.tx_id} is not a posted transaction")
        if cmd.tx_id in self.s.reversed_ids:
            raise LedgerError(E.ALREADY_REVERSED, f"transaction {cmd.tx_id} was already reversed")
        new = NewTransaction(
            "REVERSAL", tuple(Leg(g.credit_account, g.debit_account, g.amount, g.currency) for g in legs),
            metadata=cmd.metadata,
        )
        deltas: dict[int, list[int]] = {}
        for leg in new.legs:
            self._require_open(self._account(leg.debit, leg.currency))
            self._require_open(self._account(leg.credit, leg.currency))
            self._add(deltas, leg.debit, 0, leg.amount)
            self._add(deltas, leg.credit, 1, leg.amount)
        self._apply(deltas)
        tx_id = self._emit(EntryKind.POSTED, "REVERSAL", new.legs, cmd.tx_id, None, cmd.metadata)
        self.s.reversed_ids.add(cmd.tx_id)
        self.plan.reversal_inserts.append((cmd.tx_id, tx_id))
        original = cmd.tx_id

        def undo() -> None:
            self.s.reversed_ids.discard(original)
            self.plan.reversal_inserts.pop()

        if self.track:
            self.undo.append(undo)
        return tx_id

    def _run(self, cmd: Command) -> int:
        if isinstance(cmd, NewTransaction):
            return self._new(cmd)
        if isinstance(cmd, PostPending):
            return self._post(cmd)
        if isinstance(cmd, VoidPending):
            return self._void(cmd)
        if isinstance(cmd, Reverse):
            return self._reverse(cmd)
        raise LedgerError(cmd.code, cmd.message)

    def _item(self, cmd: Command) -> ItemResult:
        recorded = self._recorded(cmd)
        if recorded is not None:
            return recorded
        key = None if isinstance(cmd, Rejected) else cmd.key
        result_id = self._run(cmd)
        if key is not None:
            digest = cmd.digest  # type: ignore[union-attr]
            self.s.idempotency[key] = (digest, result_id)
            self.plan.idempotency_inserts.append((key, digest, result_id))

            def undo() -> None:
                self.s.idempotency.pop(key, None)
                self.plan.idempotency_inserts.pop()

            if self.track:
                self.undo.append(undo)
        self.plan.tx_count += 1
        return ItemResult(result_id, None)

    # ---- chains ----------------------------------------------------------------------------
    def run_all(self, commands: Sequence[Command], start: int, stop: int, closes: frozenset[int]) -> None:
        """Decide commands[start:stop]. ``closes``: indices of the last item of each call, where
        every chain ends (``stop - 1`` is always one: chunks end at calls' or chains' ends)."""
        results = self.plan.results
        while start < stop:
            cmd = commands[start]
            if not cmd.linked:  # the common case: an independent item, no undo records needed
                results.append(self._single(cmd))
                start += 1
                continue
            end = start
            while commands[end].linked and end not in closes and end < stop - 1:
                end += 1
            if commands[end].linked:  # the call ended with the chain still open
                self._open_chain(commands[start : end + 1])
            else:
                self._chain(commands[start : end + 1])
            start = end + 1

    def _open_chain(self, chain: Sequence[Command]) -> None:
        """A chain whose call ended on a linked item: none of it runs, nothing is remembered
        under its keys (the call was malformed, so a corrected retry may reuse them)."""
        error = LedgerError(E.LINKED_CHAIN_OPEN,
                            "the call's last item is linked, so its chain never ends; no item of the chain ran")
        self.plan.results.extend(ItemResult(None, error) for _ in chain)

    def _recorded(self, cmd: Command) -> ItemResult | None:
        """What an item's key answers without running it: its recorded outcome (or a conflict);
        None when it has no key or a key not recorded."""
        if isinstance(cmd, Rejected) or cmd.key is None:
            return None
        known = self.s.idempotency.get(cmd.key)
        if known is None:
            return None
        if known[0] != cmd.digest:
            return ItemResult(None, LedgerError(
                E.IDEMPOTENCY_CONFLICT, "idempotency key was already used for a different request"))
        return _replay(known[1])

    def _remember_failure(self, cmd: Command, error: LedgerError) -> None:
        """Record a rejection under the item's key (if it has one not already recorded), so a
        retry with the key answers the same error and a different request with it conflicts."""
        if isinstance(cmd, Rejected):
            return  # malformed: never reached the ledger; nothing to remember
        key = cmd.key
        if key is not None and key not in self.s.idempotency:
            self.s.idempotency[key] = (cmd.digest, error)
            self.plan.idempotency_failures.append((key, cmd.digest, error.code, error.message))

    def _single(self, cmd: Command) -> ItemResult:
        """An unlinked item: it checks everything before it changes anything, so a failure
        leaves the plan as it was (verified)."""
        seq, rows = self.seq, len(self.plan.journal)
        try:
            if type(cmd) is NewTransaction and cmd.key is not None and not cmd.pending and len(cmd.legs) == 1:
                return self._keyed_simple(cmd, cmd.key)
            return self._item(cmd)
        except LedgerError as exc:
            check(self.seq == seq and len(self.plan.journal) == rows,
                  "a failed single item must not have written anything")
            self._remember_failure(cmd, exc)
            return ItemResult(None, exc)

    def _keyed_simple(self, cmd: NewTransaction, key: str) -> ItemResult:
        """_item for the most common command (one posted leg with an idempotency key), inlined."""
        known = self.s.idempotency.get(key)
        if known is not None:
            if known[0] != cmd.digest:
                return ItemResult(None, LedgerError(
                    E.IDEMPOTENCY_CONFLICT, "idempotency key was already used for a different request"))
            return _replay(known[1])
        result_id = self._simple(cmd)
        self.s.idempotency[key] = (cmd.digest, result_id)
        self.plan.idempotency_inserts.append((key, cmd.digest, result_id))
        self.plan.tx_count += 1
        return ItemResult(result_id, None)

    def _chain(self, chain: Sequence[Command]) -> None:
        mark = (self.seq, len(self.plan.journal), len(self.plan.pending_inserts), self.plan.tx_count)
        self.undo = []
        self.track = len(chain) > 1
        results: list[ItemResult] = []
        failed_at = -1
        for i, cmd in enumerate(chain):
            try:
                result = self._item(cmd)
            except LedgerError as exc:
                result = ItemResult(None, exc)
            results.append(result)
            if result.error is not None:
                failed_at = i
                break
        if failed_at >= 0 and len(chain) > 1:
            for undo in reversed(self.undo):
                undo()
            self.seq, jlen, plen, self.plan.tx_count = mark
            del self.plan.journal[jlen:]
            del self.plan.pending_inserts[plen:]
            linked_error = LedgerError(E.LINKED_FAILED, "a linked item in the same chain failed")
            # The failing item keeps its error; an item whose key was recorded before this chain
            # answers that record (so a retried chain gets exactly its first answers); every other
            # item fails with the chain. (After the undo, records made inside the chain are gone.)
            results = [
                results[i] if i == failed_at else self._recorded(chain[i]) or ItemResult(None, linked_error)
                for i in range(len(chain))
            ]
        elif failed_at >= 0:
            check(self.seq == mark[0] and len(self.plan.journal) == mark[1],
                  "a failed single item must not have written anything")
        if failed_at >= 0:  # after the undo: keys first used in the chain are free again
            for cmd, result in zip(chain, results, strict=True):
                if result.error is not None:
                    self._remember_failure(cmd, result.error)
        self.plan.results.extend(results)


def _replay(outcome: int | LedgerError) -> ItemResult:
    """The stored outcome of an idempotency key, answered again."""
    if isinstance(outcome, LedgerError):
        return ItemResult(None, outcome, True)
    return ItemResult(outcome, None, True)


def _undo_deltas(a: AccountState, d: list[int]) -> Callable[[], None]:
    def undo() -> None:
        a.debits_posted -= d[0]
        a.credits_posted -= d[1]
        a.debits_pending -= d[2]
        a.credits_pending -= d[3]

    return undo


class ChunkedPlanner:
    """Plans one batch a chunk of items at a time, so the store can send a chunk's journal rows
    (hashed) while the next chunk is planned: client planning overlaps server ingest.

    Rows handed out are final: a chunk always ends at a chain boundary, and only a linked chain
    still in progress can take rows back. Deciding chunk by chunk is the same as deciding the
    whole batch at once: items are planned in order against the same evolving state.
    """

    def __init__(self, commands: Sequence[Command], state: BatchState, ends: Sequence[int] | None = None) -> None:
        """``ends``: where each call of the batch ends (exclusive indices, the last one being
        len(commands)); None means the batch is one call. No chain runs across a call's end."""
        check(len(commands) <= BATCH_ITEMS_MAX, "batch larger than BATCH_ITEMS_MAX")
        n = len(commands)
        check(ends is None or (bool(ends) and ends[-1] == n and all(0 < e <= n for e in ends)),
              "call ends must lie inside the batch and the last must close it")
        self._closes = frozenset(e - 1 for e in ends) if ends else frozenset((n - 1,))
        self._planner = _Planner(state)
        self._planner.expire_due()
        self._commands = commands
        self._planned = 0  # commands decided so far
        self._prev = state.head_hash
        self._created_us = epoch_us(state.now)

    @property
    def done(self) -> bool:
        return self._planned >= len(self._commands)

    def step(self, items_max: int) -> tuple[list[JournalRow], list[bytes]]:
        """Decide up to about ``items_max`` more items (a chain is never split); return the journal
        rows not handed out before, with their chained hashes."""
        rows = self._advance(items_max)
        hashes = chain_hashes(self._prev, rows, self._created_us)
        self._hashed(hashes)
        return rows, hashes

    def step_copy(self, items_max: int, created_text: str, escape: Callable[[str], str]) -> bytes:
        """step, returning the new rows as COPY text lines (chain_hashes_copy: hashed and formatted
        in one pass, cheaper than formatting them again after hashing)."""
        rows = self._advance(items_max)
        hashes, data = chain_hashes_copy(self._prev, rows, self._created_us, created_text, escape)
        self._hashed(hashes)
        return data

    def _advance(self, items_max: int) -> list[JournalRow]:
        commands, n, closes = self._commands, len(self._commands), self._closes
        end = min(n, self._planned + items_max)
        while self._planned < end < n and commands[end - 1].linked and end - 1 not in closes:
            end += 1
        self._planner.run_all(commands, self._planned, end, closes)
        self._planned = end
        plan = self._planner.plan
        return plan.journal[len(plan.hashes):]

    def _hashed(self, hashes: list[bytes]) -> None:
        if hashes:
            self._prev = hashes[-1]
        self._planner.plan.hashes.extend(hashes)

    def finish(self) -> BatchPlan:
        """Decide what is left; the plan with every row hashed and the new chain head."""
        while not self.done:
            self.step(BATCH_ITEMS_MAX)
        self.step(0)  # rows not handed out yet (a batch of no items can still expire reservations)
        planner = self._planner
        plan = planner.plan
        check(len(plan.hashes) == len(plan.journal), "every journal row must be hashed")
        check(len(plan.journal) == planner.seq - planner.s.head_seq, "journal sequence numbers must be gapless")
        plan.head_seq = planner.seq
        plan.head_hash = self._prev
        return plan


def plan_batch(commands: Sequence[Command], state: BatchState, ends: Sequence[int] | None = None) -> BatchPlan:
    """Decide every command of one batch; returns results (in order) and the rows to write.
    ``ends``: see ChunkedPlanner."""
    return ChunkedPlanner(commands, state, ends).finish()
