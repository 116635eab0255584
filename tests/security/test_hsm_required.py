"""QENEX_REQUIRE_HSM=1 (set by .ci/run) turns a missing SoftHSM2 into a failure of the HSM tests
instead of a skip; without it, `make test` on a machine without SoftHSM2 skips them with a clear
message. Checked by running the HSM test module with a PATH and library list where SoftHSM2
cannot be found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HSM_TESTS = Path(__file__).with_name("test_hsm.py")


def _run_without_softhsm(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # Hide SoftHSM2 from the module: no library path exists, no softhsm2-util on PATH.
    sitecustomize = tmp_path / "sitecustomize.py"
    sitecustomize.write_text(
        "import os, shutil\n"
        "_exists, _which = os.path.exists, shutil.which\n"
        "os.path.exists = lambda p: False if 'softhsm' in str(p) else _exists(p)\n"
        "shutil.which = lambda c, *a, **k: None if 'softhsm' in c else _which(c, *a, **k)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "QENEX_REQUIRE_HSM"}
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(HSM_TESTS), "-k", "wrong_pin"],
        capture_output=True, text=True, env=environ, timeout=300, cwd=HSM_TESTS.parents[2],
    )


@pytest.mark.slow
def test_missing_softhsm_skips_by_default_and_fails_when_required(tmp_path: Path) -> None:
    skipped = _run_without_softhsm(tmp_path)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "SoftHSM2 is not installed" in skipped.stdout and "1 skipped" in skipped.stdout
    required = _run_without_softhsm(tmp_path, QENEX_REQUIRE_HSM="1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "QENEX_REQUIRE_HSM=1 requires the HSM tests to run" in required.stdout
