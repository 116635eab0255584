"""Independent checks of the books, in plain SQL over the ledger schema (0001_ledger_base.sql).

These do not trust the engine's own totals: they recompute them from the journal and compare,
and they check every acknowledged transaction against the journal (its kind, accounts and amount)
and the idempotency table.
Each function returns a list of problems; empty means the books are right.
"""

from __future__ import annotations

import json
from decimal import Decimal
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


def _minor(amount: str, currency: str) -> int:
    """An acknowledged decimal amount in minor units (exact: a fractional result is a mismatch)."""
    from qenex.kernel.currencies import get_currency

    cur = get_currency(currency)
    scaled = Decimal(amount).scaleb(cur.minor_unit if cur else 2)
    return int(scaled) if scaled == scaled.to_integral_value() else -1


# The journal kind each acknowledged operation must have produced.
_ACK_KINDS = {"transfer": 0, "batch": 0, "pending": 1, "post": 2, "void": 3}


def check_acks(url: str, acks: list[dict[str, Any]]) -> list[str]:
    """Every acknowledged operation is in the journal exactly once, as what the client was told:

    - no two acknowledgements (other than retries) share a transaction id, so a transaction lost
      while its id was handed to another request is caught;
    - each one's journal row has the acknowledged kind, accounts, amount and currency; a post or
      void references the acknowledged reservation, on its accounts, and a void releases all of it;
    - a retry got the first answer's id, and every acknowledged key maps to its id.
    """
    problems: list[str] = []
    first: dict[int, dict[str, Any]] = {}
    for ack in acks:
        if ack["kind"] == "retry":
            continue
        tx = int(ack["tx"])
        if tx in first:
            problems.append(f"transaction {tx} was acknowledged twice: as {first[tx]} and as {ack}")
        first.setdefault(tx, ack)
    wanted = sorted({int(a["tx"]) for a in acks} | {int(a["pending"]) for a in acks if "pending" in a})
    keyed: dict[str, int] = {}
    for ack in acks:
        if "key" in ack and ack["kind"] != "retry":
            keyed[ack["key"]] = int(ack["tx"])
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tx_id, leg, kind, debit_account, credit_account, amount_minor, currency::text, ref_tx "
            "FROM ledger_journal WHERE tx_id = ANY(%s) ORDER BY seq",
            (wanted,),
        ).fetchall()
        stored = dict(
            conn.execute(
                "SELECT key, result_id FROM ledger_idempotency WHERE key = ANY(%s)", (list(keyed),)
            ).fetchall()
        )
    legs: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        legs.setdefault(row[0], []).append(row)
    for tx, ack in sorted(first.items()):
        got = legs.get(tx, [])
        if sum(1 for g in got if g[1] == 0) != 1:
            problems.append(f"acknowledged transaction {tx} appears {sum(1 for g in got if g[1] == 0)} times "
                            "in the journal")
            continue
        _, _, kind, debit, credit, amount, currency, ref = got[0]
        if kind != _ACK_KINDS[ack["kind"]]:
            problems.append(f"acknowledged {ack['kind']} {tx} is a journal entry of kind {kind}")
        if ack["kind"] in ("transfer", "batch", "pending"):
            told = (int(ack["from_account"]), int(ack["to_account"]), _minor(ack["amount"], ack["currency"]),
                    ack["currency"])
            if (debit, credit, amount, currency) != told or len(got) != 1:
                problems.append(f"acknowledged {ack['kind']} {tx} was {told}, the journal holds "
                                f"{(debit, credit, amount, currency)} in {len(got)} leg(s)")
            continue
        reserved = legs.get(int(ack["pending"]), [])
        if ref != int(ack["pending"]) or not reserved or reserved[0][2] != 1:
            problems.append(f"acknowledged {ack['kind']} {tx} resolves {ref}, the client was told {ack['pending']}")
            continue
        r_debit, r_credit, r_amount = reserved[0][3], reserved[0][4], reserved[0][5]
        expected = _minor(ack["amount"], currency) if ack["kind"] == "post" else r_amount
        if (debit, credit) != (r_debit, r_credit) or amount != expected or amount > r_amount:
            problems.append(f"acknowledged {ack['kind']} {tx} moves {amount} between {debit}/{credit}; "
                            f"expected {expected} between {r_debit}/{r_credit}")
    for ack in acks:
        if ack["kind"] == "retry" and keyed.get(ack["key"], int(ack["tx"])) != int(ack["tx"]):
            problems.append(f"retry of {ack['key']} was told {ack['tx']}, the first answer was {keyed[ack['key']]}")
    for key, tx in keyed.items():
        if stored.get(key) != tx:
            problems.append(f"idempotency key {key} maps to {stored.get(key)}, client was told {tx}")
    return problems
