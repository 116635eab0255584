"""Primary account numbers: Luhn check, brand by IIN range, PCI-style masking, expiry dates.

A PAN never appears in an error message or a repr: only its masked form does.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from qenex.errors import QenexError

PAN_LENGTH_MIN: Final = 12
PAN_LENGTH_MAX: Final = 19
PAN_INPUT_CHARS_MAX: Final = 40  # digits plus the blanks and dashes people type
_SEPARATORS = re.compile(r"[ -]", re.ASCII)


class CardError(QenexError):
    code = "card_invalid"


@dataclass(frozen=True, slots=True)
class Brand:
    key: str
    name: str
    lengths: frozenset[int]


VISA: Final = Brand("visa", "Visa", frozenset({13, 16, 19}))
MASTERCARD: Final = Brand("mastercard", "Mastercard", frozenset({16}))
AMEX: Final = Brand("amex", "American Express", frozenset({15}))
DISCOVER: Final = Brand("discover", "Discover", frozenset({16, 17, 18, 19}))
JCB: Final = Brand("jcb", "JCB", frozenset({16, 17, 18, 19}))
UNIONPAY: Final = Brand("unionpay", "UnionPay", frozenset({16, 17, 18, 19}))
DINERS: Final = Brand("diners", "Diners Club", frozenset({14, 15, 16, 17, 18, 19}))
BRANDS: Final = (VISA, MASTERCARD, AMEX, DISCOVER, JCB, UNIONPAY, DINERS)

# (low, high, brand) over the first six digits, inclusive. Checked in order: the narrower
# Discover ranges come before UnionPay's 62 and Mastercard's 2-series before nothing else.
_IIN_RANGES: Final = (
    (222100, 272099, MASTERCARD),  # the 2-series, since 2017
    (510000, 559999, MASTERCARD),
    (340000, 349999, AMEX),
    (370000, 379999, AMEX),
    (601100, 601199, DISCOVER),
    (644000, 659999, DISCOVER),
    (622126, 622925, DISCOVER),  # co-branded China UnionPay / Discover range, routed by Discover
    (620000, 629999, UNIONPAY),
    (810000, 817199, UNIONPAY),
    (352800, 358999, JCB),
    (300000, 305999, DINERS),
    (309500, 309599, DINERS),
    (360000, 369999, DINERS),
    (380000, 399999, DINERS),
    (400000, 499999, VISA),
)


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits."""
    return text.isascii() and text.isdigit()


def normalize(pan: str) -> str:
    """Digits only: blanks and dashes removed; anything else is an error (never echoed)."""
    if not isinstance(pan, str) or len(pan) > PAN_INPUT_CHARS_MAX:
        raise CardError("card number must be a string of at most 19 digits", code="card_pan_format")
    digits = _SEPARATORS.sub("", pan)
    if not digits.isascii() or not is_digits(digits):
        raise CardError("card number must contain only digits", code="card_pan_format")
    return digits


def luhn_check_digit(partial: str) -> int:
    """The digit that makes ``partial`` + digit pass the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = ord(ch) - 48
        if i % 2 == 0:  # doubled: these positions become odd once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    """True when a string of digits passes the Luhn check (ISO/IEC 7812-1 Annex B)."""
    if not number or not number.isascii() or not is_digits(number):
        return False
    return luhn_check_digit(number[:-1]) == ord(number[-1]) - 48


def brand_of(pan: str) -> Brand | None:
    """The brand whose IIN range holds the PAN's first six digits, or None."""
    digits = normalize(pan)
    if len(digits) < 6:
        return None
    iin = int(digits[:6])
    for low, high, brand in _IIN_RANGES:
        if low <= iin <= high:
            return brand
    return None


def mask(pan: str, *, bin_digits: int = 6) -> str:
    """PCI DSS masking: at most the BIN (6, or 8 for PANs of 16+ digits) and the last four."""
    digits = normalize(pan)
    if bin_digits not in (0, 6, 8):
        raise CardError("bin_digits must be 0, 6 or 8", code="card_mask")
    if bin_digits == 8 and len(digits) < 16:
        bin_digits = 6
    if len(digits) < PAN_LENGTH_MIN:
        return "*" * len(digits)
    hidden = len(digits) - bin_digits - 4
    return digits[:bin_digits] + "*" * hidden + digits[-4:]


@dataclass(frozen=True, slots=True)
class PanCheck:
    masked: str
    brand: Brand | None
    luhn_ok: bool
    length_ok: bool

    @property
    def valid(self) -> bool:
        return self.brand is not None and self.luhn_ok and self.length_ok


def check_pan(pan: str) -> PanCheck:
    digits = normalize(pan)
    brand = brand_of(digits)
    length_ok = PAN_LENGTH_MIN <= len(digits) <= PAN_LENGTH_MAX and (brand is None or len(digits) in brand.lengths)
    return PanCheck(mask(digits), brand, luhn_valid(digits), length_ok)


_EXPIRY = re.compile(r"(\d{2})\s*/?\s*(\d{2}|\d{4})", re.ASCII)


def expiry_end(text: str) -> date:
    """Last valid day of an expiry written MM/YY, MMYY or MM/YYYY: a card is good through
    the end of its expiry month."""
    if not isinstance(text, str) or len(text) > 10:
        raise CardError("expiry must be MM/YY", code="card_expiry_format")
    m = _EXPIRY.fullmatch(text.strip())
    if m is None:
        raise CardError("expiry must be MM/YY", code="card_expiry_format")
    month, year = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        raise CardError(f"expiry month {month:02d} is not 01-12", code="card_expiry_format")
    if year < 100:
        year += 2000
    return date(year, month, calendar.monthrange(year, month)[1])


def is_expired(text: str, today: date | None = None) -> bool:
    return (today or date.today()) > expiry_end(text)


def expiry_from_yymm(yymm: str) -> str:
    """ISO 8583 field 14 (YYMM) as MM/YY."""
    if len(yymm) != 4 or not is_digits(yymm):
        raise CardError("expiration date must be YYMM", code="card_expiry_format")
    return f"{yymm[2:]}/{yymm[:2]}"
