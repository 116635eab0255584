"""SEPA scheme rules on top of ISO 20022: SCT, SCT Inst, SDD Core and B2B.

Builds pain.001 (credit transfers) and pain.008 (direct debits) through
`qenex.payments.iso20022` and checks the EPC rulebook constraints the ISO schema leaves open:
EUR only, amount bounds (SCT Inst ceiling), charge bearer SLEV, the EPC basic Latin character set,
IBAN and BIC (through schwifty), the SEPA creditor identifier (ISO 7064 MOD 97-10 check
digits, via python-stdnum), mandate data and sequence types. Collections and transfers are
batched into one PmtInf per requested date (and debtor / sequence type).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

from lxml import etree
from stdnum.iso7064 import mod_97_10

from qenex.payments.common import ERRORS_PER_REPORT_MAX, PaymentFormatError, ValidationReport
from qenex.payments.iso20022 import (
    CreditTransfer,
    DirectDebit,
    Iso20022Message,
    PartySpec,
    build_pain001,
    build_pain008_groups,
)
from qenex.payments.iso20022 import describe as iso_describe
from qenex.payments.iso20022 import parse as iso_parse
from qenex.payments.iso20022 import render as iso_render
from qenex.payments.iso20022 import validate as iso_validate
from qenex.payments.iso20022.identifiers import compact_iban, validate_bic, validate_iban
from qenex.payments.iso20022.model import _dec
from qenex.payments.iso20022.xmlsafe import local, where

# EPC rulebooks: SCT amounts 0.01 .. 999,999,999.99 EUR. SCT Inst had a scheme maximum of
# EUR 100,000 until the 2025 SCT Inst rulebook (in force since 5 October 2025, aligned with the
# Instant Payments Regulation (EU) 2024/886) removed it: the scheme now has no ceiling of its own
# beyond the SCT bounds, and a PSP may set one. `inst_ceiling_eur` (validate and SEPAProtocol)
# applies a PSP's ceiling; SCT_INST_2023_AMOUNT_MAX_EUR is the old scheme value for those who keep it.
SCT_AMOUNT_MIN_EUR: Final = Decimal("0.01")
SCT_AMOUNT_MAX_EUR: Final = Decimal("999999999.99")
SCT_INST_AMOUNT_MAX_EUR: Final[Decimal | None] = None
SCT_INST_2023_AMOUNT_MAX_EUR: Final = Decimal("100000.00")
# SDD Core and B2B rulebooks (since November 2016): the creditor's PSP presents a collection
# at the latest one TARGET business day before its due date (D-1), for every sequence type.
SDD_PRESENTATION_LEAD_BUSINESS_DAYS: Final = 1
SEPA_CURRENCY: Final = "EUR"
SEQUENCE_TYPES: Final = frozenset({"FRST", "RCUR", "OOFF", "FNAL"})
SDD_SCHEMES: Final = frozenset({"CORE", "B2B"})
SCHEMES: Final = frozenset({"SCT", "SCT_INST", "SDD_CORE", "SDD_B2B"})
REMITTANCE_CHARS_MAX: Final = 140
IDENTIFIER_CACHE_MAX: Final = 100_000  # distinct IBANs/BICs remembered while checking one file
CREDITOR_ID_CHARS_MAX: Final = 35

# EPC217-08: the basic Latin set every SEPA participant must support.
_EPC_TEXT: Final = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*\Z")
# Identifiers: the set without space, no leading/trailing '/', no '//'.
_EPC_ID: Final = re.compile(r"(?!/)(?!.*//)[A-Za-z0-9/\-?:().,'+]*(?<!/)\Z")
_CREDITOR_ID: Final = re.compile(r"([A-Z]{2})(\d{2})([A-Z0-9]{3})([A-Z0-9]{1,28})\Z")

# Countries and territories in the SEPA schemes' geographical scope (EPC409-09).
SEPA_COUNTRIES: Final = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO CH GB MC SM VA AD AL MD ME MK RS "
    "GF GP MQ YT RE BL MF PM AX GI GG IM JE PF NC WF".split()
)
_TEXT_ELEMENTS: Final = frozenset({"Nm", "AdrLine", "Ustrd", "Ref", "StrtNm", "TwnNm"})
_ID_ELEMENTS: Final = frozenset({"MsgId", "PmtInfId", "InstrId", "EndToEndId", "MndtId"})


class SepaError(PaymentFormatError):
    """A SEPA builder input the scheme refuses (wrong currency, bad IBAN, over the ceiling...)."""

    code = "sepa_invalid"


# -- IBAN, BIC, creditor identifier -----------------------------------------------------------------


def creditor_identifier_check_digits(country: str, national_id: str) -> str:
    """The two check digits of a SEPA creditor identifier (ISO 7064 MOD 97-10 over the national
    identifier followed by the country code; the creditor business code is not included)."""
    return mod_97_10.calc_check_digits(national_id.upper() + country.upper())


def validate_creditor_identifier(value: object) -> ValidationReport:
    report = ValidationReport(format="sepa", message_type="CreditorIdentifier")
    text = value.replace(" ", "").upper() if isinstance(value, str) else ""
    m = _CREDITOR_ID.match(text) if len(text) <= CREDITOR_ID_CHARS_MAX else None
    if m is None:
        report.add(
            "creditor_id_invalid",
            "a creditor identifier is CC + 2 check digits + 3-character business code + national id",
            "CdtrSchmeId",
        )
        return report
    country, digits, _business, national = m.groups()
    expected = creditor_identifier_check_digits(country, national)
    if digits != expected:
        report.add(
            "creditor_id_check_digits",
            f"creditor identifier check digits are {digits}, expected {expected}",
            "CdtrSchmeId",
        )
    return report


# -- the payments contract: SEPA files are ISO 20022 messages -----------------------------------------


def parse(data: str | bytes) -> Iso20022Message:
    return iso_parse(data)


def render(msg: Iso20022Message | SepaMessage) -> str:
    return iso_render(msg.message if isinstance(msg, SepaMessage) else msg)


def describe(msg: Iso20022Message | SepaMessage) -> dict[str, object]:
    summary = iso_describe(msg.message if isinstance(msg, SepaMessage) else msg)
    if isinstance(msg, SepaMessage):
        summary["scheme"] = msg.scheme
    return summary


# -- scheme validation ------------------------------------------------------------------------------


def validate(
    data: str | bytes | Iso20022Message,
    *,
    scheme: str | None = None,
    inst_ceiling_eur: Decimal | str | None = SCT_INST_AMOUNT_MAX_EUR,
    **options: object,
) -> ValidationReport:
    """ISO 20022 validation (XSD + business rules) plus the SEPA scheme's rules. Never raises for
    bad input. ``scheme`` (SCT, SCT_INST, SDD_CORE, SDD_B2B) is read from the message when omitted.

    ``inst_ceiling_eur``: a PSP's maximum SCT Inst amount (the scheme has none since the 2025
    rulebook, hence the default None). Direct debits: a collection date before the message's
    creation is ``sepa_collection_date_past`` (error); one less than D-1 TARGET business day after
    it, ``sepa_lead_time`` (warning: the creditor's PSP can no longer present it in time, but a
    received file is judged on what it says, and its PSP may roll it to the next due date)."""
    ceiling = _ceiling(inst_ceiling_eur)
    report = iso_validate(data, **options)
    if isinstance(data, Iso20022Message):
        msg = data
    else:
        try:
            msg = iso_parse(data)
        except PaymentFormatError:
            return report  # the ISO report already carries the parse error
    if msg.body is None:
        report.add("sepa_unsupported_message", "a SEPA file needs a Document", "/")
        return report
    family = msg.family
    if family not in ("pain.001", "pain.008", "pacs.008", "pacs.003"):
        report.add(
            "sepa_unsupported_message",
            f"{msg.message_type or 'this message'} is not a SEPA payment message",
            where(msg.body),
        )
        return report
    if scheme is not None and scheme not in SCHEMES:
        report.add("sepa_unknown_scheme", f"scheme must be one of {sorted(SCHEMES)}", "")
        return report
    _SepaChecker(msg, report, scheme, ceiling).run()
    return report


def _ceiling(value: Decimal | str | None) -> Decimal | None:
    if value is None:
        return None
    amount = _dec(str(value)) if not isinstance(value, float) else None
    if amount is None or amount < SCT_AMOUNT_MIN_EUR:
        raise SepaError("inst_ceiling_eur must be a positive EUR amount (Decimal or string)", code="sepa_ceiling")
    return amount


class _SepaChecker:
    def __init__(
        self, msg: Iso20022Message, report: ValidationReport, scheme: str | None, ceiling: Decimal | None
    ) -> None:
        self.msg, self.report, self.scheme, self.ceiling = msg, report, scheme, ceiling
        self.r = msg.r
        self.debit = msg.family in ("pain.008", "pacs.003")
        # The same IBAN/BIC recurs across a file (a debtor in every transaction): check each once.
        self._ids_seen: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._dates_checked: set[etree._Element] = set()  # PmtInf blocks whose due date was checked
        created = _date(self.r.t(self.r.f(msg.body, "GrpHdr"), "CreDtTm"))
        self.created: date | None = created

    def add(self, code: str, message: str, el: etree._Element | None, severity: str = "error") -> None:
        if len(self.report.issues) >= ERRORS_PER_REPORT_MAX:
            return  # the report is full; locating more issues would only cost time
        self.report.add(code, message, where(el) if el is not None else "", severity)

    def run(self) -> None:
        body = self.msg.body
        if body is None:
            return
        for el in body.iter():
            if isinstance(el.tag, str):
                self._check_element(el)
        for tx in self.msg.transaction_elements():
            self._check_transaction(tx)

    def _check_element(self, el: etree._Element) -> None:
        name = local(el.tag)
        text = (el.text or "").strip()
        ccy = el.get("Ccy")
        if ccy is not None and ccy != SEPA_CURRENCY:
            self.add("sepa_currency", f"SEPA payments are in EUR only, not {ccy[:8]}", el)
        if name in _TEXT_ELEMENTS and text and not _EPC_TEXT.match(text):
            self.add("sepa_charset", f"{name} holds characters outside the EPC basic Latin set", el)
        elif name in _ID_ELEMENTS and text and not _EPC_ID.match(text):
            self.add("sepa_charset", f"{name} {text[:35]!r} breaks the EPC identifier rules (set, '/', '//')", el)
        elif name == "IBAN":
            self._check_iban(el, text)
        elif name in ("BIC", "BICFI") and text:
            for code, message in self._identifier_issues("BIC", text):
                self.add(code, message, el)
        elif name == "ChrgBr" and text != "SLEV":
            self.add("sepa_charge_bearer", f"SEPA charge bearer must be SLEV, not {text[:8]}", el)
        elif name == "SvcLvl" and self.r.t(el, "Cd") not in (None, "SEPA"):
            self.add("sepa_service_level", "SEPA service level code must be SEPA", el)
        elif name == "RmtInf":
            self._check_remittance(el)
        elif name == "CdtrSchmeId":
            ci = self.r.t(el, "Id/PrvtId/Othr/Id")
            for issue in validate_creditor_identifier(ci).errors:
                self.add(issue.code, issue.message, el)

    def _identifier_issues(self, kind: str, text: str) -> list[tuple[str, str]]:
        key = (kind, text)
        found = self._ids_seen.get(key)
        if found is None:
            report = validate_iban(text) if kind == "IBAN" else validate_bic(text)
            found = [(i.code, i.message) for i in report.errors]
            if len(self._ids_seen) < IDENTIFIER_CACHE_MAX:
                self._ids_seen[key] = found
        return found

    def _check_iban(self, el: etree._Element, text: str) -> None:
        for code, message in self._identifier_issues("IBAN", text):
            self.add(code, message, el)
        if text[:2].upper() not in SEPA_COUNTRIES:
            self.add("sepa_country", f"IBAN country {text[:2]} is outside the SEPA schemes' scope", el)

    def _check_remittance(self, el: etree._Element) -> None:
        ustrd = self.r.all(el, "Ustrd")
        if len(ustrd) > 1:
            self.add("sepa_remittance", "SEPA allows one unstructured remittance line (Ustrd) only", ustrd[1])
        if ustrd and self.r.f(el, "Strd") is not None:
            self.add("sepa_remittance", "SEPA remittance is either structured or unstructured, not both", el)

    def _scheme_of(self, tx: etree._Element) -> str:
        if self.scheme:
            return self.scheme
        parent = _payment_info(tx)
        lcl = self.r.t(tx, "PmtTpInf/LclInstrm/Cd") or self.r.t(parent, "PmtTpInf/LclInstrm/Cd")
        if self.debit:
            return "SDD_B2B" if lcl == "B2B" else "SDD_CORE"
        return "SCT_INST" if lcl == "INST" else "SCT"

    def _check_transaction(self, tx: etree._Element) -> None:
        scheme = self._scheme_of(tx)
        amount_el = next(
            (self.r.f(tx, p) for p in ("Amt/InstdAmt", "InstdAmt", "IntrBkSttlmAmt") if self.r.f(tx, p) is not None),
            None,
        )
        amount = _dec(amount_el.text) if amount_el is not None else None
        if amount_el is None or amount is None:
            self.add("sepa_amount", "transaction has no EUR instructed amount", tx)
        elif amount < SCT_AMOUNT_MIN_EUR or amount > SCT_AMOUNT_MAX_EUR:
            self.add(
                "sepa_amount", f"amount {amount} is outside {SCT_AMOUNT_MIN_EUR}..{SCT_AMOUNT_MAX_EUR} EUR", amount_el
            )
        elif scheme == "SCT_INST" and self.ceiling is not None and amount > self.ceiling:
            self.add(
                "sepa_inst_ceiling",
                f"SCT Inst amount {amount} exceeds the PSP's EUR {self.ceiling} ceiling",
                amount_el,
            )
        if self.debit:
            self._check_mandate(tx, scheme)

    def _check_mandate(self, tx: etree._Element, scheme: str) -> None:
        r = self.r
        parent = _payment_info(tx)
        seq_el = r.f(tx, "PmtTpInf/SeqTp")
        if seq_el is None:
            seq_el = r.f(parent, "PmtTpInf/SeqTp")
        if seq_el is None or (seq_el.text or "").strip() not in SEQUENCE_TYPES:
            self.add(
                "sepa_sequence_type",
                f"sequence type must be one of {sorted(SEQUENCE_TYPES)}",
                seq_el if seq_el is not None else tx,
            )
        lcl = r.t(tx, "PmtTpInf/LclInstrm/Cd") or r.t(parent, "PmtTpInf/LclInstrm/Cd")
        if lcl not in SDD_SCHEMES:
            self.add("sepa_local_instrument", "an SDD local instrument must be CORE or B2B", tx)
        elif scheme in ("SDD_CORE", "SDD_B2B") and lcl != scheme[4:]:
            self.add("sepa_local_instrument", f"local instrument {lcl} does not match scheme {scheme}", tx)
        mandate = r.f(tx, "DrctDbtTx/MndtRltdInf")
        if r.t(mandate, "MndtId") is None:
            self.add(
                "sepa_mandate_id",
                "a SEPA direct debit needs a mandate id (MndtId)",
                mandate if mandate is not None else tx,
            )
        signed_el = r.f(mandate, "DtOfSgntr")
        if signed_el is None:
            self.add(
                "sepa_mandate_date",
                "a SEPA direct debit needs the mandate's date of signature",
                mandate if mandate is not None else tx,
            )
            return
        signed = _date(signed_el.text)
        due = _date(r.t(parent, "ReqdColltnDt") or r.t(tx, "IntrBkSttlmDt"))
        if signed is not None and due is not None and signed > due:
            self.add("sepa_mandate_date", f"mandate signed {signed} after the collection date {due}", signed_el)
        if parent is not None and parent not in self._dates_checked:
            self._dates_checked.add(parent)
            self._check_collection_date(parent, due)
        if r.f(tx, "DrctDbtTx/CdtrSchmeId") is None and r.f(parent, "CdtrSchmeId") is None:
            self.add("sepa_creditor_id", "a SEPA direct debit needs the creditor identifier (CdtrSchmeId)", tx)

    def _check_collection_date(self, pmt: etree._Element, due: date | None) -> None:
        """SDD due date against the message's creation date (see `validate`)."""
        if due is None or self.created is None:
            return
        el = self.r.f(pmt, "ReqdColltnDt")
        if due < self.created:
            self.add(
                "sepa_collection_date_past",
                f"collection date {due} is before the message's creation date {self.created}",
                el,
            )
        elif due < earliest_collection_date(self.created):
            self.add(
                "sepa_lead_time",
                f"collection date {due} leaves less than D-{SDD_PRESENTATION_LEAD_BUSINESS_DAYS} TARGET business"
                f" day after the message's creation ({self.created}); the earliest is"
                f" {earliest_collection_date(self.created)}",
                el,
                "warning",
            )


def target_holidays(year: int) -> frozenset[date]:
    """TARGET2 closing days other than weekends: 1 January, Good Friday, Easter Monday, 1 May,
    25 and 26 December (ECB). Easter Sunday by the anonymous Gregorian computus."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    easter = date(year, month, day + 1)
    return frozenset(
        {
            date(year, 1, 1),
            easter - timedelta(days=2),
            easter + timedelta(days=1),
            date(year, 5, 1),
            date(year, 12, 25),
            date(year, 12, 26),
        }
    )


def is_target_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target_holidays(day.year)


def earliest_collection_date(submitted: date) -> date:
    """The first due date a collection submitted on ``submitted`` can have. Its PSP presents it
    on the first TARGET business day from then on (P); a due date settles on itself or, when it is
    no TARGET day, on the next one, which must lie SDD_PRESENTATION_LEAD_BUSINESS_DAYS TARGET
    business days after P. So the earliest due date is the day after the (lead - 1)-th business
    day following P: the day after P itself for D-1 (a Friday submission may fall due on Saturday,
    settling on Monday)."""
    day = submitted
    while not is_target_business_day(day):
        day += timedelta(days=1)
    for _ in range(SDD_PRESENTATION_LEAD_BUSINESS_DAYS - 1):
        day += timedelta(days=1)
        while not is_target_business_day(day):
            day += timedelta(days=1)
    return day + timedelta(days=1)


def _payment_info(tx: etree._Element) -> etree._Element | None:
    """The enclosing PmtInf (pain.001/pain.008), or None: in pacs messages the parent is the
    message body holding every transaction, and searching it per transaction would be quadratic."""
    parent = tx.getparent()
    return parent if parent is not None and local(parent.tag) == "PmtInf" else None


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()[:10]) if text else None
    except ValueError:
        return None


# -- builders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SepaMessage:
    """A built SEPA file: the ISO 20022 message plus its scheme."""

    message: Iso20022Message
    scheme: str

    @property
    def message_type(self) -> str:
        return self.message.message_type

    def to_xml(self) -> str:
        return self.message.to_string()

    def __str__(self) -> str:
        return self.to_xml()


@dataclass(frozen=True, slots=True)
class SctPayment:
    """One SEPA credit transfer for `SEPAProtocol.create_sct_batch`."""

    debtor_iban: str
    debtor_name: str
    creditor_iban: str
    creditor_name: str
    amount: Decimal | str | int
    reference: str | None = None
    remittance_info: str | None = None
    debtor_bic: str | None = None
    creditor_bic: str | None = None
    execution_date: date | None = None
    creditor_reference: str | None = None


@dataclass(frozen=True, slots=True)
class SddCollection:
    """One SEPA direct debit collection for `SEPAProtocol.create_sdd_batch`."""

    debtor_iban: str
    debtor_name: str
    amount: Decimal | str | int
    mandate_id: str
    mandate_signature_date: date
    collection_date: date
    sequence_type: str = "RCUR"
    reference: str | None = None
    remittance_info: str | None = None
    debtor_bic: str | None = None


class SEPAProtocol:
    """Builds SEPA files that satisfy both the official XSD and the EPC scheme rules."""

    def __init__(
        self,
        *,
        pain001_version: str = "pain.001.001.09",
        pain008_version: str = "pain.008.001.08",
        inst_ceiling_eur: Decimal | str | None = SCT_INST_AMOUNT_MAX_EUR,
    ) -> None:
        """``inst_ceiling_eur``: the PSP's maximum SCT Inst amount; None (the default) follows the
        2025 SCT Inst rulebook, which has no scheme maximum."""
        self.pain001_version = pain001_version
        self.pain008_version = pain008_version
        self.inst_ceiling_eur = _ceiling(inst_ceiling_eur)

    def create_sct(
        self,
        debtor_iban: str,
        debtor_name: str,
        creditor_iban: str,
        creditor_name: str,
        amount: Decimal | str | int,
        reference: str | None = None,
        remittance_info: str | None = None,
        *,
        currency: str = SEPA_CURRENCY,
        debtor_bic: str | None = None,
        creditor_bic: str | None = None,
        execution_date: date | None = None,
        instant: bool = False,
        creditor_reference: str | None = None,
    ) -> SepaMessage:
        """A pain.001 with one SEPA credit transfer (SCT, or SCT Inst with ``instant=True``)."""
        if currency != SEPA_CURRENCY:
            raise SepaError(f"SEPA credit transfers are in EUR only, not {str(currency)[:8]}", code="sepa_currency")
        payment = SctPayment(
            debtor_iban,
            debtor_name,
            creditor_iban,
            creditor_name,
            amount,
            reference,
            remittance_info,
            debtor_bic,
            creditor_bic,
            execution_date,
            creditor_reference,
        )
        return self.create_sct_batch([payment], instant=instant)

    def create_sct_batch(
        self,
        payments: Sequence[SctPayment],
        *,
        instant: bool = False,
        msg_id: str | None = None,
        created: datetime | None = None,
    ) -> SepaMessage:
        """One pain.001 for many transfers: one PmtInf per (execution date, debtor)."""
        transfers = [self._transfer(p, instant) for p in payments]
        if not transfers:
            raise SepaError("a SEPA batch needs at least one payment", code="sepa_empty")
        initiator = PartySpec(name=transfers[0].debtor.name)
        msg = build_pain001(
            transfers, initiating_party=initiator, version=self.pain001_version, msg_id=msg_id, created=created
        )
        return self._checked(msg, "SCT_INST" if instant else "SCT")

    def _transfer(self, p: SctPayment, instant: bool) -> CreditTransfer:
        amount = _eur_amount(p.amount, SCT_AMOUNT_MAX_EUR)
        if instant and self.inst_ceiling_eur is not None and amount > self.inst_ceiling_eur:
            raise SepaError(
                f"SCT Inst amount {amount} exceeds the PSP's EUR {self.inst_ceiling_eur} ceiling",
                code="sepa_inst_ceiling",
            )
        _require_iban(p.debtor_iban, "debtor")
        _require_iban(p.creditor_iban, "creditor")
        for bic in (p.debtor_bic, p.creditor_bic):
            if bic is not None:
                _require_bic(bic)
        _require_text(p.debtor_name, "debtor name")
        _require_text(p.creditor_name, "creditor name")
        if p.remittance_info and p.creditor_reference:
            raise SepaError(
                "SEPA remittance is either unstructured or a creditor reference, not both", code="sepa_remittance"
            )
        return CreditTransfer(
            amount=amount,
            currency=SEPA_CURRENCY,
            debtor=PartySpec(name=p.debtor_name, iban=compact_iban(p.debtor_iban), agent_bic=p.debtor_bic),
            creditor=PartySpec(name=p.creditor_name, iban=compact_iban(p.creditor_iban), agent_bic=p.creditor_bic),
            end_to_end_id=_require_id(p.reference) if p.reference else "NOTPROVIDED",
            remittance=_require_text(p.remittance_info, "remittance information", REMITTANCE_CHARS_MAX)
            if p.remittance_info
            else None,
            structured_reference=p.creditor_reference,
            charge_bearer="SLEV",
            requested_date=p.execution_date or date.today(),
            service_level="SEPA",
            local_instrument="INST" if instant else None,
        )

    def create_sdd(
        self,
        creditor_iban: str,
        creditor_name: str,
        creditor_id: str,
        debtor_iban: str,
        debtor_name: str,
        amount: Decimal | str | int,
        mandate_id: str,
        mandate_signature_date: date,
        collection_date: date,
        *,
        sequence_type: str = "OOFF",
        scheme: str = "CORE",
        reference: str | None = None,
        remittance_info: str | None = None,
        creditor_bic: str | None = None,
        debtor_bic: str | None = None,
        created: datetime | None = None,
    ) -> SepaMessage:
        """A pain.008 with one SEPA direct debit (Core or B2B); see `create_sdd_batch` for dates."""
        collection = SddCollection(
            debtor_iban,
            debtor_name,
            amount,
            mandate_id,
            mandate_signature_date,
            collection_date,
            sequence_type,
            reference,
            remittance_info,
            debtor_bic,
        )
        return self.create_sdd_batch(
            [collection],
            creditor_iban=creditor_iban,
            creditor_name=creditor_name,
            creditor_id=creditor_id,
            scheme=scheme,
            creditor_bic=creditor_bic,
            created=created,
        )

    def create_sdd_batch(
        self,
        collections: Sequence[SddCollection],
        *,
        creditor_iban: str,
        creditor_name: str,
        creditor_id: str,
        scheme: str = "CORE",
        creditor_bic: str | None = None,
        msg_id: str | None = None,
        created: datetime | None = None,
    ) -> SepaMessage:
        """One pain.008: one PmtInf per (collection date, sequence type).

        Due dates are judged against the creation date (``created``, default now): one in the past
        is refused (``sepa_collection_date_past``), and so is one the creditor's PSP can no longer
        present D-1 TARGET business day ahead (``sepa_lead_time``): a file built now is one we
        send, so the SDD rulebooks' presentation time limit is an error here."""
        if scheme not in SDD_SCHEMES:
            raise SepaError(f"SDD scheme must be CORE or B2B, not {str(scheme)[:8]}", code="sepa_scheme")
        if not collections:
            raise SepaError("a SEPA batch needs at least one collection", code="sepa_empty")
        ci_report = validate_creditor_identifier(creditor_id)
        if not ci_report.valid:
            raise SepaError(ci_report.errors[0].message, code=ci_report.errors[0].code)
        _require_iban(creditor_iban, "creditor")
        if creditor_bic is not None:
            _require_bic(creditor_bic)
        today = (created or datetime.now(UTC)).date()
        earliest = earliest_collection_date(today)
        for c in collections:
            if c.collection_date < today:
                raise SepaError(
                    f"collection date {c.collection_date} is in the past (today is {today})",
                    code="sepa_collection_date_past",
                )
            if c.collection_date < earliest:
                raise SepaError(
                    f"collection date {c.collection_date} is too early: the creditor's PSP presents a collection"
                    f" D-{SDD_PRESENTATION_LEAD_BUSINESS_DAYS} TARGET business day before its due date, so the"
                    f" earliest is {earliest}",
                    code="sepa_lead_time",
                )
        groups: dict[tuple[date, str], list[DirectDebit]] = {}
        for c in collections:
            groups.setdefault((c.collection_date, c.sequence_type), []).append(self._debit(c))
        creditor = PartySpec(
            name=_require_text(creditor_name, "creditor name"), iban=compact_iban(creditor_iban), agent_bic=creditor_bic
        )
        msg = build_pain008_groups(
            [(when, seq, scheme, items) for (when, seq), items in sorted(groups.items())],
            creditor=creditor,
            creditor_scheme_id=creditor_id.replace(" ", "").upper(),
            version=self.pain008_version,
            msg_id=msg_id,
            created=created,
        )
        return self._checked(msg, f"SDD_{scheme}")

    def _debit(self, c: SddCollection) -> DirectDebit:
        if c.sequence_type not in SEQUENCE_TYPES:
            raise SepaError(f"sequence type must be one of {sorted(SEQUENCE_TYPES)}", code="sepa_sequence_type")
        if c.mandate_signature_date > c.collection_date:
            raise SepaError("the mandate must be signed on or before the collection date", code="sepa_mandate_date")
        _require_iban(c.debtor_iban, "debtor")
        if c.debtor_bic is not None:
            _require_bic(c.debtor_bic)
        return DirectDebit(
            amount=_eur_amount(c.amount, SCT_AMOUNT_MAX_EUR),
            currency=SEPA_CURRENCY,
            debtor=PartySpec(
                name=_require_text(c.debtor_name, "debtor name"),
                iban=compact_iban(c.debtor_iban),
                agent_bic=c.debtor_bic,
            ),
            mandate_id=_require_id(c.mandate_id),
            mandate_signature_date=c.mandate_signature_date,
            end_to_end_id=_require_id(c.reference) if c.reference else "NOTPROVIDED",
            remittance=_require_text(c.remittance_info, "remittance information", REMITTANCE_CHARS_MAX)
            if c.remittance_info
            else None,
        )

    def _checked(self, msg: Iso20022Message, scheme: str) -> SepaMessage:
        report = validate(msg, scheme=scheme, inst_ceiling_eur=self.inst_ceiling_eur)
        if not report.valid:
            first = report.errors[0]
            raise SepaError(f"{first.location}: {first.message}", code=first.code)
        return SepaMessage(msg, scheme)

    def validate(self, data: str | bytes | Iso20022Message, scheme: str | None = None) -> ValidationReport:
        return validate(data, scheme=scheme, inst_ceiling_eur=self.inst_ceiling_eur)


def _eur_amount(value: Decimal | str | int, ceiling: Decimal) -> Decimal:
    amount = _dec(str(value)) if not isinstance(value, float) else None
    if amount is None:
        raise SepaError("amount must be a decimal string, Decimal or integer (never a float)", code="sepa_amount")
    if amount < SCT_AMOUNT_MIN_EUR or amount > ceiling:
        raise SepaError(f"amount {amount} is outside {SCT_AMOUNT_MIN_EUR}..{ceiling} EUR", code="sepa_amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise SepaError("EUR amounts have at most 2 decimals", code="sepa_amount")
    return amount


def _require_iban(value: str, role: str) -> None:
    report = validate_iban(value)
    if not report.valid:
        raise SepaError(f"{role} IBAN: {report.errors[0].message}", code="iban_invalid")
    if compact_iban(value)[:2] not in SEPA_COUNTRIES:
        raise SepaError(f"{role} IBAN country {compact_iban(value)[:2]} is outside the SEPA scope", code="sepa_country")


def _require_bic(value: str) -> None:
    report = validate_bic(value)
    if not report.valid:
        raise SepaError(report.errors[0].message, code="bic_invalid")


def _require_text(value: str | None, what: str, limit: int = 70) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SepaError(f"{what} is required", code="sepa_missing")
    if len(value) > limit:
        raise SepaError(f"{what} is longer than {limit} characters", code="sepa_too_long")
    if not _EPC_TEXT.match(value):
        raise SepaError(f"{what} holds characters outside the EPC basic Latin set", code="sepa_charset")
    return value


def _require_id(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 35 or not _EPC_ID.match(value):
        raise SepaError(
            "identifiers are 1-35 EPC characters, without leading/trailing '/' or '//'", code="sepa_charset"
        )
    return value
