"""FAIM rules: element formats, mandatory tags, and per business function code what is
required and what is prohibited (FAIM 3.0, "Business Function Code" and tag sections)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from qenex.payments.ach.codes import is_digits, routing_valid
from qenex.payments.common import ValidationReport
from qenex.payments.fedwire import tags as T
from qenex.payments.fedwire.message import FedwireMessage, Tag

_ALPHA = re.compile(r"[A-Z]{3}", re.ASCII)
_DEC_COMMA = re.compile(r"\d{1,17},\d{0,5}|\d{1,18},?", re.ASCII)
_DEC_DOT = re.compile(r"\d{1,16}(?:\.\d{1,5})?", re.ASCII)
_CCY_AMOUNT = re.compile(r"[A-Z]{3}\d{1,11},\d{0,2}", re.ASCII)

# Tags no business function code but the named ones may carry.
_COVER = frozenset(t for t in T.TAGS if t.startswith("7"))
_REMITTANCE = frozenset(t for t in T.TAGS if t.startswith("8"))
_PROHIBITED: dict[str, frozenset[str]] = {
    "BTR": frozenset({"3610", "3620", "3700", "3710", "3720", "4400", "5010", "5400", "6110", "9000"}),
    "CTR": frozenset({"3610", "3620", "4400", "5010", "5400", "6110", "9000"}),
    "CTP": frozenset({"4400", "5400", "6100", "6110", "9000"}),
    "SVC": frozenset(),
    "DRB": frozenset({"3610", "3620", "3700", "3710", "3720", "5010", "9000"}),
    "DRC": frozenset({"3610", "3620", "3700", "3710", "3720", "5010", "9000"}),
}
_SHARED_PROHIBITED = frozenset({"3610", "3620", "3700", "3710", "3720", "4400", "5010", "5400", "6110", "9000"})
_REQUIRED: dict[str, tuple[str, ...]] = {
    "CTR": ("4200", "5000"),
    "CTP": ("3610", "4200"),
    "DRW": ("4200", "5000"),
    "DRB": ("4400",),
    "DRC": ("4400",),
    "SVC": ("9000",),
}
_REVERSAL_SUBTYPES = frozenset({"01", "02", "07", "08"})
# {5010} party identifier codes (FAIM, Originator Option F).
_OPTION_F_CODES = frozenset({"ARNU/", "CCPT/", "CUST/", "DRLC/", "EMPL/", "NIDN/", "SOSE/", "TXID/"})


def _date8(value: str) -> bool:
    if len(value) != 8 or not is_digits(value):
        return False
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return False
    return True


_CHECKS: dict[str, Callable[[str], bool]] = {
    "digits": lambda v: is_digits(v),
    "alnum": lambda v: v.strip() != "" and v.isascii() and v.replace(" ", "").isalnum(),
    "alpha": lambda v: _ALPHA.fullmatch(v) is not None,
    "aba": lambda v: routing_valid(v),
    "date8": _date8,
    "format_version": lambda v: v == "30",
    "test_prod": lambda v: v in ("T", "P"),
    "duplication": lambda v: v in ("", "P"),
    "type_code": lambda v: v in T.TYPE_CODES,
    "subtype_code": lambda v: v in T.SUBTYPE_CODES,
    "bfc": lambda v: v in T.BUSINESS_FUNCTION_CODES,
    "local_instrument": lambda v: v in T.LOCAL_INSTRUMENTS,
    "party_id_code": lambda v: v in T.PARTY_ID_CODES,
    "advice_code": lambda v: v in T.ADVICE_CODES,
    "payment_method": lambda v: v == "CHECK",
    "charge_details": lambda v: v in ("B", "S"),
    "dec_comma": lambda v: _DEC_COMMA.fullmatch(v) is not None,
    "dec_dot": lambda v: _DEC_DOT.fullmatch(v) is not None,
    "ccy_amount": lambda v: _CCY_AMOUNT.fullmatch(v) is not None,
}


class _Checker:
    def __init__(self, msg: FedwireMessage, report: ValidationReport) -> None:
        self.msg = msg
        self.report = report

    def err(self, tag: str, code: str, message: str, element: str = "") -> None:
        where = f"{{{tag}}}" + (f" {element}" if element else "")
        self.report.add(code, message, where)

    def elements(self, t: Tag) -> None:
        if not (t.raw.isascii() and t.raw.isprintable()):
            self.err(t.tag, "fedwire_character_set", "value holds characters outside printable ASCII")
        if t.overflow:
            self.err(t.tag, "fedwire_elements", f"text after the last element: '{t.overflow[:20]}'")
        for e, value in zip(t.spec.elements, t.elements, strict=False):
            if not value:
                if e.required:
                    self.err(t.tag, "fedwire_required", f"{e.name} is required", e.name)
                continue
            if e.fixed and len(value) != e.length and e.check in ("digits", "aba", "date8", "alpha"):
                self.err(t.tag, "fedwire_length", f"{e.name} must be {e.length} characters", e.name)
            elif e.check and not _CHECKS[e.check](value):
                self.err(t.tag, "fedwire_format", f"{e.name} '{value[:40]}' is not valid ({e.check})", e.name)

    def party(self, t: Tag) -> None:
        code, identifier = t.get("identification_code"), t.get("identifier")
        if bool(code) != bool(identifier):
            self.err(t.tag, "fedwire_party", "identification code and identifier go together", "identifier")
        if t.tag in T.FI_TAGS and code and code not in T.FI_ID_CODES:
            self.err(t.tag, "fedwire_party", f"financial institution ID code must be one of B C D F U, not '{code}'")
        if code == "F" and identifier and not routing_valid(identifier):
            self.err(t.tag, "fedwire_party", f"'{identifier}' is not a valid ABA routing number", "identifier")
        if not t.get("name") and code:
            self.err(t.tag, "fedwire_party", "name is required with an identifier", "name")

    def option_f(self, t: Tag) -> None:
        """{5010}: party identifier "/account" or CODE/..., name line "1/...", lines "N/..." (N 1-8)."""
        ident = t.get("party_identifier")
        if ident and not (ident.startswith("/") or ident[:5] in _OPTION_F_CODES):
            self.err(
                t.tag,
                "fedwire_option_f",
                "party identifier must be /account or one of "
                + ", ".join(sorted(c[:4] for c in _OPTION_F_CODES))
                + " followed by /",
                "party_identifier",
            )
        name = t.get("name")
        if name and not name.startswith("1/"):
            self.err(t.tag, "fedwire_option_f", "the name line starts with 1/", "name")
        for key in ("line_1", "line_2", "line_3"):
            line = t.get(key)
            if line and not (line[:1] in "12345678" and line[1:2] == "/"):
                self.err(t.tag, "fedwire_option_f", "each line starts with a line code 1-8 and /", key)

    def mandatory(self) -> None:
        for tag in T.MANDATORY_TAGS:
            if tag not in self.msg:
                self.err(tag, "fedwire_tag_missing", f"{{{tag}}} {T.TAGS[tag].name} is required on every message")

    def business_function(self) -> None:
        msg = self.msg
        bfc = msg.business_function_code
        if bfc not in T.BUSINESS_FUNCTION_CODES:
            return  # reported by the element check
        subtype = msg.get("1510", "subtype_code")
        if "1510" in msg and subtype not in T.BFC_SUBTYPES[bfc]:
            self.err(
                "1510",
                "fedwire_type_subtype",
                f"type/subtype {msg.type_subtype} is not permitted with business function code {bfc}",
            )
        for tag in _REQUIRED.get(bfc, ()):
            if tag not in msg:
                self.err(tag, "fedwire_tag_missing", f"{{{tag}}} {T.TAGS[tag].name} is required for {bfc}")
        if bfc == "CTP" and "5000" not in msg and "5010" not in msg:
            self.err("5000", "fedwire_tag_missing", "CTP requires {5000} originator or {5010} originator option F")
        if subtype in _REVERSAL_SUBTYPES and "3500" not in msg:
            self.err("3500", "fedwire_tag_missing", "reversals and reversal requests require {3500}")
        prohibited = _PROHIBITED.get(bfc, _SHARED_PROHIBITED)
        for tag in msg.tags:
            if tag in prohibited:
                self.err(tag, "fedwire_tag_prohibited", f"{{{tag}}} {T.TAGS[tag].name} is not permitted with {bfc}")
        if bfc != "CTP" and bfc != "SVC":
            for tag in msg.tags:
                if tag in _COVER or tag in _REMITTANCE:
                    self.err(tag, "fedwire_tag_prohibited", f"{{{tag}}} is permitted only with CTP")
        self.transaction_type(bfc)
        if bfc == "CTP":
            self.local_instrument()
        amount = msg.amount_cents
        if amount == 0 and subtype not in ("31", "33", "90", "01", "07"):
            self.err("2000", "fedwire_amount", "amount must be greater than zero for a funds transfer")

    def transaction_type(self, bfc: str) -> None:
        """{3600} element 02, Transaction Type Code (FAIM 3.0, Business Function Code tag): only
        CTR may carry one, and not COV (cover payments go as CTP with {3610} COVS); BTR, CTP and
        the other codes must leave it blank. SVC is not restricted."""
        ttc = (self.msg.get("3600", "transaction_type_code") or "").strip()
        if not ttc or bfc == "SVC":
            return
        if bfc == "CTR":
            if ttc == "COV":
                self.err(
                    "3600",
                    "fedwire_transaction_type",
                    "transaction type code COV is not permitted with CTR; a cover payment is a CTP with"
                    " local instrument COVS",
                    "transaction_type_code",
                )
            return
        self.err(
            "3600",
            "fedwire_transaction_type",
            f"{bfc} takes no transaction type code (element 02 must be blank), not '{ttc[:3]}'",
            "transaction_type_code",
        )

    def local_instrument(self) -> None:
        msg = self.msg
        code = msg.get("3610", "local_instrument_code")
        needs: tuple[str, ...] = ()
        if code == "COVS":
            needs = ("4320", "7050", "7059")
            for tag in ("3700", "3710", "3720"):
                if tag in msg:
                    self.err(tag, "fedwire_tag_prohibited", f"{{{tag}}} is not permitted with local instrument COVS")
        elif code in T.UNSTRUCTURED_ADDENDA_INSTRUMENTS:
            needs = ("8200",)
        elif code == "RRMT":
            needs = ("8250",)
        elif code == "RMTS":
            needs = ("8300", "8350", "8400", "8450")
        elif code == "PROP" and not msg.get("3610", "proprietary_code"):
            self.err(
                "3610", "fedwire_required", "local instrument PROP requires its proprietary code", "proprietary_code"
            )
        for tag in needs:
            if tag not in msg:
                self.err(tag, "fedwire_tag_missing", f"local instrument {code} requires {{{tag}}} {T.TAGS[tag].name}")
        if code != "COVS":
            for tag in msg.tags:
                if tag in _COVER:
                    self.err(tag, "fedwire_tag_prohibited", f"{{{tag}}} is permitted only with local instrument COVS")


def check_message(msg: FedwireMessage, report: ValidationReport) -> None:
    ck = _Checker(msg, report)
    for tag, line in msg.unknown:
        report.add("fedwire_unknown_tag", f"unknown tag {{{tag}}}", f"line {line}")
    for tag, line in msg.duplicates:
        report.add("fedwire_duplicate_tag", f"tag {{{tag}}} appears more than once", f"line {line} {{{tag}}}")
    for t in msg.tags.values():
        ck.elements(t)
        if t.spec.elements[0].check == "party_id_code":
            ck.party(t)
        elif t.tag == "5010":
            ck.option_f(t)
    ck.mandatory()
    ck.business_function()
