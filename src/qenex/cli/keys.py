"""`qenex keys`: API keys, OAuth2 clients, token signing keys, operators, and master-key rotation.

Every command reads settings (``--config`` or ``QENEX_CONFIG`` plus ``QENEX_*``), applies
pending migrations, and records what it did in the audit trail as ``cli:<os user>``.
Secrets (a new key, a client secret, a TOTP enrolment URI) are printed once and never again.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from qenex.config import Settings, load_settings, with_development_secrets

T = TypeVar("T")

OPERATOR_PASSWORD_ENV = "QENEX_OPERATOR_PASSWORD"  # noqa: S105 - the variable's name, not a value
DB_ERROR_TEXT_CHARS_MAX = 200

keys_app = typer.Typer(help="API keys, OAuth2 clients, signing keys, operators and the master key.",
                       no_args_is_help=True)

ConfigOption = Annotated[
    str | None, typer.Option("--config", "-c", help="Path to a config.json (default: QENEX_CONFIG, then environment).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ScopesOption = Annotated[
    list[str] | None,
    typer.Option("--scopes", "--scope", help="Scopes (repeat, or comma-separated); default: all of the role's."),
]
OwnerOption = Annotated[str | None, typer.Option("--owner-id", help="The owner a customer credential acts for.")]


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _scopes(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.replace(" ", ",").split(",") if part.strip()]


def _with_db(config: str | None, body: Callable[[Any, Settings], T]) -> T:
    """Migrate, then run ``body(conn, settings)`` on an autocommit connection; driver errors become one line."""
    import psycopg

    from qenex.errors import QenexError
    from qenex.store.connection import database_url
    from qenex.store.migrate import migrate

    settings = with_development_secrets(load_settings(config))
    url = database_url(settings)
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            return body(conn, settings)
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())[:DB_ERROR_TEXT_CHARS_MAX] or exc.__class__.__name__
        raise QenexError(f"PostgreSQL error: {text}", code="database_unavailable") from None


def _print_json(data: Any, *, keep_order: bool = False) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=not keep_order, default=str))


def _key_json(created: Any) -> dict[str, Any]:
    """A new key as the README documents it: ``id`` and ``key`` first, then name, role, scopes,
    owner_id and expires_at."""
    data: dict[str, Any] = created.to_dict()
    return {"id": data.pop("id"), "key": data.pop("key")} | data


def _print_secret_notice(label: str, value: str) -> None:
    typer.echo(f"{label}: {value}")
    typer.echo("Store it now: it is shown only once and cannot be recovered.", err=True)


@keys_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Option("--name", help="A label for the key.")],
    role: Annotated[str, typer.Option("--role", help="admin, operator, teller, auditor or customer.")],
    scopes: ScopesOption = None,
    owner_id: OwnerOption = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Lifetime, e.g. 30d, 12h, 2w.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; prints it once (with --json: {"id": ..., "key": ..., "name", "role", "scopes",
    "owner_id", "expires_at"}, in that order)."""
    from qenex.security import apikeys
    from qenex.security._common import parse_duration

    lifetime = parse_duration(expires_in) if expires_in else None
    created = _with_db(config, lambda conn, _s: apikeys.create_key(
        conn, name=name, role=role, scopes=_scopes(scopes), owner_id=owner_id, expires_in=lifetime,
        created_by=_actor()))
    if as_json:
        _print_json(_key_json(created), keep_order=True)
        return
    typer.echo(f"API key {created.id} ({created.role}; scopes: {' '.join(created.scopes)})")
    _print_secret_notice("key", created.key)


@keys_app.command("list")
def list_cmd(
    active: Annotated[bool, typer.Option("--active", help="Only keys that are not revoked.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List API keys (never their secrets)."""
    from qenex.security import apikeys

    infos = _with_db(config, lambda conn, _s: apikeys.list_keys(conn, include_revoked=not active))
    rows = [info.to_dict() for info in infos]
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "role", "scopes", "owner", "status", "expires", "last used")
    for row in rows:
        table.add_row(row["id"], row["name"], row["role"], " ".join(row["scopes"]), row["owner_id"] or "",
                      row["status"], row["expires_at"] or "never", row["last_used_at"] or "")
    Console(file=sys.stdout, width=200).print(table)


@keys_app.command("revoke")
def revoke_cmd(key_id: Annotated[str, typer.Argument(help="The key's id.")], config: ConfigOption = None,
               as_json: JsonOption = False) -> None:
    """Revoke an API key at once."""
    from qenex.security import apikeys

    info = _with_db(config, lambda conn, _s: apikeys.revoke_key(conn, key_id, actor=_actor()))
    if as_json:
        _print_json(info.to_dict())
    else:
        typer.echo(f"API key {info.id} revoked at {info.revoked_at.isoformat() if info.revoked_at else ''}")


@keys_app.command("rotate")
def rotate_cmd(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    grace: Annotated[str | None, typer.Option("--grace", help="Keep the old key working this long, e.g. 1h.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace an API key with a new one (same name, role, scopes); prints the new key once."""
    from datetime import timedelta

    from qenex.security import apikeys
    from qenex.security._common import parse_duration

    overlap = parse_duration(grace) if grace else timedelta(0)
    created = _with_db(config, lambda conn, _s: apikeys.rotate_key(conn, key_id, grace=overlap, actor=_actor()))
    if as_json:
        _print_json(_key_json(created) | {"rotated_from": key_id}, keep_order=True)
        return
    typer.echo(f"API key {key_id} replaced by {created.id}")
    _print_secret_notice("key", created.key)


@keys_app.command("rotate-master")
def rotate_master_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Rotate the master key and re-wrap every data key under it (old data stays readable)."""
    from qenex.security.envelope import rotate_master

    result = _with_db(config, lambda _conn, settings: rotate_master(settings))
    if as_json:
        _print_json(result)
    else:
        for field, value in sorted(result.items()):
            typer.echo(f"{field}: {value}")


@keys_app.command("rotate-signing")
def rotate_signing_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Make a new key sign access tokens; the old one verifies until its tokens expire."""
    from qenex.security import tokens

    kid = _with_db(config, lambda conn, settings: tokens.rotate_signing_key(conn, settings, actor=_actor()))
    if as_json:
        _print_json({"kid": kid})
    else:
        typer.echo(f"signing key {kid} is now active")


@keys_app.command("client-create")
def client_create_cmd(
    name: Annotated[str, typer.Option("--name", help="A label for the client.")],
    role: Annotated[str, typer.Option("--role", help="admin, operator, teller, auditor or customer.")],
    scopes: ScopesOption = None,
    owner_id: OwnerOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an OAuth2 client (client-credentials grant); prints its secret once."""
    from qenex.security import tokens

    created = _with_db(config, lambda conn, _s: tokens.create_client(
        conn, name=name, role=role, scopes=_scopes(scopes), owner_id=owner_id, created_by=_actor()))
    if as_json:
        _print_json(created.to_dict())
        return
    typer.echo(f"OAuth2 client {created.client_id} ({created.role}; scopes: {' '.join(created.scopes)})")
    _print_secret_notice("client_secret", created.client_secret)


@keys_app.command("client-revoke")
def client_revoke_cmd(client_id: Annotated[str, typer.Argument(help="The client id (qnc_...).")],
                      config: ConfigOption = None) -> None:
    """Refuse new tokens to an OAuth2 client at once."""
    from qenex.security import tokens

    _with_db(config, lambda conn, _s: tokens.revoke_client(conn, client_id, actor=_actor()))
    typer.echo(f"OAuth2 client {client_id} revoked")


def _print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*[" ".join(v) if isinstance(v, list) else "" if v is None else str(v)
                        for v in (row[c] for c in columns)])
    Console(file=sys.stdout, width=200).print(table)


@keys_app.command("client-list")
def client_list_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List OAuth2 clients (never their secrets)."""
    from qenex.security import tokens

    rows = _with_db(config, lambda conn, _s: tokens.list_clients(conn))
    _print_rows(rows, ("client_id", "name", "role", "scopes", "owner_id", "created_at", "revoked_at"), as_json)


@keys_app.command("operator-list")
def operator_list_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List dashboard operators and whether they are active, locked or disabled."""
    from qenex.security import operators

    rows = _with_db(config, lambda conn, _s: operators.list_operators(conn))
    _print_rows(rows, ("id", "username", "role", "status", "failed_attempts", "created_at"), as_json)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if os.environ.get(OPERATOR_PASSWORD_ENV):
        return os.environ[OPERATOR_PASSWORD_ENV]
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@keys_app.command("operator-create")
def operator_create_cmd(
    username: Annotated[str, typer.Option("--username", help="Login name (lower-case).")],
    role: Annotated[str, typer.Option("--role", help="admin, operator, teller or auditor.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a dashboard operator (password + TOTP); prints the TOTP enrolment URI once.

    The password is read from stdin (--password-stdin), QENEX_OPERATOR_PASSWORD, or a prompt.
    """
    from qenex.security import operators

    password = _read_password(password_stdin)
    created = _with_db(config, lambda conn, settings: operators.create_operator(
        conn, settings, username=username, password=password, role=role, created_by=_actor()))
    if as_json:
        _print_json({"id": created.id, "username": created.username, "role": created.role,
                     "totp_secret": created.totp_secret, "provisioning_uri": created.provisioning_uri})
        return
    typer.echo(f"operator {created.username} ({created.role}) created")
    _print_secret_notice("TOTP enrolment URI (scan in an authenticator app)", created.provisioning_uri)


@keys_app.command("operator-unlock")
def operator_unlock_cmd(username: Annotated[str, typer.Argument(help="The operator's login name.")],
                        config: ConfigOption = None) -> None:
    """Unlock an operator locked out after too many failed logins."""
    from qenex.security import operators

    _with_db(config, lambda conn, _s: operators.unlock_operator(conn, username, actor=_actor()))
    typer.echo(f"operator {username} unlocked")
