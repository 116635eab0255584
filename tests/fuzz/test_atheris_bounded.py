"""A short, bounded atheris (libFuzzer) run of every payment parser, as part of the test suite.

The harness is tests/fuzz/payments_atheris.py; longer runs are for local or nightly use. Here each
parser gets FUZZ_RUNS coverage-guided iterations in a subprocess (libFuzzer owns its process),
seeded with the corpus in tests/fuzz/seeds/<target>/ (files written for this project from the
specifications: SWIFT MT103/MT940 and a statement export, pacs.008/pacs.009/camt.053, a NACHA PPD
file, a Fedwire CTR and an ISO 8583 0100 as hex). A crash (an exception other than
PaymentFormatError from parse, any from validate) or a hang fails the test with libFuzzer's report.
Skips cleanly where atheris is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "payments_atheris.py"
SEEDS = HERE / "seeds"
TARGETS = ("swift", "iso20022", "ach", "fedwire", "cards")
FUZZ_RUNS = 4000  # iterations per parser: a few seconds each
RUN_TIME_MAX_S = 120  # libFuzzer's own bound on one run (-max_total_time)
INPUT_TIME_MAX_S = 10  # one input taking longer is a hang (-timeout)
SUBPROCESS_TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install atheris)"
)


def _corpus(target: str, into: Path) -> Path:
    """The seeds as libFuzzer corpus files: the harness reads the first byte as the target
    selector, so each seed gets a 0 byte in front (one target per run: any selector picks it)."""
    corpus = into / "corpus"
    corpus.mkdir()
    seeds = sorted((SEEDS / target).iterdir())
    assert seeds, f"no seed for {target}"
    for seed in seeds:
        (corpus / seed.name).write_bytes(b"\x00" + seed.read_bytes())
    return corpus


@pytest.mark.parametrize("target", TARGETS)
def test_atheris_bounded_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = _corpus(target, tmp_path)
    env = {**os.environ, "QENEX_FUZZ_TARGETS": target}
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-runs={FUZZ_RUNS}",
            "-seed=1",
            f"-max_total_time={RUN_TIME_MAX_S}",
            f"-timeout={INPUT_TIME_MAX_S}",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    log = proc.stdout + proc.stderr
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert proc.returncode == 0 and not crashes, f"{target}: exit {proc.returncode}, {crashes}\n{log[-4000:]}"
    assert f"Done {FUZZ_RUNS} runs" in log, log[-2000:]
    assert f"skipping qenex.payments.{target}" not in log
