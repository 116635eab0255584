"""Token-bucket rate limiting, per principal and per client IP.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` tokens a second; each
request takes one. Arithmetic is in integer milli-tokens and milliseconds (a rate of R
tokens/s is exactly R milli-tokens/ms), so the in-process and Redis paths agree exactly.

With Redis configured (``QENEX_REDIS_URL`` or ``database.redis_host``), every server process
shares the buckets: one atomic Lua script reads, refills, takes and writes a bucket, using
Redis's own clock so processes on different hosts agree. Without Redis, buckets live in the
process. If Redis becomes unreachable, the limiter keeps limiting with in-process buckets
(logged once) rather than failing every request or letting everything through.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from qenex.config import Settings
from qenex.security.errors import RATE_LIMITED, SecurityError, bad_request

log = logging.getLogger(__name__)

MILLI = 1000
LOCAL_BUCKETS_MAX = 100_000
BUCKET_KEY_CHARS_MAX = 200
REDIS_TIMEOUT_MS = 250
RATE_PER_S_MAX = 1_000_000
BURST_MAX = 10_000_000
# Defaults for the API (requests): generous enough for batch clients, tight enough to stop floods.
PRINCIPAL_RATE_PER_S_DEFAULT = 1000
PRINCIPAL_BURST_DEFAULT = 2000
IP_RATE_PER_S_DEFAULT = 2000
IP_BURST_DEFAULT = 4000
# Token endpoint and operator login: each attempt costs an argon2 verification.
LOGIN_RATE_PER_S_DEFAULT = 5
LOGIN_BURST_DEFAULT = 20
# Refused credentials per client IP: each one is written to the audit trail, so a flood of bad
# credentials is turned into 429s instead of into audit-log write pressure.
AUTH_FAILURE_RATE_PER_S_DEFAULT = 5
AUTH_FAILURE_BURST_DEFAULT = 20

# Several buckets in one atomic step (one round trip per request): KEYS[i] with ARGV
# (rate milli-tokens/ms, capacity milli-tokens, cost milli-tokens) at 3i-2 .. 3i. Tokens are
# taken only when every bucket has enough; otherwise the reply is the longest wait.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = {}
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i - 2])
  local cap = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local v = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk = tonumber(v[1])
  local ts = tonumber(v[2])
  if tk == nil or ts == nil then
    tk = cap
    ts = now
  end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tk = math.min(cap, tk + elapsed * rate)
  if tk < cost then
    local w = math.ceil((cost - tk) / rate)
    if w > wait then wait = w end
  end
  tokens[i] = tk
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i - 2])
  local cap = tonumber(ARGV[3 * i - 1])
  local tk = tokens[i]
  if wait == 0 then tk = tk - tonumber(ARGV[3 * i]) end
  redis.call('HSET', KEYS[i], 'tk', tk, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
end
if wait == 0 then return {1, 0} end
return {0, wait}
"""


@dataclass(frozen=True, slots=True)
class _Bucket:
    tokens_milli: int
    at_ms: int


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _retry_after_s(wait_ms: int) -> int:
    """Retry-After is whole seconds (RFC 9110 10.2.3); round up so a client never retries too soon."""
    return max(1, -(-wait_ms // 1000))


class RateLimiter:
    """``allow(key) -> (ok, retry_after_s)``: one token bucket per key, shared through Redis when given."""

    def __init__(
        self,
        rate_per_s: int,
        burst: int,
        *,
        redis_url: str | None = None,
        namespace: str = "default",
    ) -> None:
        if not 1 <= rate_per_s <= RATE_PER_S_MAX or not 1 <= burst <= BURST_MAX:
            raise bad_request(f"a rate limit needs 1..{RATE_PER_S_MAX} tokens/s and a burst of 1..{BURST_MAX}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._capacity_milli = burst * MILLI
        self._prefix = f"qenex:ratelimit:{namespace}:"
        self._local: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._redis: Any = None
        self._script: Any = None
        self._redis_url = redis_url
        self._redis_warned = False
        if redis_url:
            import redis  # imported lazily: single-process deployments need no Redis client

            timeout_s = REDIS_TIMEOUT_MS / 1000
            self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            self._script = self._redis.register_script(_LUA)

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def allow(self, key: str, cost: int = 1) -> tuple[bool, int]:
        """Take ``cost`` tokens from ``key``'s bucket. Returns (True, 0), or (False, seconds to wait)."""
        return allow_all([(self, key)], cost)

    def _args(self, key: str, cost: int) -> tuple[str, list[int]]:
        if cost < 1 or cost > self.burst:
            raise bad_request(f"a request may cost 1..{self.burst} tokens")
        return self._prefix + _bounded(key), [self.rate_per_s, self._capacity_milli, cost * MILLI]

    def _redis_failed(self, exc: Exception) -> None:
        if not self._redis_warned:
            log.warning("rate limiter: Redis unavailable (%s); limiting in-process", exc.__class__.__name__)
            self._redis_warned = True

    def check(self, key: str, cost: int = 1) -> None:
        """Like `allow`, but raises 429 ``rate_limited`` with a Retry-After header when over the limit."""
        check_all([(self, key)], cost)

    def _allow_local(self, key: str, cost_milli: int) -> tuple[bool, int]:
        now = _now_ms()
        with self._lock:
            bucket = self._local.get(key)
            if bucket is None:
                self._make_room(now)
                bucket = _Bucket(self._capacity_milli, now)
            tokens = min(self._capacity_milli, bucket.tokens_milli + max(0, now - bucket.at_ms) * self.rate_per_s)
            if tokens >= cost_milli:
                self._local[key] = _Bucket(tokens - cost_milli, now)
                return True, 0
            self._local[key] = _Bucket(tokens, now)
        return False, _retry_after_s(-(-(cost_milli - tokens) // self.rate_per_s))

    def _make_room(self, now: int) -> None:
        """Keep memory bounded: drop buckets that have refilled (they hold no information)."""
        if len(self._local) < LOCAL_BUCKETS_MAX:
            return
        full_after_ms = -(-self._capacity_milli // self.rate_per_s)
        for key in [k for k, b in self._local.items() if now - b.at_ms >= full_after_ms]:
            del self._local[key]
        if len(self._local) >= LOCAL_BUCKETS_MAX:
            oldest = sorted(self._local.items(), key=lambda kv: kv[1].at_ms)[: LOCAL_BUCKETS_MAX // 2]
            for key, _ in oldest:
                del self._local[key]

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def allow_all(checks: list[tuple[RateLimiter, str]], cost: int = 1) -> tuple[bool, int]:
    """Take ``cost`` tokens from every (limiter, key) bucket.

    Limiters sharing one Redis are checked in a single atomic script call (one round trip) that
    takes from every bucket or from none; in-process buckets are checked in turn. Returns
    (True, 0) or (False, seconds to wait).
    """
    prepared = [(limiter, *limiter._args(key, cost)) for limiter, key in checks]
    first = checks[0][0]
    if first._redis is not None and all(limiter._redis_url == first._redis_url for limiter, _ in checks):
        try:
            ok, wait_ms = first._script(keys=[k for _, k, _ in prepared], args=[a for _, _, args in prepared
                                                                                   for a in args])
            return (True, 0) if int(ok) == 1 else (False, _retry_after_s(int(wait_ms)))
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades to local limiting
            first._redis_failed(exc)
    for limiter, key, args in prepared:
        ok_one, wait = limiter._allow_local(key, args[2])
        if not ok_one:
            return False, wait
    return True, 0


def check_all(checks: list[tuple[RateLimiter, str]], cost: int = 1) -> None:
    """`allow_all`, raising 429 ``rate_limited`` with Retry-After when any bucket is empty."""
    ok, retry_after_s = allow_all(checks, cost)
    if not ok:
        raise _limited(retry_after_s)


def _limited(retry_after_s: int) -> SecurityError:
    return SecurityError(RATE_LIMITED, "too many requests; retry later", headers={"Retry-After": str(retry_after_s)},
                         details={"retry_after_seconds": retry_after_s})


def _bounded(key: str) -> str:
    if len(key) <= BUCKET_KEY_CHARS_MAX:
        return key
    return "h:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def redis_url_from(settings: Settings) -> str | None:
    """``QENEX_REDIS_URL`` or ``database.redis_host``/``redis_port``; None means in-process limiting."""
    return settings.database.redis()


@dataclass
class ApiRateLimits:
    """The API's limiters: per principal, per client IP, for credential checks (login, token) and
    for refused credentials per IP."""

    principal: RateLimiter
    ip: RateLimiter
    login: RateLimiter
    auth_failures: RateLimiter = field(
        default_factory=lambda: RateLimiter(AUTH_FAILURE_RATE_PER_S_DEFAULT, AUTH_FAILURE_BURST_DEFAULT,
                                            namespace="authfail")
    )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        principal: tuple[int, int] = (PRINCIPAL_RATE_PER_S_DEFAULT, PRINCIPAL_BURST_DEFAULT),
        ip: tuple[int, int] = (IP_RATE_PER_S_DEFAULT, IP_BURST_DEFAULT),
        login: tuple[int, int] = (LOGIN_RATE_PER_S_DEFAULT, LOGIN_BURST_DEFAULT),
        auth_failures: tuple[int, int] = (AUTH_FAILURE_RATE_PER_S_DEFAULT, AUTH_FAILURE_BURST_DEFAULT),
    ) -> ApiRateLimits:
        url = redis_url_from(settings)
        return cls(
            principal=RateLimiter(*principal, redis_url=url, namespace="principal"),
            ip=RateLimiter(*ip, redis_url=url, namespace="ip"),
            login=RateLimiter(*login, redis_url=url, namespace="login"),
            auth_failures=RateLimiter(*auth_failures, redis_url=url, namespace="authfail"),
        )

    def __post_init__(self) -> None:
        # With shared buckets, each process also screens IPs in-process before authenticating,
        # so an unauthenticated flood never reaches the database; the shared IP bucket is then
        # checked together with the principal's in one Redis round trip (`admit`).
        self._ip_screen = RateLimiter(self.ip.rate_per_s, self.ip.burst) if self.ip.shared else self.ip

    def screen(self, ip_key: str) -> None:
        """Before authentication: 429 when this client IP is over its limit (in-process check)."""
        self._ip_screen.check(ip_key)

    def admit(self, ip_key: str, actor: str) -> None:
        """After authentication: 429 when the principal (or, shared, the client IP) is over its limit."""
        if self.ip.shared:
            check_all([(self.ip, ip_key), (self.principal, actor)])
        else:
            self.principal.check(actor)

    def close(self) -> None:
        for limiter in (self.principal, self.ip, self.login, self.auth_failures):
            limiter.close()
