"""The seed README's SDK example, run as written with only its import line changed.

Its config names a server at localhost:5432 with the seed's credentials; QENEX_DATABASE_URL
(which takes precedence over the config file's `database` section) points it at a fresh database.
"""

from __future__ import annotations

import subprocess
import sys

from .conftest import child_env

SEED_EXAMPLE = '''\
import asyncio
from decimal import Decimal
from qenex import FinancialKernel, TransactionType

async def main():
    # Initialize the kernel
    config = {
        'database': {
            'host': 'localhost',
            'port': 5432,
            'user': 'qenex',
            'password': 'secure_password',
            'database': 'qenex_financial'
        }
    }

    kernel = FinancialKernel(config)
    await kernel.initialize()

    # Create accounts
    account1 = await kernel.create_account(
        owner_id='user_001',
        account_type='CHECKING',
        currency='USD',
        initial_balance=Decimal('10000.00')
    )

    account2 = await kernel.create_account(
        owner_id='user_002',
        account_type='SAVINGS',
        currency='USD'
    )

    # Process transaction
    transaction_id = await kernel.process_transaction(
        TransactionType.TRANSFER,
        from_account=account1.id,
        to_account=account2.id,
        amount=Decimal('500.00'),
        currency='USD',
        metadata={'description': 'Monthly transfer'}
    )

    print(f"Transaction {transaction_id} completed")

    # Check balances
    balance1 = await kernel.get_account_balance(account1.id)
    balance2 = await kernel.get_account_balance(account2.id)

    print(f"Account 1: ${balance1}")
    print(f"Account 2: ${balance2}")

    await kernel.shutdown()

asyncio.run(main())
'''


def test_seed_example_runs_as_written(fresh_db_url, tmp_path):
    program = tmp_path / "seed_example.py"
    program.write_text(SEED_EXAMPLE)
    env = child_env()
    env["QENEX_DATABASE_URL"] = fresh_db_url
    r = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("Transaction ") and lines[0].endswith(" completed")
    assert lines[1:] == ["Account 1: $9500.00", "Account 2: $500.00"]
