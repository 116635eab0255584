"""Prometheus metrics: seed names, integer minor-unit amounts, HTTP middleware with route
templates, active connections, process resources, and the standalone metrics server."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from qenex.config import load_settings
from qenex.kernel.errors import INSUFFICIENT_FUNDS, LedgerError
from qenex.observability import metrics

SEED_NAMES = {
    "qenex_transactions_total",
    "qenex_transaction_duration_seconds",
    "qenex_transaction_errors_total",
    "qenex_transaction_amount_sum",
    "qenex_active_connections",
    "qenex_memory_usage_bytes",
    "qenex_cpu_usage_percent",
    "qenex_http_requests_total",
    "qenex_http_request_duration_seconds",
    "qenex_fraud_detections_total",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render_metrics()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(name: str, **labels: str) -> float:
    return _samples().get((name, tuple(sorted(labels.items()))), 0.0)


def test_seed_metric_names_are_exported() -> None:
    metrics.observe_transaction("transfer", "USD", 1, 0.001)
    metrics.observe_transaction_error("transfer", "insufficient_funds")
    metrics.observe_fraud_detection()
    assert SEED_NAMES <= metrics.exported_metric_names()
    body = metrics.render_metrics()[0].decode()
    for name in SEED_NAMES:
        assert f"# TYPE {name} " in body, name


def test_transaction_counters_and_minor_unit_amounts() -> None:
    before = _value("qenex_transaction_amount_sum", currency="JPY")
    count = _value("qenex_transactions_total", type="transfer", status="completed")
    metrics.observe_transaction("transfer", "JPY", 12_345, 0.002)
    metrics.observe_transaction("transfer", "jpy", 5, 0.002)
    assert _value("qenex_transaction_amount_sum", currency="JPY") == before + 12_350
    assert _value("qenex_transactions_total", type="transfer", status="completed") == count + 2
    with pytest.raises(TypeError):
        metrics.observe_transaction("transfer", "USD", 1.5, 0.1)  # type: ignore[arg-type]
    # Unbounded caller input never becomes a label value as-is.
    metrics.observe_transaction("Weird Type!" * 20, "not-a-currency", 1, 0.0)
    assert _value("qenex_transaction_amount_sum", currency="other") >= 1
    assert not any("Weird Type!" in str(labels) for _, labels in _samples())


def test_track_transaction_counts_errors_by_code() -> None:
    errors = _value("qenex_transaction_errors_total", type="withdrawal", code=INSUFFICIENT_FUNDS)
    done = _value("qenex_transaction_duration_seconds_count", type="withdrawal")
    with pytest.raises(LedgerError):
        with metrics.track_transaction("withdrawal", "EUR", 100):
            raise LedgerError(INSUFFICIENT_FUNDS, "no money")
    with metrics.track_transaction("withdrawal", "EUR", 100):
        pass
    assert _value("qenex_transaction_errors_total", type="withdrawal", code=INSUFFICIENT_FUNDS) == errors + 1
    assert _value("qenex_transaction_duration_seconds_count", type="withdrawal") == done + 1


def test_process_resources_are_collected_on_scrape() -> None:
    assert _value("qenex_memory_usage_bytes") > 10_000_000
    assert _value("qenex_cpu_usage_percent") >= 0.0


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/accounts/{account_id}")
    def get_account(account_id: str) -> dict[str, str]:
        if account_id == "missing":
            raise HTTPException(404)
        return {"id": account_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    @app.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"active": _value("qenex_active_connections")})
        await ws.close()

    app.add_middleware(metrics.MetricsMiddleware)
    app.mount("/metrics", metrics.metrics_app)
    return app


def test_http_middleware_uses_route_templates() -> None:
    route = "/api/v1/accounts/{account_id}"
    ok = _value("qenex_http_requests_total", method="GET", route=route, status="200")
    missing = _value("qenex_http_requests_total", method="GET", route=route, status="404")
    client = TestClient(_app(), raise_server_exceptions=False)
    assert client.get("/api/v1/accounts/a1").status_code == 200
    assert client.get("/api/v1/accounts/a2").status_code == 200
    assert client.get("/api/v1/accounts/missing").status_code == 404
    assert client.get("/nowhere").status_code == 404
    assert client.get("/boom").status_code == 500
    assert _value("qenex_http_requests_total", method="GET", route=route, status="200") == ok + 2
    assert _value("qenex_http_requests_total", method="GET", route=route, status="404") == missing + 1
    assert _value("qenex_http_requests_total", method="GET", route="/boom", status="500") >= 1
    assert _value("qenex_http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    assert not any("a1" in str(labels) for _, labels in _samples())
    scraped = client.get("/metrics/")
    assert scraped.status_code == 200 and "qenex_http_request_duration_seconds_bucket" in scraped.text
    assert client.post("/metrics/").status_code == 405


def test_active_connections_track_websockets() -> None:
    client = TestClient(_app())
    idle = _value("qenex_active_connections")
    with client.websocket_connect("/stream") as ws:
        assert ws.receive_json()["active"] == idle + 1
    assert _value("qenex_active_connections") == idle


def test_standalone_metrics_server() -> None:
    port = free_port()
    settings = load_settings({"api": {"host": "127.0.0.1"}, "metrics": {"port": port}}, environ={})
    server = metrics.start_metrics_server(settings)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "qenex_memory_usage_bytes" in text and "qenex_transactions_total" in text
    finally:
        server.shutdown()
        server.server_close()
    assert metrics.start_metrics_server(load_settings({}, environ={})) is None


def test_observe_results_of_a_kernel_batch() -> None:
    from qenex.sdk.views import TransactionResult

    items = [
        {"type": "transfer", "amount": "10.50", "currency": "GBP"},
        {"type": "transfer", "amount": "1.00", "currency": "GBP"},
        {"type": "transfer", "amount": "99.99", "currency": "GBP"},
        {"type": "deposit", "amount": "5", "currency": "GBP"},
    ]
    results = [
        TransactionResult(ok=True, transaction_id=1),
        TransactionResult(ok=False, transaction_id=None, error=LedgerError(INSUFFICIENT_FUNDS, "no")),
        TransactionResult(ok=True, transaction_id=3, replayed=True),
        TransactionResult(ok=True, transaction_id=4),
    ]
    amount = _value("qenex_transaction_amount_sum", currency="GBP")
    transfers = _value("qenex_transactions_total", type="transfer", status="completed")
    errors = _value("qenex_transaction_errors_total", type="transfer", code=INSUFFICIENT_FUNDS)
    metrics.observe_results(items, results, 0.004)
    assert _value("qenex_transaction_amount_sum", currency="GBP") == amount + 1050 + 500  # minor units
    assert _value("qenex_transactions_total", type="transfer", status="completed") == transfers + 1
    assert _value("qenex_transaction_errors_total", type="transfer", code=INSUFFICIENT_FUNDS) == errors + 1


def test_multiprocess_mode_aggregates_workers(tmp_path: Any) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, values written by separate worker processes are summed
    by whichever process serves the scrape."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = (
        "from qenex.observability import metrics\n"
        "metrics.observe_transaction('transfer', 'CHF', 250, 0.01)\n"
        "metrics.observe_transaction_error('transfer', 'account_frozen')\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=60)
    scrape = (
        "from qenex.observability import metrics\n"
        "print(metrics.render_metrics()[0].decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", scrape], env=env, check=True, timeout=60, capture_output=True, text=True
    )
    values = {}
    for family in text_string_to_metric_families(out.stdout):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert values[("qenex_transaction_amount_sum", (("currency", "CHF"),))] == 500
    assert values[("qenex_transactions_total", (("status", "completed"), ("type", "transfer")))] == 2
    assert values[("qenex_transaction_errors_total", (("code", "account_frozen"), ("type", "transfer")))] == 2
    assert values[("qenex_memory_usage_bytes", ())] > 0


def test_observe_many_equals_that_many_observes_in_every_bucket() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from qenex.observability.metrics import observe_many

    registry = CollectorRegistry()
    hist = Histogram("qenex_test_many_seconds", "t", ["k"], buckets=(0.01, 0.1, 1.0), registry=registry)
    for amount, count in ((0.005, 3), (0.1, 4), (0.5, 2), (7.0, 5), (0.0, 1)):
        observe_many(hist.labels("many"), amount, count)
        for _ in range(count):
            hist.labels("loop").observe(amount)

    def samples(label: str) -> dict[str, float]:
        return {f"{s.name}{s.labels.get('le', '')}": s.value for m in registry.collect() for s in m.samples
                if s.labels.get("k") == label and not s.name.endswith("_created")}

    assert samples("many") == samples("loop")
    assert samples("many")["qenex_test_many_seconds_count"] == 15
