"""Prometheus metrics with the seed's names, an ASGI middleware, and a standalone metrics server.

Exported families (``qenex_`` prefix):

* ``qenex_transactions_total{type, status}``: counter of processed transactions.
* ``qenex_transaction_duration_seconds{type}``: histogram of processing time.
* ``qenex_transaction_errors_total{type, code}``: counter of rejected transactions, by stable code.
* ``qenex_transaction_amount_sum{currency}``: total processed amount **in integer minor units of
  the currency** (cents for USD, yen for JPY). Exposed as a gauge that only ever increases, so the
  exported name is exactly the seed's (a prometheus_client Counter would append ``_total``). A
  Prometheus sample is a float by nature; minor units stay exact up to 2^53 (9 * 10^15), and the
  ledger itself never sees this value. Use ``rate()`` or ``increase()`` on it like a counter.
* ``qenex_fraud_detections_total``: counter of transactions flagged by fraud detection.
* ``qenex_active_connections``: in-flight HTTP requests plus open WebSocket connections.
* ``qenex_memory_usage_bytes``, ``qenex_cpu_usage_percent``: resident memory and CPU of this
  process and its children (psutil), computed when scraped.
* ``qenex_http_requests_total{method, route, status}`` and
  ``qenex_http_request_duration_seconds{method, route}``: the route *template*
  (``/api/v1/accounts/{id}``), never the raw path, so label cardinality stays bounded.

Multiple processes: ``qenex serve`` with ``api.workers`` > 1 creates a fresh private directory
and sets ``PROMETHEUS_MULTIPROC_DIR`` to it before the workers start (and removes it when the
server stops): prometheus_client then writes per-process files and ``registry()`` aggregates
them, so ``/metrics`` answers for all workers whichever one serves the scrape (counters and
histograms summed, ``qenex_active_connections`` summed over live processes, the amount gauge
summed); a worker that exits is marked dead (``mark_worker_dead``). One worker: plain
in-process values. Memory and CPU are computed for the scraping process and its children.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from qenex.config import Settings
from qenex.kernel.errors import LedgerError
from qenex.kernel.money import to_minor
from qenex.observability.asgi import ASGIApp, Message, Receive, Scope, Send

LABEL_CHARS_MAX = 48
UNMATCHED_ROUTE = "<unmatched>"
TRANSACTION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LABEL_RE = re.compile(r"[^a-z0-9_.\-]")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

TRANSACTIONS = Counter("qenex_transactions", "Transactions processed.", ["type", "status"])
TRANSACTION_DURATION = Histogram(
    "qenex_transaction_duration_seconds", "Transaction processing time.", ["type"], buckets=TRANSACTION_BUCKETS_S
)
TRANSACTION_ERRORS = Counter("qenex_transaction_errors", "Rejected transactions by error code.", ["type", "code"])
TRANSACTION_AMOUNT = Gauge(
    "qenex_transaction_amount_sum",
    "Processed amount in integer minor units of the currency (monotonic).",
    ["currency"],
    multiprocess_mode="sum",
)
FRAUD_DETECTIONS = Counter("qenex_fraud_detections", "Transactions flagged by fraud detection.")
ACTIVE_CONNECTIONS = Gauge(
    "qenex_active_connections", "In-flight HTTP requests and open WebSockets.", multiprocess_mode="livesum"
)
HTTP_REQUESTS = Counter("qenex_http_requests", "HTTP requests served.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "qenex_http_request_duration_seconds", "HTTP request latency.", ["method", "route"], buckets=HTTP_BUCKETS_S
)


def _label(value: object) -> str:
    """A bounded, safe label value (labels from callers must never explode cardinality)."""
    text = _LABEL_RE.sub("_", str(value).lower())[:LABEL_CHARS_MAX]
    return text or "unknown"


def _currency(code: object) -> str:
    text = str(code).upper()
    return text if _CURRENCY_RE.match(text) else "other"


# -- helpers for the ledger / API ----------------------------------------------------------------


def observe_transaction(
    tx_type: str, currency: str, amount_minor: int, duration_s: float, status: str = "completed"
) -> None:
    """Count one processed transaction. ``amount_minor`` is an int in the currency's minor unit."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        raise TypeError("amount_minor must be a non-negative int (minor units), never a float")
    TRANSACTIONS.labels(_label(tx_type), _label(status)).inc()
    TRANSACTION_DURATION.labels(_label(tx_type)).observe(max(duration_s, 0.0))
    if amount_minor:
        TRANSACTION_AMOUNT.labels(_currency(currency)).inc(amount_minor)


def observe_many(histogram: Any, amount: float, count: int) -> None:
    """``count`` observations of the same ``amount`` at the cost of one: what ``observe`` does
    (sum, then the first bucket whose bound holds it), with ``count`` as the increment. A batch of
    8,000 transfers all took the batch's duration; 8,000 ``observe`` calls took a lock each.
    Falls back to the loop should prometheus_client's histogram internals ever change."""
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None:
        for _ in range(count):
            histogram.observe(amount)
        return
    total.inc(amount * count)
    for i, bound in enumerate(bounds):
        if amount <= bound:
            buckets[i].inc(count)
            return


def observe_transaction_error(tx_type: str, code: str) -> None:
    TRANSACTION_ERRORS.labels(_label(tx_type), _label(code)).inc()


def observe_fraud_detection(count: int = 1) -> None:
    FRAUD_DETECTIONS.inc(count)


@contextmanager
def track_transaction(tx_type: str, currency: str, amount_minor: int) -> Iterator[None]:
    """Time a transaction; count it on success, or count the error (by its ``code``) and re-raise."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        observe_transaction_error(tx_type, getattr(exc, "code", "internal_error"))
        raise
    observe_transaction(tx_type, currency, amount_minor, time.perf_counter() - start)


def observe_results(items: Sequence[Mapping[str, Any]], results: Sequence[Any], duration_s: float) -> None:
    """Record what ``FinancialKernel.process_transactions(items)`` returned (one result per item,
    with ``ok``, ``error`` and ``replayed``). Idempotent replays are not counted again; the
    duration is the wall time of the call that processed the items."""
    for item, result in zip(items, results, strict=True):
        if getattr(result, "replayed", False):
            continue
        tx_type = str(item.get("type", "unknown"))
        error = getattr(result, "error", None)
        if error is not None or not getattr(result, "ok", False):
            observe_transaction_error(tx_type, getattr(error, "code", "unknown"))
            continue
        currency = str(item.get("currency") or "")
        try:
            amount_minor = to_minor(item.get("amount"), currency, allow_zero=True)
        except LedgerError:
            amount_minor = 0  # accepted by the ledger in another form; count it without an amount
        observe_transaction(tx_type, currency, amount_minor, duration_s)


# -- process resources (collected on scrape) -----------------------------------------------------


class ProcessResourceCollector(Collector):
    """Memory and CPU of this process and its children, measured at scrape time."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()

    def _tree(self) -> list[psutil.Process]:
        me = psutil.Process()
        try:
            current = [me, *me.children(recursive=True)]
        except psutil.Error:
            current = [me]
        # Keep Process objects between scrapes: cpu_percent() measures since the previous call.
        self._procs = {p.pid: self._procs.get(p.pid, p) for p in current}
        return list(self._procs.values())

    def collect(self) -> Iterable[GaugeMetricFamily]:
        memory, cpu = 0, 0.0
        with self._lock:
            for proc in self._tree():
                try:
                    memory += proc.memory_info().rss
                    cpu += proc.cpu_percent(interval=None)
                except psutil.Error:
                    continue  # exited between listing and reading
        yield GaugeMetricFamily("qenex_memory_usage_bytes", "Resident memory of QENEX processes.", value=memory)
        yield GaugeMetricFamily("qenex_cpu_usage_percent", "CPU use of QENEX processes (100 = one core).", value=cpu)


_RESOURCES = ProcessResourceCollector()
REGISTRY.register(_RESOURCES)


def registry() -> CollectorRegistry:
    """The registry to expose: the process's own, or the multi-process aggregate."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        aggregate.register(_RESOURCES)
        return aggregate
    return REGISTRY


def mark_worker_dead() -> None:
    """In multi-process mode, drop this worker's live gauges (``qenex_active_connections``) from
    the aggregate when it exits; its counters and histograms stay counted. A no-op otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def render_metrics() -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text exposition."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def exported_metric_names() -> set[str]:
    """Every series name the exposition can contain (for dashboards and alert-rule checks)."""
    names: set[str] = set()
    for family in registry().collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name, *(family.name + suffix for suffix in ("_bucket", "_count", "_sum", "_created"))}
        else:
            names.add(family.name)
    return names


def start_metrics_server(settings: Settings) -> Any | None:
    """Serve /metrics on ``metrics.port`` in a background thread; None when no port is set."""
    if not settings.metrics.enabled or settings.metrics.port is None:
        return None
    server, _thread = start_http_server(settings.metrics.port, addr=settings.api.host, registry=registry())
    return server


# -- ASGI ----------------------------------------------------------------------------------------

async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A tiny ASGI app answering any GET with the exposition (mount it at /metrics)."""
    if scope["type"] != "http":
        return
    if scope.get("method") not in ("GET", "HEAD"):
        await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]})
        await send({"type": "http.response.body", "body": b""})
        return
    body, content_type = render_metrics()
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope.get("method") == "GET" else b""})


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path)[:200] if path else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts HTTP requests by method, route template and status; tracks active connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            ACTIVE_CONNECTIONS.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                ACTIVE_CONNECTIONS.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app dies before answering, that is what the client sees
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        ACTIVE_CONNECTIONS.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ACTIVE_CONNECTIONS.dec()
            method = _label(scope.get("method", "GET")).upper()
            route = _route_of(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - start)
