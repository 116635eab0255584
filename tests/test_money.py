from decimal import MAX_EMAX, MIN_ETINY, ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

import pytest
from hypothesis import assume, given
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


# ---- hostile amounts: every one ends in a LedgerError with a stable code, never another exception

AMOUNT_CODES = {INVALID_AMOUNT, AMOUNT_PRECISION}


@pytest.mark.parametrize(
    ("value", "code"),
    [("1E+999999", INVALID_AMOUNT), ("1e+999999", INVALID_AMOUNT), ("-1E+999999", INVALID_AMOUNT),
     (Decimal("1E+999999"), INVALID_AMOUNT), (Decimal("9E+999999999999999999"), INVALID_AMOUNT),
     (Decimal("1E-9999999"), AMOUNT_PRECISION), ("1E-999999", AMOUNT_PRECISION),
     (Decimal("1E-999999999999999999"), AMOUNT_PRECISION), ("1e99999999999999999999", INVALID_AMOUNT),
     ("1_0", INVALID_AMOUNT), ("1_000.00", INVALID_AMOUNT), ("\u0663", INVALID_AMOUNT),  # ARABIC-INDIC THREE
     ("\uff11", INVALID_AMOUNT), ("1.\u0665", INVALID_AMOUNT), ("\u00a01", INVALID_AMOUNT), ("0x10", INVALID_AMOUNT),
     ("1e", INVALID_AMOUNT), (".", INVALID_AMOUNT), ("--1", INVALID_AMOUNT), ("sNaN", INVALID_AMOUNT),
     (Decimal("sNaN"), INVALID_AMOUNT), (10**400, INVALID_AMOUNT), ("+0", INVALID_AMOUNT)],
)
def test_hostile_amounts_get_a_stable_code(value, code):
    with pytest.raises(LedgerError) as exc:
        to_minor(value, "USD")
    assert exc.value.code == code


@pytest.mark.parametrize(("value", "minor"), [
    (Decimal("1." + "0" * 5000), 100), (Decimal("1E-2"), 1), ("+1.50", 150), ("1.", 100), (".5", 50),
    ("1e1", 1000), (Decimal("100E-2"), 100), ("\t2.00\n", 200), ("1E+13", 10**15),
])
def test_unusual_but_exact_spellings_convert(value, minor):
    assert to_minor(value, "USD") == minor


def test_zero_is_allowed_only_when_asked_even_with_extreme_exponents():
    assert to_minor(Decimal("0E-9999999"), "USD", allow_zero=True) == 0
    assert to_minor("-0", "USD", allow_zero=True) == 0
    with pytest.raises(LedgerError) as exc:
        to_minor(Decimal("0E+999999"), "USD")
    assert exc.value.code == INVALID_AMOUNT


def _check_amount(value: object, code: str) -> None:
    try:
        minor = to_minor(value, code)
    except LedgerError as exc:
        assert exc.code in AMOUNT_CODES, exc.code
        return
    assert type(minor) is int and 0 < minor <= AMOUNT_MAX_MINOR
    expected = Decimal(value.strip(" \t\r\n")) if isinstance(value, str) else value
    assert from_minor(minor, code) == expected


@given(code=currency_codes, text=st.text(max_size=45))
def test_any_text_is_an_amount_or_a_stable_rejection(code, text):
    _check_amount(text, code)


_number_text = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "+", "-"]),
    st.text(alphabet="0123456789", max_size=18),
    st.one_of(st.just(""), st.text(alphabet="0123456789", max_size=8).map(lambda d: "." + d)),
    st.one_of(st.just(""), st.integers(-(10**12), 10**12).map(lambda e: f"E{e:+d}")),
)


@given(code=currency_codes, text=_number_text)
def test_decimal_looking_text_with_any_exponent_is_an_amount_or_a_stable_rejection(code, text):
    _check_amount(text, code)


@given(code=currency_codes, sign=st.integers(0, 1), digits=st.lists(st.integers(0, 9), min_size=1, max_size=60),
       exponent=st.integers(MIN_ETINY, MAX_EMAX))
def test_any_decimal_is_an_amount_or_a_stable_rejection(code, sign, digits, exponent):
    try:
        value = Decimal((sign, tuple(digits), exponent))
    except InvalidOperation:  # beyond what Decimal itself can represent: no such input exists
        assume(False)
    _check_amount(value, code)


@given(code=currency_codes, value=st.decimals(allow_nan=True, allow_infinity=True))
def test_hypothesis_decimals_are_amounts_or_stable_rejections(code, value):
    _check_amount(value, code)


@given(digits=st.lists(st.integers(0, 9), min_size=1, max_size=35), exponent=st.integers(-60, 3),
       minor=st.integers(1, AMOUNT_MAX_MINOR))
def test_conversion_is_exact_then_rounded_once(digits, exponent, minor):
    from fractions import Fraction

    from qenex.kernel.money import RATE_DIGITS_MAX, convert_minor

    rate = Decimal((0, tuple(digits), exponent))
    if rate == 0:
        with pytest.raises(LedgerError):
            convert_minor(minor, "USD", rate, "JPY", ROUND_HALF_EVEN)
        return
    try:
        converted = convert_minor(minor, "USD", rate, "JPY", ROUND_HALF_EVEN)
    except LedgerError as exc:
        assert exc.code == INVALID_AMOUNT and len(rate.as_tuple().digits) > RATE_DIGITS_MAX
        return
    exact = Fraction(minor, 100) * Fraction(rate)  # USD cents to yen: exact, then one rounding
    assert abs(converted - exact) <= Fraction(1, 2)
    assert converted == round(exact)  # Python rounds a Fraction half to even, like ROUND_HALF_EVEN
