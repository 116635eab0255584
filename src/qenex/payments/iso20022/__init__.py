"""ISO 20022 (MX) messages: parse, validate against the official XSD plus business rules, build.

Contract shared by every payments format module::

    msg = parse(data)            # Iso20022Message; raises PaymentFormatError only
    report = validate(data_or_msg)   # ValidationReport(format="iso20022"); never raises for bad input
    text = render(msg)           # == msg.to_string()
    summary = describe(msg)      # dict for `qenex payments show`

Builders (`build_pacs008`, `build_pain001`, ...) return `Iso20022Message` objects whose
text validates against the official XSD. Typed views (`msg.transactions()`, `msg.statements()`,
`msg.group_header()`, `msg.app_header()`) give the converters amounts, parties, ids and UETRs.
"""

from __future__ import annotations

from qenex.payments.iso20022.build import (
    AppHeaderSpec,
    CreditTransfer,
    DirectDebit,
    PartySpec,
    ReimbursementAgents,
    StatementEntrySpec,
    StatementSpec,
    StatusSpec,
    build_app_header,
    build_camt053,
    build_camt054,
    build_camt056,
    build_pacs002,
    build_pacs004,
    build_pacs008,
    build_pacs009,
    build_pain001,
    build_pain002,
    build_pain008,
    build_pain008_groups,
    new_uetr,
    with_app_header,
)
from qenex.payments.iso20022.describe import describe
from qenex.payments.iso20022.identifiers import compact_iban, validate_bic, validate_iban
from qenex.payments.iso20022.model import (
    AppHeader,
    Balance,
    Entry,
    EntryDetail,
    GroupHeader,
    Iso20022Message,
    Party,
    Statement,
    Transaction,
    parse,
    render,
)
from qenex.payments.iso20022.schemas import add_schema_dir, available_message_types, get_schema, schema_path
from qenex.payments.iso20022.validation import validate

SUPPORTED_MESSAGE_TYPES = (
    "pain.001.001.03",
    "pain.001.001.09",
    "pain.002.001.03",
    "pain.002.001.12",
    "pain.008.001.02",
    "pain.008.001.08",
    "pacs.008.001.08",
    "pacs.009.001.08",
    "pacs.009.001.10",
    "pacs.002.001.10",
    "pacs.002.001.12",
    "pacs.004.001.09",
    "pacs.004.001.11",
    "camt.053.001.02",
    "camt.053.001.08",
    "camt.054.001.08",
    "camt.056.001.08",
    "camt.056.001.12",
    "head.001.001.02",
)


def to_xml(msg: Iso20022Message) -> str:
    return render(msg)


__all__ = [
    "SUPPORTED_MESSAGE_TYPES",
    "AppHeader",
    "AppHeaderSpec",
    "Balance",
    "CreditTransfer",
    "DirectDebit",
    "Entry",
    "EntryDetail",
    "GroupHeader",
    "Iso20022Message",
    "Party",
    "PartySpec",
    "ReimbursementAgents",
    "Statement",
    "StatementEntrySpec",
    "StatementSpec",
    "StatusSpec",
    "Transaction",
    "add_schema_dir",
    "available_message_types",
    "build_app_header",
    "build_camt053",
    "build_camt054",
    "build_camt056",
    "build_pacs002",
    "build_pacs004",
    "build_pacs008",
    "build_pacs009",
    "build_pain001",
    "build_pain002",
    "build_pain008",
    "build_pain008_groups",
    "compact_iban",
    "describe",
    "get_schema",
    "new_uetr",
    "parse",
    "render",
    "schema_path",
    "to_xml",
    "validate",
    "validate_bic",
    "validate_iban",
    "with_app_header",
]
