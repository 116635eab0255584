"""Run every benchmark in bench/ (`make bench`): each module named *_bench.py with a main(argv)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*_bench.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        print(f"== {path.stem}", flush=True)
        module.main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
