"""The embedded PostgreSQL server, started from the `pgserver` package.

`pgserver` ships real PostgreSQL binaries in its wheel, so nothing has to be installed by hand.
The server lives in ``<data_dir>/pg`` and is shared by every QENEX process that points at the
same data directory (pgserver reference-counts its users); it keeps running between processes.
fsync and synchronous_commit stay at PostgreSQL's durable defaults.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

EMBEDDED_SUBDIR = "pg"


def embedded_url(data_dir: str | os.PathLike[str], database: str = "postgres") -> str:
    """Start (or attach to) the embedded server under ``data_dir`` and return a libpq URL."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - pgserver's platformdirs warns without it
    pgdata = Path(data_dir).resolve() / EMBEDDED_SUBDIR
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: external-server deployments never need it

        get_server = pgserver.get_server  # type: ignore[attr-defined]
        get_server(pgdata, cleanup_mode=None)
    return f"postgresql://postgres:@/{database}?host={pgdata}"
