"""Cards: Luhn, brands by IIN range, lengths, expiry, masking, ISO 8583 0100/0110/0200/0210/0400/0410.

Test PANs are generated with the Luhn check digit (no real or well-known test card number
is written down here).
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qenex.errors import QenexError
from qenex.payments import cards
from qenex.payments.cards.iso8583 import CardMessage
from qenex.payments.common import PaymentFormatError

WHEN = datetime(2024, 3, 4, 9, 30, 15)


def pan(prefix: str, length: int, filler: str = "0") -> str:
    body = (prefix + filler * length)[: length - 1]
    return body + str(cards.luhn_check_digit(body))


@pytest.mark.parametrize(
    ("prefix", "length", "brand"),
    [
        ("4", 16, "visa"),
        ("4", 13, "visa"),
        ("4", 19, "visa"),
        ("51", 16, "mastercard"),
        ("55", 16, "mastercard"),
        ("2221", 16, "mastercard"),
        ("2720", 16, "mastercard"),
        ("34", 15, "amex"),
        ("37", 15, "amex"),
        ("6011", 16, "discover"),
        ("65", 16, "discover"),
        ("644", 19, "discover"),
        ("3528", 16, "jcb"),
        ("3589", 19, "jcb"),
        ("62", 16, "unionpay"),
        ("81", 19, "unionpay"),
        ("36", 14, "diners"),
        ("300", 14, "diners"),
        ("38", 16, "diners"),
    ],
)
def test_brand_detection_and_valid_lengths(prefix: str, length: int, brand: str) -> None:
    number = pan(prefix, length)
    result = cards.check_pan(number)
    assert result.brand is not None and result.brand.key == brand
    assert result.valid, result
    assert cards.validate_pan(number).valid


def test_mastercard_2_series_bounds_and_wrong_lengths() -> None:
    assert cards.brand_of(pan("222099", 16)) is None
    assert cards.brand_of(pan("272100", 16)) is None
    assert not cards.check_pan(pan("51", 15)).valid  # Mastercard issues 16 digits
    assert not cards.check_pan(pan("34", 16)).valid  # Amex issues 15
    report = cards.validate_pan(pan("51", 15))
    assert {i.code for i in report.errors} == {"card_length"}


def test_luhn() -> None:
    number = pan("4", 16)
    assert cards.luhn_valid(number)
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not cards.luhn_valid(broken)
    report = cards.validate_pan(broken)
    assert [i.code for i in report.errors] == ["card_luhn"]
    assert number not in str(report.to_dict())  # never the full PAN in a report
    assert not cards.luhn_valid("") and not cards.luhn_valid("12a4")


def test_luhn_cases_from_shared(shared_dir: Path) -> None:
    path = shared_dir / "payments" / "dev" / "luhn_cases.csv"
    if not path.is_file():
        pytest.skip("luhn_cases.csv absent")
    rows = list(csv.DictReader(path.open()))
    assert rows
    for row in rows:
        assert cards.luhn_valid(row["value"]) == (row["expected"] == "valid"), row["value"]


def test_masking_shows_at_most_bin_and_last_four() -> None:
    number = pan("51", 16)
    assert cards.mask(number) == number[:6] + "******" + number[-4:]
    assert cards.mask(number, bin_digits=8) == number[:8] + "****" + number[-4:]
    amex = pan("34", 15)
    assert cards.mask(amex, bin_digits=8) == amex[:6] + "*****" + amex[-4:]  # 8-digit BIN only for 16+
    assert cards.mask("4000 0000 0000 0002") == "400000******0002"
    assert cards.mask("12345") == "*****"
    with pytest.raises(cards.CardError):
        cards.mask("4000-abcd")
    with pytest.raises(cards.CardError):
        cards.mask(number, bin_digits=10)


def test_expiry_is_end_of_month() -> None:
    assert cards.expiry_end("02/24") == date(2024, 2, 29)
    assert cards.expiry_end("1225") == date(2025, 12, 31)
    assert cards.expiry_end("07/2026") == date(2026, 7, 31)
    assert not cards.is_expired("03/24", date(2024, 3, 31))
    assert cards.is_expired("03/24", date(2024, 4, 1))
    for bad in ("13/24", "00/24", "1/2", "ab/cd", "", "12/24/2024"):
        with pytest.raises(cards.CardError):
            cards.expiry_end(bad)
    report = cards.validate_pan(pan("4", 16), expiry="01/20", today=date(2024, 1, 1))
    assert [i.code for i in report.errors] == ["card_expired"]


def _request(financial: bool = False, expiry: str = "12/29") -> CardMessage:
    return cards.authorization_request(
        pan=pan("4", 16),
        amount="125.50",
        currency="USD",
        stan=42,
        terminal_id="TERM0001",
        merchant_id="MERCHANT000001",
        when=WHEN,
        expiry=expiry,
        financial=financial,
    )


@pytest.mark.parametrize("financial", [False, True])
def test_request_response_round_trip(financial: bool) -> None:
    req = _request(financial)
    wire = cards.render(req)
    assert wire[:4] == (b"0200" if financial else b"0100")
    assert len(wire[4:12]) == 8  # binary primary bitmap
    decoded = cards.parse(wire)
    assert decoded == req
    assert decoded.amount_minor == 12550 and decoded.fields["49"] == "840" and decoded.fields["14"] == "2912"
    assert cards.validate(wire).valid
    resp = cards.response(decoded, response_code="00", authorization_code="A1B2C3")
    assert resp.mti == ("0210" if financial else "0110")
    back = cards.parse(cards.render(resp))
    assert back.fields["38"] == "A1B2C3" and back.fields["11"] == "000042"
    assert cards.validate(back).valid
    summary = cards.describe(back)
    assert summary["amount"] == "125.50" and summary["currency"] == "USD" and "*" in summary["pan"]
    declined = cards.response(decoded, response_code="05")
    assert "38" not in declined.fields and cards.validate(cards.render(declined)).valid
    with pytest.raises(PaymentFormatError):
        cards.response(decoded, response_code="00")  # an approval needs the issuer's code


def test_reversal() -> None:
    req = _request()
    rev = cards.reversal(req, stan=43, when=WHEN)
    assert rev.mti == "0400" and rev.fields["90"].startswith("0100000042" + "0304093015")
    assert len(rev.fields["90"]) == 42
    wire = cards.render(rev)
    assert cards.validate(wire).valid
    ack = cards.response(cards.parse(wire), response_code="00")
    assert ack.mti == "0410" and cards.validate(cards.render(ack)).valid


def test_repr_never_shows_the_pan() -> None:
    req = _request()
    assert req.pan not in repr(req)
    assert req.pan[:6] + "******" + req.pan[-4:] in repr(req)


def test_validation_rules() -> None:
    req = _request()
    bad = CardMessage("0100", dict(req.fields))
    bad.fields["2"] = req.pan[:-1] + str((int(req.pan[-1]) + 1) % 10)
    bad.fields["49"] = "999"
    bad.fields["7"] = "1399999999"
    del bad.fields["41"]
    report = cards.validate(cards.render(bad))
    assert {(i.code, i.location) for i in report.errors} == {
        ("card_luhn", "field 2"),
        ("iso8583_currency", "field 49"),
        ("iso8583_date", "field 7"),
        ("iso8583_field_missing", "field 41"),
    }
    approved = CardMessage("0110", {k: v for k, v in req.fields.items()} | {"39": "00"})
    assert "iso8583_field_missing" in {i.code for i in cards.validate(approved).errors}


def test_track2_and_processing_code() -> None:
    req = _request()
    good = CardMessage("0100", dict(req.fields) | {"35": req.pan + "=29121010000000000"})
    assert cards.validate(cards.render(good)).valid
    other = pan("4", 16, filler="1")
    bad = CardMessage("0100", dict(req.fields) | {"35": other + "=29131010000000000", "3": "990000"})
    report = cards.validate(cards.render(bad))
    assert {(i.code, i.location) for i in report.errors} == {
        ("iso8583_track2", "field 35"),
        ("iso8583_processing_code", "field 3"),
    }
    assert len([i for i in report.errors if i.code == "iso8583_track2"]) == 2
    assert other not in str(report.to_dict()) and req.pan not in repr(bad)


def test_builders_refuse_bad_input() -> None:
    good = pan("4", 16)
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    common = dict(stan=1, terminal_id="T", merchant_id="M", when=WHEN)
    with pytest.raises(cards.CardError):
        cards.authorization_request(pan=bad, amount="1", currency="USD", **common)
    with pytest.raises(cards.CardError):
        cards.authorization_request(pan=good, amount="1", currency="XXX", **common)
    with pytest.raises(QenexError) as exc:
        cards.authorization_request(pan=good, amount="1.234", currency="USD", **common)
    assert exc.value.code == "amount_precision"


def test_decode_errors() -> None:
    for data in (b"", b"0100", b"0100" + b"\xff" * 8, "zz", b"0100" + bytes(8) + b"junk", b"9999" + bytes(8)):
        with pytest.raises(PaymentFormatError):
            msg = cards.parse(data)
            if msg.mti not in cards.MESSAGE_TYPES:
                raise PaymentFormatError("unsupported")
        assert not cards.validate(data).valid


def test_unknown_option_is_an_error_parse_raises_and_validate_reports() -> None:
    wire = cards.render(_request())
    with pytest.raises(PaymentFormatError) as info:
        cards.parse(wire, strict=True)
    assert info.value.code == "card_unknown_option" and "'strict'" in info.value.message
    report = cards.validate(wire, strict=True)
    assert not report.valid and [i.code for i in report.errors] == ["card_unknown_option"]
    assert cards.validate(_request(), strict=True).valid  # a parsed message has no parse options to check


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_never_crashes(data: bytes) -> None:
    wire = cards.render(_request())
    for candidate in (data, wire[:12] + data, wire[: len(data)] + data):
        try:
            cards.parse(candidate)
        except PaymentFormatError:
            pass
        cards.validate(candidate)


def _with(fields: dict[str, str], mti: str = "0100") -> CardMessage:
    base = dict(_request().fields)
    base.update(fields)
    return CardMessage(mti, {k: v for k, v in base.items() if v})


@pytest.mark.parametrize(
    ("expiry", "sent", "today", "expired"),
    [
        ("2402", "0304093015", date(2024, 3, 10), True),  # sent 4 March 2024, card ended February
        ("2403", "0304093015", date(2024, 3, 10), False),  # good through 31 March
        ("2402", "0229120000", date(2024, 3, 10), False),  # sent on its last day (a leap day)
        ("2412", "1231235959", date(2025, 1, 1), False),  # field 7 of yesterday is 2024, not 2025
        ("2412", "0101000001", date(2024, 12, 31), True),  # ... and of tomorrow is 2025
    ],
)
def test_iso8583_expiry_is_judged_on_the_transmission_date(expiry, sent, today, expired) -> None:
    msg = _with({"14": expiry, "7": sent})
    report = cards.validate(cards.render(msg), today=today)
    codes = [(i.code, i.location) for i in report.errors]
    assert codes == ([("card_expired", "field 14")] if expired else []), codes


def test_iso8583_expiry_without_transmission_date_uses_today() -> None:
    msg = _with({"14": "2402", "7": ""})
    report = cards.validate(msg, today=date(2024, 3, 1))
    assert ("card_expired", "field 14") in [(i.code, i.location) for i in report.errors]
    assert "today 2024-03-01" in next(i.message for i in report.errors if i.code == "card_expired")
    assert "card_expired" not in {i.code for i in cards.validate(msg, today=date(2024, 2, 29)).errors}


def test_iso8583_reversal_of_an_expired_card_is_not_refused() -> None:
    rev = cards.reversal(_with({"14": "2402"}), stan=43, when=WHEN)
    assert rev.fields["14"] == "2402"
    assert cards.validate(cards.render(rev), today=date(2024, 3, 10)).valid


def test_authorization_request_refuses_an_expired_card() -> None:
    with pytest.raises(cards.CardError) as exc:
        _request(expiry="02/24")  # sent 4 March 2024
    assert exc.value.code == "card_expired"
