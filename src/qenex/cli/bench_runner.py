"""`qenex bench`: find the benchmark scripts of the source tree and run the ledger benchmark.

The scripts live in ``bench/`` at the repository root (they are tools, not part of the
installed package), so the command works from a source checkout (`pip install -e .`, `make`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from qenex.cli._ledger_common import CliError


def _source_root() -> Path:
    # src/qenex/cli/bench_runner.py -> the repository root is three levels above `qenex`.
    root = Path(__file__).resolve().parents[3]
    if not (root / "bench" / "ledger_bench.py").is_file():
        raise CliError("the benchmark scripts (bench/) ship with the source tree; run from a checkout")
    return root


def run_ledger_bench(*, config: str | None, seconds: float, json_only: bool) -> None:
    root = str(_source_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module("bench.ledger_bench")
    argv = ["--seconds", str(seconds)]
    if config is not None:
        argv += ["--config", config]
    if json_only:
        argv.append("--json")
    module.main(argv)
