"""IBAN and BIC checks through schwifty, returning located reports (never raising)."""

from __future__ import annotations

import re
import warnings
from typing import Final

import schwifty
from schwifty.exceptions import SchwiftyException

from qenex.payments.common import ValidationReport

IBAN_CHARS_MAX: Final = 64  # before separators are removed
IBAN_LENGTH_MAX: Final = 34  # ISO 13616
BIC_CHARS_MAX: Final = 16
_IBAN_SEPARATORS: Final = re.compile(r"[\s.\-]+")
_BIC_SHAPE: Final = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?\Z")
# Kosovo's BICs use XK, a code SWIFT assigns although ISO 3166 has not: schwifty refuses it.
_EXTRA_BIC_COUNTRIES: Final = frozenset({"XK"})
# ISO 13616: letters count as two-digit numbers, A=10 ... Z=35.
_LETTER_DIGITS: Final = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def compact_iban(value: str) -> str:
    return _IBAN_SEPARATORS.sub("", value).upper()


def iban_checksum_ok(value: str) -> bool:
    """ISO 13616 check digits only (mod 97 of the rearranged IBAN is 1): the cheap test the
    message validator runs on every IBAN; `validate_iban` adds length and BBAN structure."""
    text = compact_iban(value)
    if not 5 <= len(text) <= IBAN_LENGTH_MAX or not text.isascii() or not text.isalnum():
        return False
    digits = (text[4:] + text[:4]).translate(_LETTER_DIGITS)
    return int(digits) % 97 == 1


def validate_iban(value: object) -> ValidationReport:
    """Structure, length, check digits and (where schwifty knows it) the national BBAN format."""
    report = ValidationReport(format="iban", message_type="IBAN")
    if not isinstance(value, str) or not value.strip() or len(value) > IBAN_CHARS_MAX:
        report.add("iban_invalid", "an IBAN must be a non-empty string of reasonable length", "IBAN")
        return report
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "national checksum not verified" is not an error
            schwifty.IBAN(compact_iban(value), validate_bban=True)
    except (SchwiftyException, ValueError) as exc:
        report.add("iban_invalid", f"invalid IBAN: {exc.__class__.__name__}: {_short(exc)}", "IBAN")
    return report


def validate_bic(value: object) -> ValidationReport:
    report = ValidationReport(format="bic", message_type="BIC")
    if not isinstance(value, str) or not value.strip() or len(value) > BIC_CHARS_MAX:
        report.add("bic_invalid", "a BIC must be a non-empty string of 8 or 11 characters", "BIC")
        return report
    text = value.strip().upper()
    try:
        schwifty.BIC(text)
    except (SchwiftyException, ValueError) as exc:
        if not (_BIC_SHAPE.match(text) and text[4:6] in _EXTRA_BIC_COUNTRIES):
            report.add("bic_invalid", f"invalid BIC: {exc.__class__.__name__}: {_short(exc)}", "BIC")
    return report


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]
