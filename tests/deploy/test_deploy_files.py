"""Static checks of the deployment files (no container engine here): they parse, reference each
other consistently, carry no secrets, run as non-root, probe the right paths, and every PromQL
expression parses and uses only metrics that qenex.observability.metrics exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from qenex.observability.metrics import exported_metric_names

yaml = pytest.importorskip("yaml", reason="PyYAML (dev extra) is needed to read the deployment files")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET_NAMES = ("QENEX_SECRET_KEY", "QENEX_JWT_SECRET", "QENEX_MASTER_KEY", "QENEX_DB_PASSWORD")
PLACEHOLDERS = {"changeme", "", "admin", "false"}
_METRIC_RE = re.compile(r"\b(qenex_[a-z0-9_]+)")


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _promql_ok(expr: str) -> None:
    parser = pytest.importorskip("promql_parser", reason="promql-parser (dev extra) validates PromQL")
    parser.parse(expr)  # raises ValueError on a syntax error


def _metrics_in(expr: str) -> set[str]:
    return set(_METRIC_RE.findall(expr))


# -- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def test_dockerfile_base_user_lock_and_command() -> None:
    instructions = _dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_user = max(i for i, (op, _) in enumerate(instructions) if op == "USER")
    assert all(op != "RUN" for op, _ in instructions[last_user:]), "nothing runs as root after USER"
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip install -r requirements.lock" in runs
    assert any(op == "COPY" and "requirements.lock" in arg for op, arg in instructions)
    cmd = json.loads(next(arg for op, arg in instructions if op == "CMD"))
    assert cmd[:2] == ["qenex", "serve"]
    health = next(arg for op, arg in instructions if op == "HEALTHCHECK")
    assert "/health" in health


DEV_ONLY_PACKAGES = ("pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "schemathesis", "atheris",
                     "promql-parser", "iniconfig", "pluggy")
_PIN_RE = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for m in _PIN_RE.finditer((ROOT / name).read_text())}


def test_image_installs_runtime_dependencies_only() -> None:
    """The image installs requirements.lock only; that lock holds no test or lint tool, and the
    dev lock pins every shared package at the same version (so tests run what production runs)."""
    instructions = _dockerfile()
    installs = [arg for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert installs and not any("requirements-dev.lock" in arg or ".[dev]" in arg for arg in installs)
    assert not any(op == "COPY" and "requirements-dev.lock" in arg for op, arg in instructions)
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert {"fastapi", "uvicorn", "psycopg", "cryptography", "opentelemetry-exporter-otlp-proto-http"} <= set(runtime)
    assert not set(DEV_ONLY_PACKAGES) & set(runtime), set(DEV_ONLY_PACKAGES) & set(runtime)
    assert {"pytest", "hypothesis", "ruff", "mypy", "schemathesis"} <= set(dev)
    assert {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version} == {}
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements.lock -r requirements-dev.lock" in makefile  # development installs both
    assert "-o requirements.lock" in makefile and "-o requirements-dev.lock" in makefile  # `make lock` writes both


def test_dockerfile_bakes_in_no_secret() -> None:
    for op, arg in _dockerfile():
        if op in ("ENV", "ARG"):
            for name in SECRET_NAMES + ("PASSWORD", "SECRET", "TOKEN"):
                assert name not in arg.upper(), f"{op} {arg}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "deploy/env/*.env" in ignored and ".git" in ignored


# -- docker compose ------------------------------------------------------------------------------


def test_compose_services_and_wiring() -> None:
    compose = _yaml_docs(ROOT / "docker-compose.yml")[0]
    services = compose["services"]
    assert {"qenex", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    qenex = services["qenex"]
    assert qenex["build"] == "." and "8080:8080" in qenex["ports"]
    deps = qenex["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy" and deps["redis"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["qenex", "db", "migrate"]
    env = qenex["environment"]
    assert env["QENEX_DB_HOST"] == "postgres" and env["QENEX_REDIS_HOST"] == "redis"
    assert env["QENEX_ENV"] == "production"
    for name in ("postgres", "redis", "qenex"):
        assert "healthcheck" in services[name], name
    # Every bind-mounted file exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_compose_commits_no_secret() -> None:
    compose = _yaml_docs(ROOT / "docker-compose.yml")[0]
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "MASTER_KEY", "TOKEN")):
                pytest.fail(f"{name}: {key} is set inline ({value!r}); secrets belong in the env file")
        env_file = service.get("env_file")
        if env_file:
            example = ROOT / (env_file + ".example")
            assert example.is_file(), f"{name}: {env_file} has no committed example"
            assert not (ROOT / env_file).exists() or "deploy/env/" in env_file
    for example in (DEPLOY / "env").glob("*.example"):
        for line in example.read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                assert value in PLACEHOLDERS, f"{example.name}: {key} holds a non-placeholder value"
    qenex_keys = {ln.split("=")[0] for ln in (DEPLOY / "env" / "qenex.env.example").read_text().splitlines()}
    assert set(SECRET_NAMES) <= qenex_keys


# -- Kubernetes ----------------------------------------------------------------------------------


def _k8s() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _yaml_docs(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            out[doc["kind"]] = doc
    return out


def test_k8s_deployment_probes_and_security() -> None:
    objects = _k8s()
    assert {"Deployment", "Service", "Secret", "ConfigMap"} <= set(objects)
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    container = next(c for c in spec["containers"] if c["name"] == "qenex")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["memory"]
    assert [c["command"] for c in spec["initContainers"]] == [["qenex", "db", "migrate"]]


def test_k8s_secrets_are_references() -> None:
    objects = _k8s()
    secret = objects["Secret"]
    container = next(c for c in objects["Deployment"]["spec"]["template"]["spec"]["containers"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(SECRET_NAMES) <= set(refs)
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert all("value" not in e for e in container["env"]), "no inline env values next to secrets"
    assert set(secret["stringData"].values()) <= PLACEHOLDERS
    config = objects["ConfigMap"]["data"]
    assert not any(word in key for key in config for word in ("PASSWORD", "SECRET", "MASTER_KEY"))
    assert {r["configMapRef"]["name"] for r in container["envFrom"]} == {objects["ConfigMap"]["metadata"]["name"]}


def test_k8s_service_targets_the_pods() -> None:
    objects = _k8s()
    service, pod = objects["Service"], objects["Deployment"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


# -- Prometheus and Grafana ----------------------------------------------------------------------

SEED_ALERTS = {
    "HighTransactionErrorRate": ("rate(qenex_transaction_errors_total[5m]) > 0.01", "5m"),
    "FraudDetectionSpike": ("rate(qenex_fraud_detections_total[1h]) > 10", "10m"),
    "HighMemoryUsage": ("qenex_memory_usage_bytes / 1024 / 1024 / 1024 > 14", "5m"),
}


def test_prometheus_config() -> None:
    config = _yaml_docs(DEPLOY / "prometheus" / "prometheus.yml")[0]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "qenex")
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["qenex:8080"]


def test_seed_alert_rules_use_exported_metrics() -> None:
    groups = _yaml_docs(DEPLOY / "prometheus" / "alerts.yml")[0]["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(SEED_ALERTS)
    exported = exported_metric_names()
    for name, (expr, duration) in SEED_ALERTS.items():
        assert (rules[name]["expr"], rules[name]["for"]) == (expr, duration)
        assert rules[name]["labels"]["severity"] and rules[name]["annotations"]["summary"]
        assert _metrics_in(expr) <= exported, name
        _promql_ok(expr)


def test_grafana_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "qenex-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    exported = exported_metric_names()
    used: set[str] = set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "prometheus"
            _promql_ok(target["expr"])
            used |= _metrics_in(target["expr"])
    assert used <= exported, used - exported
    for family in ("qenex_transactions_total", "qenex_transaction_errors_total", "qenex_memory_usage_bytes",
                   "qenex_cpu_usage_percent", "qenex_active_connections", "qenex_transaction_amount_sum"):
        assert family in used
    datasource = _yaml_docs(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[0]
    assert datasource["datasources"][0]["uid"] == "prometheus"
    provider = _yaml_docs(DEPLOY / "grafana" / "provisioning" / "dashboards" / "qenex.yml")[0]
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
