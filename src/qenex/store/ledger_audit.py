"""Audit of the ledger: hash-chain verification and the books' invariants.

`verify_journal` recomputes the chain row by row and locates every break, classifying it as
modified, deleted, inserted or reordered where the evidence allows. `ledger_invariants` ties
every mutable side table (balances, reservations, reversals, the chain head) back to the
append-only journal; `check_invariants` (both) is the oracle of the concurrency and crash
tests: an empty list means the books are right.

The chain proves the journal was not changed without recomputing every later hash; a
tamperer able to rewrite the whole chain and the head is caught only by comparing the head
hash with a copy kept elsewhere, which is why the report carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from qenex.kernel.chain import GENESIS_HASH, epoch_us, rate_text, row_hash

VERIFY_FETCH_ROWS: Final = 10_000
# How far around a broken row the verifier looks for the row's original position.
REORDER_WINDOW_ROWS: Final = 64
PROBLEMS_MAX: Final = 1_000

_ROW_SQL = (
    "SELECT seq, tx_id, leg, kind, tx_type, debit_account, credit_account, amount_minor, currency, ref_tx, "
    "fx_rate, created_at, metadata, hash FROM ledger_journal ORDER BY seq"
)


@dataclass(frozen=True, slots=True)
class AuditProblem:
    seq: int
    kind: str  # modified, deleted, inserted, reordered, head_mismatch
    message: str

    def __str__(self) -> str:
        return f"{self.kind} at entry {self.seq}: {self.message}"


@dataclass(slots=True)
class AuditReport:
    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    problems: list[AuditProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "entries_checked": self.entries_checked, "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in self.problems],
        }


def _hash(prev: bytes, row: tuple[Any, ...], seq: int | None = None) -> bytes:
    return row_hash(prev, row[0] if seq is None else seq, row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                    row[8], row[9], rate_text(row[10]), epoch_us(row[11]), row[12])


def _reordered(rows: list[tuple[Any, ...]], i: int, shift: int) -> bool:
    """Does row i chain from some other nearby row (its original position)?"""
    row = rows[i]
    lo, hi = max(0, i - REORDER_WINDOW_ROWS), min(len(rows), i + REORDER_WINDOW_ROWS)
    for j in range(lo, hi):
        if j in (i, i - 1):
            continue
        pred = bytes(rows[j][13])
        # Candidate original numbers: its own, after its predecessor, and its transaction's (tx_id + leg).
        for seq in {row[0] - shift, rows[j][0] + 1 - shift, row[1] + row[2]}:
            if _hash(pred, row, seq) == bytes(row[13]):
                return True
    return row[0] - shift == 1 and i != 0 and _hash(GENESIS_HASH, row, 1) == bytes(row[13])


def _after_moved(rows: list[tuple[Any, ...]], i: int, problems: list[AuditProblem]) -> bool:
    """A row right after a reordered one is intact if it chains from its original predecessor."""
    if i == 0 or not problems or problems[-1].kind != "reordered" or problems[-1].seq != rows[i - 1][0]:
        return False
    row = rows[i]
    original = row[1] + row[2]
    pred = next((r for r in rows[max(0, i - REORDER_WINDOW_ROWS): i] if r[1] + r[2] == original - 1), None)
    return pred is not None and _hash(bytes(pred[13]), row, row[0]) == bytes(row[13])


def _classify(rows: list[tuple[Any, ...]], i: int, prev: bytes, shift: int) -> AuditProblem:
    row = rows[i]
    seq = row[0]
    nxt = rows[i + 1] if i + 1 < len(rows) else None
    if _reordered(rows, i, shift):
        duplicate = any(bytes(r[13]) == bytes(row[13]) for k, r in enumerate(rows) if k != i)
        if duplicate:
            return AuditProblem(seq, "inserted", f"entry {seq} duplicates another entry (inserted)")
        return AuditProblem(seq, "reordered", f"entry {seq} chains from another position (reordered)")
    if nxt is not None and _hash(bytes(row[13]), nxt, nxt[0] - shift) == bytes(nxt[13]):
        return AuditProblem(seq, "modified", f"entry {seq} does not match its hash (content changed)")
    if nxt is not None and _hash(prev, nxt, seq - shift) == bytes(nxt[13]):
        return AuditProblem(seq, "inserted", f"entry {seq} is not part of the chain (inserted)")
    return AuditProblem(seq, "modified", f"entry {seq} does not match the hash chain")


class _Verifier:
    """Walks the journal in seq order keeping only a window of rows around the one being checked,
    so memory stays bounded whatever the journal's length."""

    def __init__(self, head_seq: int) -> None:
        self.head_seq = head_seq
        self.window: list[tuple[Any, ...]] = []
        self.pos = 0
        self.prev = GENESIS_HASH
        self.expected = 1
        self.shift = 0  # rows inserted so far (later rows are checked at their original numbers)
        self.count = 0
        self.last_seq = 0
        self.problems: list[AuditProblem] = []

    def feed(self, row: tuple[Any, ...]) -> None:
        self.window.append(row)
        self.count += 1
        if len(self.window) - self.pos > REORDER_WINDOW_ROWS:
            self._step()

    def finish(self) -> None:
        while self.pos < len(self.window):
            self._step()

    def _step(self) -> None:
        rows = self.window
        if self.pos > REORDER_WINDOW_ROWS:  # keep REORDER_WINDOW_ROWS rows behind the current one
            del rows[0]
            self.pos -= 1
        i = self.pos
        row = rows[i]
        seq = row[0]
        self.last_seq = seq
        self.pos += 1
        if len(self.problems) >= PROBLEMS_MAX:
            return
        if seq > self.head_seq:
            self.problems.append(AuditProblem(seq, "inserted", f"entry {seq} lies beyond the chain head"))
        elif seq != self.expected:
            self.problems.append(AuditProblem(self.expected, "deleted",
                                              f"entries {self.expected}..{seq - 1} are missing"))
        elif _hash(self.prev, row, seq - self.shift) != bytes(row[13]) and not _after_moved(rows, i, self.problems):
            problem = _classify(rows, i, self.prev, self.shift)
            self.problems.append(problem)
            if problem.kind == "inserted":
                self.shift += 1
                self.expected = seq + 1
                return  # the chain continues from the row before the inserted one
        self.prev = bytes(row[13])
        self.expected = seq + 1


def verify_journal(conninfo: str) -> AuditReport:
    """Recompute the journal's hash chain; report every located break."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        head = conn.execute("SELECT last_seq, last_hash FROM ledger_head WHERE id = 1").fetchone()
        head_seq, head_hash = (0, GENESIS_HASH) if head is None else (int(head[0]), bytes(head[1]))
        verifier = _Verifier(head_seq)
        with conn.cursor(name="qenex_audit") as cur:
            cur.itersize = VERIFY_FETCH_ROWS
            cur.execute(_ROW_SQL)
            for row in cur:
                verifier.feed(row)
        verifier.finish()
    problems = verifier.problems
    last_seq = verifier.last_seq
    if last_seq < head_seq:
        problems.append(AuditProblem(last_seq + 1, "deleted", f"entries {last_seq + 1}..{head_seq} are missing"))
    elif verifier.count and last_seq == head_seq and verifier.prev != head_hash:
        problems.append(AuditProblem(head_seq, "head_mismatch", "the last entry's hash differs from the chain head"))
    return AuditReport(not problems, verifier.count, head_seq, head_hash.hex(), problems)


_INVARIANT_QUERIES: Final = (
    (
        "books unbalanced in {0}: debits {1} credits {2} (posted)",
        "SELECT currency, sum(debits_posted), sum(credits_posted) FROM ledger_accounts GROUP BY currency "
        "HAVING sum(debits_posted) <> sum(credits_posted)",
    ),
    (
        "books unbalanced in {0}: debits {1} credits {2} (pending)",
        "SELECT currency, sum(debits_pending), sum(credits_pending) FROM ledger_accounts GROUP BY currency "
        "HAVING sum(debits_pending) <> sum(credits_pending)",
    ),
    (
        "account {0} below its limit: available {1}, overdraft limit {2}",
        "SELECT id, credits_posted - debits_posted - debits_pending, overdraft_limit_minor FROM ledger_accounts "
        "WHERE account_type IN ('CHECKING', 'SAVINGS') "
        "AND credits_posted - debits_posted - debits_pending < -overdraft_limit_minor",
    ),
    (
        "loan account {0} overpaid: balance {1}",
        "SELECT id, debits_posted - credits_posted - credits_pending, 0 FROM ledger_accounts "
        "WHERE account_type = 'LOAN' AND debits_posted - credits_posted - credits_pending < 0",
    ),
    (
        "account {0} totals differ from its entries: stored {1}, from journal {2}",
        # Every balance column from the journal alone: posted = POSTED and POST_PENDING entries;
        # pending = reservations (PENDING entries) that no POST/VOID/EXPIRE entry resolved.
        """WITH j AS (
             SELECT a, sum(dp) dp, sum(cp) cp FROM (
               SELECT debit_account a, amount_minor dp, 0::bigint cp FROM ledger_journal WHERE kind IN (0, 2)
               UNION ALL
               SELECT credit_account, 0, amount_minor FROM ledger_journal WHERE kind IN (0, 2)) x GROUP BY a),
           o AS (
             SELECT r.debit_account, r.credit_account, r.amount_minor FROM ledger_journal r
             WHERE r.kind = 1 AND NOT EXISTS (
               SELECT 1 FROM ledger_journal x WHERE x.ref_tx = r.tx_id AND x.kind IN (2, 3, 4))),
           p AS (
             SELECT a, sum(dp) dp, sum(cp) cp FROM (
               SELECT debit_account a, amount_minor dp, 0::bigint cp FROM o
               UNION ALL
               SELECT credit_account, 0, amount_minor FROM o) y GROUP BY a)
           SELECT acc.id,
                  array[acc.debits_posted, acc.credits_posted, acc.debits_pending, acc.credits_pending]::text,
                  array[coalesce(j.dp, 0), coalesce(j.cp, 0), coalesce(p.dp, 0), coalesce(p.cp, 0)]::text
           FROM ledger_accounts acc LEFT JOIN j ON j.a = acc.id LEFT JOIN p ON p.a = acc.id
           WHERE (acc.debits_posted, acc.credits_posted, acc.debits_pending, acc.credits_pending)
              <> (coalesce(j.dp, 0), coalesce(j.cp, 0), coalesce(p.dp, 0), coalesce(p.cp, 0))
           ORDER BY acc.id""",
    ),
    (
        "journal entry {0} posts {1} to an account in {2} or to an unknown account",
        "SELECT j.seq, j.currency, coalesce(d.currency, '?') || '/' || coalesce(c.currency, '?') "
        "FROM ledger_journal j LEFT JOIN ledger_accounts d ON d.id = j.debit_account "
        "LEFT JOIN ledger_accounts c ON c.id = j.credit_account "
        "WHERE d.currency IS DISTINCT FROM j.currency OR c.currency IS DISTINCT FROM j.currency ORDER BY j.seq",
    ),
    (
        "reservation {0} does not match its journal entry: ledger_pending {1}, journal {2}",
        # Both directions: every PENDING entry has its row, every row its PENDING entry, same fields.
        """SELECT coalesce(p.tx_id, j.tx_id),
                  coalesce(array[p.debit_account, p.credit_account, p.amount_minor]::text
                           || ' ' || p.currency || ' ' || p.tx_type, 'missing'),
                  coalesce(array[j.debit_account, j.credit_account, j.amount_minor]::text
                           || ' ' || j.currency || ' ' || j.tx_type, 'missing')
           FROM ledger_pending p FULL JOIN (SELECT * FROM ledger_journal WHERE kind = 1) j ON j.seq = p.tx_id
           WHERE p.tx_id IS NULL OR j.seq IS NULL
              OR (p.debit_account, p.credit_account, p.amount_minor, p.currency, p.tx_type)
                 <> (j.debit_account, j.credit_account, j.amount_minor, j.currency, j.tx_type)
           ORDER BY 1""",
    ),
    (
        "reservation {0} has state {1} (resolved by {2}) but the journal resolves it {3} times, last by {4} "
        "(kind {5})",
        # state 0 open: no resolving entry; 1 posted, 2 voided, 3 expired: exactly one POST_PENDING (2),
        # VOID (3) or EXPIRE (4) entry, kind = state + 1, and resolved_tx is that entry.
        """WITH r AS (SELECT ref_tx, count(*) n, max(tx_id) tx, max(kind) kind FROM ledger_journal
                      WHERE kind IN (2, 3, 4) AND leg = 0 GROUP BY ref_tx)
           SELECT coalesce(p.tx_id, r.ref_tx), coalesce(p.state::text, 'none'), p.resolved_tx, coalesce(r.n, 0),
                  r.tx, r.kind
           FROM ledger_pending p FULL JOIN r ON r.ref_tx = p.tx_id
           WHERE p.tx_id IS NULL
              OR (p.state = 0 AND (r.n IS NOT NULL OR p.resolved_tx IS NOT NULL))
              OR (p.state <> 0 AND (r.n IS DISTINCT FROM 1 OR r.kind <> p.state + 1
                                     OR r.tx IS DISTINCT FROM p.resolved_tx))
           ORDER BY 1""",
    ),
    (
        "resolution {0} of reservation {1} does not match it: {2}",
        """SELECT j.tx_id, j.ref_tx, 'accounts ' || j.debit_account || '/' || j.credit_account || ', amount '
                  || j.amount_minor || ' against ' || p.debit_account || '/' || p.credit_account || ', '
                  || p.amount_minor
           FROM ledger_journal j JOIN ledger_pending p ON p.tx_id = j.ref_tx
           WHERE j.kind IN (2, 3, 4)
             AND ((j.debit_account, j.credit_account, j.currency) <> (p.debit_account, p.credit_account, p.currency)
                  OR (j.kind = 2 AND j.amount_minor > p.amount_minor)
                  OR (j.kind IN (3, 4) AND j.amount_minor <> p.amount_minor))
           ORDER BY j.seq""",
    ),
    (
        "reversal of transaction {0} differs: journal REVERSAL entry {1}, ledger_reversals {2}",
        """SELECT coalesce(r.ref_tx, v.tx_id), coalesce(r.tx_id::text, 'missing'),
                  coalesce(v.reversal_tx_id::text, 'missing')
           FROM (SELECT ref_tx, tx_id FROM ledger_journal WHERE tx_type = 'REVERSAL' AND leg = 0 AND kind = 0) r
           FULL JOIN ledger_reversals v ON v.tx_id = r.ref_tx AND v.reversal_tx_id = r.tx_id
           WHERE r.tx_id IS NULL OR v.tx_id IS NULL
           ORDER BY 1""",
    ),
    (
        "chain head says entry {0}, the journal ends at entry {1} (hash matches: {2})",
        """SELECT h.last_seq, coalesce(j.seq, 0), h.last_hash = coalesce(j.hash, decode(repeat('00', 32), 'hex'))
           FROM ledger_head h LEFT JOIN LATERAL (
             SELECT seq, hash FROM ledger_journal ORDER BY seq DESC LIMIT 1) j ON true
           WHERE h.id = 1 AND (h.last_seq <> coalesce(j.seq, 0)
                               OR h.last_hash <> coalesce(j.hash, decode(repeat('00', 32), 'hex')))""",
    ),
)


def ledger_invariants(conninfo: str) -> list[str]:
    """Every broken invariant of the books apart from the hash chain, as plain sentences (an empty
    list means the books are right): balanced per currency; within limits; every account's four
    balance columns equal to its journal entries by kind; every reservation, resolution and
    reversal side table in step with the journal; the chain head on the last journal entry.

    The side tables (ledger_pending, ledger_reversals, ledger_head, the balance columns) are
    mutable by design; these checks tie each of them back to the append-only journal."""
    problems: list[str] = []
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for template, query in _INVARIANT_QUERIES:
            for row in conn.execute(query).fetchmany(PROBLEMS_MAX):
                problems.append(template.format(*row))
    return problems


def check_invariants(conninfo: str) -> list[str]:
    """ledger_invariants plus the hash chain: every broken invariant, as plain sentences; an empty
    list means OK."""
    problems = ledger_invariants(conninfo)
    report = verify_journal(conninfo)
    problems.extend(f"hash chain: {p.kind} at {p.seq}: {p.message}" for p in report.problems)
    return problems
