"""Shared plumbing of the ledger CLI groups: settings, the kernel's lifetime, output.

Every command takes ``--config PATH`` (or ``QENEX_CONFIG``); the database comes from settings
(``QENEX_DATABASE_URL``, the config's ``database`` section, else the embedded server in
``QENEX_DATA_DIR``). Output is a Rich table for people or one JSON document with ``--json``.
Every failure a user can cause surfaces as a QenexError or ConfigError, which `qenex.cli.main`
turns into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer

from qenex.config import Settings, load_settings
from qenex.errors import QenexError

T = TypeVar("T")

DATABASE_UNAVAILABLE = "database_unavailable"
# Longest database error text we repeat to the user (one line, no secrets: libpq never echoes passwords).
DB_ERROR_TEXT_CHARS_MAX = 200

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Path to a config.json (default: QENEX_CONFIG, then the environment)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


class CliError(QenexError):
    """A CLI-level rejection (bad option value, unreachable database)."""

    code = "invalid_request"


def settings_for(config: str | None) -> Settings:
    return load_settings(config)


def database_url_for(config: str | None) -> str:
    from qenex.store.connection import database_url

    return database_url(settings_for(config))


def store_module(name: str) -> Any:
    """A `qenex.store` module, imported only by the command that needs it (keeps `--help` fast)."""
    return importlib.import_module(f"qenex.store.{name}")


def _db_error(exc: Exception) -> CliError:
    text = " ".join(str(exc).split())[:DB_ERROR_TEXT_CHARS_MAX] or exc.__class__.__name__
    return CliError(f"PostgreSQL error: {text}", code=DATABASE_UNAVAILABLE)


def run_db(fn: Callable[[], T]) -> T:
    """Run a synchronous database call, turning driver failures into one-line errors."""
    import psycopg

    try:
        return fn()
    except psycopg.Error as exc:
        raise _db_error(exc) from None


def cli_note(action: str, resource: str, details: Mapping[str, Any] | None = None) -> Any:
    """The audit note of a ledger mutation made from the command line (actor ``cli:<os user>``):
    the kernel writes it to its outbox in the mutation's transaction; ``run_kernel`` relays it."""
    import getpass

    from qenex.sdk.kernel import AuditNote
    from qenex.security.outbox import note_record

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container)
        user = str(os.getuid())
    return AuditNote(note_record(f"cli:{user}"[:200], action, resource, None, details))


def _relay_outbox(conninfo: str) -> None:
    """Move the notes this command left into the audit trail now. Best effort: what fails stays
    in the outbox for the next relay (an API server relays continuously)."""
    import psycopg

    from qenex.security import outbox

    try:
        outbox.drain_sync(conninfo)
    except (psycopg.Error, QenexError) as exc:
        typer.echo(f"qenex: note: audit records wait in the outbox ({getattr(exc, 'code', exc.__class__.__name__)})",
                   err=True)


def run_kernel(config: str | None, body: Callable[[Any], Awaitable[T]]) -> T:
    """Start a FinancialKernel from the settings, run ``body(kernel)``, always shut it down,
    then relay the audit notes the command's mutations left in the ledger outbox."""
    settings_for(config)  # fail fast on a bad config before touching the database
    conninfo: list[str] = []

    async def _main() -> T:
        from qenex.sdk.kernel import FinancialKernel

        kernel = FinancialKernel(config)
        await kernel.initialize()
        conninfo.append(kernel.conninfo)
        try:
            return await body(kernel)
        finally:
            await kernel.shutdown()

    import psycopg

    try:
        return asyncio.run(_main())
    except psycopg.Error as exc:
        raise _db_error(exc) from None
    finally:
        if conninfo:
            _relay_outbox(conninfo[0])


def plain(value: Any) -> Any:
    """A JSON-ready copy: Decimal and dates as strings, enums as values, dataclasses as dicts."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), sort_keys=False) + "\n")


def print_table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(plain(v)) for v in row))
    Console().print(table)


def print_fields(title: str, fields: Mapping[str, Any]) -> None:
    print_table(title, ("field", "value"), ((k, v) for k, v in fields.items()))


def parse_json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise CliError(f"{option} must be a JSON object") from None
    if not isinstance(value, dict):
        raise CliError(f"{option} must be a JSON object")
    return value
