"""Resolve which PostgreSQL QENEX talks to: an external server, or the embedded one."""

from __future__ import annotations

from qenex.config import Settings
from qenex.store.embedded import embedded_url


def database_url(settings: Settings) -> str:
    """External URL when configured (QENEX_DATABASE_URL, config `database`), else the embedded server."""
    url = settings.database.external_url()
    if url is not None:
        return url
    return embedded_url(settings.data_dir)
