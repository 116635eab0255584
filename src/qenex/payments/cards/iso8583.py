"""ISO 8583:1987 authorization (0100/0110), financial (0200/0210) and reversal (0400/0410)
messages, encoded and decoded by pyiso8583 with the field specification below.

Wire layout: 4 ASCII MTI digits, an 8-byte binary primary bitmap (and a binary secondary
bitmap as field 1 when a field above 64 is present), fields in ASCII; LLVAR/LLLVAR lengths in
ASCII digits. Responses echo the request's keys and carry field 39; nothing here invents an
authorization code: the issuer supplies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import iso8583

from qenex.kernel.currencies import CURRENCIES
from qenex.payments.cards.pan import CardError, expiry_end, expiry_from_yymm, is_digits, luhn_valid, mask
from qenex.payments.common import PaymentFormatError, ValidationReport

ISO8583_MESSAGE_BYTES_MAX: Final = 8192


def _f(desc: str, max_len: int, len_type: int = 0, enc: str = "ascii") -> dict[str, Any]:
    return {"data_enc": enc, "len_enc": "ascii", "len_type": len_type, "max_len": max_len, "desc": desc}


SPEC: Final[dict[str, dict[str, Any]]] = {
    "h": _f("Message Header", 0),
    "t": _f("Message Type Indicator", 4),
    "p": _f("Bitmap, Primary", 8, enc="b"),
    "1": _f("Bitmap, Secondary", 8, enc="b"),
    "2": _f("Primary Account Number", 19, 2),
    "3": _f("Processing Code", 6),
    "4": _f("Amount, Transaction", 12),
    "5": _f("Amount, Settlement", 12),
    "6": _f("Amount, Cardholder Billing", 12),
    "7": _f("Transmission Date and Time", 10),
    "11": _f("System Trace Audit Number", 6),
    "12": _f("Time, Local Transaction", 6),
    "13": _f("Date, Local Transaction", 4),
    "14": _f("Date, Expiration", 4),
    "15": _f("Date, Settlement", 4),
    "18": _f("Merchant Type", 4),
    "19": _f("Acquiring Institution Country Code", 3),
    "22": _f("Point of Service Entry Mode", 3),
    "23": _f("Card Sequence Number", 3),
    "25": _f("Point of Service Condition Code", 2),
    "32": _f("Acquiring Institution Identification Code", 11, 2),
    "33": _f("Forwarding Institution Identification Code", 11, 2),
    "35": _f("Track 2 Data", 37, 2),
    "37": _f("Retrieval Reference Number", 12),
    "38": _f("Authorization Identification Response", 6),
    "39": _f("Response Code", 2),
    "41": _f("Card Acceptor Terminal Identification", 8),
    "42": _f("Card Acceptor Identification Code", 15),
    "43": _f("Card Acceptor Name/Location", 40),
    "44": _f("Additional Response Data", 25, 2),
    "48": _f("Additional Data - Private", 999, 3),
    "49": _f("Currency Code, Transaction", 3),
    "50": _f("Currency Code, Settlement", 3),
    "52": _f("Personal Identification Number Data", 8, enc="b"),
    "54": _f("Additional Amounts", 120, 3),
    "55": _f("ICC Data", 255, 3, enc="b"),
    "60": _f("Reserved National", 999, 3),
    "63": _f("Reserved Private", 999, 3),
    "64": _f("Message Authentication Code", 8, enc="b"),
    "90": _f("Original Data Elements", 42),
    "95": _f("Replacement Amounts", 42),
    "102": _f("Account Identification 1", 28, 2),
    "103": _f("Account Identification 2", 28, 2),
    "128": _f("Message Authentication Code", 8, enc="b"),
}
_FIXED_NUMERIC: Final = frozenset(
    {"3", "4", "5", "6", "7", "11", "12", "13", "14", "15", "18", "19", "22", "23", "25", "49", "50", "90"}
)
_BINARY: Final = frozenset(k for k, v in SPEC.items() if v["data_enc"] == "b" and k not in ("p", "1"))
SENSITIVE_FIELDS: Final = frozenset({"2", "35", "52", "55"})

MESSAGE_TYPES: Final = {
    "0100": "authorization request",
    "0110": "authorization response",
    "0200": "financial request",
    "0210": "financial response",
    "0400": "reversal request",
    "0410": "reversal response",
}
REQUIRED_FIELDS: Final = {
    "0100": ("2", "3", "4", "7", "11", "41", "49"),
    "0110": ("3", "4", "7", "11", "39", "41"),
    "0200": ("2", "3", "4", "7", "11", "41", "49"),
    "0210": ("3", "4", "7", "11", "39", "41"),
    "0400": ("2", "3", "4", "7", "11", "41", "49", "90"),
    "0410": ("3", "4", "7", "11", "39", "41", "90"),
}
# Fields a response copies from its request (ISO 8583:1987, "mandatory echo").
ECHO_FIELDS: Final[tuple[str, ...]] = ("2", "3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49", "90")
APPROVED: Final = "00"
# Processing code positions 1-2, transaction type (ISO 8583:1987 Annex A).
PROCESSING_TYPES: Final = {
    "00": "goods and services",
    "01": "cash",
    "02": "debit adjustment",
    "09": "goods and services with cash disbursement",
    "11": "quasi-cash",
    "17": "cash advance",
    "20": "returns / refund",
    "21": "deposit",
    "22": "credit adjustment",
    "28": "payment",
    "30": "available funds inquiry",
    "31": "balance inquiry",
    "40": "cardholder accounts transfer",
}


@dataclass(slots=True)
class CardMessage:
    """A decoded ISO 8583 message. ``fields`` maps field numbers ("2", "39") to text
    (binary fields as upper-case hex). ``repr`` and ``describe`` never show a full PAN."""

    mti: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def pan(self) -> str:
        return self.fields.get("2", "")

    @property
    def amount_minor(self) -> int | None:
        raw = self.fields.get("4", "")
        return int(raw) if is_digits(raw) else None

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in SENSITIVE_FIELDS - {"2"} else v) for k, v in self.fields.items()}
        if "2" in shown:
            shown["2"] = _safe_mask(shown["2"])
        return f"CardMessage(mti={self.mti!r}, fields={shown!r})"

    def to_bytes(self) -> bytes:
        return encode(self)


def _safe_mask(pan: str) -> str:
    try:
        return mask(pan)
    except CardError:
        return "*" * min(len(pan), 19)


def encode(msg: CardMessage) -> bytes:
    if msg.mti not in MESSAGE_TYPES:
        raise PaymentFormatError(f"unsupported message type '{msg.mti[:4]}'", location="MTI", code="iso8583_mti")
    doc: dict[str, Any] = {"t": msg.mti}
    for key, value in msg.fields.items():
        if key not in SPEC or key in ("h", "t", "p", "1"):
            raise PaymentFormatError(
                f"field {key[:4]} is not in the field specification", location=f"field {key[:4]}", code="iso8583_field"
            )
        doc[key] = bytes.fromhex(value) if key in _BINARY and _is_hex(value) else value
    try:
        raw, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as exc:
        raise PaymentFormatError(_clean(str(exc)), location=_field_of(exc), code="iso8583_encode") from None
    return bytes(raw)


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _clean(message: str) -> str:
    # pyiso8583 quotes offending values; a PAN must not reach an error message.
    return message.split(": ")[0][:200]


def _field_of(exc: Exception) -> str:
    fld = getattr(exc, "field", None)
    return f"field {fld}" if fld else ""


def decode(data: bytes | str) -> CardMessage:
    """Decode wire bytes (or their hex text). Raises PaymentFormatError only."""
    if isinstance(data, str):
        text = data.strip()
        if not _is_hex(text):
            raise PaymentFormatError("ISO 8583 input must be bytes or hex text", code="iso8583_input")
        data = bytes.fromhex(text)
    if not isinstance(data, bytes | bytearray):
        raise PaymentFormatError("ISO 8583 input must be bytes", code="iso8583_input")
    if len(data) > ISO8583_MESSAGE_BYTES_MAX:
        raise PaymentFormatError(f"message exceeds {ISO8583_MESSAGE_BYTES_MAX} bytes", code="iso8583_too_large")
    if len(data) < 12:
        raise PaymentFormatError("message shorter than MTI and bitmap", location="MTI", code="iso8583_decode")
    _check_bitmap_fields(bytes(data))
    try:
        doc, _ = iso8583.decode(bytes(data), SPEC)
    except iso8583.DecodeError as exc:
        raise PaymentFormatError(_clean(str(exc)), location=_field_of(exc), code="iso8583_decode") from None
    fields = {}
    for key, value in doc.items():
        if key in ("h", "t", "p", "1"):
            continue
        fields[key] = value.hex().upper() if isinstance(value, bytes | bytearray) else str(value)
    return CardMessage(str(doc.get("t", "")), fields)


def _check_bitmap_fields(data: bytes) -> None:
    """Every field the bitmaps announce must be in our specification (else pyiso8583 cannot
    know its length)."""
    primary = int.from_bytes(data[4:12], "big")
    bits = [n for n in range(1, 65) if primary >> (64 - n) & 1]
    if 1 in bits:
        if len(data) < 20:
            raise PaymentFormatError("secondary bitmap missing", location="field 1", code="iso8583_decode")
        secondary = int.from_bytes(data[12:20], "big")
        bits += [64 + n for n in range(1, 65) if secondary >> (64 - n) & 1]
    for n in bits:
        if n != 1 and str(n) not in SPEC:
            raise PaymentFormatError(
                f"field {n} is not in the field specification", location=f"field {n}", code="iso8583_field"
            )


# Messages whose field 14 is checked against the transmission date: a reversal (0400/0410)
# undoes an earlier message and may come after the card's expiry month has ended.
EXPIRY_CHECKED_MTIS: Final = frozenset({"0100", "0110", "0200", "0210"})


def transmission_date(mmdd: str, today: date) -> date | None:
    """The calendar date of field 7's MMDD, which carries no year: of last, this and next year
    the one nearest ``today`` (a message is never half a year old or early). None if no such day."""
    month, day = int(mmdd[:2]), int(mmdd[2:4])
    best: date | None = None
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue  # 29 February of a non-leap year
        if best is None or abs((candidate - today).days) < abs((best - today).days):
            best = candidate
    return best


def _check_expiry(f: dict[str, str], report: ValidationReport, today: date) -> None:
    """Field 14 (YYMM): a card is good through the last day of its expiry month, judged on the
    transmission date (field 7) or, without one, on ``today``."""
    end = expiry_end(expiry_from_yymm(f["14"]))
    sent = f.get("7", "")
    when = transmission_date(sent, today) if is_digits(sent) and _valid_mmddhhmmss(sent) else None
    reference = when or today
    if reference > end:
        basis = "transmission date" if when is not None else "today"
        report.add(
            "card_expired",
            f"the card expired at the end of {end:%m/%Y} ({basis} {reference.isoformat()})",
            "field 14",
        )


def check_message(msg: CardMessage, report: ValidationReport, *, today: date | None = None) -> None:
    """Message-type rules: required fields, PAN, amounts, dates, expiry, currency, response code."""
    if msg.mti not in MESSAGE_TYPES:
        report.add("iso8583_mti", f"unsupported message type '{msg.mti[:4]}'", "MTI")
        return
    f = msg.fields
    for key in REQUIRED_FIELDS[msg.mti]:
        if not f.get(key):
            report.add(
                "iso8583_field_missing", f"field {key} ({SPEC[key]['desc']}) is required in {msg.mti}", f"field {key}"
            )
    for key in _FIXED_NUMERIC & f.keys():
        if not (is_digits(f[key]) and len(f[key]) == SPEC[key]["max_len"]):
            report.add("iso8583_numeric", f"field {key} must be {SPEC[key]['max_len']} digits", f"field {key}")
    if f.get("2") and not luhn_valid(f["2"]):
        report.add("card_luhn", f"PAN {_safe_mask(f['2'])} fails the Luhn check", "field 2")
    if is_digits(f.get("7", "")) and not _valid_mmddhhmmss(f["7"]):
        report.add("iso8583_date", "transmission date/time is not MMDDhhmmss", "field 7")
    if is_digits(f.get("14", "")) and len(f["14"]) == SPEC["14"]["max_len"]:
        if not 1 <= int(f["14"][2:]) <= 12:
            report.add("iso8583_date", "expiration date is not YYMM", "field 14")
        elif msg.mti in EXPIRY_CHECKED_MTIS:
            _check_expiry(f, report, today or date.today())
    if is_digits(f.get("49", "")) and not _numeric_currency(f["49"]):
        report.add("iso8583_currency", f"'{f['49']}' is not an ISO 4217 numeric currency code", "field 49")
    if f.get("3") and is_digits(f["3"]) and f["3"][:2] not in PROCESSING_TYPES:
        report.add(
            "iso8583_processing_code", f"transaction type '{f['3'][:2]}' is not a known processing code", "field 3"
        )
    if f.get("35"):
        _check_track2(f, report)
    if msg.mti.endswith("10") and f.get("39") == APPROVED and msg.mti in ("0110", "0210") and not f.get("38"):
        report.add("iso8583_field_missing", "an approved authorization carries field 38", "field 38")


def _check_track2(f: dict[str, str], report: ValidationReport) -> None:
    """Track 2 (ISO/IEC 7813): PAN, separator "=" (or "D"), YYMM expiry, service code; the PAN
    must equal field 2 when both are present."""
    track = f["35"]
    sep = next((i for i, ch in enumerate(track) if ch in "=D"), -1)
    if sep < 12 or not is_digits(track[:sep]) or len(track) < sep + 8 or not is_digits(track[sep + 1 : sep + 8]):
        report.add("iso8583_track2", "track 2 is not PAN=YYMM+service code", "field 35")
        return
    if not 1 <= int(track[sep + 3 : sep + 5]) <= 12:
        report.add("iso8583_track2", "track 2 expiry month is not 01-12", "field 35")
    if f.get("2") and f["2"] != track[:sep]:
        report.add("iso8583_track2", "track 2 PAN differs from field 2", "field 35")


def _valid_mmddhhmmss(v: str) -> bool:
    try:
        datetime(2000, int(v[:2]), int(v[2:4]), int(v[4:6]), int(v[6:8]), int(v[8:10]))
    except ValueError:
        return False
    return True


# ISO 4217 numeric code -> alphabetic code, from the kernel's one currency table.
_NUMERIC_CODES: Final[dict[str, str]] = {c.numeric: c.code for c in CURRENCIES.values()}


def _numeric_currency(code: str) -> bool:
    return code in _NUMERIC_CODES


def currency_alpha(numeric: str) -> str | None:
    """The alphabetic ISO 4217 code of a numeric one (field 49), or None."""
    return _NUMERIC_CODES.get(numeric)
