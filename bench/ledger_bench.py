"""Durable ledger benchmark: transfers per second and p50/p99 latency.

Runs on a fresh database of the embedded PostgreSQL (or of the admin URL given by ``--admin-url``
or ``QENEX_BENCH_ADMIN_URL``), dropped afterwards, with fsync and synchronous_commit as the server
has them (printed: the figures only count when both are on). Scenarios, each bounded in time:

- single       one transfer per call, 1 client
- clients4     one transfer per call, 4 concurrent clients (asyncio tasks on one kernel)
- procs4       one transfer per call, 4 client processes, each with its own kernel (API workers)
- hot4         4 concurrent clients, every transfer debits the same hot account
- batch100     process_transactions with 100 transfers per call
- batch8000    process_transactions with 8,000 transfers per call

Every transfer carries its own idempotency key, as a real client's would. Latency is per SDK
call; building a batch's items happens outside the timed region (it is the client's work).
With one client, throughput is transfers over the time spent inside SDK calls; with several,
over wall-clock time. The script also prints what bounds durable commits on this machine: the
disk's fdatasync latency (8 kB write + fdatasync in the server's data directory) and the load
average (other processes sharing the CPU).
Prints a table, then one JSON line (``--json``: the JSON line only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ACCOUNTS_COUNT = 200
OPENING_BALANCE = Decimal("100000000.00")
AMOUNT = Decimal("0.01")
CLIENTS_COUNT = 4
# Child processes of procs4 start together this long after being spawned (kernel start-up).
PROCS_START_DELAY_S = 3.0
PROCS_TIMEOUT_S = 120.0
SECONDS_DEFAULT = 3.0
SCENARIO_CALLS_MIN = 3  # even the 8,000-batch runs a few calls, so p50 means something
WARMUP_CALLS = 20
FSYNC_PROBES_COUNT = 50
FSYNC_PROBE_BYTES = 8192


@dataclass
class Result:
    scenario: str
    transfers: int
    calls: int
    seconds: float
    transfers_per_s: float
    p50_ms: float
    p99_ms: float


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "python": platform.python_version()}


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    index = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[index]


class Keys:
    """Unique idempotency keys for this run."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"b{self.prefix}-{self.n}"


def fsync_probe(directory: str) -> float | None:
    """Median ms of an 8 kB write + fdatasync in ``directory`` (None when it is not local)."""
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        return None
    path = os.path.join(directory, f"qenex_fsync_probe_{os.getpid()}.tmp")
    block = b"\0" * FSYNC_PROBE_BYTES
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(FSYNC_PROBES_COUNT):
            t0 = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return round(statistics.median(samples), 3)


Prepare = Callable[[], Any]
Execute = Callable[[Any], Awaitable[None]]


async def timed_loop(name: str, seconds: float, clients: int, per_call: int, prepare: Prepare,
                     execute: Execute) -> Result:
    """``clients`` concurrent loops for ``seconds``: prepare a call (untimed), execute it (timed)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        done = 0
        while time.perf_counter() < deadline or done < SCENARIO_CALLS_MIN:
            job = prepare()
            t0 = time.perf_counter()
            await execute(job)
            latencies.append((time.perf_counter() - t0) * 1000)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start if clients > 1 else sum(latencies) / 1000
    latencies.sort()
    transfers = len(latencies) * per_call
    return Result(
        name,
        transfers,
        len(latencies),
        round(elapsed, 3),
        round(transfers / elapsed, 1),
        round(percentile(latencies, 0.50), 3),
        round(percentile(latencies, 0.99), 3),
    )


async def run_scenarios(kernel: Any, url: str, seconds: float) -> list[Result]:
    from qenex import TransactionType

    accounts = []
    for i in range(ACCOUNTS_COUNT):
        acct = await kernel.create_account(
            owner_id=f"bench_{i}", account_type="CHECKING", currency="USD", initial_balance=OPENING_BALANCE
        )
        accounts.append(acct.id)
    hot = accounts[0]
    keys = Keys()
    rng = random.Random(20_261_121)  # reproducible account pairs; not security-relevant

    def pair() -> tuple[Any, Any]:
        a, b = rng.sample(accounts, 2)
        return a, b

    def prepare_one() -> tuple[Any, Any, str]:
        a, b = pair()
        return a, b, keys.next()

    def prepare_hot() -> tuple[Any, Any, str]:
        b = rng.choice(accounts[1:])
        return hot, b, keys.next()

    async def one(job: tuple[Any, Any, str]) -> None:
        a, b, key = job
        await kernel.process_transaction(
            TransactionType.TRANSFER, from_account=a, to_account=b, amount=AMOUNT, currency="USD", idempotency_key=key
        )

    def prepare_batch(size: int) -> Prepare:
        def prepare() -> list[dict[str, Any]]:
            items = []
            for _ in range(size):
                a, b = pair()
                items.append({"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "0.01",
                              "currency": "USD", "idempotency_key": keys.next()})  # fmt: skip
            return items

        return prepare

    async def batch(items: list[dict[str, Any]]) -> None:
        results = await kernel.process_transactions(items)
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} batch items failed, first: {failed[0].error}")

    for _ in range(WARMUP_CALLS):
        await one(prepare_one())
    return [
        await timed_loop("single", seconds, 1, 1, prepare_one, one),
        await timed_loop("clients4", seconds, CLIENTS_COUNT, 1, prepare_one, one),
        await timed_loop("hot4", seconds, CLIENTS_COUNT, 1, prepare_hot, one),
        await procs_scenario(url, accounts, seconds),
        await timed_loop("batch100", seconds, 1, 100, prepare_batch(100), batch),
        await timed_loop("batch8000", seconds, 1, 8000, prepare_batch(8000), batch),
    ]


def server_facts(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        facts = {}
        for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "server_version",
                     "data_directory"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            facts[name] = str(row[0]) if row else ""
    return facts


def admin_url(config: str | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    from qenex.config import load_settings
    from qenex.store.connection import database_url

    return database_url(load_settings(config))


def with_dbname(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


async def procs_scenario(url: str, accounts: list[Any], seconds: float) -> Result:
    """CLIENTS_COUNT processes, each its own kernel doing one transfer per call for ``seconds``."""
    start_at = time.time() + PROCS_START_DELAY_S
    root = str(Path(__file__).resolve().parent.parent)
    spec = {"url": url, "accounts": accounts, "seconds": seconds, "start_at": start_at}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ledger_bench", "--child", json.dumps({**spec, "seed": i}),
            cwd=root, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for i in range(CLIENTS_COUNT)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), PROCS_TIMEOUT_S)
    latencies: list[float] = []
    elapsed = 0.0
    for proc, (out, _) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"procs4 child failed with exit code {proc.returncode}")
        child = json.loads(out.decode().strip().splitlines()[-1])
        latencies.extend(child["latencies_ms"])
        elapsed = max(elapsed, child["seconds"])
    latencies.sort()
    return Result("procs4", len(latencies), len(latencies), round(elapsed, 3), round(len(latencies) / elapsed, 1),
                  round(percentile(latencies, 0.50), 3), round(percentile(latencies, 0.99), 3))  # fmt: skip


async def child_main(spec: dict[str, Any]) -> None:
    """One procs4 client: its own kernel, one transfer per call until the shared deadline."""
    from qenex import FinancialKernel, TransactionType

    kernel = FinancialKernel({"database": {"url": spec["url"]}})
    await kernel.initialize()
    rng = random.Random(spec["seed"])
    prefix = secrets.token_hex(4)
    latencies: list[float] = []
    try:
        await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
        start = time.perf_counter()
        deadline = start + spec["seconds"]
        while time.perf_counter() < deadline or len(latencies) < SCENARIO_CALLS_MIN:
            a, b = rng.sample(spec["accounts"], 2)
            t0 = time.perf_counter()
            await kernel.process_transaction(TransactionType.TRANSFER, from_account=a, to_account=b, amount=AMOUNT,
                                             currency="USD", idempotency_key=f"p{prefix}-{len(latencies)}")  # fmt: skip
            latencies.append(round((time.perf_counter() - t0) * 1000, 4))
        elapsed = time.perf_counter() - start
    finally:
        await kernel.shutdown()
    print(json.dumps({"seconds": elapsed, "latencies_ms": latencies}))


async def bench(url: str, seconds: float) -> list[Result]:
    from qenex import FinancialKernel

    kernel = FinancialKernel({"database": {"url": url}})
    await kernel.initialize()
    try:
        return await run_scenarios(kernel, url, seconds)
    finally:
        await kernel.shutdown()


def render(results: list[Result], facts: dict[str, str], host: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="QENEX ledger, durable transfers")
    for col in ("scenario", "transfers/s", "p50 ms", "p99 ms", "transfers", "calls", "seconds"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    for r in results:
        table.add_row(
            r.scenario, f"{r.transfers_per_s:,.0f}", f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}",
            f"{r.transfers:,}", str(r.calls), f"{r.seconds:.2f}",
        )  # fmt: skip
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(
        f"PostgreSQL {facts.get('server_version')}: fsync={facts.get('fsync')}, "
        f"synchronous_commit={facts.get('synchronous_commit')}, wal_sync_method={facts.get('wal_sync_method')}"
    )
    console.print(f"machine: {host['cpu']}, {host['cores']} cores, {host['ram_gib']} GiB RAM")
    console.print(
        f"disk fdatasync (8 kB, median): {host.get('fdatasync_ms')} ms; "
        f"load average before/after: {host.get('load_before')} / {host.get('load_after')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT, help="time per scenario")
    parser.add_argument("--config", default=None, help="config.json selecting the server")
    parser.add_argument("--admin-url", default=os.environ.get("QENEX_BENCH_ADMIN_URL"))
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one procs4 client process
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child_main(json.loads(args.child)))
        return 0

    admin = admin_url(args.config, args.admin_url)
    name = f"qenex_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(admin, name)
    host = machine()
    try:
        facts = server_facts(url)
        host["fdatasync_ms"] = fsync_probe(facts.pop("data_directory", ""))
        host["load_before"] = round(os.getloadavg()[0], 2)
        results = asyncio.run(bench(url, args.seconds))
        host["load_after"] = round(os.getloadavg()[0], 2)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    durable = facts.get("fsync") == "on" and facts.get("synchronous_commit") == "on"
    if not args.json:
        render(results, facts, host)
        if not durable:
            print("WARNING: fsync or synchronous_commit is off: these figures are NOT durable", file=sys.stderr)
    line = {"benchmark": "ledger", "durable": durable, "server": facts, "machine": host,
            "results": [asdict(r) for r in results]}  # fmt: skip
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
