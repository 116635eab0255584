from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qenex.kernel.currencies import CURRENCIES
from qenex.kernel.errors import AMOUNT_PRECISION, INVALID_AMOUNT, INVALID_CURRENCY, LedgerError
from qenex.kernel.money import AMOUNT_MAX_MINOR, format_minor, from_minor, round_minor, to_minor


def test_at_least_150_active_currencies_with_known_minor_units():
    assert len(CURRENCIES) >= 150
    assert CURRENCIES["USD"].minor_unit == 2
    assert CURRENCIES["JPY"].minor_unit == 0
    assert CURRENCIES["KWD"].minor_unit == 3
    assert CURRENCIES["CLF"].minor_unit == 4
    assert all(len(c.numeric) == 3 and c.numeric.isdigit() for c in CURRENCIES.values())


@pytest.mark.parametrize(
    ("value", "cur", "minor"),
    [("10000.00", "USD", 1_000_000), (Decimal("0.01"), "USD", 1), (5, "JPY", 5), ("1.5", "USD", 150),
     ("1.234", "BHD", 1234), ("1E+2", "USD", 10_000), (" 7.10 ", "EUR", 710)],
)
def test_to_minor_exact(value, cur, minor):
    assert to_minor(value, cur) == minor


@pytest.mark.parametrize(
    ("value", "cur", "code"),
    [("0.001", "USD", AMOUNT_PRECISION), ("1.5", "JPY", AMOUNT_PRECISION), ("0", "USD", INVALID_AMOUNT),
     ("-1", "USD", INVALID_AMOUNT), (1.5, "USD", INVALID_AMOUNT), ("NaN", "USD", INVALID_AMOUNT),
     ("Infinity", "USD", INVALID_AMOUNT), ("abc", "USD", INVALID_AMOUNT), ("", "USD", INVALID_AMOUNT),
     (True, "USD", INVALID_AMOUNT), ("1" * 41, "USD", INVALID_AMOUNT), ("1e30", "USD", INVALID_AMOUNT),
     ("1", "XYZ", INVALID_CURRENCY), ("1", "usd", INVALID_CURRENCY), ("1", None, INVALID_CURRENCY)],
)
def test_to_minor_rejects(value, cur, code):
    with pytest.raises(LedgerError) as exc:
        to_minor(value, cur)
    assert exc.value.code == code


def test_from_minor_and_format():
    assert from_minor(1_000_000, "USD") == Decimal("10000.00")
    assert str(from_minor(5, "JPY")) == "5"
    assert format_minor(1, "KWD") == "0.001"
    assert format_minor(150, "USD") == "1.50"


def test_round_minor_is_explicit():
    assert round_minor(Decimal("1.005"), "USD", ROUND_HALF_EVEN) == 100
    assert round_minor(Decimal("1.015"), "USD", ROUND_HALF_EVEN) == 102
    assert round_minor(Decimal("1.019"), "USD", ROUND_DOWN) == 101


currency_codes = st.sampled_from(sorted(CURRENCIES))


@given(code=currency_codes, minor=st.integers(min_value=1, max_value=AMOUNT_MAX_MINOR))
def test_round_trip_minor_decimal(code, minor):
    dec = from_minor(minor, code)
    assert to_minor(dec, code) == minor
    assert to_minor(str(dec), code) == minor
    assert dec.as_tuple().exponent == -CURRENCIES[code].minor_unit


@given(code=currency_codes, a=st.integers(1, 10**12), b=st.integers(1, 10**12))
def test_addition_is_exact_in_minor_units(code, a, b):
    assert to_minor(from_minor(a, code) + from_minor(b, code), code) == a + b


@given(code=currency_codes, minor=st.integers(1, 10**12), extra=st.integers(1, 9))
def test_extra_decimal_is_rejected_never_rounded(code, minor, extra):
    mu = CURRENCIES[code].minor_unit
    value = from_minor(minor, code) + Decimal(extra).scaleb(-(mu + 1))
    with pytest.raises(LedgerError) as exc:
        to_minor(value, code)
    assert exc.value.code == AMOUNT_PRECISION
