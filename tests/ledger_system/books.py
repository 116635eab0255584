"""Independent checks of the books, in plain SQL over the ledger schema (0001_ledger_base.sql).

These do not trust the engine's own totals: they recompute them from the journal and compare,
and they check every acknowledged transaction against the journal and the idempotency table.
Each function returns a list of problems; empty means the books are right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

# journal.kind values (see the migration): 0 posted, 1 pending reservation, 2 post of a pending,
# 3 void, 4 expiry. Posted totals move only with kinds 0 and 2.
POSTED_KINDS = (0, 2)
CUSTOMER_TYPES = ("CHECKING", "SAVINGS")


def read_acks(path: Path) -> list[dict[str, Any]]:
    """Acknowledged operations; a torn last line (the writer was killed mid-write) is ignored."""
    acks = []
    if not path.exists():
        return acks
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            acks.append(json.loads(line))
        except json.JSONDecodeError:
            assert i == len(lines) - 1, f"corrupt ack line {i} that is not the last one"
    return acks


def check_books(url: str) -> list[str]:
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        # 1. Every account's posted totals equal the sum of its posted journal legs.
        rows = conn.execute(
            """
            SELECT a.id, a.debits_posted, a.credits_posted,
                   COALESCE((SELECT sum(amount_minor) FROM ledger_journal j
                             WHERE j.debit_account = a.id AND j.kind = ANY(%(k)s)), 0),
                   COALESCE((SELECT sum(amount_minor) FROM ledger_journal j
                             WHERE j.credit_account = a.id AND j.kind = ANY(%(k)s)), 0)
            FROM ledger_accounts a
            """,
            {"k": list(POSTED_KINDS)},
        ).fetchall()
        for acct, dp, cp, dj, cj in rows:
            if (dp, cp) != (dj, cj):
                problems.append(f"account {acct}: totals debits={dp} credits={cp}, journal says {dj}/{cj}")
        # 2. Open reservations equal the pending totals.
        rows = conn.execute(
            """
            SELECT a.id, a.debits_pending, a.credits_pending,
                   COALESCE((SELECT sum(amount_minor) FROM ledger_pending p
                             WHERE p.debit_account = a.id AND p.state = 0), 0),
                   COALESCE((SELECT sum(amount_minor) FROM ledger_pending p
                             WHERE p.credit_account = a.id AND p.state = 0), 0)
            FROM ledger_accounts a
            """
        ).fetchall()
        for acct, dp, cp, dj, cj in rows:
            if (dp, cp) != (dj, cj):
                problems.append(f"account {acct}: pending {dp}/{cp}, open reservations say {dj}/{cj}")
        # 3. Debits equal credits per currency, posted and pending.
        for cur, d, c, dpe, cpe in conn.execute(
            """SELECT currency, sum(debits_posted), sum(credits_posted), sum(debits_pending), sum(credits_pending)
               FROM ledger_accounts GROUP BY currency"""
        ):
            if d != c or dpe != cpe:
                problems.append(f"{cur}: debits {d} != credits {c} (pending {dpe}/{cpe})")
        # 4. No customer account below its limit (customer deposits are credit-normal).
        for acct, avail, limit in conn.execute(
            """SELECT id, credits_posted - debits_posted - debits_pending, overdraft_limit_minor
               FROM ledger_accounts WHERE account_type = ANY(%s)""",
            (list(CUSTOMER_TYPES),),
        ):
            if avail < -limit:
                problems.append(f"account {acct}: available {avail} below its limit -{limit}")
    return problems


def check_acks(url: str, acks: list[dict[str, Any]]) -> list[str]:
    """Every acknowledged transaction is in the journal exactly once, and its key maps to it."""
    problems: list[str] = []
    tx_ids = sorted({int(a["tx"]) for a in acks})
    keyed = {a["key"]: int(a["tx"]) for a in acks if "key" in a}
    with psycopg.connect(url) as conn:
        counts = dict(
            conn.execute(
                "SELECT tx_id, count(*) FROM ledger_journal WHERE tx_id = ANY(%s) AND leg = 0 GROUP BY tx_id",
                (tx_ids,),
            ).fetchall()
        )
        stored = dict(
            conn.execute(
                "SELECT key, result_id FROM ledger_idempotency WHERE key = ANY(%s)", (list(keyed),)
            ).fetchall()
        )
    for tx in tx_ids:
        if counts.get(tx, 0) != 1:
            problems.append(f"acknowledged transaction {tx} appears {counts.get(tx, 0)} times in the journal")
    for key, tx in keyed.items():
        if stored.get(key) != tx:
            problems.append(f"idempotency key {key} maps to {stored.get(key)}, client was told {tx}")
    return problems
