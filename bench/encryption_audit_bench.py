"""Encryption at rest, the audit trail and ML-KEM: operations/s and p50/p99 latency.

Runs on a fresh database of the embedded PostgreSQL (or of ``--admin-url``), dropped at the end.
Each scenario runs single-threaded for ``--seconds``. Audit appends commit one transaction per
event (durable: PostgreSQL's default fsync / synchronous_commit), so they measure what a request
pays for its audit record.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from dataclasses import asdict
from typing import Any

import psycopg

from bench._common import Result, measure, scratch_database

SECONDS_DEFAULT = 1.5
PAYLOAD_BYTES = 256


def scenarios(url: str, seconds: float) -> tuple[list[Result], dict[str, Any]]:
    from qenex.security import audit, kem
    from qenex.security.envelope import Envelope, aad_for, open_metadata, seal_metadata
    from qenex.security.keyproviders import EnvKeyProvider

    provider = EnvKeyProvider(base64.b64encode(secrets.token_bytes(32)).decode())
    audit.configure_signing(provider)
    env = Envelope(url, provider)
    payload = secrets.token_bytes(PAYLOAD_BYTES)
    aad = aad_for("customers", "national_id", "c-1")
    blob = env.encrypt(payload, aad)
    meta = {"email": "a@example.com", "phone": "+44 20 7946 0000", "note": "x", "tax_id": "123-45-6789"}
    sealed = seal_metadata(env, meta, table="accounts", row_id="a-1")
    pair = kem.generate_keypair()
    secret_msg = kem.seal_for_peer(pair.public_bytes, b"s" * 64, b"bench")
    results = [
        measure(f"envelope encrypt {PAYLOAD_BYTES} B", lambda: env.encrypt(payload, aad), seconds),
        measure(f"envelope decrypt {PAYLOAD_BYTES} B", lambda: env.decrypt(blob, aad), seconds),
        measure("seal metadata (3 sensitive fields)", lambda: seal_metadata(env, meta, table="a", row_id=1), seconds),
        measure("open metadata (3 sensitive fields)", lambda: open_metadata(env, sealed, table="accounts",
                                                                           row_id="a-1"), seconds),
        measure("ML-KEM-768 seal for peer", lambda: kem.seal_for_peer(pair.public_bytes, b"s" * 64, b"bench"),
                seconds),
        measure("ML-KEM-768 open from peer", lambda: kem.open_from_peer(pair, secret_msg, b"bench"), seconds),
    ]
    with psycopg.connect(url) as conn:
        event = audit.AuditEvent(actor="api_key:bench", action="transaction.created", resource="tx:1",
                                 source_ip="203.0.113.9", details={"amount": "10.00", "currency": "EUR"})

        def append() -> None:
            audit.record_event_sync(conn, event)
            conn.commit()

        results.append(measure("audit append + commit", append, seconds))
        pending = [0]

        def append_in_transaction() -> None:
            # What a request pays inside its own transaction (its commit is paid anyway).
            audit.record_event_sync(conn, event)
            pending[0] += 1
            if pending[0] % 100 == 0:
                conn.commit()

        results.append(measure("audit append in caller's transaction", append_in_transaction, seconds))
        conn.commit()

        def sign() -> None:
            audit.record_event_sync(conn, event)
            audit.checkpoint(conn)
            conn.commit()

        results.append(measure("audit append + ML-DSA checkpoint + commit", sign, seconds))
    t0 = time.perf_counter()
    report = audit.verify_audit_log(url, provider=provider)
    verify_s = time.perf_counter() - t0
    extra = {
        "verify_records": report.records,
        "verify_checkpoints": report.checkpoints,
        "verify_ok": report.ok,
        "verify_seconds": round(verify_s, 3),
        "verify_records_per_s": round(report.records / verify_s) if verify_s else None,
    }
    audit.configure_signing(None)
    return results, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT)
    parser.add_argument("--admin-url", default=os.environ.get("QENEX_BENCH_ADMIN_URL"))
    parser.add_argument("--json", action="store_true")
    args, _unknown = parser.parse_known_args(argv)
    if args.admin_url:
        admin = args.admin_url
    else:
        from qenex.config import load_settings
        from qenex.store.connection import database_url

        admin = database_url(load_settings())
    with scratch_database(admin, f"qenex_bench_s2_{os.getpid()}") as url:
        from qenex.store.migrate import migrate

        migrate(url)
        results, extra = scenarios(url, args.seconds)
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], **extra}, indent=2))
    else:
        for r in results:
            print(f"{r.scenario:45s} {r.ops_per_s:12,.0f} ops/s   p50 {r.p50_us:9.1f} us   p99 {r.p99_us:9.1f} us")
        print(f"verify_audit_log: {extra['verify_records']} records, {extra['verify_checkpoints']} checkpoints "
              f"in {extra['verify_seconds']} s ({extra['verify_records_per_s']} records/s), ok={extra['verify_ok']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
