"""HTTP load benchmark of the API: requests/s and p50/p99 for single transfers, and transfers/s
through ``POST /api/v1/transactions/batch``.

Starts a real server (``python -m qenex serve``, ``--workers`` uvicorn processes) on a fresh
database of the embedded PostgreSQL (or of ``--admin-url`` / ``QENEX_BENCH_ADMIN_URL``), dropped
afterwards, with rate limits raised for the run. Every request is authenticated with an admin
API key, audited, and durably committed by the ledger before it is answered.

The load generator is a small keep-alive HTTP/1.1 client on raw asyncio streams (one request in
flight per connection), so the client costs as little CPU as possible: it shares the machine's
cores with the server and PostgreSQL, and figures taken that way are a floor, not a ceiling.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench._common import scratch_database
from bench.ledger_bench import machine, percentile

ACCOUNTS_COUNT = 200
CONNECTIONS_DEFAULT = 64
BATCH_ITEMS = 8_000
BATCH_CONNECTIONS = 2
SECONDS_DEFAULT = 5.0
SERVER_START_TIMEOUT_S = 90.0
BENCH_SECRET = "http-bench-secret-0123456789abcdef0123456789"


@dataclass
class Result:
    scenario: str
    requests: int
    transfers: int
    seconds: float
    requests_per_s: float
    transfers_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


class RawClient:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, body)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**24)

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.auth}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def start_server(db_url: str, port: int, workers: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QENEX_")}
    env.update({"QENEX_ENV": "test", "QENEX_DATABASE_URL": db_url, "QENEX_DATA_DIR": data_dir,
                "QENEX_SECRET_KEY": BENCH_SECRET, "QENEX_JWT_SECRET": BENCH_SECRET, "QENEX_LOG_LEVEL": "WARNING",
                "QENEX_API_WORKERS": str(workers), "QENEX_API_RATE_PRINCIPAL": "1000000/2000000",
                "QENEX_API_RATE_IP": "1000000/2000000", "QENEX_API_MAX_BODY_BYTES": "16000000"})
    log = open(Path(data_dir) / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", "qenex", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(Path(data_dir) / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not become ready")


async def run_scenario(name: str, port: int, key: str, connections: int, seconds: float, path: str,
                       make_body: Any, per_request: int) -> Result:
    clients = [RawClient("127.0.0.1", port, key) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in clients))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(client: RawClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            body = make_body()
            t0 = time.perf_counter()
            status, payload = await client.request("POST", path, body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status >= 300 or b'"ok":false' in payload:
                errors += 1

    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in clients))
    latencies.sort()
    n = len(latencies)
    return Result(name, n, n * per_request, round(elapsed, 2), round(n / elapsed, 1),
                  round(n * per_request / elapsed, 1), round(percentile(latencies, 0.5), 2),
                  round(percentile(latencies, 0.99), 2), errors)


def admin_url(arg: str | None) -> str:
    if arg or os.environ.get("QENEX_BENCH_ADMIN_URL"):
        return arg or os.environ["QENEX_BENCH_ADMIN_URL"]
    from qenex.store.embedded import embedded_url

    return embedded_url(Path(__file__).resolve().parent.parent / ".qenex-test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT)
    parser.add_argument("--connections", type=int, default=CONNECTIONS_DEFAULT)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--admin-url", default=None)
    args, _ = parser.parse_known_args(argv)
    admin = admin_url(args.admin_url)
    with scratch_database(admin, f"qenex_httpbench_{secrets.token_hex(4)}") as db_url:
        results = _serve_and_load(db_url, args)
    _print(results, args)
    return 0


def _serve_and_load(db_url: str, args: argparse.Namespace) -> list[Result]:
    from qenex.security import apikeys
    from qenex.store.migrate import migrate

    migrate(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        key = apikeys.create_key(conn, name="http-bench", role="admin").key
    port = _free_port()
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="qenex-httpbench-") as data_dir:
            proc = start_server(db_url, port, args.workers, data_dir)
            results = asyncio.run(_scenarios(port, key, args))
            proc.terminate()
            proc.wait(30)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    return results


async def _scenarios(port: int, key: str, args: argparse.Namespace) -> list[Result]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                                 timeout=60) as http:
        items = [{"owner_id": f"bench-{i}", "initial_balance": "100000000.00"} for i in range(ACCOUNTS_COUNT)]
        ids = []
        for item in items:
            response = await http.post("/api/v1/accounts", json=item)
            ids.append(response.json()["id"])
    counter = iter(range(10**12))

    def transfer() -> dict[str, Any]:
        n = next(counter)
        a = ids[n % len(ids)]
        b = ids[(n * 7 + 1) % len(ids)]
        b = b if b != a else ids[(n + 1) % len(ids)]
        return {"type": "TRANSFER", "from_account": a, "to_account": b, "amount": "0.01", "currency": "USD"}

    batch_bodies = [json.dumps({"items": [transfer() for _ in range(BATCH_ITEMS)]}).encode() for _ in range(4)]
    rotation = iter(range(10**12))
    single = await run_scenario("single", port, key, args.connections, args.seconds, "/api/v1/transactions",
                                lambda: json.dumps(transfer()).encode(), 1)
    batch = await run_scenario("batch8000", port, key, BATCH_CONNECTIONS, args.seconds,
                               "/api/v1/transactions/batch", lambda: batch_bodies[next(rotation) % 4], BATCH_ITEMS)
    return [single, batch]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _print(results: list[Result], args: argparse.Namespace) -> None:
    print(f"{'scenario':<12} {'requests/s':>11} {'transfers/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r.scenario:<12} {r.requests_per_s:>11} {r.transfers_per_s:>12} {r.p50_ms:>8} {r.p99_ms:>8}"
              f" {r.errors:>7}")
    print(json.dumps({"bench": "http", "workers": args.workers, "connections": args.connections,
                      "machine": machine(), "load_average": os.getloadavg(),
                      "results": [asdict(r) for r in results]}))


if __name__ == "__main__":
    sys.exit(main())
