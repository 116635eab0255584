"""Token buckets: in-process, shared through a real Redis by two limiter instances, and Redis outage."""

from __future__ import annotations

import secrets
import socket
import time

import pytest

from qenex.config import load_settings
from qenex.security.errors import SecurityError
from qenex.security.ratelimit import ApiRateLimits, RateLimiter, _retry_after_s, allow_all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_bucket_allows_burst_then_refuses_with_retry_after() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=3)
    assert [limiter.allow("p:1")[0] for _ in range(3)] == [True, True, True]
    ok, retry_after = limiter.allow("p:1")
    assert ok is False
    assert retry_after == 1
    # Other keys have their own bucket.
    assert limiter.allow("p:2") == (True, 0)


def test_local_bucket_refills_over_time() -> None:
    limiter = RateLimiter(rate_per_s=50, burst=1)
    assert limiter.allow("k")[0]
    assert not limiter.allow("k")[0]
    time.sleep(0.05)  # 50 tokens/s: one token back after 20 ms
    assert limiter.allow("k")[0]


def test_check_raises_429_with_retry_after_header() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1)
    limiter.check("ip:10.0.0.1")
    with pytest.raises(SecurityError) as info:
        limiter.check("ip:10.0.0.1")
    assert info.value.http_status == 429
    assert info.value.code == "rate_limited"
    assert info.value.headers["Retry-After"] == "1"


def test_bad_limits_and_costs_are_rejected() -> None:
    with pytest.raises(SecurityError):
        RateLimiter(rate_per_s=0, burst=1)
    limiter = RateLimiter(rate_per_s=1, burst=2)
    with pytest.raises(SecurityError):
        limiter.allow("k", cost=3)
    assert limiter.allow("x" * 10_000)[0]  # long keys are hashed, not stored verbatim


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert _retry_after_s(1) == 1
    assert _retry_after_s(1000) == 1
    assert _retry_after_s(1001) == 2


def test_redis_bucket_is_shared_by_two_limiters(redis_url: str) -> None:
    namespace = "test-" + secrets.token_hex(4)
    first = RateLimiter(rate_per_s=1, burst=4, redis_url=redis_url, namespace=namespace)
    second = RateLimiter(rate_per_s=1, burst=4, redis_url=redis_url, namespace=namespace)
    assert first.shared and second.shared
    results = [limiter.allow("principal:a")[0] for limiter in (first, second, first, second)]
    assert results == [True, True, True, True]
    ok, retry_after = second.allow("principal:a")
    assert (ok, retry_after) == (False, 1)
    assert first.allow("principal:a")[0] is False
    assert first.allow("principal:b")[0] is True  # separate bucket
    first.close()
    second.close()


def test_redis_limits_come_from_settings(redis_url: str) -> None:
    limits = ApiRateLimits.from_settings(load_settings({"database": {"redis_url": redis_url}}, environ={}),
                                         login=(1, 2))
    assert limits.login.shared
    key = "user:" + secrets.token_hex(4)
    assert [limits.login.allow(key)[0] for _ in range(3)] == [True, True, False]
    limits.close()


def test_unreachable_redis_degrades_to_local_limiting() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=2, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert [limiter.allow("k")[0] for _ in range(3)] == [True, True, False]
    limiter.close()


def test_redis_checks_several_buckets_in_one_atomic_step(redis_url: str) -> None:
    namespace = "test-" + secrets.token_hex(4)
    ip = RateLimiter(rate_per_s=1, burst=5, redis_url=redis_url, namespace=namespace + "-ip")
    principal = RateLimiter(rate_per_s=1, burst=2, redis_url=redis_url, namespace=namespace + "-p")
    assert allow_all([(ip, "ip:1"), (principal, "p:1")]) == (True, 0)
    assert allow_all([(ip, "ip:1"), (principal, "p:1")]) == (True, 0)
    assert allow_all([(ip, "ip:1"), (principal, "p:1")]) == (False, 1)
    # The refused call took nothing from the IP bucket: 3 of its 5 tokens are left.
    assert [ip.allow("ip:1")[0] for _ in range(4)] == [True, True, True, False]
    ip.close()
    principal.close()


def test_api_limits_screen_locally_and_admit_through_redis(redis_url: str) -> None:
    settings = load_settings({"database": {"redis_url": redis_url}}, environ={})
    first = ApiRateLimits.from_settings(settings, principal=(1, 2), ip=(1, 100))
    second = ApiRateLimits.from_settings(settings, principal=(1, 2), ip=(1, 100))
    actor = "key:" + secrets.token_hex(4)
    first.screen("ip:a")
    first.admit("ip:a", actor)
    second.screen("ip:b")
    second.admit("ip:b", actor)  # the principal's bucket is shared by both processes
    with pytest.raises(SecurityError) as info:
        first.admit("ip:a", actor)
    assert info.value.http_status == 429
    first.close()
    second.close()


def test_local_api_limits_screen_the_ip_bucket() -> None:
    limits = ApiRateLimits.from_settings(load_settings({}, environ={}), principal=(1, 100), ip=(1, 2))
    limits.screen("ip:x")
    limits.screen("ip:x")
    with pytest.raises(SecurityError):
        limits.screen("ip:x")
    limits.admit("ip:x", "key:1")
