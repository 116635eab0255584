"""Fuzzing every payment parser: random and mutated input may only ever give a
PaymentFormatError (from ``parse``) or a ValidationReport (from ``validate``), quickly.

Seeds are this project's own spec-written fixtures; mutations are byte flips, truncations,
insertions, deletions, huge repetitions and splices of format tokens. Example counts are
bounded so CI stays fast. A hang is caught by a per-call alarm (ITIMER_REAL), not by a timed
throughput assertion; the alarm is armed around one call only and the outer timer
(pytest-timeout's) is re-armed with what was left of it, so both keep working.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qenex.cli.payments import format_module
from qenex.payments.common import PaymentFormatError, ValidationReport
from qenex.payments.detect import detect_format

FIXTURES = Path(__file__).parent / "fixtures" / "cli"
CALL_SECONDS_MAX = 10.0  # far above any real call (milliseconds); only a hang or a blow-up gets here
HUGE_BYTES_MAX = 300_000  # "huge repetition" inputs stay small enough for CI


class Hang(Exception):
    """A single parser call ran past CALL_SECONDS_MAX."""


@contextmanager
def call_bound(seconds: float = CALL_SECONDS_MAX) -> Iterator[None]:
    def _alarm(signum: int, frame: Any) -> None:
        raise Hang(f"call did not finish within {seconds}s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            left = max(outer_delay - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def bounded(call: Callable[[], Any]) -> Any:
    with call_bound():
        return call()


def seed(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` after 1-4 random edits: byte flips, truncation, insertion, deletion, huge repetition."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat", "splice", "digit"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "repeat" and data:
            chunk = bytes(data[at : at + draw(st.integers(1, 200))])
            times = draw(st.integers(2, max(2, HUGE_BYTES_MAX // max(len(chunk), 1))))
            data[at:at] = chunk * times
        elif op == "splice":
            data[at:at] = draw(st.sampled_from(SPLICES))
        elif op == "digit" and data:
            # A non-ASCII "digit" where an ASCII one was: str.isdigit() says yes, int() may say no.
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39] or [at]
            i = draw(st.sampled_from(digits))
            data[i : i + 1] = draw(st.sampled_from(ODD_DIGITS))
    return bytes(data[: HUGE_BYTES_MAX + len(base)])


# Latin-1 superscripts, UTF-8 Arabic-Indic three, fullwidth five, a circled one.
ODD_DIGITS: list[bytes] = [b"\xb2", b"\xb3", b"\xb9", "\u0663".encode(), "\uff15".encode(), "\u2460".encode()]

# Fragments that reach deeper parser states than random bytes do.
SPLICES: list[bytes] = [
    b"{1:", b"{2:I103", b"{3:{121:", b"{4:\r\n", b"\r\n-}", b"{5:{CHK:", b":20:", b":32A:", b":59:", b"\r\n:",
    b"<", b">", b"</", b"<Document>", b"<![CDATA[", b"&amp;", b"&#0;", b"&#x110000;", b'xmlns="urn:x"',
    b"101 ", b"5220", b"622", b"705", b"799", b"8220", b"9000", b"9" * 94, b"\n", b"\r\n",
    b"{1500}", b"{1510}", b"{2000}", b"{3600}CTR", b"*", b"}", b"{", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf",
]


FUZZ = settings(
    max_examples=100,
    deadline=None,  # the per-call alarm is the hang detector; wall time on shared CI cores varies
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    database=None,
)

# format -> the seed fixture its mutations start from
SEEDS = {"mt": "mt103.fin", "iso20022": "pacs008.xml", "ach": "ppd.ach", "fedwire": "fedwire_ctr.txt"}


def module_or_skip(fmt: str) -> Any:
    try:
        return format_module(fmt)
    except PaymentFormatError as exc:
        pytest.skip(f"{fmt} parser not fuzzed: {exc.message}")


def check_parse(module: Any, data: bytes | str) -> None:
    try:
        bounded(lambda: module.parse(data))
    except PaymentFormatError as exc:
        assert exc.code and exc.message  # a precise, coded error


def check_validate(module: Any, data: bytes | str) -> None:
    report = bounded(lambda: module.validate(data))
    assert isinstance(report, ValidationReport)
    for issue in report.issues:
        assert issue.code and issue.message


def fuzz_inputs(fmt: str) -> st.SearchStrategy[bytes | str]:
    base = seed(SEEDS[fmt])
    return st.one_of(
        mutated(base),
        mutated(base),  # weight mutations above pure noise: they get past the first checks
        st.binary(max_size=2_000),
        st.text(max_size=500),
        st.builds(lambda b: b.decode("latin-1"), mutated(base)),  # the str entry point too
    )


@pytest.mark.parametrize("fmt", list(SEEDS))
def test_seed_fixtures_are_accepted(fmt):
    """The seeds must be valid, otherwise mutations only exercise the first error path."""
    module = module_or_skip(fmt)
    report = module.validate(seed(SEEDS[fmt]))
    assert report.valid, [str(i) for i in report.errors]
    assert detect_format(seed(SEEDS[fmt])) == fmt


@pytest.mark.parametrize("fmt", list(SEEDS))
def test_fuzz_parse(fmt):
    module = module_or_skip(fmt)

    @FUZZ
    @given(data=fuzz_inputs(fmt))
    def run(data: bytes | str) -> None:
        check_parse(module, data)

    run()


@pytest.mark.parametrize("fmt", list(SEEDS))
def test_fuzz_validate(fmt):
    module = module_or_skip(fmt)

    @FUZZ
    @given(data=fuzz_inputs(fmt))
    def run(data: bytes | str) -> None:
        check_validate(module, data)

    run()


@FUZZ
@given(data=st.one_of(*(mutated(seed(name)) for name in SEEDS.values()), st.binary(max_size=5_000)))
def test_fuzz_detect(data):
    assert bounded(lambda: detect_format(data)) in (None, "mt", "iso20022", "ach", "fedwire")


@FUZZ
@given(data=st.one_of(*(mutated(seed(name)) for name in SEEDS.values()), st.binary(max_size=3_000)))
def test_fuzz_cli_dispatch(data):
    """The CLI's whole chain (detect, pick the module, validate) answers every input with a
    report, never an exception and never the internal-error issue a validator bug would give."""
    from qenex.cli.payments import INTERNAL_ERROR, validate_bytes

    report = bounded(lambda: validate_bytes(data))
    assert isinstance(report, ValidationReport)
    assert all(i.code != INTERNAL_ERROR for i in report.issues), [str(i) for i in report.issues]


@pytest.mark.parametrize("fmt", list(SEEDS))
def test_huge_repetitions_finish(fmt):
    """Pathological sizes: one token repeated to hundreds of KB must not hang or blow up."""
    module = module_or_skip(fmt)
    for token in (b"{", b":", b"<a>", b"9" * 94 + b"\n", b"{1500}", b"\r\n", b"A"):
        for data in (token * (HUGE_BYTES_MAX // len(token)), seed(SEEDS[fmt]) + token * 50_000):
            check_parse(module, data)
            check_validate(module, data)


@pytest.mark.parametrize("fmt", list(SEEDS))
@pytest.mark.parametrize("odd", [b"\xb9", "\u0663".encode()], ids=["latin1-superscript-1", "arabic-indic-3"])
def test_non_ascii_digit_in_every_digit_position(fmt, odd):
    """Deterministic sweep: str.isdigit() accepts '¹' and '٣' but int() may not (a crash class
    the random fuzzers found in the ACH and Fedwire validators)."""
    module = module_or_skip(fmt)
    base = seed(SEEDS[fmt])
    crashes = []
    for i in (i for i, b in enumerate(base) if 0x30 <= b <= 0x39):
        data = base[:i] + odd + base[i + 1 :]
        for call in (lambda: check_parse(module, data), lambda: check_validate(module, data)):
            try:
                call()
            except Exception as exc:  # collect every site, then fail once with all of them
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{frame.filename.rpartition('src/')[2]}:{frame.lineno}"
                crashes.append(f"{where}: {type(exc).__name__}: {exc} (byte {i})")
    sites = {c.split(": ", 1)[0]: c for c in crashes}  # one example per raising line
    assert not crashes, f"{len(crashes)} crashes at {len(sites)} sites:\n" + "\n".join(sites.values())


# ---------------------------------------------------------------- ISO 8583 (cards)

ISO8583_FIELDS = {
    2: "4111111111111111", 3: "000000", 4: "000000001000", 7: "0115103000", 11: "000123", 12: "103000",
    13: "0115", 14: "2712", 22: "012", 37: "240150000123", 41: "TERM0001", 42: "MERCHANT0000001", 49: "840",
}
ISO8583_LLVAR = {2}


def iso8583_seed() -> bytes:
    """An 0100 authorization request encoded by hand from ISO 8583:1987: ASCII MTI, binary
    primary bitmap (bit 1 = field 1, most significant first), ASCII fields, LLVAR as 2 digits."""
    bitmap = bytearray(8)
    body = b""
    for number in sorted(ISO8583_FIELDS):
        bitmap[(number - 1) // 8] |= 0x80 >> ((number - 1) % 8)
        value = ISO8583_FIELDS[number].encode("ascii")
        body += (b"%02d" % len(value) if number in ISO8583_LLVAR else b"") + value
    return b"0100" + bytes(bitmap) + body


def cards_or_skip() -> Any:
    try:
        from qenex.payments import cards
    except ImportError as exc:
        pytest.skip(f"cards not fuzzed: {exc}")
    return cards


def test_iso8583_seed_is_decoded_field_by_field():
    cards = cards_or_skip()
    msg = cards.parse(iso8583_seed())
    assert msg.mti == "0100"
    assert {int(k): v for k, v in msg.fields.items() if k.isdigit() and int(k) > 1} == ISO8583_FIELDS
    report = cards.validate(iso8583_seed())
    assert report.valid, [str(i) for i in report.errors]


@FUZZ
@given(data=st.one_of(mutated(iso8583_seed()), st.binary(max_size=600), st.builds(bytes.hex, mutated(iso8583_seed()))))
def test_fuzz_iso8583_decode(data):
    cards = cards_or_skip()
    check_parse(cards, data)
    check_validate(cards, data)


@FUZZ
@given(pan=st.text(max_size=40), expiry=st.one_of(st.none(), st.text(max_size=8)))
def test_fuzz_validate_pan(pan, expiry):
    cards = cards_or_skip()
    report = bounded(lambda: cards.validate_pan(pan, expiry=expiry))
    assert isinstance(report, ValidationReport)
    digits = "".join(ch for ch in pan if ch.isascii() and ch.isdigit())
    if len(digits) >= 12:  # a PAN-like number: never echoed in full (PCI DSS 3.4: at most BIN + last 4)
        assert all(digits not in str(i) for i in report.issues)


@pytest.mark.parametrize("pan", ["4111111111111112", "5500 0000 0000 0004", "378282246310005"])
def test_pan_reports_are_masked(pan):
    cards = cards_or_skip()
    digits = pan.replace(" ", "")
    report = cards.validate_pan(pan, expiry="01/20")
    assert all(digits not in str(i) and digits[6:-4] not in str(i) for i in report.issues)
