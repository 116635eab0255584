"""Writing NACHA files: canonical rendering and a builder that computes every control field.

The builder never trusts a caller's totals: entry hash, counts, debit and credit totals, batch
numbers, trace and addenda sequence numbers and the 9-filled blocking are all computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from qenex.kernel.errors import check
from qenex.payments.ach import codes as C
from qenex.payments.ach.records import BLOCKING_FACTOR, RECORD_LENGTH_CHARS, AchFile
from qenex.payments.common import PaymentFormatError

BATCH_ENTRIES_MAX = 100_000
FILE_BATCHES_MAX = 9_999_999
ADDENDA05_TEXT_MAX_CHARS = 80
# Field ceilings: a 10-digit amount field ($99,999,999.99) and 12-digit control totals.
ENTRY_AMOUNT_MAX_CENTS = 10**10 - 1
CONTROL_TOTAL_MAX_CENTS = 10**12 - 1


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
    if not text.isdigit() or len(text) > width:
        raise PaymentFormatError(f"{name} must be at most {width} digits", code="ach_numeric")
    return text.zfill(width)


def _routing(value: str, name: str) -> str:
    if not C.routing_valid(value):
        raise PaymentFormatError(f"{name} '{value[:12]}' is not a valid 9-digit routing number", code="ach_routing")
    return value


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


class FileBuilder:
    """Builds a NACHA file for the common-layout SEC codes (PPD, CCD, WEB, TEL, CTX, ...).

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
        if debit > CONTROL_TOTAL_MAX_CENTS or credit > CONTROL_TOTAL_MAX_CENTS:
            raise PaymentFormatError("batch total exceeds the 12-digit control field", code="ach_amount")
        scc = b.service_class_code or (C.SCC_MIXED if debit and credit else C.SCC_DEBITS if debit else C.SCC_CREDITS)
        if scc not in C.SERVICE_CLASS_CODES:
            raise PaymentFormatError(f"unknown service class code '{scc[:4]}'", code="ach_service_class_code")
        odfi8 = b.odfi_routing[:8]
        header = (
            "5"
            + scc
            + _alnum(b.company_name, 16, "company name")
            + _alnum(b.discretionary, 20, "company discretionary data")
            + _alnum(b.company_identification, 10, "company identification")
            + b.sec
            + _alnum(b.entry_description, 10, "company entry description")
            + _alnum(b.descriptive_date, 6, "company descriptive date")
            + b.effective_date.strftime("%y%m%d")
            + "   1"
            + odfi8
            + _num(number, 7, "batch number")
        )
        control = (
            "8"
            + scc
            + _num(count, 6, "entry/addenda count")
            + _num(ehash % 10**10, 10, "entry hash")
            + _num(debit, 12, "total debit")
            + _num(credit, 12, "total credit")
            + _alnum(b.company_identification, 10, "company identification")
            + " " * 25
            + odfi8
            + _num(number, 7, "batch number")
        )
        return [header, *body, control], (count, ehash, debit, credit)

    def _entry(self, b: BatchSpec, e: EntrySpec, seq: int) -> tuple[list[str], int]:
        if e.transaction_code not in C.TRANSACTION_CODES or e.transaction_code in C.ADV_CODES:
            raise PaymentFormatError(
                f"invalid transaction code '{e.transaction_code[:4]}'", code="ach_transaction_code"
            )
        if isinstance(e.amount_cents, bool) or not isinstance(e.amount_cents, int):
            raise PaymentFormatError("amount must be an integer number of cents", code="ach_amount")
        if not 0 <= e.amount_cents <= ENTRY_AMOUNT_MAX_CENTS:
            raise PaymentFormatError("amount must be between 0 and 99,999,999.99", code="ach_amount")
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
            + ("1" if e.addenda05 else "0")
            + trace
        )
        lines = [line]
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
        if debit > CONTROL_TOTAL_MAX_CENTS or credit > CONTROL_TOTAL_MAX_CENTS:
            raise PaymentFormatError("file total exceeds the 12-digit control field", code="ach_amount")
        blocks = -(-(len(lines) + 1) // BLOCKING_FACTOR)
        lines.append(
            "9"
            + _num(len(self.batches), 6, "batch count")
            + _num(blocks, 6, "block count")
            + _num(count, 8, "entry/addenda count")
            + _num(ehash % 10**10, 10, "entry hash")
            + _num(debit, 12, "total debit")
            + _num(credit, 12, "total credit")
            + " " * 39
        )
        for line in lines:
            check(len(line) == RECORD_LENGTH_CHARS, "builder produced a record that is not 94 characters")
        return parse("\n".join(lines) + "\n")
