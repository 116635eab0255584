"""Coverage-guided fuzzing of every payment parser with atheris (libFuzzer).

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/payments_atheris.py -max_total_time=60 [corpus_dir]
    QENEX_FUZZ_TARGETS=swift,iso20022 .venv/bin/python tests/fuzz/payments_atheris.py ...

Not collected by pytest itself: tests/fuzz/test_atheris_bounded.py runs it in the test suite for
a few thousand iterations per parser, seeded with tests/fuzz/seeds/<target>/ (pass that folder,
each file prefixed with a selector byte, as corpus_dir); longer runs are for local or nightly
use, beside the hypothesis fuzzers in tests/payments/test_fuzz_*.py. The first input byte picks
the target; the rest is the payload. Any exception other than PaymentFormatError from ``parse`` (or any
exception at all from ``validate``, detection and ISO 8583 decoding) is reported as a crash.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import importlib

    from qenex.payments.common import PaymentFormatError, ValidationReport
    from qenex.payments.detect import detect_format

    TARGETS = []
    # QENEX_FUZZ_TARGETS=swift,cards narrows the run, e.g. while a known crash in another is fixed.
    for _name in os.environ.get("QENEX_FUZZ_TARGETS", "swift,iso20022,ach,fedwire,cards").split(","):
        try:
            TARGETS.append(importlib.import_module(f"qenex.payments.{_name}"))
        except ImportError as _exc:  # a format still being written: fuzz the others
            print(f"skipping qenex.payments.{_name}: {_exc}", file=sys.stderr)


def one_input(data: bytes) -> None:
    if not data:
        return
    selector, payload = data[0], data[1:]
    detect_format(payload)
    module = TARGETS[selector % len(TARGETS)]
    try:
        module.parse(payload)
    except PaymentFormatError:
        pass
    report = module.validate(payload)
    if not isinstance(report, ValidationReport):
        raise TypeError(f"{module.__name__}.validate returned {type(report).__name__}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
