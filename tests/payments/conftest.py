"""Payments test helpers: run the `qenex` CLI in-process and collect its output.

In-process (not a subprocess) so the conformance run over hundreds of files stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from qenex.cli.main import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture()
def run_cli(capsys: pytest.CaptureFixture[str]):
    def _run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run
