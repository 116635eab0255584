"""Typed settings for every QENEX process.

Sources, lowest precedence first:
1. defaults below;
2. a config dict or config.json file, in the seed's shape
   (``database, api, metrics, workers, features, compliance, security``);
3. ``QENEX_*`` environment variables.

Every setting has a generic variable ``QENEX_<SECTION>_<KEY>`` (e.g. ``QENEX_API_PORT``,
``QENEX_SECURITY_MAX_LOGIN_ATTEMPTS``); the seed's names are honoured as aliases
(``QENEX_DB_HOST``, ``QENEX_REDIS_HOST``, ``QENEX_ENABLE_FRAUD_DETECTION`` ...).

Settings fail closed: an unknown key, a wrong type or an out-of-range value raises
``ConfigError`` naming the key; production mode refuses default or missing secrets.

Which sections are used: ``database``, ``api``, ``metrics``, ``security`` and ``observability``
drive the server today. ``workers``, ``features`` and ``compliance`` are **reserved**: they are
accepted and validated (the seed's config.json carries them) so a config file written for the
coming payment, fraud and compliance workers loads unchanged, but nothing reads them yet and
changing them has no effect. (``api.workers`` is the number of API processes; the reserved
``workers`` section is about background workers.)

This module sits below every layer (it imports nothing from qenex) so that the store,
the API and the CLI read one definition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

POOL_SIZE_MAX = 200
CONFIG_FILE_BYTES_MAX = 1_000_000

# Values that appear in the seed's README or in our own examples: never acceptable in production.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "",
        "your-secret-key-here",
        "your-jwt-secret-here",
        "secure_password",
        "your_secure_password",
        "changeme",
        "secret",
        "dev-secret-key",
        "dev-jwt-secret",
    }
)
SECRET_MIN_LENGTH_CHARS = 32


class ConfigError(Exception):
    """A setting is missing, malformed or unsafe. The message names the key, never its value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    host: str | None = None
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = "qenex"
    password: SecretStr | None = None
    database: str = "qenex_financial"
    pool_size: int = Field(default=20, ge=1, le=POOL_SIZE_MAX)
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_url: SecretStr | None = None

    def external_url(self) -> str | None:
        """The URL of an external server, or None when the embedded server should be used."""
        if self.url is not None:
            return self.url.get_secret_value()
        if self.host is None:
            return None
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password.get_secret_value(), safe="")
        dbname = quote(self.database, safe="")
        if self.host.startswith("/"):  # a Unix-socket directory goes in the query string (libpq URI rules)
            return f"postgresql://{auth}@/{dbname}?host={quote(self.host, safe='')}&port={self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal needs brackets
        return f"postgresql://{auth}@{host}:{self.port}/{dbname}"

    def redis(self) -> str | None:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.redis_host is None:
            return None
        return f"redis://{self.redis_host}:{self.redis_port}/0"


class ApiSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a server listens on all interfaces by default, as the seed says
    port: int = Field(default=8080, ge=1, le=65535)
    ssl_cert: str | None = None
    ssl_key: str | None = None
    max_body_bytes: int = Field(default=4_000_000, ge=1024, le=64_000_000)
    workers: int = Field(default=1, ge=1, le=64)
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's
    # forwarded_allow_ips: comma-separated IPs or networks, or "*"). None: the headers are ignored
    # and the peer address is the client (for rate limits and the audit trail's source IP).
    forwarded_allow_ips: str | None = Field(default=None, min_length=1, max_length=1000)


class MetricsSettings(_Section):
    port: int | None = Field(default=None, ge=1, le=65535)
    enabled: bool = True


class WorkersSettings(_Section):
    """Reserved (see the module docstring): validated, not read yet."""

    transaction_processors: int = Field(default=8, ge=1, le=256)
    payment_handlers: int = Field(default=4, ge=1, le=256)
    ai_workers: int = Field(default=2, ge=0, le=256)


class FeaturesSettings(_Section):
    """Reserved (see the module docstring): validated, not read yet."""

    fraud_detection: bool = True
    risk_assessment: bool = True
    self_improvement: bool = True
    real_time_processing: bool = True


class ComplianceSettings(_Section):
    """Reserved (see the module docstring): validated, not read yet."""

    aml_threshold: Decimal = Field(default=Decimal("10000"), ge=0)
    kyc_required: bool = True
    transaction_monitoring: bool = True
    reporting_enabled: bool = True


class SecuritySettings(_Section):
    encryption_algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_rotation_days: int = Field(default=30, ge=1, le=3650)
    session_timeout_minutes: int = Field(default=30, ge=1, le=1440)
    max_login_attempts: int = Field(default=3, ge=1, le=100)
    secret_key: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    master_key: SecretStr | None = None
    master_key_file: str | None = None
    token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    # The API server signs an audit checkpoint this often when new records exist.
    audit_checkpoint_seconds: int = Field(default=60, ge=1, le=3600)


class ObservabilitySettings(_Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    tracing_enabled: bool = False
    otlp_endpoint: str | None = None


class Settings(_Section):
    env: Literal["development", "test", "production"] = "development"
    data_dir: str = ".qenex"
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()
    workers: WorkersSettings = WorkersSettings()
    features: FeaturesSettings = FeaturesSettings()
    compliance: ComplianceSettings = ComplianceSettings()
    security: SecuritySettings = SecuritySettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def production_problems(self) -> list[str]:
        """Names of the secrets that are missing or default. Empty when safe to start in production."""
        problems = []
        for name, value in (
            ("QENEX_SECRET_KEY", self.security.secret_key),
            ("QENEX_JWT_SECRET", self.security.jwt_secret),
        ):
            raw = value.get_secret_value() if value is not None else ""
            if raw in KNOWN_DEFAULT_SECRETS or len(raw) < SECRET_MIN_LENGTH_CHARS:
                problems.append(f"{name} is missing, a known default, or shorter than {SECRET_MIN_LENGTH_CHARS}")
        return problems

    def require_production_safe(self) -> None:
        if self.is_production:
            problems = self.production_problems()
            if problems:
                raise ConfigError("refusing to start in production: " + "; ".join(problems))


# The seed's environment names, mapped to (section, key).
_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "QENEX_ENV": ("env",),
    "QENEX_DATA_DIR": ("data_dir",),
    "QENEX_DATABASE_URL": ("database", "url"),
    "QENEX_DB_HOST": ("database", "host"),
    "QENEX_DB_PORT": ("database", "port"),
    "QENEX_DB_USER": ("database", "user"),
    "QENEX_DB_PASSWORD": ("database", "password"),
    "QENEX_DB_NAME": ("database", "database"),
    "QENEX_DB_POOL_SIZE": ("database", "pool_size"),
    "QENEX_REDIS_HOST": ("database", "redis_host"),
    "QENEX_REDIS_PORT": ("database", "redis_port"),
    "QENEX_REDIS_URL": ("database", "redis_url"),
    "QENEX_SECRET_KEY": ("security", "secret_key"),
    "QENEX_JWT_SECRET": ("security", "jwt_secret"),
    "QENEX_MASTER_KEY": ("security", "master_key"),
    "QENEX_MASTER_KEY_FILE": ("security", "master_key_file"),
    "QENEX_ENABLE_FRAUD_DETECTION": ("features", "fraud_detection"),
    "QENEX_ENABLE_RISK_ASSESSMENT": ("features", "risk_assessment"),
    "QENEX_LOG_LEVEL": ("observability", "log_level"),
    "QENEX_TRACING_ENABLED": ("observability", "tracing_enabled"),
    "QENEX_OTLP_ENDPOINT": ("observability", "otlp_endpoint"),
}


def _generic_env_paths() -> dict[str, tuple[str, ...]]:
    """QENEX_<SECTION>_<KEY> for every field of every section."""
    paths: dict[str, tuple[str, ...]] = {}
    for section_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Section):
            for key in annotation.model_fields:
                paths[f"QENEX_{section_name}_{key}".upper()] = (section_name, key)
    return paths


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > CONFIG_FILE_BYTES_MAX:
            raise ConfigError(f"config file {path} is larger than {CONFIG_FILE_BYTES_MAX} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.__class__.__name__}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def _deep_copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def load_settings(
    config: Mapping[str, Any] | str | os.PathLike[str] | Settings | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build validated settings from a dict, a config.json path, or nothing, plus the environment."""
    if isinstance(config, Settings):
        return config
    env = os.environ if environ is None else environ
    if config is None and env.get("QENEX_CONFIG"):
        config = env["QENEX_CONFIG"]
    if config is None:
        tree: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        tree = _deep_copy(config)
    else:
        tree = _read_config_file(Path(config))
    tree.pop("$schema", None)
    paths = _generic_env_paths()
    paths.update(_ENV_ALIASES)
    for name, path in paths.items():
        if name in env:
            _set_path(tree, path, env[name])
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(f"config key '{key}': {first['msg']}") from None


DEV_SECRETS_FILE = "dev-secrets.json"


def _secret_text(value: SecretStr | None) -> str:
    """An unset and an empty secret (``QENEX_JWT_SECRET=``) are the same: missing."""
    return value.get_secret_value() if value is not None else ""
DEV_SECRET_BYTES = 48


def with_development_secrets(settings: Settings) -> Settings:
    """Outside production, fill missing QENEX_SECRET_KEY / QENEX_JWT_SECRET with random per-install values.

    They are generated once into ``<data_dir>/dev-secrets.json`` (mode 0600) so that tokens, operator
    TOTP seeds and sessions survive restarts of a development server. Production never takes this
    path: there `require_production_safe` refuses missing or default secrets instead.
    """
    sec = settings.security
    names = ("secret_key", "jwt_secret")
    missing = [n for n in names if not _secret_text(getattr(sec, n))]
    if settings.is_production or not missing:
        return settings
    import secrets as _secrets

    path = Path(settings.data_dir) / DEV_SECRETS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        stored = _read_config_file(path)
    changed = False
    for name in names:
        if not isinstance(stored.get(name), str) or len(stored[name]) < SECRET_MIN_LENGTH_CHARS:
            stored[name] = _secrets.token_urlsafe(DEV_SECRET_BYTES)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(stored, fh)
    update = {name: SecretStr(stored[name]) for name in missing}
    return settings.model_copy(update={"security": sec.model_copy(update=update)})
