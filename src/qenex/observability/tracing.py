"""OpenTelemetry tracing, off unless ``observability.tracing_enabled`` (``QENEX_TRACING_ENABLED``).

``opentelemetry-sdk`` is an optional dependency (``pip install qenex[tracing]``); with tracing
off nothing of it is imported and ``span()`` costs one attribute lookup. Spans go to the
exporter passed to ``configure_tracing`` (tests use the SDK's in-memory exporter), else to OTLP
over HTTP when ``observability.otlp_endpoint`` is set (needs ``opentelemetry-exporter-otlp``),
else to stderr.

``TracingMiddleware`` (ASGI) opens one SERVER span per request, continuing the caller's trace
from a W3C ``traceparent`` header, named ``"<METHOD> <route template>"``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qenex import __version__
from qenex.config import ConfigError, Settings
from qenex.observability.asgi import ASGIApp, Message, Receive, Scope, Send
from qenex.observability.logging import get_request_id

SERVICE_NAME = "qenex"
_state: dict[str, Any] = {"provider": None}


def configure_tracing(settings: Settings, exporter: Any | None = None) -> Any | None:
    """Set up the tracer provider when tracing is enabled; returns it (None when disabled)."""
    if not settings.observability.tracing_enabled:
        _state["provider"] = None
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise ConfigError(
            "config key 'observability.tracing_enabled': needs the opentelemetry-sdk package "
            "(pip install 'qenex[tracing]')"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.observability.otlp_endpoint:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings.observability.otlp_endpoint)))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    _state["provider"] = provider
    # The global provider can be set once per process; our own spans use _state regardless.
    if not getattr(trace.get_tracer_provider(), "add_span_processor", None):
        trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter(endpoint: str) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "config key 'observability.otlp_endpoint': needs the opentelemetry-exporter-otlp-proto-http package"
        ) from None
    return OTLPSpanExporter(endpoint=endpoint)


def shutdown_tracing() -> None:
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state["provider"] = None


def tracing_enabled() -> bool:
    return _state["provider"] is not None


def get_tracer(name: str = "qenex") -> Any | None:
    provider = _state["provider"]
    return provider.get_tracer(name, __version__) if provider is not None else None


@contextmanager
def span(name: str, kind: str = "INTERNAL", context: Any = None, **attributes: Any) -> Iterator[Any]:
    """A span when tracing is on (yields it), a no-op otherwise (yields None)."""
    tracer = get_tracer()
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    rid = get_request_id()
    if rid:
        attributes.setdefault("qenex.request_id", rid)
    with tracer.start_as_current_span(
        name, kind=getattr(SpanKind, kind), context=context, attributes=attributes
    ) as current:
        yield current


# -- ASGI ----------------------------------------------------------------------------------------

class TracingMiddleware:
    """One SERVER span per HTTP request when tracing is enabled; a pass-through otherwise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing_enabled():
            await self.app(scope, receive, send)
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import Status, StatusCode

        carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = str(scope.get("method", "GET"))
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        attributes = {"http.request.method": method, "url.path": str(scope.get("path", ""))}
        with span(method, kind="SERVER", context=extract(carrier), **attributes) as current:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    current.set_attribute("http.route", route)
                    current.update_name(f"{method} {route}")
                current.set_attribute("http.response.status_code", status)
                if status >= 500:
                    current.set_status(Status(StatusCode.ERROR))
