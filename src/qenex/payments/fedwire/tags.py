"""FAIM (Fedwire Application Interface Manual, format version 30) tag dictionary.

Each tag is a sequence of elements. A fixed element always has its exact length; a variable
element holds up to its maximum and, when shorter, ends with the "*" delimiter (FAIM's
delimited form). Senders that pad variable elements with blanks to their full length and
omit the delimiter (the fixed-width form) are read too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class E:
    """One element: ``fixed`` elements have exactly ``length`` characters; ``check`` names a
    format rule applied by the validator ("digits", "aba", "date8", "alpha", "amount", ...)."""

    name: str
    length: int
    fixed: bool = False
    check: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class TagSpec:
    tag: str
    name: str
    elements: tuple[E, ...]


def _party(tag: str, name: str) -> TagSpec:
    return TagSpec(
        tag,
        name,
        (
            E("identification_code", 1, fixed=True, check="party_id_code"),
            E("identifier", 34),
            E("name", 35),
            E("address_line_1", 35),
            E("address_line_2", 35),
            E("address_line_3", 35),
        ),
    )


def _lines(tag: str, name: str, count: int, width: int = 35) -> TagSpec:
    return TagSpec(tag, name, tuple(E(f"line_{i}", width) for i in range(1, count + 1)))


def _advice(tag: str, name: str) -> TagSpec:
    return TagSpec(
        tag,
        name,
        (
            E("advice_code", 3, fixed=True, check="advice_code"),
            E("line_1", 26),
            *(E(f"line_{i}", 33) for i in range(2, 7)),
        ),
    )


def _cover(tag: str, name: str, lines: int) -> TagSpec:
    return TagSpec(tag, name, (E("swift_field_tag", 5), *(E(f"line_{i}", 35) for i in range(1, lines + 1))))


def _document(tag: str, name: str) -> TagSpec:
    return TagSpec(
        tag,
        name,
        (
            E("document_type_code", 4, fixed=True, check="alnum"),
            E("proprietary_document_type_code", 35),
            E("document_identification_number", 35),
            E("issuer", 35),
        ),
    )


def _remittance_amount(tag: str, name: str) -> TagSpec:
    return TagSpec(tag, name, (E("currency_code", 3, fixed=True, check="alpha"), E("amount", 19, check="dec_dot")))


_ADDRESS: Final = (
    E("address_type", 4),
    E("department", 70),
    E("sub_department", 70),
    E("street_name", 70),
    E("building_number", 16),
    E("post_code", 16),
    E("town_name", 35),
    E("country_sub_division", 35),
    E("country", 2),
    *(E(f"address_line_{i}", 70) for i in range(1, 8)),
)

_SPECS: Final = (
    # Fed-appended tags (on messages received from the Fedwire Funds Service).
    TagSpec(
        "1100",
        "message_disposition",
        (
            E("format_version", 2, fixed=True, check="digits"),
            E("test_production_code", 1, fixed=True, check="test_prod"),
            E("message_duplication_code", 1, fixed=True),
            E("message_status_indicator", 1, fixed=True),
        ),
    ),
    TagSpec(
        "1110",
        "receipt_time_stamp",
        (
            E("receipt_date", 4, fixed=True, check="digits"),
            E("receipt_time", 4, fixed=True, check="digits"),
            E("receipt_application_id", 4, fixed=True),
        ),
    ),
    TagSpec(
        "1120",
        "omad",
        (
            E("output_cycle_date", 8, fixed=True, check="date8"),
            E("output_destination_id", 8, fixed=True),
            E("output_sequence_number", 6, fixed=True, check="digits"),
            E("output_date", 4, fixed=True, check="digits"),
            E("output_time", 4, fixed=True, check="digits"),
            E("output_frb_application_id", 4, fixed=True),
        ),
    ),
    TagSpec(
        "1130",
        "error",
        (
            E("error_category", 1, fixed=True),
            E("error_code", 3, fixed=True),
            E("error_description", 35),
        ),
    ),
    # Mandatory on every message.
    TagSpec(
        "1500",
        "sender_supplied_information",
        (
            E("format_version", 2, fixed=True, check="format_version"),
            E("user_request_correlation", 8, fixed=True),
            E("test_production_code", 1, fixed=True, check="test_prod"),
            E("message_duplication_code", 1, fixed=True, check="duplication"),
        ),
    ),
    TagSpec(
        "1510",
        "type_subtype",
        (
            E("type_code", 2, fixed=True, check="type_code"),
            E("subtype_code", 2, fixed=True, check="subtype_code"),
        ),
    ),
    TagSpec(
        "1520",
        "imad",
        (
            E("input_cycle_date", 8, fixed=True, check="date8"),
            E("input_source", 8, fixed=True, check="alnum"),
            E("input_sequence_number", 6, fixed=True, check="digits"),
        ),
    ),
    TagSpec("2000", "amount", (E("amount", 12, fixed=True, check="digits"),)),
    TagSpec(
        "3100",
        "sender_depository_institution",
        (
            E("sender_aba", 9, fixed=True, check="aba", required=True),
            E("sender_short_name", 18),
        ),
    ),
    TagSpec("3320", "sender_reference", (E("sender_reference", 16),)),
    TagSpec(
        "3400",
        "receiver_depository_institution",
        (
            E("receiver_aba", 9, fixed=True, check="aba", required=True),
            E("receiver_short_name", 18),
        ),
    ),
    TagSpec("3500", "previous_message_identifier", (E("previous_imad", 22, fixed=True),)),
    TagSpec(
        "3600",
        "business_function_code",
        (
            E("business_function_code", 3, fixed=True, check="bfc", required=True),
            E("transaction_type_code", 3),
        ),
    ),
    TagSpec(
        "3610",
        "local_instrument",
        (
            E("local_instrument_code", 4, check="local_instrument", required=True),
            E("proprietary_code", 35),
        ),
    ),
    TagSpec(
        "3620",
        "payment_notification",
        (
            E("payment_notification_indicator", 1, fixed=True, check="digits"),
            E("contact_notification_electronic_address", 2048),
            E("contact_name", 140),
            E("contact_phone_number", 35),
            E("contact_mobile_number", 35),
            E("contact_fax_number", 35),
            E("end_to_end_identification", 35),
        ),
    ),
    TagSpec(
        "3700",
        "charges",
        (
            E("charge_details", 1, fixed=True, check="charge_details"),
            *(E(f"senders_charges_{i}", 15, check="ccy_amount") for i in range(1, 5)),
        ),
    ),
    TagSpec(
        "3710",
        "instructed_amount",
        (
            E("currency_code", 3, fixed=True, check="alpha"),
            E("amount", 15, check="dec_comma"),
        ),
    ),
    TagSpec("3720", "exchange_rate", (E("exchange_rate", 12, check="dec_comma"),)),
    _party("4000", "intermediary_fi"),
    _party("4100", "beneficiary_fi"),
    _party("4200", "beneficiary"),
    TagSpec("4320", "beneficiary_reference", (E("beneficiary_reference", 16),)),
    _party("4400", "account_debited_in_drawdown"),
    _party("5000", "originator"),
    TagSpec(
        "5010",
        "originator_option_f",
        (
            E("party_identifier", 35),
            E("name", 35),
            E("line_1", 35),
            E("line_2", 35),
            E("line_3", 35),
        ),
    ),
    _party("5100", "originator_fi"),
    _party("5200", "instructing_fi"),
    TagSpec("5400", "account_credited_in_drawdown", (E("drawdown_credit_account", 9, fixed=True, check="digits"),)),
    _lines("6000", "originator_to_beneficiary", 4),
    _lines("6100", "receiver_fi_information", 6),
    _advice("6110", "drawdown_debit_account_advice"),
    _lines("6200", "intermediary_fi_information", 6),
    _advice("6210", "intermediary_fi_advice"),
    _lines("6300", "beneficiary_fi_information", 6),
    _advice("6310", "beneficiary_fi_advice"),
    _lines("6400", "beneficiary_information", 6),
    _advice("6410", "beneficiary_advice"),
    TagSpec(
        "6420",
        "method_of_payment",
        (
            E("payment_method", 5, fixed=True, check="payment_method"),
            E("additional_information", 30),
        ),
    ),
    _lines("6500", "fi_to_fi_information", 6),
    TagSpec("7033", "currency_instructed_amount", (E("swift_field_tag", 5), E("amount", 18, check="dec_comma"))),
    _cover("7050", "ordering_customer", 5),
    _cover("7052", "ordering_institution", 5),
    _cover("7056", "intermediary_institution", 5),
    _cover("7057", "beneficiary_customer_fi", 5),
    _cover("7059", "beneficiary_customer", 5),
    _cover("7070", "remittance_information", 4),
    _cover("7072", "sender_to_receiver_information", 6),
    TagSpec(
        "8200",
        "unstructured_addenda",
        (
            E("addenda_length", 4, fixed=True, check="digits"),
            E("addenda_information", 8994),
        ),
    ),
    TagSpec(
        "8250",
        "related_remittance",
        (
            E("remittance_identification", 35),
            E("remittance_location_method", 4),
            E("remittance_location_electronic_address", 2048),
            E("name", 140),
            *_ADDRESS,
        ),
    ),
    TagSpec(
        "8300",
        "remittance_originator",
        (
            E("identification_type", 2, fixed=True),
            E("identification_code", 4, fixed=True),
            E("name", 140),
            E("identification_number", 35),
            E("identification_number_issuer", 35),
            E("date_birth_place", 82),
            *_ADDRESS,
            E("country_of_residence", 2),
            E("contact_name", 140),
            E("contact_phone_number", 35),
            E("contact_mobile_number", 35),
            E("contact_fax_number", 35),
            E("contact_electronic_address", 2048),
            E("contact_other", 35),
        ),
    ),
    TagSpec(
        "8350",
        "remittance_beneficiary",
        (
            E("name", 140),
            E("identification_type", 2),
            E("identification_code", 4),
            E("identification_number", 35),
            E("identification_number_issuer", 35),
            E("date_birth_place", 82),
            *_ADDRESS,
            E("country_of_residence", 2),
        ),
    ),
    _document("8400", "primary_remittance_document"),
    _remittance_amount("8450", "actual_amount_paid"),
    _remittance_amount("8500", "gross_amount_remittance_document"),
    _remittance_amount("8550", "amount_negotiated_discount"),
    TagSpec(
        "8600",
        "adjustment_information",
        (
            E("adjustment_reason_code", 2, fixed=True),
            E("credit_debit_indicator", 4, fixed=True),
            E("currency_code", 3, fixed=True, check="alpha"),
            E("amount", 19, check="dec_dot"),
            E("additional_info", 140),
        ),
    ),
    TagSpec("8650", "date_remittance_document", (E("date", 8, fixed=True, check="date8"),)),
    _document("8700", "secondary_remittance_document"),
    _lines("8750", "remittance_free_text", 3, 140),
    _lines("9000", "service_message", 12),
)

TAGS: Final[dict[str, TagSpec]] = {s.tag: s for s in _SPECS}
MANDATORY_TAGS: Final = ("1500", "1510", "1520", "2000", "3100", "3400", "3600")
FED_APPENDED_TAGS: Final = frozenset({"1100", "1110", "1120", "1130"})

BUSINESS_FUNCTION_CODES: Final = {
    "BTR": "bank transfer",
    "CKS": "check same day settlement",
    "CTP": "customer transfer plus",
    "CTR": "customer transfer",
    "DEP": "deposit to sender's account",
    "DRB": "bank-to-bank drawdown request",
    "DRC": "customer or corporate drawdown request",
    "DRW": "drawdown payment",
    "FFR": "fed funds returned",
    "FFS": "fed funds sold",
    "SVC": "service message",
}
TYPE_CODES: Final = {"10": "funds transfer", "15": "foreign transfer", "16": "settlement transfer"}
SUBTYPE_CODES: Final = {
    "00": "basic funds transfer",
    "01": "request for reversal",
    "02": "reversal of transfer",
    "07": "request for reversal of a prior day transfer",
    "08": "reversal of a prior day transfer",
    "31": "request for credit (drawdown)",
    "32": "funds transfer honoring a request for credit",
    "33": "refusal to honor a request for credit",
    "90": "service message",
}
# Sub-types each business function code may use (FAIM, Business Function Code section).
_TRANSFERS: Final = frozenset({"00", "02", "08"})
BFC_SUBTYPES: Final[dict[str, frozenset[str]]] = {
    "BTR": _TRANSFERS | {"32"},
    "CTR": _TRANSFERS | {"32"},
    "CTP": _TRANSFERS | {"32"},
    "CKS": _TRANSFERS,
    "DEP": _TRANSFERS,
    "FFR": _TRANSFERS,
    "FFS": _TRANSFERS,
    "DRB": frozenset({"31"}),
    "DRC": frozenset({"31"}),
    "DRW": frozenset({"32"}),
    "SVC": frozenset({"01", "07", "33", "90"}),
}
LOCAL_INSTRUMENTS: Final = {
    "ANSI": "ANSI X12 format",
    "COVS": "sequence B cover payment structured",
    "GXML": "general XML format",
    "IXML": "ISO 20022 XML format",
    "NARR": "narrative text",
    "PROP": "proprietary local instrument code",
    "RMTS": "remittance information structured",
    "RRMT": "related remittance information",
    "S820": "STP 820 format",
    "SWIF": "SWIFT field 70 (remittance information)",
    "UEDI": "UN/EDIFACT format",
}
UNSTRUCTURED_ADDENDA_INSTRUMENTS: Final = frozenset({"ANSI", "GXML", "IXML", "NARR", "S820", "SWIF", "UEDI"})
FI_ID_CODES: Final = frozenset({"B", "C", "D", "F", "U"})
PARTY_ID_CODES: Final = frozenset({"B", "C", "D", "F", "T", "U", "1", "2", "3", "4", "5", "9"})
FI_TAGS: Final = frozenset({"4000", "4100", "5100", "5200"})
ADVICE_CODES: Final = frozenset({"HLD", "LTR", "PHN", "TLX", "WRE"})
