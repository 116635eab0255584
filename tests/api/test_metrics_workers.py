"""/metrics with api.workers = 2: each worker writes its own series into the private multi-process
directory `qenex serve` made, and a scrape (whichever worker serves it) reports the sum of all
workers. Requests are checked to have been served by both workers, each read alone from its own
file with prometheus_client's public collector."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from .conftest import ApiServer, start_server

REQUESTS_PER_ROUND = 40
ROUNDS_MAX = 10
WORKERS_WAIT_S = 30.0


def _workers(server: ApiServer) -> list[psutil.Process]:
    deadline = time.monotonic() + WORKERS_WAIT_S
    while True:
        children = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
                    if "PROMETHEUS_MULTIPROC_DIR" in p.environ()
                    and "resource_tracker" not in " ".join(p.cmdline())]  # multiprocessing's helper
        if len(children) == 2:
            return children
        assert time.monotonic() < deadline, f"expected 2 workers, found {len(children)}"
        time.sleep(0.2)


def _health_count(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "qenex_http_requests_total" and sample.labels.get("route") == "/health":
                total += sample.value
    return total


def _scraped_health_count(server: ApiServer) -> float:
    text = httpx.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("qenex_http_requests_total{") and 'route="/health"' in line)


@pytest.fixture()
def two_workers(api_db_url: str, tmp_path: Path) -> ApiServer:
    return start_server(api_db_url, tmp_path, QENEX_API_WORKERS="2")


def test_metrics_aggregate_every_worker(two_workers: ApiServer, tmp_path: Path) -> None:
    server = two_workers
    try:
        workers = _workers(server)
        directory = Path(workers[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
        assert all(w.environ()["PROMETHEUS_MULTIPROC_DIR"] == str(directory) for w in workers)
        sent = 0
        per_worker: dict[int, float] = {}
        for _ in range(ROUNDS_MAX):  # fresh connections until the kernel has handed some to each worker
            for _ in range(REQUESTS_PER_ROUND):
                assert httpx.get(server.url + "/health", headers={"Connection": "close"}).status_code == 200
                sent += 1
            for worker in workers:  # each worker's own file, read alone
                own = tmp_path / f"worker-{worker.pid}"
                own.mkdir(exist_ok=True)
                shutil.copy(directory / f"counter_{worker.pid}.db", own / f"counter_{worker.pid}.db")
                per_worker[worker.pid] = _health_count(own)
            if all(per_worker.values()):
                break
        assert all(per_worker.values()), per_worker  # both workers served /health
        assert sum(per_worker.values()) == sent
        for _ in range(6):  # whichever worker answers the scrape, it reports both
            assert _scraped_health_count(server) == sent
    finally:
        server.stop()
    assert not directory.exists()  # removed when the server stops
