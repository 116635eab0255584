"""`qenex serve` / `qenex stop`: daemon mode with pid and log files, production refusal of default
secrets, HTTPS only with TLS >= 1.2 when a certificate is configured, and the demo's curl hint."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest

from .conftest import drop_database, free_port, new_database, server_env


def qenex(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qenex", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def own_db(pg_admin_url: str):  # type: ignore[no-untyped-def]
    name, url = new_database(pg_admin_url)
    yield url
    drop_database(pg_admin_url, name)


def test_daemon_writes_pid_and_log_and_stop_stops_it(own_db: str, tmp_path: Path) -> None:
    env = server_env(own_db, tmp_path, QENEX_LOG_LEVEL="INFO")
    port = free_port()
    started = qenex(["serve", "--daemon", "--host", "127.0.0.1", "--port", str(port)], env)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "qenex.pid").read_text())
    assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    twice = qenex(["serve", "--daemon", "--host", "127.0.0.1", "--port", str(port)], env)
    assert twice.returncode == 1 and "already running" in twice.stderr
    stopped = qenex(["stop"], env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}" in stopped.stdout and not (tmp_path / "qenex.pid").exists()
    assert (tmp_path / "qenex.log").stat().st_size > 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    again = qenex(["stop"], env)
    assert again.returncode == 1 and "no running server" in again.stderr


def test_production_refuses_default_secrets(own_db: str, tmp_path: Path) -> None:
    env = server_env(own_db, tmp_path, QENEX_ENV="production", QENEX_SECRET_KEY="your-secret-key-here")
    result = qenex(["serve", "--port", str(free_port())], env, timeout=60)
    assert result.returncode == 2
    assert "QENEX_SECRET_KEY" in result.stderr and "your-secret-key-here" not in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_errors_name_the_key(own_db: str, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api": {"port": "not-a-port"}}))
    result = qenex(["serve", "--config", str(config)], server_env(own_db, tmp_path), timeout=60)
    assert result.returncode == 2 and "api.port" in result.stderr


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_serves_https_only_with_tls12_minimum(own_db: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api": {"host": "127.0.0.1", "port": port, "ssl_cert": str(cert),
                                          "ssl_key": str(key)}}))
    env = server_env(own_db, tmp_path)
    log = open(tmp_path / "tls.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "qenex", "serve", "--config", str(config)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                trust = ssl.create_default_context(cafile=str(cert))
                response = httpx.get(f"https://127.0.0.1:{port}/health", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "tls.log").read_text()
                time.sleep(0.2)
        assert response.json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # plain HTTP is not served
        assert _negotiated(port, cert, None) == "TLSv1.3"  # preferred whenever the client has it
        assert _negotiated(port, cert, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # 1.2 is still served
        # TLS 1.1 is refused by the server: a client that demonstrably speaks TLS 1.1 (it completes
        # a handshake with a permissive local server, the same certificate) cannot handshake here.
        if not _client_speaks_tls11(cert, key):
            pytest.skip("this OpenSSL cannot negotiate TLS 1.1 even at security level 0; minimum not probed")
        with pytest.raises((ssl.SSLError, ConnectionError)), socket.create_connection(("127.0.0.1", port)) as raw:
            _tls11_client().wrap_socket(raw, server_hostname="localhost")
    finally:
        proc.terminate()
        proc.wait(20)


def _negotiated(port: int, cert: Path, maximum: ssl.TLSVersion | None) -> str | None:
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        context.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.version()


def _tls11_client() -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 above level 0
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _client_speaks_tls11(cert: Path, key: Path) -> bool:
    """Control: the TLS 1.1 client against a local server that allows TLS 1.0 and up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(str(cert), str(key))
        server_context.set_ciphers("DEFAULT:@SECLEVEL=0")
        server_context.minimum_version = ssl.TLSVersion.TLSv1
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            peer, _ = listener.accept()
            with contextlib.suppress(OSError), server_context.wrap_socket(peer, server_side=True):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()) as raw, \
                    _tls11_client().wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version() == "TLSv1.1"
        except (ssl.SSLError, OSError):
            return False
        finally:
            thread.join(10)


def test_demo_curl_hint_gives_a_working_admin_key(server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from qenex.cli.serve import demo_curl_hint

    monkeypatch.setenv("QENEX_DATABASE_URL", server.db_url)
    monkeypatch.setenv("QENEX_API_PORT", str(server.port))
    hint = demo_curl_hint(None, {"alice_usd": "1", "bob_usd": "2"})
    key = re.search(r"qnx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", hint)
    assert key is not None and f":{server.port}/api/v1/transactions" in hint
    response = httpx.get(server.url + "/api/v1/accounts", headers={"Authorization": f"Bearer {key.group(0)}"})
    assert response.status_code == 200


def test_metrics_on_their_own_port(own_db: str, tmp_path: Path) -> None:
    from .conftest import start_server

    metrics_port = free_port()
    srv = start_server(own_db, tmp_path, QENEX_METRICS_PORT=str(metrics_port))
    try:
        body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "qenex_active_connections" in body and "qenex_memory_usage_bytes" in body
    finally:
        srv.stop()


def test_database_outage_gives_503_then_recovers(own_db: str, pg_admin_url: str, tmp_path: Path) -> None:
    import psycopg

    from .conftest import make_key, start_server

    srv = start_server(own_db, tmp_path)
    key = make_key(own_db, "admin")
    name = psycopg.conninfo.conninfo_to_dict(own_db)["dbname"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"owner_id": "outage", "initial_balance": "1.00"}
    try:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        ready = httpx.get(srv.url + "/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["database"] is False
        down = httpx.post(srv.url + "/api/v1/accounts", json=body, headers=headers, timeout=30)
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "database_unavailable" and down.headers["retry-after"] == "1"
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 20
        while True:
            up = httpx.post(srv.url + "/api/v1/accounts", json=body, headers=headers, timeout=30)
            if up.status_code == 201:
                break
            assert up.status_code == 503 and time.monotonic() < deadline, up.text
            time.sleep(0.5)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        srv.stop()


def test_server_rotates_keys_that_are_due_at_start(own_db: str, tmp_path: Path) -> None:
    """security.key_rotation_days is acted on, not only flagged: a master version and a data-key
    generation older than the period are rotated when the server starts; old data stays readable."""
    import psycopg

    from qenex.security.envelope import Envelope
    from qenex.security.keyproviders import EnvKeyProvider
    from qenex.store.migrate import migrate

    from .conftest import TEST_MASTER_KEY, start_server

    migrate(own_db)
    sealed = Envelope(own_db, EnvKeyProvider(TEST_MASTER_KEY)).encrypt(b"kept across rotations", b"aad")
    with psycopg.connect(own_db, autocommit=True) as conn:
        conn.execute("UPDATE security_master_keys SET created_at = now() - interval '31 days'")
        conn.execute("UPDATE security_data_keys SET created_at = now() - interval '31 days'")

    def keyring() -> tuple[int, int, int]:
        with psycopg.connect(own_db) as conn:
            row = conn.execute(
                "SELECT (SELECT max(version) FROM security_master_keys),"
                " (SELECT count(*) FROM security_master_keys WHERE retired_at IS NULL),"
                " (SELECT max(generation) FROM security_data_keys WHERE purpose = 'default')").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    assert keyring() == (1, 1, 1)
    for expected in ((2, 1, 2), (2, 1, 2)):  # rotated at the first start; nothing due at the second
        srv = start_server(own_db, tmp_path)
        srv.stop()
        assert keyring() == expected, srv.log()
    fresh = Envelope(own_db, EnvKeyProvider(TEST_MASTER_KEY))
    assert fresh.decrypt(sealed, b"aad") == b"kept across rotations"
    with psycopg.connect(own_db) as conn:  # every data key is wrapped by the new master version
        assert {r[0] for r in conn.execute("SELECT master_version FROM security_data_keys")} == {2}
