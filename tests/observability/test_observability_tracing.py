"""OpenTelemetry tracing: off by default, on by config or QENEX_TRACING_ENABLED, spans checked
with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qenex.config import load_settings
from qenex.observability import tracing
from qenex.observability.logging import RequestIdMiddleware

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk (the 'tracing' extra) is not installed")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402


@pytest.fixture()
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    settings = load_settings({}, environ={"QENEX_TRACING_ENABLED": "true"})
    assert settings.observability.tracing_enabled
    assert tracing.configure_tracing(settings, exporter=memory) is not None
    yield memory
    tracing.shutdown_tracing()


def test_disabled_by_default() -> None:
    assert tracing.configure_tracing(load_settings({}, environ={})) is None
    assert not tracing.tracing_enabled()
    with tracing.span("noop") as current:
        assert current is None


def test_internal_spans(exporter: InMemorySpanExporter) -> None:
    with tracing.span("ledger.transfer", **{"qenex.currency": "EUR"}):
        with tracing.span("ledger.post"):
            pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"ledger.transfer", "ledger.post"}
    assert spans["ledger.post"].parent is not None
    assert spans["ledger.post"].parent.span_id == spans["ledger.transfer"].context.span_id
    assert spans["ledger.transfer"].attributes["qenex.currency"] == "EUR"
    assert spans["ledger.transfer"].resource.attributes["service.name"] == "qenex"


def test_http_server_spans_continue_the_callers_trace(exporter: InMemorySpanExporter) -> None:
    app = FastAPI()

    @app.get("/api/v1/accounts/{account_id}")
    def get_account(account_id: str) -> dict[str, str]:
        with tracing.span("db.load_account"):
            return {"id": account_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    app.add_middleware(tracing.TracingMiddleware)
    app.add_middleware(RequestIdMiddleware)
    client = TestClient(app, raise_server_exceptions=False)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    resp = client.get(
        "/api/v1/accounts/a1",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "X-Request-ID": "rid-7"},
    )
    assert resp.status_code == 200
    assert client.get("/boom").status_code == 500
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in server] == ["GET /api/v1/accounts/{account_id}", "GET /boom"]
    first = server[0]
    assert format(first.context.trace_id, "032x") == trace_id
    assert first.attributes["http.route"] == "/api/v1/accounts/{account_id}"
    assert first.attributes["http.response.status_code"] == 200
    assert first.attributes["qenex.request_id"] == "rid-7"
    inner = next(s for s in spans if s.name == "db.load_account")
    assert inner.context.trace_id == first.context.trace_id
    assert server[1].status.status_code == StatusCode.ERROR


def test_otlp_without_exporter_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("opentelemetry.exporter.otlp"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake_import)
    settings = load_settings(
        {"observability": {"tracing_enabled": True, "otlp_endpoint": "http://127.0.0.1:4318/v1/traces"}}, environ={}
    )
    from qenex.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        tracing.configure_tracing(settings)
    assert "otlp_endpoint" in str(exc.value)
