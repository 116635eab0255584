"""`qenex bench` runs end to end (a very short run; figures are never asserted: not a timed test)."""

from __future__ import annotations

import json

import pytest

from .conftest import run_cli

SCENARIOS = ["single", "clients4", "hot4", "procs4", "batch100", "batch8000"]


@pytest.mark.slow
def test_qenex_bench_prints_every_scenario_as_json(pg_admin_url):
    r = run_cli("bench", "--seconds", "0.2", "--json", url=pg_admin_url)
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert [x["scenario"] for x in line["results"]] == SCENARIOS
    assert all(x["transfers"] > 0 and x["calls"] >= 3 for x in line["results"])
    assert line["server"]["fsync"] in ("on", "off") and line["machine"]["cores"] >= 1
    assert line["durable"] == (line["server"]["fsync"] == "on" and line["server"]["synchronous_commit"] == "on")
