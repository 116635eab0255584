"""A load-generating process for the concurrency and crash tests.

Run as a script: ``python load_worker.py SPEC_JSON``. The spec names the database URL, the hot
accounts (id, currency), how many asyncio tasks and operations per task, a random seed, and the
acks file. Every operation the kernel acknowledges is appended to the acks file as one JSON line
and fsync'd before the next operation starts, so after a SIGKILL the file holds exactly what the
client was told succeeded (plus possibly one torn last line, which the reader ignores).

Operations (random, over a few hot accounts, amounts chosen to make overdraft attempts common):
transfer, overdraft attempt, idempotent retry of an earlier request, two-phase reserve then
post (full or partial) or void, and a small batch through process_transactions.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from decimal import Decimal
from typing import Any

from qenex import FinancialKernel, LedgerError, TransactionType

# Codes a correct ledger may answer under this load; anything else is a bug and fails the worker.
EXPECTED_REJECTIONS = {"insufficient_funds", "limit_exceeded"}


class Acks:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = asyncio.Lock()

    async def record(self, **fields: Any) -> None:
        line = (json.dumps(fields, sort_keys=True) + "\n").encode()
        async with self.lock:
            os.write(self.fd, line)
            os.fsync(self.fd)


class Worker:
    def __init__(self, kernel: Any, spec: dict[str, Any], acks: Acks, rng: random.Random) -> None:
        self.kernel = kernel
        self.spec = spec
        self.acks = acks
        self.rng = rng
        self.accounts: list[tuple[str, str]] = [tuple(a) for a in spec["accounts"]]  # type: ignore[misc]
        self.done: list[dict[str, Any]] = []  # acknowledged requests, for idempotent retries
        self.rejected = 0
        self.n = 0

    def key(self) -> str:
        self.n += 1
        return f"{self.spec['name']}-{self.n}"

    def pair(self) -> tuple[str, str, str]:
        cur = self.rng.choice(sorted({c for _, c in self.accounts}))
        ids = [a for a, c in self.accounts if c == cur]
        a, b = self.rng.sample(ids, 2)
        return a, b, cur

    def amount(self) -> str:
        # Mostly small; one in five large enough to overdraw a hot account.
        if self.rng.random() < 0.2:
            return f"{self.rng.randint(500, 5000)}.00"
        return f"{self.rng.randint(1, 2000)}.{self.rng.randint(0, 99):02d}"

    async def transfer(self, **extra: Any) -> dict[str, Any]:
        a, b, cur = self.pair()
        req = {"from_account": a, "to_account": b, "amount": self.amount(), "currency": cur, "key": self.key()}
        tx = await self.kernel.process_transaction(
            TransactionType.TRANSFER,
            from_account=a,
            to_account=b,
            amount=Decimal(req["amount"]),
            currency=cur,
            idempotency_key=req["key"],
            **extra,
        )
        req["tx"] = str(tx)
        return req

    async def op_transfer(self) -> None:
        req = await self.transfer()
        await self.acks.record(kind="transfer", **req)
        self.done.append(req)

    async def op_retry(self) -> None:
        if not self.done:
            return await self.op_transfer()
        req = self.rng.choice(self.done)
        tx = await self.kernel.process_transaction(
            TransactionType.TRANSFER,
            from_account=req["from_account"],
            to_account=req["to_account"],
            amount=Decimal(req["amount"]),
            currency=req["currency"],
            idempotency_key=req["key"],
        )
        if str(tx) != req["tx"]:
            raise RuntimeError(f"idempotent retry of {req['key']} returned {tx}, first answer was {req['tx']}")
        await self.acks.record(kind="retry", key=req["key"], tx=str(tx))

    async def op_two_phase(self) -> None:
        req = await self.transfer(pending=True, timeout_seconds=600)
        await self.acks.record(kind="pending", **req)
        await asyncio.sleep(0)
        choice = self.rng.random()
        if choice < 0.4:
            tx = await self.kernel.post_pending(req["tx"], amount=None)
            await self.acks.record(kind="post", pending=req["tx"], tx=str(tx), amount=req["amount"])
        elif choice < 0.7:
            cents = int(Decimal(req["amount"]).scaleb(2))
            part = Decimal(max(1, cents // 2)).scaleb(-2)
            tx = await self.kernel.post_pending(req["tx"], amount=part)
            await self.acks.record(kind="post", pending=req["tx"], tx=str(tx), amount=str(part))
        else:
            tx = await self.kernel.void_pending(req["tx"])
            await self.acks.record(kind="void", pending=req["tx"], tx=str(tx))

    async def op_batch(self) -> None:
        items = []
        for _ in range(self.rng.randint(2, 8)):
            a, b, cur = self.pair()
            items.append(
                {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": self.amount(),
                 "currency": cur, "idempotency_key": self.key()}
            )  # fmt: skip
        results = await self.kernel.process_transactions(items)
        for item, res in zip(items, results, strict=True):
            if res.ok:
                await self.acks.record(kind="batch", key=item["idempotency_key"], tx=str(res.transaction_id),
                                       from_account=item["from_account"], to_account=item["to_account"],
                                       amount=item["amount"], currency=item["currency"])
            elif getattr(res.error, "code", None) in EXPECTED_REJECTIONS:
                self.rejected += 1
            else:
                raise RuntimeError(f"unexpected batch rejection: {res.error!r}")

    async def one(self) -> None:
        ops = (self.op_transfer, self.op_transfer, self.op_retry, self.op_two_phase, self.op_batch)
        try:
            await self.rng.choice(ops)()
        except LedgerError as exc:
            if exc.code not in EXPECTED_REJECTIONS:
                raise
            self.rejected += 1


async def run(spec: dict[str, Any]) -> None:
    kernel = FinancialKernel({"database": {"url": spec["url"]}})
    await kernel.initialize()
    acks = Acks(spec["acks"])
    try:
        workers = [Worker(kernel, spec, acks, random.Random(spec["seed"] * 1000 + t)) for t in range(spec["tasks"])]
        for t, w in enumerate(workers):
            w.spec = {**spec, "name": f"{spec['name']}-t{t}"}

        async def drive(w: Worker) -> None:
            for _ in range(spec["ops"]):
                await w.one()

        await asyncio.gather(*(drive(w) for w in workers))
        print(json.dumps({"rejected": sum(w.rejected for w in workers)}))
    finally:
        await kernel.shutdown()


if __name__ == "__main__":
    asyncio.run(run(json.loads(sys.argv[1])))
