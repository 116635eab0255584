import json

import pytest

from qenex.config import ConfigError, load_settings

SEED_CONFIG = {
    "database": {"host": "localhost", "port": 5432, "user": "qenex", "password": "your_secure_password",
                 "database": "qenex_financial", "pool_size": 20, "redis_host": "localhost", "redis_port": 6379},
    "api": {"host": "0.0.0.0", "port": 8080, "ssl_cert": "/path/to/cert.pem", "ssl_key": "/path/to/key.pem"},
    "metrics": {"port": 9090, "enabled": True},
    "workers": {"transaction_processors": 8, "payment_handlers": 4, "ai_workers": 2},
    "features": {"fraud_detection": True, "risk_assessment": True, "self_improvement": True,
                 "real_time_processing": True},
    "compliance": {"aml_threshold": 10000, "kyc_required": True, "transaction_monitoring": True,
                   "reporting_enabled": True},
    "security": {"encryption_algorithm": "AES-256-GCM", "key_rotation_days": 30, "session_timeout_minutes": 30,
                 "max_login_attempts": 3},
}


def test_seed_config_loads_and_builds_url():
    s = load_settings(SEED_CONFIG, environ={})
    assert s.database.external_url() == "postgresql://qenex:your_secure_password@localhost:5432/qenex_financial"
    assert s.database.redis() == "redis://localhost:6379/0"
    assert s.api.port == 8080 and s.metrics.port == 9090
    assert s.security.max_login_attempts == 3


def test_env_overrides_seed_names_and_generic_names():
    env = {"QENEX_DB_HOST": "db.internal", "QENEX_API_PORT": "9000", "QENEX_SECURITY_MAX_LOGIN_ATTEMPTS": "5",
           "QENEX_ENABLE_FRAUD_DETECTION": "false"}
    s = load_settings(SEED_CONFIG, environ=env)
    assert s.database.host == "db.internal"
    assert s.api.port == 9000
    assert s.security.max_login_attempts == 5
    assert s.features.fraud_detection is False


def test_database_url_wins_and_no_host_means_embedded():
    assert load_settings({}, environ={}).database.external_url() is None
    s = load_settings(SEED_CONFIG, environ={"QENEX_DATABASE_URL": "postgresql://x@h/db"})
    assert s.database.external_url() == "postgresql://x@h/db"


@pytest.mark.parametrize(
    ("tree", "key"),
    [
        ({"api": {"port": "eighty"}}, "api.port"),
        ({"api": {"port": 70000}}, "api.port"),
        ({"database": {"pool_size": 0}}, "database.pool_size"),
        ({"security": {"bogus": 1}}, "security.bogus"),
        ({"nonsense": {}}, "nonsense"),
    ],
)
def test_bad_settings_name_the_key(tree, key):
    with pytest.raises(ConfigError) as exc:
        load_settings(tree, environ={})
    assert f"'{key}'" in str(exc.value)


def test_config_file_errors_are_clear(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(str(p), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.json"), environ={})
    p.write_text(json.dumps(SEED_CONFIG))
    assert load_settings(str(p), environ={}).workers.payment_handlers == 4


def test_production_refuses_default_or_missing_secrets():
    s = load_settings({}, environ={"QENEX_ENV": "production", "QENEX_SECRET_KEY": "your-secret-key-here"})
    with pytest.raises(ConfigError) as exc:
        s.require_production_safe()
    assert "QENEX_SECRET_KEY" in str(exc.value) and "QENEX_JWT_SECRET" in str(exc.value)
    assert "your-secret-key-here" not in str(exc.value)
    ok = load_settings({}, environ={"QENEX_ENV": "production", "QENEX_SECRET_KEY": "a" * 40,
                                    "QENEX_JWT_SECRET": "b" * 40})
    ok.require_production_safe()
    load_settings({}, environ={}).require_production_safe()  # development: no requirement


def test_secrets_never_in_repr():
    s = load_settings(SEED_CONFIG, environ={"QENEX_JWT_SECRET": "super-secret-value-123"})
    assert "super-secret-value-123" not in repr(s)
    assert "your_secure_password" not in repr(s)


def test_development_secrets_are_generated_once_and_private(tmp_path):
    import os
    import stat

    from qenex.config import with_development_secrets

    s = load_settings({"data_dir": str(tmp_path)}, environ={})
    first = with_development_secrets(s)
    key = first.security.jwt_secret.get_secret_value()
    assert len(key) >= 32 and first.security.secret_key.get_secret_value() != key
    path = tmp_path / "dev-secrets.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = with_development_secrets(load_settings({"data_dir": str(tmp_path)}, environ={}))
    assert again.security.jwt_secret.get_secret_value() == key
    explicit = with_development_secrets(load_settings({"data_dir": str(tmp_path)},
                                                      environ={"QENEX_JWT_SECRET": "x" * 40}))
    assert explicit.security.jwt_secret.get_secret_value() == "x" * 40


def test_production_never_gets_generated_secrets(tmp_path):
    from qenex.config import with_development_secrets

    s = load_settings({"data_dir": str(tmp_path), "env": "production"}, environ={})
    assert with_development_secrets(s).security.jwt_secret is None
    assert not (tmp_path / "dev-secrets.json").exists()


# ---- every way of naming the database reaches a real server ------------------------------------

DB_ENV_PASSWORD = "pw with spaces:@/%"  # every character that needs escaping in a URL


@pytest.fixture()
def db_environ(monkeypatch):
    """No database setting inherited from the environment running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith("QENEX_DB_") or name in ("QENEX_DATABASE_URL", "QENEX_CONFIG", "QENEX_DATA_DIR"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="module")
def password_server():
    """A private PostgreSQL on 127.0.0.1 that checks passwords (scram-sha-256) over TCP."""
    from ledger_system.private_pg import PrivatePostgres

    with PrivatePostgres(DB_ENV_PASSWORD) as pg:
        yield pg


def test_db_env_vars_build_an_escaped_url():
    import psycopg

    env = {"QENEX_DB_HOST": "db.example", "QENEX_DB_PORT": "6543", "QENEX_DB_USER": "ledger user",
           "QENEX_DB_PASSWORD": DB_ENV_PASSWORD, "QENEX_DB_NAME": "books/eu"}
    url = load_settings(None, environ=env).database.external_url()
    assert url is not None and DB_ENV_PASSWORD not in url
    info = psycopg.conninfo.conninfo_to_dict(url)
    assert (info["host"], info["port"], info["user"], info["password"], info["dbname"]) == (
        "db.example", "6543", "ledger user", DB_ENV_PASSWORD, "books/eu")


def _open_account(config) -> tuple[str, int]:
    import asyncio

    from qenex import FinancialKernel

    async def main() -> tuple[str, int]:
        kernel = FinancialKernel(config)
        await kernel.initialize()
        try:
            acct = await kernel.create_account(owner_id="config-form", currency="USD", initial_balance="1.00")
            assert await kernel.get_account_balance(acct.id) == 1
            return kernel.conninfo, kernel._require_pool().max_size
        finally:
            await kernel.shutdown()

    return asyncio.run(main())


def test_kernel_from_db_env_vars_connects_with_the_password(db_environ, password_server):
    import psycopg

    for name, value in (("HOST", "127.0.0.1"), ("PORT", str(password_server.port)), ("USER", "postgres"),
                        ("PASSWORD", DB_ENV_PASSWORD), ("NAME", "postgres")):
        db_environ.setenv(f"QENEX_DB_{name}", value)
    url, _ = _open_account(None)
    assert f":{password_server.port}/postgres" in url
    db_environ.setenv("QENEX_DB_PASSWORD", "not the password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _open_account(None)


def test_kernel_from_a_config_file_path(db_environ, password_server, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SEED_CONFIG, "database": {
        **SEED_CONFIG["database"], "host": "127.0.0.1", "port": password_server.port, "user": "postgres",
        "password": DB_ENV_PASSWORD, "database": "postgres", "pool_size": 3}}))
    url, pool_size = _open_account(str(path))
    assert f"127.0.0.1:{password_server.port}" in url and pool_size == 3
    url, _ = _open_account(path)  # an os.PathLike works too
    assert str(password_server.port) in url


def test_kernel_from_none_starts_the_embedded_server_in_the_data_dir(db_environ):
    """FinancialKernel(None): pgserver's PostgreSQL in QENEX_DATA_DIR, created there on first use."""
    import os
    import shutil
    import signal
    import tempfile
    from pathlib import Path

    import psutil

    data_dir = Path(tempfile.mkdtemp(prefix="qenex-embedded-"))
    db_environ.setenv("QENEX_DATA_DIR", str(data_dir))
    try:
        url, _ = _open_account(None)
        assert f"host={data_dir.resolve() / 'pg'}" in url
        assert (data_dir / "pg" / "PG_VERSION").is_file()
        again, _ = _open_account(None)  # a second kernel attaches to the same server and database
        assert again == url
    finally:
        pid_file = data_dir / "pg" / "postmaster.pid"
        if pid_file.exists():  # the embedded server outlives its users by design: stop this one
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            psutil.wait_procs([psutil.Process(pid)], timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_socket_directory_and_ipv6_hosts_build_urls_libpq_reads():
    import psycopg

    from qenex.config import load_settings

    sock = load_settings({"database": {"host": "/var/run/postgresql", "port": 5433, "user": "app",
                                       "password": "p@ss/word", "database": "qenex db"}}).database.external_url()
    info = psycopg.conninfo.conninfo_to_dict(sock)
    assert info["host"] == "/var/run/postgresql" and info["port"] == "5433"
    assert info["dbname"] == "qenex db" and info["password"] == "p@ss/word" and info["user"] == "app"
    v6 = load_settings({"database": {"host": "::1", "user": "app", "database": "qenex"}}).database.external_url()
    assert psycopg.conninfo.conninfo_to_dict(v6)["host"] == "::1"
