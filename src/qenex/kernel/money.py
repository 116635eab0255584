"""The one module that owns Decimal: conversion between edge amounts and integer minor units.

Inside the ledger every amount is an ``int`` count of the currency's minor unit. Decimal
appears only here, at the edges. Nothing is ever rounded silently: an amount with more
decimals than its currency allows is rejected (``amount_precision``); rounding, where a
calculation needs it (FX), is explicit and named (`round_minor`).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final

from qenex.kernel.currencies import Currency, get_currency
from qenex.kernel.errors import AMOUNT_PRECISION, INVALID_AMOUNT, INVALID_CURRENCY, LedgerError

# Upper bound of one amount, in minor units: 10^15 (ten trillion USD). Keeps every sum of
# amounts far inside PostgreSQL's bigint (9.2 * 10^18) for any realistic account.
AMOUNT_MAX_MINOR: Final = 10**15
# Bound on balances in minor units (bigint headroom kept for pending sums).
BALANCE_MAX_MINOR: Final = 2**62
# The longest decimal string an edge may hand us, in characters.
AMOUNT_TEXT_MAX_CHARS: Final = 40
# Most significant digits a conversion rate may carry (0.000000000123456789 has 9).
RATE_DIGITS_MAX: Final = 30

# Exact context for conversions: enough digits for any bounded amount, traps on inexact.
_EXACT: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)
# A decimal string as we accept it: ASCII digits only (Decimal itself also takes other scripts'
# digits, '٣', and underscores, '1_0'), an optional sign, point and exponent.
_DECIMAL_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Decimal exponent of the most significant digit from which an amount is certainly too large
# (10**16 > AMOUNT_MAX_MINOR minor units of any currency). Checked before any scaling, so an
# exponent like 1E+999999 never reaches decimal arithmetic (where it would overflow).
_MAGNITUDE_EXPONENT_MAX: Final = len(str(AMOUNT_MAX_MINOR)) - 1
# A computed value (an FX product) beyond this exponent is refused rather than scaled.
_COMPUTED_EXPONENT_MAX: Final = 40


def currency_of(code: object) -> Currency:
    """The Currency for a code, or LedgerError(invalid_currency)."""
    if not isinstance(code, str):
        raise LedgerError(INVALID_CURRENCY, "currency must be an ISO 4217 code string")
    currency = get_currency(code)
    if currency is None:
        shown = code[:8]
        raise LedgerError(INVALID_CURRENCY, f"unknown or unsupported currency code '{shown}'")
    return currency


def parse_decimal(value: object) -> Decimal:
    """An edge value (Decimal, int or decimal string) as a finite Decimal. Floats are refused:
    they cannot represent most decimal amounts exactly."""
    if isinstance(value, bool) or isinstance(value, float):
        raise LedgerError(INVALID_AMOUNT, "amount must be a decimal string, Decimal or integer, never a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip(" \t\r\n")
        if not text or len(text) > AMOUNT_TEXT_MAX_CHARS:
            raise LedgerError(INVALID_AMOUNT, "amount must be a non-empty decimal string of reasonable length")
        if _DECIMAL_TEXT.fullmatch(text) is None:
            raise LedgerError(INVALID_AMOUNT, "amount is not a decimal number (ASCII digits, e.g. 12.50)")
        try:
            result = Decimal(text)
        except InvalidOperation:  # e.g. an exponent beyond what Decimal can hold
            raise LedgerError(INVALID_AMOUNT, "amount is not a decimal number") from None
    else:
        raise LedgerError(INVALID_AMOUNT, "amount must be a decimal string, Decimal or integer")
    if not result.is_finite():
        raise LedgerError(INVALID_AMOUNT, "amount must be a finite number")
    return result


def to_minor(value: object, currency: Currency | str, *, allow_zero: bool = False) -> int:
    """Exact conversion of a positive edge amount to integer minor units.

    Rejects: floats, NaN/Infinity, zero (unless ``allow_zero``), negatives (``invalid_amount``);
    more decimals than the currency has (``amount_precision``); more than AMOUNT_MAX_MINOR.
    Integer arithmetic on the digits, no decimal context: any exponent (1E+999999, 1E-9999999)
    ends in one of those codes, never in a decimal signal or a silent underflow to zero.
    """
    cur = currency if isinstance(currency, Currency) else currency_of(currency)
    amount = parse_decimal(value)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise LedgerError(INVALID_AMOUNT, "amount must be positive")
    if amount == 0:
        return 0
    if amount.adjusted() > _MAGNITUDE_EXPONENT_MAX:
        raise LedgerError(INVALID_AMOUNT, f"amount exceeds the maximum of {from_minor(AMOUNT_MAX_MINOR, cur)}")
    _, digits, exponent = amount.as_tuple()
    text = "".join(map(str, digits))
    significant = text.rstrip("0")
    shift = int(exponent) + len(text) - len(significant) + cur.minor_unit
    if shift < 0:  # the last non-zero digit lies below the currency's minor unit
        raise LedgerError(
            AMOUNT_PRECISION,
            f"amount has more decimals than {cur.code} allows ({cur.minor_unit})",
        )
    # Here significant has at most _MAGNITUDE_EXPONENT_MAX + minor_unit + 1 digits: int() is cheap.
    minor: int = int(significant) * 10**shift
    if minor > AMOUNT_MAX_MINOR:
        raise LedgerError(INVALID_AMOUNT, f"amount exceeds the maximum of {from_minor(AMOUNT_MAX_MINOR, cur)}")
    return minor


def from_minor(minor: int, currency: Currency | str) -> Decimal:
    """Integer minor units as a Decimal with exactly the currency's number of decimals."""
    cur = currency if isinstance(currency, Currency) else currency_of(currency)
    return Decimal(minor).scaleb(-cur.minor_unit, _EXACT).quantize(Decimal(1).scaleb(-cur.minor_unit), context=_EXACT)


def format_minor(minor: int, currency: Currency | str) -> str:
    """Minor units as the canonical decimal string used in JSON and CSV ("1234.50")."""
    return str(from_minor(minor, currency))


def round_minor(value: Decimal, currency: Currency | str, rounding: str = ROUND_HALF_EVEN) -> int:
    """Explicit rounding of a computed Decimal (an FX product, interest) to minor units.

    The rounding mode is a named argument so every call site states its choice.
    """
    cur = currency if isinstance(currency, Currency) else currency_of(currency)
    if not value.is_finite() or value.adjusted() > _COMPUTED_EXPONENT_MAX:
        raise LedgerError(INVALID_AMOUNT, "computed amount is not finite or out of range")
    if value != 0 and value.adjusted() < -cur.minor_unit - 3:
        # Below a thousandth of a minor unit every rounding mode treats the value like that
        # thousandth (same sign); replacing it keeps the scaling inside the context's range.
        value = Decimal(1).scaleb(-cur.minor_unit - 3).copy_sign(value)
    scaled = value.scaleb(cur.minor_unit, _EXACT)
    return int(scaled.quantize(Decimal(1), rounding=rounding, context=_EXACT))


def convert_minor(minor: int, source: Currency | str, rate: Decimal, target: Currency | str,
                  rounding: str) -> int:
    """``minor`` units of ``source`` times ``rate`` (units of target per unit of source), in minor
    units of ``target``: the product is exact, then rounded once with the named ``rounding``."""
    if not rate.is_finite() or rate <= 0:
        raise LedgerError(INVALID_AMOUNT, "rate must be a positive finite number")
    if len(rate.as_tuple().digits) > RATE_DIGITS_MAX:
        raise LedgerError(INVALID_AMOUNT, f"rate has more than {RATE_DIGITS_MAX} significant digits")
    target_cur = target if isinstance(target, Currency) else currency_of(target)
    if rate.adjusted() < -_COMPUTED_EXPONENT_MAX:  # the product is far below any minor unit either way
        rate = Decimal(1).scaleb(-_COMPUTED_EXPONENT_MAX - 1)
    # At most 19 + RATE_DIGITS_MAX significant digits: exact in the 60-digit context.
    product = _EXACT.multiply(from_minor(minor, source), rate)
    return round_minor(product, target_cur, rounding)
