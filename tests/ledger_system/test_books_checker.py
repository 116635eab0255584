"""The independent checkers in books.py really detect broken books (they are not vacuous)."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from .books import check_acks, check_books
from .conftest import create_hot_accounts


def test_checkers_pass_on_good_books_and_catch_drift(ledger_url):
    accounts = create_hot_accounts(ledger_url)
    assert check_books(ledger_url) == []
    acct = int(accounts[0][0])
    with psycopg.connect(ledger_url) as conn:
        deposit, cash, amount = conn.execute(
            "SELECT tx_id, debit_account, amount_minor FROM ledger_journal WHERE credit_account = %s", (acct,)
        ).fetchone()
        # Drift an account's stored total away from its journal entries.
        conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = %s", (acct,))
    problems = check_books(ledger_url)
    assert any(f"account {acct}: totals" in p for p in problems)
    assert any("debits" in p and "credits" in p for p in problems)  # the books no longer balance

    told = {"from_account": str(cash), "to_account": str(acct), "amount": str(Decimal(amount).scaleb(-2)),
            "currency": "USD"}
    assert check_acks(ledger_url, [{"kind": "transfer", "tx": str(deposit), **told}]) == []
    missing = check_acks(ledger_url, [{"kind": "transfer", "tx": "987654", "key": "never-stored", **told}])
    assert any("appears 0 times" in p for p in missing)
    assert any("never-stored" in p for p in missing)


def test_ack_checker_matches_each_ack_to_what_the_journal_holds(ledger_url):
    import asyncio

    from qenex import FinancialKernel

    accounts = create_hot_accounts(ledger_url)
    (a, _), (b, _) = accounts[0], accounts[1]

    async def main() -> dict[str, int]:
        kernel = FinancialKernel({"database": {"url": ledger_url}})
        await kernel.initialize()
        try:
            t1 = await kernel.process_transaction("TRANSFER", from_account=a, to_account=b, amount="1.25",
                                                  currency="USD", idempotency_key="chk-1")
            t2 = await kernel.process_transaction("TRANSFER", from_account=b, to_account=a, amount="2.00",
                                                  currency="USD", idempotency_key="chk-2")
            p = await kernel.process_transaction("TRANSFER", from_account=a, to_account=b, amount="3.00",
                                                 currency="USD", pending=True, idempotency_key="chk-3")
            post = await kernel.post_pending(p, amount="1.00")
            q = await kernel.process_transaction("TRANSFER", from_account=a, to_account=b, amount="4.00",
                                                 currency="USD", pending=True, idempotency_key="chk-4")
            void = await kernel.void_pending(q)
            return {"t1": t1, "t2": t2, "p": p, "post": post, "q": q, "void": void}
        finally:
            await kernel.shutdown()

    ids = asyncio.run(main())

    def transfer(tx: int, frm: str, to: str, amount: str, key: str, kind: str = "transfer") -> dict:
        return {"kind": kind, "tx": str(tx), "from_account": frm, "to_account": to, "amount": amount,
                "currency": "USD", "key": key}

    good = [transfer(ids["t1"], a, b, "1.25", "chk-1"), transfer(ids["t2"], b, a, "2.00", "chk-2", "batch"),
            transfer(ids["p"], a, b, "3.00", "chk-3", "pending"),
            {"kind": "post", "pending": str(ids["p"]), "tx": str(ids["post"]), "amount": "1.00"},
            transfer(ids["q"], a, b, "4.00", "chk-4", "pending"),
            {"kind": "void", "pending": str(ids["q"]), "tx": str(ids["void"])},
            {"kind": "retry", "key": "chk-1", "tx": str(ids["t1"])}]
    assert check_acks(ledger_url, good) == []

    def problems_with(index: int, **change) -> list[str]:
        acks = [dict(x) for x in good]
        acks[index].update(change)
        return check_acks(ledger_url, acks)

    # A transaction lost while its id was handed to another request: two acks share one id.
    lost = problems_with(1, tx=str(ids["t1"]), key="chk-1")
    assert any("acknowledged twice" in p for p in lost)
    assert problems_with(0, amount="1.26") and problems_with(0, from_account=b, to_account=a)
    assert problems_with(0, currency="EUR")
    assert any("kind 1" in p for p in problems_with(2, kind="transfer"))  # a reservation is not a transfer
    assert problems_with(3, amount="1.50")  # the post moved 1.00
    assert problems_with(3, pending=str(ids["q"]))  # it resolved p, not q
    assert problems_with(5, tx=str(ids["post"]))  # a void acknowledged with the post's id
    assert any("retry of chk-1" in p for p in problems_with(6, tx=str(ids["t2"])))
