"""Statements (opening balance, entries, closing balance; JSON and CSV) and the event stream."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from qenex import FinancialKernel, LedgerError

D = Decimal


def test_statement_opening_entries_closing_json_csv(kx):
    async def body(k: FinancialKernel):
        a = await k.create_account(owner_id="st", currency="USD", initial_balance="100.00")
        b = await k.create_account(owner_id="st2", currency="USD")
        await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="10.00", currency="USD")
        await asyncio.sleep(0.05)
        start = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="20.00", currency="USD",
                                    metadata={"description": "rent, march"})
        await k.process_transaction("TRANSFER", from_account=b.id, to_account=a.id, amount="5.00", currency="USD")
        p = await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="1.00",
                                        currency="USD", pending=True)  # pending: not on the statement
        await asyncio.sleep(0.05)
        end = datetime.now(UTC)
        await k.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="7.00", currency="USD")
        st = await k.statement(a.id, start, end)
        assert st.opening_balance == D("90.00") and st.closing_balance == D("75.00")
        assert [e.amount for e in st.entries] == [D("-20.00"), D("5.00")]
        assert [e.balance for e in st.entries] == [D("70.00"), D("75.00")]
        assert st.entries[0].counterparty == b.id and st.entries[0].description == "rent, march"
        doc = json.loads(st.to_json())
        assert doc["opening_balance"] == "90.00" and doc["closing_balance"] == "75.00"
        assert [e["debit"] for e in doc["entries"]] == ["20.00", "0.00"]
        rows = list(csv.reader(io.StringIO(st.to_csv())))
        assert rows[1][3] == "OPENING_BALANCE" and rows[1][-1] == "90.00"
        assert rows[-1][3] == "CLOSING_BALANCE" and rows[-1][-1] == "75.00"
        assert rows[2][4] == "rent, march" and len(rows) == 5
        whole = await k.statement(a.id, start - timedelta(days=1), end + timedelta(days=1))
        assert whole.opening_balance == 0 and whole.closing_balance == D("68.00")
        assert p not in [e.transaction_id for e in whole.entries]
        with pytest.raises(LedgerError) as info:
            await k.statement(a.id, end, start)
        assert info.value.code == "invalid_request"
        with pytest.raises(LedgerError) as info:
            await k.statement(10**12, start, end)
        assert info.value.code == "account_not_found"

    kx(body)


def test_events_stream_across_kernels(kx, ledger_url):
    async def body(k: FinancialKernel):
        a = await k.create_account(owner_id="ev", currency="USD", initial_balance="50.00")
        b = await k.create_account(owner_id="ev", currency="USD")
        from qenex.store import ledger_store as S

        async with k._require_pool().connection() as conn:
            cur = await conn.execute("SELECT last_seq FROM ledger_head")
            start_seq = (await cur.fetchone())[0]
        # A second kernel (another "process") writes; this one listens.
        other = FinancialKernel({"database": {"url": ledger_url}})
        await other.initialize()
        seen = []

        async def listen():
            async for event in k.events(after_seq=start_seq):
                if event.from_account in (a.id, b.id) or event.to_account in (a.id, b.id):
                    seen.append(event)
                if len(seen) >= 4:
                    return

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.1)
        t = await other.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="1.00",
                                            currency="USD")
        p = await other.process_transaction("TRANSFER", from_account=a.id, to_account=b.id, amount="2.00",
                                            currency="USD", pending=True)
        done = await other.post_pending(p)
        await asyncio.wait_for(task, timeout=10)
        await other.shutdown()
        assert [(e.event, e.transaction_id) for e in seen] == [
            ("transaction.created", t), ("transaction.completed", t), ("transaction.created", p),
            ("transaction.completed", done)]
        assert seen[1].amount == D("1.00") and seen[3].related_transaction_id == p
        assert S.NOTIFY_CHANNEL == "qenex_ledger"

    kx(body)


SEED_EXAMPLE_BODY = """
async def main(config):
    kernel = FinancialKernel(config)
    await kernel.initialize()
    account1 = await kernel.create_account(owner_id='user_001', account_type='CHECKING', currency='USD',
                                           initial_balance=Decimal('10000.00'))
    account2 = await kernel.create_account(owner_id='user_002', account_type='SAVINGS', currency='USD')
    transaction_id = await kernel.process_transaction(
        TransactionType.TRANSFER, from_account=account1.id, to_account=account2.id, amount=Decimal('500.00'),
        currency='USD', metadata={'description': 'Monthly transfer'})
    print(f"Transaction {transaction_id} completed")
    balance1 = await kernel.get_account_balance(account1.id)
    balance2 = await kernel.get_account_balance(account2.id)
    print(f"Account 1: ${balance1}")
    print(f"Account 2: ${balance2}")
    await kernel.shutdown()
"""


def test_seed_example_in_process(fresh_db_url, capsys):
    namespace: dict = {}
    exec("from decimal import Decimal\nfrom qenex import FinancialKernel, TransactionType\n" + SEED_EXAMPLE_BODY,
         namespace)
    asyncio.run(namespace["main"]({"database": {"url": fresh_db_url}}))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Transaction ") and out[0].endswith(" completed")
    assert out[1:] == ["Account 1: $9500.00", "Account 2: $500.00"]
