"""The API's group-committed audit writer extends the same hash chain `qenex audit verify` checks,
signs checkpoints when a batch crosses the interval, and isolates a malformed event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from qenex.api.auditing import AuditWriter, mutation_event
from qenex.security import audit
from qenex.security.keyproviders import FileKeyProvider, create_key_file

from .conftest import drop_database, new_database


@pytest.fixture()
def audit_db_url(pg_admin_url: str) -> Iterator[str]:
    from qenex.store.migrate import migrate

    name, url = new_database(pg_admin_url)  # its own database: checkpoints signed with this test's key only
    migrate(url)
    yield url
    drop_database(pg_admin_url, name)


def test_group_commit_keeps_the_chain_verifiable(audit_db_url: str, tmp_path: Path) -> None:
    api_db_url = audit_db_url
    key_file = tmp_path / "master.key"
    create_key_file(key_file)
    provider = FileKeyProvider(key_file)
    audit.configure_signing(provider)
    with psycopg.connect(api_db_url, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]

    async def main() -> None:
        writer = AuditWriter(api_db_url)
        writer.start()
        events = [mutation_event(f"key:{i % 7}", "transaction.create", f"account:{i}", "success", "127.0.0.1",
                                 {"n": i}) for i in range(audit.CHECKPOINT_INTERVAL_RECORDS + 50)]
        await asyncio.gather(*(writer.record(e) for e in events))
        with pytest.raises(audit.AuditError):
            await writer.record(mutation_event("key:x", "bad action!", "r", "success", None))
        await writer.record(mutation_event("key:x", "transaction.create", "after-bad", "success", None))
        await writer.stop()

    try:
        asyncio.run(main())
        with psycopg.connect(api_db_url, autocommit=True) as conn:
            after = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
            checkpoints = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
        assert after - before == audit.CHECKPOINT_INTERVAL_RECORDS + 51
        assert checkpoints >= 1
        report = audit.verify_audit_log(api_db_url, provider=provider)
        assert report.ok, report.problems
    finally:
        audit.configure_signing(None)
