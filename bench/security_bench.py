"""Security hot paths: per-request authentication and rate limiting, JWT verification, token issue.

Runs on a fresh database of the embedded PostgreSQL (or of ``--admin-url``), dropped at the end.
Each scenario runs single-threaded for ``--seconds`` and reports operations/s and p50/p99 latency.
Redis scenarios run when Redis answers at ``--redis-url`` (default 127.0.0.1:6379).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
from dataclasses import asdict
from typing import Any

from bench._common import Result, measure, scratch_database

SECONDS_DEFAULT = 2.0


def _reachable(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=0.5):
            return True
    except OSError:
        return False


def scenarios(url: str, redis_url: str | None, seconds: float) -> list[Result]:
    from psycopg_pool import ConnectionPool

    from qenex.config import load_settings
    from qenex.security import apikeys, tokens
    from qenex.security.passwords import hash_secret, verify_secret
    from qenex.security.ratelimit import ApiRateLimits, RateLimiter
    from qenex.security.service import SecurityService
    from qenex.store.migrate import migrate

    migrate(url)
    settings = load_settings({"env": "test", "database": {"url": url}, "security": {
        "secret_key": secrets.token_urlsafe(32), "jwt_secret": secrets.token_urlsafe(32)}}, environ={})
    big = (1_000_000, 10_000_000)
    results: list[Result] = []
    with ConnectionPool(url, min_size=1, max_size=4) as pool, pool.connection() as conn:
        key = apikeys.create_key(conn, name="bench", role="teller")
        client = tokens.create_client(conn, name="bench", role="teller")
        conn.commit()
        access = tokens.issue_token(conn, settings, client.client_id, client.client_secret).access_token
        conn.commit()
        local = SecurityService(settings, pool.connection, limits=ApiRateLimits(
            principal=RateLimiter(*big), ip=RateLimiter(*big), login=RateLimiter(*big)))
        header = f"Bearer {key.key}"
        results.append(measure("authenticate API key (cached) + 2 local buckets",
                               lambda: local.authenticate(header, source_ip="10.0.0.1"), seconds))
        jwt_header = f"Bearer {access}"
        results.append(measure("authenticate JWT (verified-token cache) + 2 local buckets",
                               lambda: local.authenticate(jwt_header, source_ip="10.0.0.1"), seconds))
        verifier = tokens.TokenVerifier(pool.connection)

        def verify_uncached() -> None:
            verifier._verified.clear()  # measure the signature check itself, not the cache
            verifier.verify(access)

        results.append(measure("verify JWT, uncached (Ed25519 signature + claims)", verify_uncached, seconds))
        local.close()
        bucket = RateLimiter(*big)
        results.append(measure("token bucket, in-process", lambda: bucket.allow("k"), seconds))
        if redis_url:
            shared = RateLimiter(*big, redis_url=redis_url, namespace="bench-" + secrets.token_hex(3))
            results.append(measure("token bucket, Redis Lua script", lambda: shared.allow("k"), seconds))
            shared.close()
            with_redis = load_settings({"database": {"redis_url": redis_url}}, environ={})
            remote = SecurityService(settings, pool.connection,
                                     limits=ApiRateLimits.from_settings(with_redis, principal=big, ip=big))
            results.append(measure("authenticate API key (cached) + 2 Redis buckets",
                                   lambda: remote.authenticate(header, source_ip="10.0.0.1"), seconds))
            remote.close()

        def issue() -> None:
            with pool.connection() as c:
                tokens.issue_token(c, settings, client.client_id, client.client_secret)

        results.append(measure("issue token (argon2id client secret + EdDSA sign + audit)", issue, seconds))
        stored = hash_secret("bench password 123")
        results.append(measure("argon2id verify (t=3, 64 MiB, p=4)",
                               lambda: verify_secret(stored, "bench password 123"), seconds))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="security_bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT, help="time per scenario")
    parser.add_argument("--admin-url", default=os.environ.get("QENEX_BENCH_ADMIN_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("QENEX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args, _unknown = parser.parse_known_args(argv)  # run_all passes every benchmark the same flags

    if args.admin_url:
        admin = args.admin_url
    else:
        from qenex.config import load_settings
        from qenex.store.connection import database_url

        admin = database_url(load_settings())
    with scratch_database(admin, f"qenex_bench_sec_{os.getpid()}_{secrets.token_hex(3)}") as url:
        results = scenarios(url, args.redis_url if _reachable(args.redis_url) else None, args.seconds)
    if not args.json:
        for r in results:
            print(f"{r.scenario:<62} {r.ops_per_s:>12,.0f} ops/s   p50 {r.p50_us:>9.1f} us   p99 {r.p99_us:>9.1f} us")
    line: dict[str, Any] = {"benchmark": "security", "cores": os.cpu_count(),
                            "results": [asdict(r) for r in results]}
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
