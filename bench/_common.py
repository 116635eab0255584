"""Helpers the security, encryption/audit and HTTP benchmarks share: a timed loop with p50/p99
latency, and a scratch database that is created for one run and dropped afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

SAMPLES_MAX = 200_000  # latencies kept per scenario; the count and rate still cover every operation


@dataclass
class Result:
    scenario: str
    ops_per_s: float
    p50_us: float
    p99_us: float
    ops: int


def measure(name: str, op: Callable[[], object], seconds: float) -> Result:
    """Call ``op`` back to back for ``seconds`` (single-threaded) and time each call."""
    samples: list[int] = []
    count = 0
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline:
        t0 = time.perf_counter_ns()
        op()
        now = time.perf_counter_ns()
        if len(samples) < SAMPLES_MAX:
            samples.append(now - t0)
        count += 1
    samples.sort()
    elapsed_s = (now - start) / 1e9
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000
    return Result(name, count / elapsed_s, p50, p99, count)


@contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """Create database ``name`` through ``admin_url``, yield its URL, and drop it afterwards."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
