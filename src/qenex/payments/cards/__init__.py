"""Cards: PAN checks (Luhn, brand, length), expiry, PCI masking, and ISO 8583 messages.

    from qenex.payments import cards
    cards.check_pan(pan).valid                     # Luhn + brand IIN range + brand length
    cards.mask(pan)                                # first six and last four at most
    req = cards.authorization_request(pan=..., amount="12.34", currency="USD", stan=1, ...)
    wire = cards.render(req)                       # ISO 8583 bytes (pyiso8583, binary bitmap)
    msg = cards.parse(wire); report = cards.validate(wire)
    resp = cards.response(msg, response_code="00", authorization_code=issuer_code)

Amounts are integer minor units of the currency in field 49.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from qenex.kernel.currencies import CURRENCIES
from qenex.kernel.money import format_minor, to_minor
from qenex.payments.cards.iso8583 import (
    APPROVED,
    ECHO_FIELDS,
    MESSAGE_TYPES,
    SPEC,
    CardMessage,
    check_message,
    currency_alpha,
    decode,
    encode,
)
from qenex.payments.cards.pan import (
    BRANDS,
    Brand,
    CardError,
    PanCheck,
    brand_of,
    check_pan,
    expiry_end,
    is_expired,
    luhn_check_digit,
    luhn_valid,
    mask,
    normalize,
)
from qenex.payments.common import PaymentFormatError, ValidationReport, parsed_or_reported, reject_options

__all__ = [
    "BRANDS",
    "MESSAGE_TYPES",
    "SPEC",
    "Brand",
    "CardError",
    "CardMessage",
    "PanCheck",
    "authorization_request",
    "brand_of",
    "check_pan",
    "describe",
    "expiry_end",
    "is_expired",
    "luhn_check_digit",
    "luhn_valid",
    "mask",
    "parse",
    "render",
    "response",
    "reversal",
    "to_bytes",
    "to_hex",
    "validate",
    "validate_pan",
]

_RESPONSE_CODE_CHARS = 2
_AUTH_CODE_CHARS = 6


def parse(data: str | bytes, **options: Any) -> CardMessage:
    """Decode an ISO 8583 message (bytes, or their hex text)."""
    reject_options(options, "card", "card_unknown_option")
    return decode(data)


def render(msg: CardMessage) -> bytes:
    return encode(msg)


def to_bytes(msg: CardMessage) -> bytes:
    """The ISO 8583 wire bytes of ``msg``: `render`."""
    return encode(msg)


def to_hex(msg: CardMessage) -> str:
    """The wire bytes as upper-case hex text, which `parse` and `validate` also read."""
    return encode(msg).hex().upper()


def validate(data: str | bytes | CardMessage, *, today: date | None = None, **options: Any) -> ValidationReport:
    """Every rule of the message type; never raises for bad input. The card's expiry (field 14)
    is judged on the transmission date (field 7, its year the one nearest ``today``), else on
    ``today`` (default: the current date): an expired card is ``card_expired``."""
    report = ValidationReport(format="card")
    msg = parsed_or_reported(data, CardMessage, parse, report, options)
    if msg is None:
        return report
    report.message_type = msg.mti
    check_message(msg, report, today=today)
    return report


def validate_pan(pan: str, *, expiry: str | None = None, today: Any = None) -> ValidationReport:
    """Luhn, brand and length of a PAN (and its expiry when given); messages show it masked."""
    report = ValidationReport(format="card", message_type="PAN")
    try:
        result = check_pan(pan)
    except CardError as exc:
        report.add(exc.code, exc.message, "pan")
        return report
    report.message_type = result.brand.name if result.brand else "PAN"
    if result.brand is None:
        report.add("card_brand", f"{result.masked} is in no known brand's IIN range", "pan")
    if not result.length_ok:
        report.add("card_length", f"{result.masked} has a length its brand does not issue", "pan")
    if not result.luhn_ok:
        report.add("card_luhn", f"{result.masked} fails the Luhn check", "pan")
    if expiry is not None:
        try:
            if is_expired(expiry, today):
                report.add("card_expired", "the card has expired", "expiry")
        except CardError as exc:
            report.add(exc.code, exc.message, "expiry")
    return report


def describe(msg: CardMessage) -> dict[str, Any]:
    f = msg.fields
    alpha = currency_alpha(f.get("49", ""))
    minor = msg.amount_minor
    amount = format_minor(minor, alpha) if alpha is not None and minor is not None else f.get("4")
    pan = f.get("2", "")
    brand = None
    try:
        brand = brand_of(pan) if pan else None
        shown = mask(pan) if pan else ""
    except CardError:
        shown = "*" * min(len(pan), 19)
    return {
        "format": "card",
        "message_type": msg.mti,
        "description": MESSAGE_TYPES.get(msg.mti, ""),
        "pan": shown,
        "brand": brand.name if brand else None,
        "amount": amount,
        "currency": alpha,
        "stan": f.get("11"),
        "terminal": f.get("41"),
        "response_code": f.get("39"),
        "fields": sorted(f, key=int),
    }


def authorization_request(
    *,
    pan: str,
    amount: Decimal | str | int,
    currency: str,
    stan: int,
    terminal_id: str,
    merchant_id: str,
    when: datetime,
    expiry: str | None = None,
    processing_code: str = "000000",
    pos_entry_mode: str = "012",
    retrieval_reference: str | None = None,
    financial: bool = False,
) -> CardMessage:
    """An 0100 authorization request (0200 financial request when ``financial``)."""
    digits = normalize(pan)
    if not check_pan(digits).valid:
        raise CardError(f"card number {mask(digits)} is not a valid PAN", code="card_pan_invalid")
    cur = CURRENCIES.get(currency)
    if cur is None:
        raise CardError("currency must be an ISO 4217 alphabetic code", code="card_currency")
    if not 0 <= stan <= 999_999:
        raise CardError("STAN must be 0-999999", code="card_stan")
    fields = {
        "2": digits,
        "3": processing_code,
        "4": f"{to_minor(amount, cur, allow_zero=True):012d}",
        "7": when.strftime("%m%d%H%M%S"),
        "11": f"{stan:06d}",
        "12": when.strftime("%H%M%S"),
        "13": when.strftime("%m%d"),
        "22": pos_entry_mode,
        "37": (retrieval_reference or f"{when:%y%j}{stan:06d}")[:12].ljust(12),
        "41": terminal_id.ljust(8)[:8],
        "42": merchant_id.ljust(15)[:15],
        "49": cur.numeric,
    }
    if expiry is not None:
        end = expiry_end(expiry)
        if when.date() > end:
            raise CardError(f"the card expired at the end of {end:%m/%Y}", code="card_expired")
        fields["14"] = f"{end:%y%m}"
    msg = CardMessage("0200" if financial else "0100", fields)
    encode(msg)  # refuse now what the wire would refuse later
    return msg


def response(request: CardMessage, *, response_code: str, authorization_code: str | None = None) -> CardMessage:
    """The 0110/0210/0410 answering ``request``: echoed fields plus 39 (and 38 from the issuer)."""
    if request.mti not in ("0100", "0200", "0400"):
        raise PaymentFormatError(f"{request.mti[:4]} is not a request", code="iso8583_mti")
    if len(response_code) != _RESPONSE_CODE_CHARS or not response_code.isalnum():
        raise PaymentFormatError("response code is two alphanumeric characters", code="iso8583_response_code")
    fields: dict[str, str] = {k: request.fields[k] for k in ECHO_FIELDS if k in request.fields}
    fields["39"] = response_code
    if response_code == APPROVED and request.mti != "0400":
        if authorization_code is None or len(authorization_code) != _AUTH_CODE_CHARS:
            raise PaymentFormatError(
                "an approval needs the issuer's 6-character authorization code", code="iso8583_auth_code"
            )
        fields["38"] = authorization_code
    msg = CardMessage(request.mti[:2] + "1" + request.mti[3], fields)
    encode(msg)
    return msg


def reversal(original: CardMessage, *, stan: int, when: datetime, acquirer_id: str = "") -> CardMessage:
    """An 0400 reversing ``original`` (an 0100 or 0200): field 90 identifies it."""
    if original.mti not in ("0100", "0200"):
        raise PaymentFormatError("only authorization and financial requests are reversed", code="iso8583_mti")
    f = original.fields
    field90 = original.mti + f.get("11", "").zfill(6) + f.get("7", "").zfill(10) + acquirer_id.zfill(11) + "0" * 11
    fields: dict[str, str] = {k: f[k] for k in ("2", "3", "4", "41", "42", "49", "14") if k in f}
    fields.update({"7": when.strftime("%m%d%H%M%S"), "11": f"{stan:06d}", "90": field90})
    msg = CardMessage("0400", fields)
    encode(msg)
    return msg
