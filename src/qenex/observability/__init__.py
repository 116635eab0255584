"""Observability: Prometheus metrics (`metrics`), structured JSON logs with request ids and
redaction (`logging`, `redaction`), and optional OpenTelemetry tracing (`tracing`).

Submodules are imported explicitly so that, e.g., the audit log's use of `redaction` does not
pull in prometheus_client.
"""
