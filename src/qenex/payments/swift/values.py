"""Typed readings of field values: amounts (exact Decimal), dates, parties, statement lines.

Amounts go through `qenex.kernel.money`, so an amount with more decimals than its currency
allows is caught the same way everywhere, and nothing is ever a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Final

from qenex.errors import QenexError
from qenex.kernel.currencies import get_currency
from qenex.kernel.money import from_minor, to_minor

# Two-digit years: SWIFT dates are YYMMDD. 00-79 are read as 20YY, 80-99 as 19YY.
CENTURY_PIVOT_YY: Final = 80

_AMOUNT = re.compile(r"([0-9]+),([0-9]*)\Z")
_61 = re.compile(
    r"(?P<value_date>[0-9]{6})(?P<entry_date>[0-9]{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z])?"
    r"(?P<amount>[0-9]{1,14},[0-9]{0,13})(?P<type>[A-Z])(?P<code>[A-Z0-9]{3})"
    r"(?P<ref>[^\n]{1,16}?)(?://(?P<bank_ref>[^\n]{1,16}))?(?:\n(?P<details>[^\n]{1,34}))?\Z"
)
_BALANCE = re.compile(r"(?P<mark>[CD])(?P<date>[0-9]{6})(?P<currency>[A-Z]{3})(?P<amount>[0-9]+,[0-9]*)\Z")
_32A = re.compile(r"(?P<date>[0-9]{6})(?P<currency>[A-Z]{3})(?P<amount>[0-9]+,[0-9]*)\Z")
_CCY_AMOUNT = re.compile(r"(?P<currency>[A-Z]{3})(?P<amount>[0-9]+,[0-9]*)\Z")


class FieldValueError(QenexError):
    """A field value that cannot be read as the type it must carry (reported by validate())."""

    code = "mt_field_value"


def swift_amount_text(amount: Decimal) -> str:
    """Decimal as SWIFT amount text: comma decimal mark, no thousands separator, the decimals the
    Decimal carries ("1234.50" -> "1234,50"; "1500" -> "1500,")."""
    sign, _digits, exponent = amount.as_tuple()
    if sign or not isinstance(exponent, int):
        raise FieldValueError("a SWIFT amount must be a finite, non-negative number")
    text = format(amount, "f")
    whole, _, frac = text.partition(".")
    return f"{int(whole)},{frac}"


def amount_of(text: str) -> Decimal:
    """SWIFT amount text as an exact Decimal ("1234,50" -> Decimal("1234.50"))."""
    m = _AMOUNT.match(text)
    if m is None:
        raise FieldValueError(f"amount {text[:20]!r} is not digits with a decimal comma")
    return Decimal(f"{m.group(1)}.{m.group(2) or '0'}")


@lru_cache(maxsize=256)
def currency_ok(code: str) -> bool:
    return get_currency(code) is not None


def amount_fits(text: str, currency: str) -> str | None:
    """None if `text` is a valid amount in `currency` (decimals per ISO 4217); else the problem."""
    cur = get_currency(currency)
    if cur is None:
        return f"currency code {currency!r} is not an active ISO 4217 code"
    m = _AMOUNT.match(text)
    if m is None:
        return f"amount {text[:20]!r} is not digits with a decimal comma"
    if len(m.group(2).rstrip("0")) > cur.minor_unit:
        return f"amount {text} has more decimals than {currency} allows ({cur.minor_unit})"
    return None


def minor_of(text: str, currency: str) -> int:
    """Amount text as integer minor units of `currency` (exact; raises LedgerError if it doesn't fit)."""
    return to_minor(amount_of(text), currency, allow_zero=True)


def decimal_in(text: str, currency: str) -> Decimal:
    """Amount text as a Decimal with exactly the currency's decimals."""
    return from_minor(minor_of(text, currency), currency)


def date_of(yymmdd: str) -> date | None:
    """A YYMMDD date, or None when it is not a calendar date."""
    if len(yymmdd) != 6 or not yymmdd.isascii() or not yymmdd.isdigit():
        return None
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    year = 2000 + yy if yy < CENTURY_PIVOT_YY else 1900 + yy
    try:
        return date(year, mm, dd)
    except ValueError:
        return None


def yymmdd(d: date) -> str:
    return d.strftime("%y%m%d")


def mmdd_ok(mmdd: str, year: int) -> bool:
    try:
        date(year, int(mmdd[:2]), int(mmdd[2:]))
    except ValueError:
        # 29 February of the next year can follow a December value date.
        return mmdd == "0229"
    return True


@dataclass(frozen=True, slots=True)
class Amount32A:
    value_date: date | None
    currency: str
    amount_text: str

    @property
    def amount(self) -> Decimal:
        return amount_of(self.amount_text)


def read_32a(value: str) -> Amount32A | None:
    m = _32A.match(value)
    if m is None:
        return None
    return Amount32A(date_of(m["date"]), m["currency"], m["amount"])


def read_ccy_amount(value: str) -> tuple[str, str] | None:
    m = _CCY_AMOUNT.match(value)
    return (m["currency"], m["amount"]) if m else None


@dataclass(frozen=True, slots=True)
class Balance:
    """A 60a/62a/64/65 balance: credit (C) or debit (D) mark, date, currency, amount."""

    mark: str
    date_text: str
    currency: str
    amount_text: str

    @property
    def date(self) -> date | None:
        return date_of(self.date_text)

    @property
    def amount(self) -> Decimal:
        return amount_of(self.amount_text)

    @property
    def signed(self) -> Decimal:
        return -self.amount if self.mark == "D" else self.amount


def read_balance(value: str) -> Balance | None:
    m = _BALANCE.match(value)
    if m is None:
        return None
    return Balance(m["mark"], m["date"], m["currency"], m["amount"])


@dataclass(frozen=True, slots=True)
class StatementLine:
    """Field 61: value date, optional entry date (MMDD), debit/credit mark (C, D, RC, RD),
    optional funds code, amount, transaction type (S/N/F + 3 characters), reference for the
    account owner, optional bank reference after //, optional supplementary details."""

    value_date_text: str
    entry_date: str | None
    mark: str
    funds_code: str | None
    amount_text: str
    transaction_type: str
    customer_reference: str
    bank_reference: str | None
    details: str | None

    @property
    def value_date(self) -> date | None:
        return date_of(self.value_date_text)

    @property
    def amount(self) -> Decimal:
        return amount_of(self.amount_text)

    @property
    def is_credit(self) -> bool:
        """C and RD (reversal of a debit) increase the balance; D and RC decrease it."""
        return self.mark in ("C", "RD")

    @property
    def signed(self) -> Decimal:
        return self.amount if self.is_credit else -self.amount


def read_61(value: str) -> StatementLine | None:
    m = _61.match(value)
    if m is None:
        return None
    return StatementLine(
        m["value_date"],
        m["entry_date"],
        m["mark"],
        m["funds"],
        m["amount"],
        m["type"] + m["code"],
        m["ref"],
        m["bank_ref"],
        m["details"],
    )


@dataclass(frozen=True, slots=True)
class Party:
    """A party field (50a, 52a, 56a, 57a, 58a, 59a...): account and/or BIC and/or name lines."""

    option: str
    account: str | None
    bic: str | None
    lines: tuple[str, ...]

    @property
    def name(self) -> str | None:
        if self.option == "F":
            for line in self.lines:
                if line.startswith("1/"):
                    return line[2:]
            return None
        return self.lines[0] if self.lines else None


def read_party(tag: str, value: str) -> Party:
    """Split a party field: a first line starting with "/" is the account (or party identifier)."""
    option = tag[2:]
    lines = value.replace("\r\n", "\n").split("\n")
    account: str | None = None
    if option == "F" and lines and not lines[0].startswith("/"):
        account = lines[0]  # a party identifier such as CUST/DE/ABC/123
        lines = lines[1:]
    elif lines and lines[0].startswith("/") and (len(lines) > 1 or option in ("C", "B")):
        first = lines[0]
        # /D/123 or /C/123: a debit/credit mark before the account
        account = first[3:] if len(first) > 3 and first[2] == "/" and first[1] in "CD" else first[1:]
        lines = lines[1:]
    bic = lines[-1] if option == "A" and lines else None
    names = tuple(lines) if option != "A" else ()
    return Party(option, account, bic, names)
