"""Fedwire Funds Service messages in FAIM {tag} format: read, write, validate.

    from qenex.payments import fedwire
    msg = fedwire.parse(text)            # FedwireMessage; PaymentFormatError if it is not FAIM
    report = fedwire.validate(text)      # per business function code: mandatory/prohibited tags
    msg = fedwire.customer_transfer(...) # a CTR built from its parts; str(msg) is the FAIM text

Amounts are integer cents ({2000} is twelve digits of cents).
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from qenex.kernel.money import format_minor
from qenex.payments.common import PaymentFormatError, ValidationReport, parsed_or_reported, reject_options
from qenex.payments.fedwire.message import FedwireMessage, Tag, read_message
from qenex.payments.fedwire.tags import BUSINESS_FUNCTION_CODES, LOCAL_INSTRUMENTS, TAGS
from qenex.payments.fedwire.validator import check_message

__all__ = [
    "BUSINESS_FUNCTION_CODES",
    "LOCAL_INSTRUMENTS",
    "TAGS",
    "FedwireMessage",
    "Tag",
    "describe",
    "new_message",
    "parse",
    "render",
    "customer_transfer",
    "to_string",
    "validate",
]

AMOUNT_MAX_CENTS = 10**12 - 1  # {2000} holds twelve digits


def parse(data: str | bytes, **options: Any) -> FedwireMessage:
    """Read a FAIM message; raises PaymentFormatError when the input holds no {tag} sequence."""
    reject_options(options, "Fedwire", "fedwire_unknown_option")
    return read_message(data)


def validate(data: str | bytes | FedwireMessage, **options: Any) -> ValidationReport:
    """Every problem of the message, located by {tag} and element; never raises for bad input."""
    report = ValidationReport(format="fedwire")
    msg = parsed_or_reported(data, FedwireMessage, parse, report, options)
    if msg is None:
        return report
    report.message_type = msg.business_function_code or "FAIM"
    check_message(msg, report)
    return report


def render(msg: FedwireMessage) -> str:
    return msg.to_string()


def to_string(msg: FedwireMessage) -> str:
    """The FAIM text of ``msg`` ({tag}elements, one tag a line): `render`."""
    return msg.to_string()


def describe(msg: FedwireMessage) -> dict[str, Any]:
    cents = msg.amount_cents
    bfc = msg.business_function_code
    return {
        "format": "fedwire",
        "business_function_code": bfc,
        "business_function": BUSINESS_FUNCTION_CODES.get(bfc, ""),
        "type_subtype": msg.type_subtype,
        "imad": msg.imad,
        "amount": format_minor(cents, "USD") if cents is not None else None,
        "currency": "USD",
        "sender": {"aba": msg.get("3100", "sender_aba"), "name": msg.get("3100", "sender_short_name")},
        "receiver": {"aba": msg.get("3400", "receiver_aba"), "name": msg.get("3400", "receiver_short_name")},
        "sender_reference": msg.get("3320", "sender_reference"),
        "originator": msg.get("5000", "name"),
        "beneficiary": msg.get("4200", "name"),
        "tags": [f"{{{t}}}" for t in msg.tags],
    }


def new_message(
    *,
    business_function_code: str,
    type_subtype: str,
    amount_cents: int,
    sender_aba: str,
    sender_name: str,
    receiver_aba: str,
    receiver_name: str,
    input_source: str,
    input_sequence: int,
    cycle_date: date,
    test: bool = False,
    user_request_correlation: str = "",
) -> FedwireMessage:
    """The mandatory tags of any message; add others with ``msg.set(tag, *elements)``."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not 0 <= amount_cents <= AMOUNT_MAX_CENTS:
        raise PaymentFormatError(
            "amount must be an integer number of cents of at most 12 digits", code="fedwire_amount"
        )
    if not 0 <= input_sequence <= 999_999:
        raise PaymentFormatError("input sequence number must be 0-999999", code="fedwire_imad")
    correlation = user_request_correlation or secrets.token_hex(4).upper()
    msg = FedwireMessage()
    msg.set("1500", "30", correlation[:8].ljust(8), "T" if test else "P", "")
    msg.set("1510", type_subtype[:2], type_subtype[2:])
    msg.set("1520", cycle_date.strftime("%Y%m%d"), input_source.ljust(8)[:8], f"{input_sequence:06d}")
    msg.set("2000", f"{amount_cents:012d}")
    msg.set("3100", sender_aba, sender_name)
    msg.set("3400", receiver_aba, receiver_name)
    msg.set("3600", business_function_code)
    return msg


def customer_transfer(
    *,
    amount_cents: int,
    sender_aba: str,
    sender_name: str,
    receiver_aba: str,
    receiver_name: str,
    originator: tuple[str, str, str],
    beneficiary: tuple[str, str, str],
    sender_reference: str,
    input_source: str,
    input_sequence: int,
    cycle_date: date,
    remittance: tuple[str, ...] = (),
    test: bool = False,
) -> FedwireMessage:
    """A CTR (customer transfer, type 10 sub-type 00). Parties are (id code, identifier, name)."""
    msg = new_message(
        business_function_code="CTR",
        type_subtype="1000",
        amount_cents=amount_cents,
        sender_aba=sender_aba,
        sender_name=sender_name,
        receiver_aba=receiver_aba,
        receiver_name=receiver_name,
        input_source=input_source,
        input_sequence=input_sequence,
        cycle_date=cycle_date,
        test=test,
    )
    msg.set("3320", sender_reference)
    msg.set("4200", *beneficiary)
    msg.set("5000", *originator)
    if remittance:
        msg.set("6000", *remittance)
    return msg
