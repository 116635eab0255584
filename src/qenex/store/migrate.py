"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order, each once.

Applied versions are recorded in ``schema_migrations``. Every file runs in its own
transaction together with its bookkeeping row, so a failed migration leaves nothing behind.
Concurrent migrators (two processes starting at once) serialize on a session advisory lock;
the second one finds everything applied and does nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from qenex.errors import QenexError

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
# Advisory lock key of the migrator (any fixed 64-bit value unique to this purpose).
MIGRATION_LOCK_KEY: Final = 0x51454E4558_0001
MIGRATION_FILE_BYTES_MAX: Final = 1_000_000
_NAME_RE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(QenexError):
    code = "migration_failed"
    http_status = 500


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name


def available() -> list[Migration]:
    """Every migration file shipped with the package, in version order."""
    found: dict[int, Migration] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name {path.name!r} does not match NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migration files share version {version:04d}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection) -> set[int]:
    conn.execute(_BOOKKEEPING)
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def _apply_one(conn: psycopg.Connection, migration: Migration) -> None:
    if migration.path.stat().st_size > MIGRATION_FILE_BYTES_MAX:
        raise MigrationError(f"migration {migration.filename} is larger than {MIGRATION_FILE_BYTES_MAX} bytes")
    text = migration.path.read_text(encoding="utf-8")
    try:
        with conn.transaction():
            conn.execute(text.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())[:300]
        raise MigrationError(f"migration {migration.filename} failed: {detail}") from None


def migrate(conninfo: str, target: int | None = None) -> list[str]:
    """Apply every pending migration (up to ``target`` if given). Returns the applied file names."""
    done: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            applied = _applied(conn)
            for migration in available():
                if migration.version in applied or (target is not None and migration.version > target):
                    continue
                _apply_one(conn, migration)
                done.append(migration.filename)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return done


def current_version(conninfo: str) -> int:
    """The highest applied migration version, 0 for an empty database."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        applied = _applied(conn)
    return max(applied, default=0)


def pending(conninfo: str) -> list[str]:
    """File names of the migrations not yet applied, in order."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        applied = _applied(conn)
    return [m.filename for m in available() if m.version not in applied]
