"""The one module that owns Decimal: conversion between edge amounts and integer minor units.

Inside the ledger every amount is an ``int`` count of the currency's minor unit. Decimal
appears only here, at the edges. Nothing is ever rounded silently: an amount with more
decimals than its currency allows is rejected (``amount_precision``); rounding, where a
calculation needs it (FX), is explicit and named (`round_minor`).
"""

from __future__ import annotations

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

# Exact context for conversions: enough digits for any bounded amount, traps on inexact.
_EXACT: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)


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
        text = value.strip()
        if not text or len(text) > AMOUNT_TEXT_MAX_CHARS:
            raise LedgerError(INVALID_AMOUNT, "amount must be a non-empty decimal string of reasonable length")
        try:
            result = Decimal(text)
        except InvalidOperation:
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
    """
    cur = currency if isinstance(currency, Currency) else currency_of(currency)
    amount = parse_decimal(value)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise LedgerError(INVALID_AMOUNT, "amount must be positive")
    scaled = amount.scaleb(cur.minor_unit, _EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise LedgerError(
            AMOUNT_PRECISION,
            f"amount has more decimals than {cur.code} allows ({cur.minor_unit})",
        )
    minor = int(scaled)
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
    if not value.is_finite():
        raise LedgerError(INVALID_AMOUNT, "computed amount is not finite")
    scaled = value.scaleb(cur.minor_unit, _EXACT)
    return int(scaled.quantize(Decimal(1), rounding=rounding, context=_EXACT))
