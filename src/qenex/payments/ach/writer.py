"""Writing NACHA files: canonical rendering and a builder that computes every control field.

The builder never trusts a caller's totals: entry hash, counts, debit and credit totals, batch
numbers, trace and addenda sequence numbers and the 9-filled blocking are all computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from qenex.kernel.errors import InvariantViolation, check
from qenex.payments.ach import codes as C
from qenex.payments.ach.codes import is_digits
from qenex.payments.ach.records import BLOCKING_FACTOR, RECORD_LENGTH_CHARS, AchFile
from qenex.payments.common import PaymentFormatError

BATCH_ENTRIES_MAX = 100_000
FILE_BATCHES_MAX = 9_999_999
ADDENDA05_TEXT_MAX_CHARS = 80
# Field ceilings: a 10-digit amount field ($99,999,999.99) and 12-digit control totals.
ENTRY_AMOUNT_MAX_CENTS = 10**10 - 1
CONTROL_TOTAL_MAX_CENTS = 10**12 - 1
# ADV layouts (NACHA Operating Rules, Appendix Three): a 12-digit entry amount and 20-digit totals.
ADV_ENTRY_AMOUNT_MAX_CENTS = 10**12 - 1
ADV_CONTROL_TOTAL_MAX_CENTS = 10**20 - 1
ADV_ORIGINATOR_STATUS = "0"  # an ADV file is prepared by an ACH Operator


def render(f: AchFile) -> str:
    """Records one per line (LF), then 9-filled records up to a multiple of 10 lines."""
    lines = [r.line for r in f.records()]
    if f.control is not None:
        lines.extend(["9" * RECORD_LENGTH_CHARS] * (-len(lines) % BLOCKING_FACTOR))
    return "\n".join(lines) + "\n"


def _alnum(value: str, width: int, name: str) -> str:
    text = str(value)
    if len(text) > width:
        raise PaymentFormatError(f"{name} is longer than {width} characters", code="ach_field_too_long")
    if not (text.isascii() and text.isprintable()):
        raise PaymentFormatError(f"{name} must be printable ASCII", code="ach_character_set")
    return text.ljust(width)


def _num(value: int | str, width: int, name: str) -> str:
    text = str(value)
    if not is_digits(text) or len(text) > width:
        raise PaymentFormatError(f"{name} must be at most {width} digits", code="ach_numeric")
    return text.zfill(width)


def _iat_bank(code: str, who: str, name: str, qualifier: str, ident: str, country: str, seq: str) -> str:
    """IAT addenda 13 (ODFI) and 14 (RDFI): name, ID qualifier, identification, branch country."""
    return (
        code
        + _alnum(name, 35, f"{who} name")
        + _alnum(qualifier, 2, f"{who} ID qualifier")
        + _alnum(ident, 34, f"{who} identification")
        + _alnum(country, 3, f"{who} country")
        + " " * 10
        + seq
    )


def _check_amount(cents: object, max_cents: int, name: str) -> None:
    """An entry amount is an int (never a bool) of 0..max_cents."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise PaymentFormatError("amount must be an integer number of cents", code="ach_amount")
    if not 0 <= cents <= max_cents:
        dollars, rest = divmod(max_cents, 100)
        raise PaymentFormatError(f"{name} must be between 0 and {dollars:,}.{rest:02d}", code="ach_amount")


def _routing(value: str, name: str) -> str:
    if not C.routing_valid(value):
        raise PaymentFormatError(f"{name} '{value[:12]}' is not a valid 9-digit routing number", code="ach_routing")
    return value


@dataclass(frozen=True, slots=True)
class IATHeader:
    """IAT batch header fields (NACHA Appendix Three, IAT Company/Batch Header)."""

    foreign_exchange_indicator: str  # FV fixed-to-variable, VF, FF fixed-to-fixed
    foreign_exchange_reference_indicator: str  # 1 rate, 2 reference number, 3 space filled
    iso_destination_country: str  # ISO 3166 alpha-2
    iso_originating_currency: str  # ISO 4217 alpha-3
    iso_destination_currency: str
    foreign_exchange_reference: str = ""


@dataclass(frozen=True, slots=True)
class IATParties:
    """The content of the seven mandatory IAT addenda (10-16) and the optional 17 and 18."""

    transaction_type: str
    receiver_name: str
    originator_name: str
    originator_street: str
    originator_city_state: str  # "CITY*STATE\\" as the rules format it
    originator_country_postal: str  # "US*19305\\"
    odfi_name: str
    odfi_id_qualifier: str  # 01 routing number, 02 BIC, 03 IBAN
    odfi_id: str
    odfi_country: str
    rdfi_name: str
    rdfi_id_qualifier: str
    rdfi_id: str
    rdfi_country: str
    receiver_street: str
    receiver_city_state: str
    receiver_country_postal: str
    receiver_id: str = ""
    foreign_payment_amount_cents: int = 0
    foreign_trace: str = ""
    payment_information: tuple[str, ...] = ()  # addenda 17, at most 2
    correspondents: tuple[tuple[str, str, str, str], ...] = ()  # addenda 18: name, qualifier, id, country


@dataclass(frozen=True, slots=True)
class ReturnInfo:
    """Addenda 99 (return, code R..) or 98 (notification of change, code C..)."""

    code: str
    original_trace: str
    original_rdfi: str  # 8 digits
    information: str = ""  # 99: addenda information (44); 98: corrected data (29)
    date_of_death: str = ""  # 99 only, YYMMDD


@dataclass(frozen=True, slots=True)
class AdvInfo:
    """The ADV entry detail fields beyond the common ones (Appendix Three, ADV Entry Detail)."""

    advice_routing: str  # 9 digits: the routing number the advice is for
    ach_operator_routing: str  # 8 digits: routing number of the ACH Operator (trace positions 80-87)
    julian_day: int  # 1-366: the day the ACH Operator created the advice
    file_identification: str = ""  # 5
    ach_operator_data: str = ""  # 1


@dataclass(slots=True)
class EntrySpec:
    transaction_code: str
    rdfi_routing: str
    account_number: str
    amount_cents: int
    identification: str = ""
    name: str = ""
    discretionary: str = ""
    addenda05: list[str] = field(default_factory=list)
    returned: ReturnInfo | None = None
    iat: IATParties | None = None
    adv: AdvInfo | None = None


@dataclass(slots=True)
class BatchSpec:
    sec: str
    company_name: str
    company_identification: str
    entry_description: str
    effective_date: date
    odfi_routing: str
    service_class_code: str | None = None
    discretionary: str = ""
    descriptive_date: str = ""
    entries: list[EntrySpec] = field(default_factory=list)
    iat_header: IATHeader | None = None

    def add_entry(
        self,
        transaction_code: str,
        rdfi_routing: str,
        account_number: str,
        amount_cents: int,
        *,
        identification: str = "",
        name: str = "",
        discretionary: str = "",
        addenda05: list[str] | None = None,
    ) -> EntrySpec:
        if len(self.entries) >= BATCH_ENTRIES_MAX:
            raise PaymentFormatError(f"a batch holds at most {BATCH_ENTRIES_MAX} entries", code="ach_batch_too_large")
        spec = EntrySpec(
            transaction_code,
            rdfi_routing,
            account_number,
            amount_cents,
            identification,
            name,
            discretionary,
            list(addenda05 or []),
        )
        self.entries.append(spec)
        return spec

    def add_return(
        self,
        transaction_code: str,
        rdfi_routing: str,
        account_number: str,
        amount_cents: int,
        *,
        name: str,
        info: ReturnInfo,
        identification: str = "",
    ) -> EntrySpec:
        """A return entry (addenda 99) or, in a COR batch, a notification of change (addenda 98)."""
        if transaction_code not in C.RETURN_NOC_CODES:
            raise PaymentFormatError("returns and NOCs use codes 21/26/31/36/41/46/51/56", code="ach_transaction_code")
        spec = self.add_entry(
            transaction_code, rdfi_routing, account_number, amount_cents, identification=identification, name=name
        )
        spec.returned = info
        return spec

    def add_adv_entry(
        self,
        transaction_code: str,
        rdfi_routing: str,
        account_number: str,
        amount_cents: int,
        *,
        name: str,
        advice_routing: str,
        ach_operator_routing: str | None = None,
        julian_day: int | None = None,
        file_identification: str = "",
        ach_operator_data: str = "",
        discretionary: str = "",
    ) -> EntrySpec:
        """An automated accounting advice entry (codes 81-88) in an ADV batch (`add_adv_batch`).
        ``ach_operator_routing`` defaults to the batch's ODFI identification, ``julian_day`` to the
        file creation day."""
        if self.sec != "ADV":
            raise PaymentFormatError("ADV entries go in an ADV batch (add_adv_batch)", code="ach_sec_code")
        if transaction_code not in C.ADV_CODES:
            raise PaymentFormatError("ADV entries use transaction codes 81-88", code="ach_adv_transaction_code")
        spec = self.add_entry(
            transaction_code, rdfi_routing, account_number, amount_cents, name=name, discretionary=discretionary
        )
        spec.adv = AdvInfo(
            _routing(advice_routing, "advice routing number"),
            ach_operator_routing if ach_operator_routing is not None else self.odfi_routing[:8],
            julian_day if julian_day is not None else 0,
            file_identification,
            ach_operator_data,
        )
        return spec

    def add_iat_entry(
        self,
        transaction_code: str,
        rdfi_routing: str,
        foreign_account: str,
        amount_cents: int,
        parties: IATParties,
    ) -> EntrySpec:
        if self.iat_header is None:
            raise PaymentFormatError("IAT entries go in an IAT batch (add_iat_batch)", code="ach_sec_code")
        if len(parties.payment_information) > C.IAT_ADDENDA17_MAX or len(parties.correspondents) > C.IAT_ADDENDA18_MAX:
            raise PaymentFormatError("at most two addenda 17 and five addenda 18", code="ach_addenda_count")
        if parties.transaction_type not in C.IAT_TRANSACTION_TYPES:
            raise PaymentFormatError("unknown IAT transaction type code", code="ach_iat_transaction_type")
        spec = self.add_entry(transaction_code, rdfi_routing, foreign_account, amount_cents)
        spec.iat = parties
        return spec


class FileBuilder:
    """Builds a NACHA file for the common-layout SEC codes (PPD, CCD, WEB, TEL, CTX, ...), IAT
    (`add_iat_batch`) and ADV (`add_adv_batch`, an ACH Operator's accounting advices).

    ``same_day=True`` on a batch sets the effective entry date to the file creation date,
    which is how an ODFI requests same-day settlement.
    """

    def __init__(
        self,
        immediate_destination: str,
        immediate_origin: str,
        destination_name: str,
        origin_name: str,
        *,
        created: datetime | None = None,
        file_id_modifier: str = "A",
        reference_code: str = "",
    ) -> None:
        self.destination = _routing(immediate_destination, "immediate destination")
        self.origin = immediate_origin
        self.destination_name = destination_name
        self.origin_name = origin_name
        self.created = created or datetime.now()
        self.file_id_modifier = file_id_modifier
        self.reference_code = reference_code
        self.batches: list[BatchSpec] = []

    def add_batch(
        self,
        sec: str,
        company_name: str,
        company_identification: str,
        entry_description: str,
        odfi_routing: str,
        *,
        effective_date: date | None = None,
        same_day: bool = False,
        service_class_code: str | None = None,
        discretionary: str = "",
        descriptive_date: str = "",
    ) -> BatchSpec:
        if sec not in C.SEC_CODES or sec in ("IAT", "ADV"):
            raise PaymentFormatError(
                f"the builder writes common-layout SEC codes, not '{sec[:4]}'", code="ach_sec_code"
            )
        if len(self.batches) >= FILE_BATCHES_MAX:
            raise PaymentFormatError("too many batches in one file", code="ach_file_too_large")
        if same_day:
            effective = self.created.date()
        elif effective_date is not None:
            effective = effective_date
        else:
            raise PaymentFormatError("a batch needs an effective entry date (or same_day=True)", code="ach_date")
        spec = BatchSpec(
            sec,
            company_name,
            company_identification,
            entry_description,
            effective,
            _routing(odfi_routing, "ODFI routing"),
            service_class_code,
            discretionary,
            descriptive_date,
        )
        self.batches.append(spec)
        return spec

    def add_iat_batch(
        self,
        header: IATHeader,
        originator_identification: str,
        entry_description: str,
        odfi_routing: str,
        *,
        effective_date: date,
        service_class_code: str | None = None,
    ) -> BatchSpec:
        """An IAT batch (same-day settlement does not apply to IAT)."""
        if len(self.batches) >= FILE_BATCHES_MAX:
            raise PaymentFormatError("too many batches in one file", code="ach_file_too_large")
        spec = BatchSpec(
            "IAT",
            "",
            originator_identification,
            entry_description,
            effective_date,
            _routing(odfi_routing, "ODFI routing"),
            service_class_code,
            iat_header=header,
        )
        self.batches.append(spec)
        return spec

    def add_adv_batch(
        self,
        company_name: str,
        company_identification: str,
        entry_description: str,
        odfi_routing: str,
        *,
        effective_date: date,
        discretionary: str = "",
        descriptive_date: str = "",
    ) -> BatchSpec:
        """An ADV batch (service class 280, SEC ADV) of automated accounting advices. A file holds
        either ADV batches only (with the ADV file control layout) or none."""
        if len(self.batches) >= FILE_BATCHES_MAX:
            raise PaymentFormatError("too many batches in one file", code="ach_file_too_large")
        spec = BatchSpec(
            "ADV",
            company_name,
            company_identification,
            entry_description,
            effective_date,
            _routing(odfi_routing, "ODFI routing"),
            C.SCC_ADV,
            discretionary,
            descriptive_date,
        )
        self.batches.append(spec)
        return spec

    def _header(self) -> str:
        return (
            "101"
            + " "
            + self.destination
            + _alnum(self.origin.rjust(10), 10, "immediate origin")
            + self.created.strftime("%y%m%d%H%M")
            + _alnum(self.file_id_modifier, 1, "file ID modifier")
            + "094101"
            + _alnum(self.destination_name, 23, "immediate destination name")
            + _alnum(self.origin_name, 23, "immediate origin name")
            + _alnum(self.reference_code, 8, "reference code")
        )

    def _batch(self, b: BatchSpec, number: int) -> tuple[list[str], tuple[int, int, int, int]]:
        if not b.entries:
            raise PaymentFormatError("a batch needs at least one entry", code="ach_batch_empty")
        debit = credit = ehash = count = 0
        body: list[str] = []
        for seq, e in enumerate(b.entries, 1):
            lines, cents = self._entry(b, e, seq)
            body.extend(lines)
            count += len(lines)
            ehash += int(e.rdfi_routing[:8])
            if e.transaction_code in C.DEBIT_CODES:
                debit += cents
            else:
                credit += cents
        adv = b.sec == "ADV"
        limit = ADV_CONTROL_TOTAL_MAX_CENTS if adv else CONTROL_TOTAL_MAX_CENTS
        if debit > limit or credit > limit:
            raise PaymentFormatError(
                f"batch total exceeds the {len(str(limit))}-digit control field", code="ach_amount"
            )
        scc = b.service_class_code or (C.SCC_MIXED if debit and credit else C.SCC_DEBITS if debit else C.SCC_CREDITS)
        if scc not in C.SERVICE_CLASS_CODES:
            raise PaymentFormatError(f"unknown service class code '{scc[:4]}'", code="ach_service_class_code")
        if (scc == C.SCC_ADV) != adv:
            raise PaymentFormatError("service class 280 is for ADV batches only", code="ach_service_class_code")
        odfi8 = b.odfi_routing[:8]
        header = (
            self._iat_header(b, scc, number)
            if b.iat_header is not None
            else (
                "5"
                + scc
                + _alnum(b.company_name, 16, "company name")
                + _alnum(b.discretionary, 20, "company discretionary data")
                + _alnum(b.company_identification, 10, "company identification")
                + b.sec
                + _alnum(b.entry_description, 10, "company entry description")
                + _alnum(b.descriptive_date, 6, "company descriptive date")
                + b.effective_date.strftime("%y%m%d")
                + "   "
                + (ADV_ORIGINATOR_STATUS if adv else "1")
                + odfi8
                + _num(number, 7, "batch number")
            )
        )
        if adv:  # ADV Batch Control: 20-digit totals, then ACH Operator data (Appendix Three)
            totals = _num(debit, 20, "total debit") + _num(credit, 20, "total credit") + " " * 19
        else:
            totals = (
                _num(debit, 12, "total debit")
                + _num(credit, 12, "total credit")
                + _alnum(b.company_identification, 10, "company identification")
                + " " * 25
            )
        control = (
            "8"
            + scc
            + _num(count, 6, "entry/addenda count")
            + _num(ehash % 10**10, 10, "entry hash")
            + totals
            + odfi8
            + _num(number, 7, "batch number")
        )
        return [header, *body, control], (count, ehash, debit, credit)

    @staticmethod
    def _iat_header(b: BatchSpec, scc: str, number: int) -> str:
        h = b.iat_header
        if h is None:
            raise InvariantViolation("IAT header expected")
        return (
            "5"
            + scc
            + " " * 16
            + _alnum(h.foreign_exchange_indicator, 2, "foreign exchange indicator")
            + _alnum(h.foreign_exchange_reference_indicator, 1, "foreign exchange reference indicator")
            + _alnum(h.foreign_exchange_reference, 15, "foreign exchange reference")
            + _alnum(h.iso_destination_country, 2, "ISO destination country")
            + _alnum(b.company_identification, 10, "originator identification")
            + "IAT"
            + _alnum(b.entry_description, 10, "company entry description")
            + _alnum(h.iso_originating_currency, 3, "ISO originating currency")
            + _alnum(h.iso_destination_currency, 3, "ISO destination currency")
            + b.effective_date.strftime("%y%m%d")
            + "   1"
            + b.odfi_routing[:8]
            + _num(number, 7, "batch number")
        )

    @staticmethod
    def _iat_lines(e: EntrySpec, routing: str, trace: str) -> list[str]:
        p = e.iat
        if p is None:
            raise InvariantViolation("IAT parties expected")
        seq = trace[8:]
        count = 7 + len(p.payment_information) + len(p.correspondents)
        lines = [
            "6"
            + e.transaction_code
            + routing
            + _num(count, 4, "number of addenda")
            + " " * 13
            + _num(e.amount_cents, 10, "amount")
            + _alnum(e.account_number, 35, "foreign receiver account")
            + " " * 4
            + "1"
            + trace,
            "710"
            + p.transaction_type
            + _num(p.foreign_payment_amount_cents, 18, "foreign payment amount")
            + _alnum(p.foreign_trace, 22, "foreign trace number")
            + _alnum(p.receiver_name, 35, "receiver name")
            + " " * 6
            + seq,
            "711"
            + _alnum(p.originator_name, 35, "originator name")
            + _alnum(p.originator_street, 35, "originator street")
            + " " * 14
            + seq,
            "712"
            + _alnum(p.originator_city_state, 35, "originator city/state")
            + _alnum(p.originator_country_postal, 35, "originator country/postal code")
            + " " * 14
            + seq,
            _iat_bank("713", "ODFI", p.odfi_name, p.odfi_id_qualifier, p.odfi_id, p.odfi_country, seq),
            _iat_bank("714", "RDFI", p.rdfi_name, p.rdfi_id_qualifier, p.rdfi_id, p.rdfi_country, seq),
            "715"
            + _alnum(p.receiver_id, 15, "receiver identification")
            + _alnum(p.receiver_street, 35, "receiver street")
            + " " * 34
            + seq,
            "716"
            + _alnum(p.receiver_city_state, 35, "receiver city/state")
            + _alnum(p.receiver_country_postal, 35, "receiver country/postal code")
            + " " * 14
            + seq,
        ]
        for n, info in enumerate(p.payment_information, 1):
            lines.append("717" + _alnum(info, 80, "payment related information") + _num(n, 4, "sequence") + seq)
        for n, (name, qualifier, ident, country) in enumerate(p.correspondents, 1):
            lines.append(
                "718"
                + _alnum(name, 35, "correspondent name")
                + _alnum(qualifier, 2, "correspondent qualifier")
                + _alnum(ident, 34, "correspondent id")
                + _alnum(country, 3, "correspondent country")
                + " " * 6
                + _num(n, 4, "sequence")
                + seq
            )
        return lines

    @staticmethod
    def _return_addenda(r: ReturnInfo, trace: str) -> str:
        if r.code[:1] == "R":
            return (
                "799"
                + _alnum(r.code, 3, "return reason code")
                + _num(r.original_trace, 15, "original trace")
                + _alnum(r.date_of_death, 6, "date of death")
                + _num(r.original_rdfi, 8, "original RDFI")
                + _alnum(r.information, 44, "addenda information")
                + trace
            )
        return (
            "798"
            + _alnum(r.code, 3, "change code")
            + _num(r.original_trace, 15, "original trace")
            + " " * 6
            + _num(r.original_rdfi, 8, "original RDFI")
            + _alnum(r.information, 29, "corrected data")
            + " " * 15
            + trace
        )

    def _adv_entry(self, e: EntrySpec, seq: int) -> list[str]:
        """ADV Entry Detail (Appendix Three): account 15, amount 12, advice routing, file id,
        operator data, name, discretionary, then ACH Operator routing, Julian day and sequence."""
        a = e.adv
        if a is None or e.transaction_code not in C.ADV_CODES:
            raise PaymentFormatError("ADV batches hold ADV entries (add_adv_entry)", code="ach_adv_transaction_code")
        _check_amount(e.amount_cents, ADV_ENTRY_AMOUNT_MAX_CENTS, "ADV amount")
        julian = a.julian_day or self.created.timetuple().tm_yday
        if not 1 <= julian <= 366:
            raise PaymentFormatError("the Julian day is 1-366", code="ach_date")
        if len(a.ach_operator_routing) != 8 or not is_digits(a.ach_operator_routing):
            raise PaymentFormatError("the ACH Operator routing number is 8 digits", code="ach_routing")
        return [
            "6"
            + e.transaction_code
            + _routing(e.rdfi_routing, "RDFI routing")
            + _alnum(e.account_number, 15, "DFI account number")
            + _num(e.amount_cents, 12, "amount")
            + a.advice_routing
            + _alnum(a.file_identification, 5, "file identification")
            + _alnum(a.ach_operator_data, 1, "ACH operator data")
            + _alnum(e.name, 22, "individual name")
            + _alnum(e.discretionary, 2, "discretionary data")
            + "0"
            + a.ach_operator_routing
            + _num(julian, 3, "Julian day")
            + _num(seq, 4, "sequence number")
        ]

    def _entry(self, b: BatchSpec, e: EntrySpec, seq: int) -> tuple[list[str], int]:
        if b.sec == "ADV":
            return self._adv_entry(e, seq), e.amount_cents
        if e.transaction_code not in C.TRANSACTION_CODES or e.transaction_code in C.ADV_CODES:
            raise PaymentFormatError(
                f"invalid transaction code '{e.transaction_code[:4]}'", code="ach_transaction_code"
            )
        _check_amount(e.amount_cents, ENTRY_AMOUNT_MAX_CENTS, "amount")
        if b.sec == "CTX":
            limit = C.CTX_ADDENDA_MAX
        elif b.sec in C.NO_ADDENDA05_SEC:
            limit = 0
        else:
            limit = 1
        if len(e.addenda05) > limit:
            raise PaymentFormatError(f"{b.sec} entries carry at most {limit} addenda 05", code="ach_addenda_count")
        routing = _routing(e.rdfi_routing, "RDFI routing")
        trace = b.odfi_routing[:8] + _num(seq, 7, "trace sequence")
        if e.iat is not None:
            return self._iat_lines(e, routing, trace), e.amount_cents
        if b.sec == "CTX":
            ident = (
                _alnum(e.identification, 15, "identification number")
                + _num(len(e.addenda05), 4, "addenda count")
                + _alnum(e.name, 16, "receiving company name")
                + "  "
            )
        else:
            ident = _alnum(e.identification, 15, "identification number") + _alnum(e.name, 22, "individual name")
        line = (
            "6"
            + e.transaction_code
            + routing
            + _alnum(e.account_number, 17, "DFI account number")
            + _num(e.amount_cents, 10, "amount")
            + ident
            + _alnum(e.discretionary, 2, "discretionary data")
            + ("1" if e.addenda05 or e.returned else "0")
            + trace
        )
        lines = [line]
        if e.returned is not None:
            lines.append(self._return_addenda(e.returned, trace))
        for n, text in enumerate(e.addenda05, 1):
            lines.append(
                "705"
                + _alnum(text, ADDENDA05_TEXT_MAX_CHARS, "payment related information")
                + _num(n, 4, "addenda sequence")
                + trace[8:]
            )
        return lines, e.amount_cents

    def build(self) -> AchFile:
        """The file as an `AchFile`, read back through the reader so both paths agree."""
        from qenex.payments.ach import parse

        lines = [self._header()]
        totals = [0, 0, 0, 0]
        for number, b in enumerate(self.batches, 1):
            batch_lines, sums = self._batch(b, number)
            lines.extend(batch_lines)
            for i in range(4):
                totals[i] += sums[i]
        count, ehash, debit, credit = totals
        adv = [b.sec == "ADV" for b in self.batches]
        if any(adv) and not all(adv):
            raise PaymentFormatError("an ADV file holds ADV batches only", code="ach_adv_file")
        limit = ADV_CONTROL_TOTAL_MAX_CENTS if adv and all(adv) else CONTROL_TOTAL_MAX_CENTS
        digits = len(str(limit))  # ADV File Control: 20-digit totals, else 12
        if debit > limit or credit > limit:
            raise PaymentFormatError(f"file total exceeds the {digits}-digit control field", code="ach_amount")
        blocks = -(-(len(lines) + 1) // BLOCKING_FACTOR)
        lines.append(
            "9"
            + _num(len(self.batches), 6, "batch count")
            + _num(blocks, 6, "block count")
            + _num(count, 8, "entry/addenda count")
            + _num(ehash % 10**10, 10, "entry hash")
            + _num(debit, digits, "total debit")
            + _num(credit, digits, "total credit")
            + " " * (63 - 2 * digits)
        )
        for line in lines:
            check(len(line) == RECORD_LENGTH_CHARS, "builder produced a record that is not 94 characters")
        return parse("\n".join(lines) + "\n")
