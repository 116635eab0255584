"""`qenex serve` (the API server, uvicorn) and `qenex stop` (stops a `--daemon` server).

Settings come from ``--config`` / ``QENEX_CONFIG`` and ``QENEX_*``; the server refuses to start
in production with missing or default secrets. With ``api.ssl_cert`` and ``api.ssl_key`` it serves
HTTPS only, TLS 1.2 at least (1.3 is negotiated whenever the client has it). ``--daemon``
detaches, writes ``<data_dir>/qenex.pid`` and logs to ``<data_dir>/qenex.log``.

Behind a reverse proxy, ``api.forwarded_allow_ips`` (``QENEX_API_FORWARDED_ALLOW_IPS``) names the
proxies whose ``X-Forwarded-For`` is believed, so rate limits and the audit trail see the real
client; unset (the default), the headers are ignored. With ``api.workers`` > 1, Prometheus
metrics run in multi-process mode over a fresh private directory (see
`qenex.observability.metrics`), removed when the server stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from qenex.cli._ledger_common import CliError, ConfigOption
from qenex.config import Settings, load_settings

PID_FILENAME: Final = "qenex.pid"
LOG_FILENAME: Final = "qenex.log"
DAEMON_START_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 30.0
POLL_INTERVAL_S: Final = 0.2
APP_FACTORY: Final = "qenex.api.app:app_factory"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_PREFIX: Final = "qenex-metrics-"
# Forward secrecy and AEAD only for TLS 1.2 (TLS 1.3 suites are fixed and all strong).
TLS_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("stop")(stop_cmd)


def pid_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / PID_FILENAME


def _running_pid(path: Path) -> int | None:
    """The pid recorded in ``path`` if that process is alive, else None (a stale file is removed)."""
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    return pid


def _uvicorn_config(settings: Settings, host: str, port: int) -> Any:
    import uvicorn

    from qenex.observability.logging import uvicorn_log_config

    tls = bool(settings.api.ssl_cert and settings.api.ssl_key)
    if bool(settings.api.ssl_cert) != bool(settings.api.ssl_key):
        raise CliError("api.ssl_cert and api.ssl_key must be set together")
    proxies = settings.api.forwarded_allow_ips
    return uvicorn.Config(
        APP_FACTORY, factory=True, host=host, port=port, workers=settings.api.workers,
        log_config=uvicorn_log_config(settings), proxy_headers=proxies is not None,
        forwarded_allow_ips=proxies or "",  # "": trust no proxy (uvicorn's own default trusts 127.0.0.1)
        server_header=False,
        ssl_certfile=settings.api.ssl_cert if tls else None, ssl_keyfile=settings.api.ssl_key if tls else None,
        ssl_ciphers=TLS_CIPHERS, timeout_graceful_shutdown=10,
    )


@contextmanager
def _multiprocess_metrics(workers: int) -> Iterator[None]:
    """With several workers: a fresh private PROMETHEUS_MULTIPROC_DIR for this server (inherited
    by the workers, which start after this), removed at exit."""
    if workers <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)  # mode 0700
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous


def serve_cmd(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default: api.host, 0.0.0.0).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port (default: api.port).")] = None,
    config: ConfigOption = None,
    daemon: Annotated[bool, typer.Option("--daemon", help="Detach; pid file and log file in the data dir.")] = False,
) -> None:
    """Start the REST API and WebSocket stream."""
    if config:
        os.environ["QENEX_CONFIG"] = str(Path(config).resolve())  # the app factory (and workers) read it
    settings = load_settings(config)
    settings.require_production_safe()
    host = host or settings.api.host
    port = port or settings.api.port
    if daemon:
        _start_daemon(settings, host, port, config)
        return
    import uvicorn

    os.environ["QENEX_API_HOST"], os.environ["QENEX_API_PORT"] = host, str(port)
    server_config = _uvicorn_config(settings, host, port)
    with _multiprocess_metrics(settings.api.workers):
        if settings.api.workers > 1:
            from uvicorn.supervisors import Multiprocess

            # Each worker loads the config itself; Python's server contexts refuse TLS < 1.2 by
            # default (the single-process path below also sets it explicitly).
            sock = server_config.bind_socket()
            Multiprocess(server_config, sockets=[sock]).run()
            return
        server_config.load()
        if server_config.ssl is not None:  # TLS 1.2 at least; 1.3 whenever the client has it
            server_config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        uvicorn.Server(server_config).run()


def _start_daemon(settings: Settings, host: str, port: int, config: str | None) -> None:
    pid_path = pid_file(settings)
    running = _running_pid(pid_path)
    if running is not None:
        raise CliError(f"a server is already running (pid {running}, {pid_path}); run `qenex stop` first")
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(settings.data_dir) / LOG_FILENAME
    args = [sys.executable, "-m", "qenex", "serve", "--host", host, "--port", str(port)]
    if config:
        args += ["--config", str(Path(config).resolve())]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(args, stdin=devnull, stdout=log, stderr=log, start_new_session=True,  # noqa: S603
                                 close_fds=True)
    pid_path.write_text(f"{child.pid}\n", encoding="ascii")
    deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pid_path.unlink(missing_ok=True)
            raise CliError(f"the server exited at start (code {child.returncode}); see {log_path}")
        if _answers(host, port, tls=bool(settings.api.ssl_cert)):
            typer.echo(f"QENEX API running (pid {child.pid}) on {host}:{port}; log {log_path}; stop with `qenex stop`")
            return
        time.sleep(POLL_INTERVAL_S)
    typer.echo(f"QENEX API started (pid {child.pid}) but not answering yet; see {log_path}", err=True)


def _answers(host: str, port: int, *, tls: bool) -> bool:
    import httpx

    target = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping a wildcard to loopback
    scheme = "https" if tls else "http"
    try:
        return httpx.get(f"{scheme}://{target}:{port}/health", timeout=1.0, verify=False).status_code == 200  # noqa: S501 - liveness probe of our own server
    except httpx.HTTPError:
        return False


def stop_cmd(config: ConfigOption = None) -> None:
    """Stop the server started with `qenex serve --daemon` (SIGTERM, then wait)."""
    settings = load_settings(config)
    pid_path = pid_file(settings)
    pid = _running_pid(pid_path)
    if pid is None:
        raise CliError(f"no running server recorded in {pid_path}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_path.unlink(missing_ok=True)
            typer.echo(f"stopped (pid {pid})")
            return
        time.sleep(POLL_INTERVAL_S)
    raise CliError(f"the server (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s")


DEMO_KEY_LIFETIME_DAYS: Final = 30


def demo_curl_hint(config: str | None, accounts: dict[str, str]) -> str:
    """A fresh demo admin key (expires in DEMO_KEY_LIFETIME_DAYS) and ready-to-paste curl commands."""
    from datetime import timedelta

    import psycopg

    from qenex.security import apikeys
    from qenex.store.connection import database_url

    settings = load_settings(config)
    with psycopg.connect(database_url(settings), autocommit=True) as conn:
        key = apikeys.create_key(conn, name="demo-admin", role="admin", created_by="cli:demo",
                                 expires_in=timedelta(days=DEMO_KEY_LIFETIME_DAYS)).key
    scheme = "https" if settings.api.ssl_cert else "http"
    host = "localhost" if settings.api.host in ("0.0.0.0", "::") else settings.api.host  # noqa: S104
    base = f"{scheme}://{host}:{settings.api.port}"
    alice, bob = accounts.get("alice_usd", "1"), accounts.get("bob_usd", "2")
    transfer = (f'{{"type": "TRANSFER", "from_account": {alice}, "to_account": {bob}, "amount": "10.00",'
                f' "currency": "USD"}}')
    return "\n".join([
        f"API: {base}   (OpenAPI: {base}/openapi.json, docs: {base}/docs)",
        f"Demo admin key (shown once; expires in {DEMO_KEY_LIFETIME_DAYS} days): {key}",
        "Try:",
        f'  curl -s -H "Authorization: Bearer {key}" {base}/api/v1/accounts/{alice}/balance',
        f'  curl -s -X POST -H "Authorization: Bearer {key}" -H "Content-Type: application/json"'
        f" -H \"Idempotency-Key: try-1\" -d '{transfer}' {base}/api/v1/transactions",
    ])
