"""OpenTelemetry through the API: a POST /transactions gives the SERVER span and, as its child, a
span for the SDK call (attributes name the operation, never an owner, amount or metadata). Once
in process with the SDK's in-memory exporter, once end to end: a real server started with
QENEX_OTLP_ENDPOINT exports over OTLP/HTTP to a receiver in the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qenex.api.app import create_app
from qenex.config import Settings
from qenex.observability import tracing

from .conftest import auth, drop_app_log_handler, free_port, in_process_settings, make_key, start_server

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk (the 'tracing' extra) is not installed")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

OTLP_WAIT_S = 30.0
SECRET_OWNER = "owner-who-must-not-appear-in-spans"


@pytest.fixture()
def traced_settings(api_db_url: str, tmp_path: Path) -> Iterator[Settings]:
    yield in_process_settings(api_db_url, tmp_path, observability={"tracing_enabled": True})
    tracing.shutdown_tracing()
    drop_app_log_handler()


def _transfer(client: Any, headers: dict[str, str]) -> int:
    ids = []
    for initial in ("50.00", None):
        body = {"owner_id": SECRET_OWNER} | ({"initial_balance": initial} if initial else {})
        created = client.post("/api/v1/accounts", json=body, headers=headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    tx = client.post("/api/v1/transactions", headers=headers, json={
        "type": "TRANSFER", "from_account": ids[0], "to_account": ids[1], "amount": "5.00", "currency": "USD",
        "metadata": {"note": SECRET_OWNER}})
    assert tx.status_code == 201, tx.text
    return int(tx.json()["id"])


def test_post_transaction_gives_server_span_and_child_ledger_span(traced_settings: Settings,
                                                                  api_db_url: str) -> None:
    memory = InMemorySpanExporter()
    key = make_key(api_db_url, "admin")
    with TestClient(create_app(traced_settings)) as client:
        tracing.shutdown_tracing()  # the lifespan's provider (stderr exporter) makes way for the in-memory one
        tracing.configure_tracing(traced_settings, exporter=memory)
        _transfer(client, auth(key))
    spans = memory.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST /api/v1/transactions"]
    assert len(server) == 1, [(s.name, s.kind) for s in spans]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == server[0].context.span_id]
    ledger = [s for s in children if s.name == "ledger.process_transactions"]
    assert len(ledger) == 1, [s.name for s in children]
    attributes = dict(ledger[0].attributes or {})
    assert attributes["qenex.ledger.operation"] == "process_transactions"
    assert attributes["qenex.transaction.type"] == "TRANSFER" and attributes["qenex.batch.items"] == 1
    assert ledger[0].context.trace_id == server[0].context.trace_id
    creates = [s for s in spans if s.name == "ledger.create_account"]
    assert len(creates) == 2 and all(s.parent is not None for s in creates)
    for span in spans:  # no PII in any span
        assert SECRET_OWNER not in repr(dict(span.attributes or {})), span.name


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.bodies.append(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_server_exports_spans_over_otlp(api_db_url: str, tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the OTLP exporter (tracing extra)")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    port = free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    _Receiver.bodies = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    srv = start_server(api_db_url, tmp_path, QENEX_TRACING_ENABLED="true",
                       QENEX_OTLP_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces", OTEL_BSP_SCHEDULE_DELAY="100")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            _transfer(client, auth(make_key(api_db_url, "admin")))
        deadline = time.monotonic() + OTLP_WAIT_S
        spans: dict[str, list[Any]] = {}
        while "ledger.process_transactions" not in spans or "POST /api/v1/transactions" not in spans:
            assert time.monotonic() < deadline, f"no spans received:\n{srv.log()}"
            time.sleep(0.2)
            for body in list(_Receiver.bodies):
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            spans.setdefault(span.name, []).append(span)
        server_span = spans["POST /api/v1/transactions"][0]
        ledger_span = spans["ledger.process_transactions"][0]
        assert ledger_span.parent_span_id == server_span.span_id and ledger_span.trace_id == server_span.trace_id
        assert SECRET_OWNER.encode() not in b"".join(_Receiver.bodies)
    finally:
        srv.stop()
        receiver.shutdown()
