"""NACHA record layouts (94-character fixed-width records) as thin views over the raw line.

Each record keeps its line and line number; fields are sliced on access (positions are the
1-based, inclusive columns of the NACHA Operating Rules, Appendix Three). Keeping the raw line
makes reading cheap and the canonical rendering byte-exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from qenex.payments.ach.codes import is_digits

RECORD_LENGTH_CHARS = 94
BLOCKING_FACTOR = 10


class F:
    """A fixed-width field: columns start..end (1-based, inclusive) and a kind.

    Kinds: "N" numeric (digits, zero-filled), "A" alphanumeric (may be blank),
    "M" mandatory alphanumeric (not blank), "R" reserved (blank), "D" date YYMMDD,
    "T" time HHMM (optional), "C" code (checked by a rule).
    """

    __slots__ = ("end", "kind", "name", "start")

    def __init__(self, start: int, end: int, kind: str = "A") -> None:
        self.start = start - 1
        self.end = end
        self.kind = kind
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> str:
        return obj.line[self.start : self.end]  # type: ignore[no-any-return]

    @property
    def width(self) -> int:
        return self.end - self.start


class Record:
    """Base of every record view. ``fields`` lists the layout in column order."""

    __slots__ = ("line", "line_no")
    record_name: ClassVar[str] = "record"
    record_type = F(1, 1, "C")  # every record starts with its type code
    fields: ClassVar[tuple[F, ...]] = ()
    mandatory: ClassVar[tuple[F, ...]] = ()  # the "M" fields: must not be blank

    def __init__(self, line: str, line_no: int = 0) -> None:
        self.line = line
        self.line_no = line_no

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, F] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, F):
                    found[name] = value
        cls.fields = tuple(sorted(found.values(), key=lambda f: f.start))
        cls.mandatory = tuple(f for f in cls.fields if f.kind == "M")

    def to_dict(self) -> dict[str, str]:
        return {f.name: self.line[f.start : f.end].rstrip() for f in self.fields if f.kind != "R"}

    def __repr__(self) -> str:
        return f"<{self.record_name} line {self.line_no}>"


class FileHeader(Record):
    __slots__ = ()
    record_name = "file_header"
    priority_code = F(2, 3, "N")
    immediate_destination = F(4, 13, "C")
    immediate_origin = F(14, 23, "C")
    file_creation_date = F(24, 29, "D")
    file_creation_time = F(30, 33, "T")
    file_id_modifier = F(34, 34, "C")
    record_size = F(35, 37, "C")
    blocking_factor = F(38, 39, "C")
    format_code = F(40, 40, "C")
    immediate_destination_name = F(41, 63)
    immediate_origin_name = F(64, 86)
    reference_code = F(87, 94)


class _BatchHeaderBase(Record):
    """Columns 1-4, 51-63 and 70-94: the same in the common and the IAT batch header layouts."""

    __slots__ = ()
    is_iat_layout: ClassVar[bool] = False
    service_class_code = F(2, 4, "C")
    standard_entry_class_code = F(51, 53, "C")
    company_entry_description = F(54, 63, "M")
    effective_entry_date = F(70, 75, "C")
    settlement_date = F(76, 78, "A")
    originator_status_code = F(79, 79, "C")
    odfi_identification = F(80, 87, "N")
    batch_number = F(88, 94, "N")

    @property
    def sec(self) -> str:
        return self.line[50:53]


class BatchHeader(_BatchHeaderBase):
    __slots__ = ()
    record_name = "batch_header"
    company_name = F(5, 20, "M")
    company_discretionary_data = F(21, 40)
    company_identification = F(41, 50, "M")
    company_descriptive_date = F(64, 69)


class IATBatchHeader(_BatchHeaderBase):
    """IAT (and IAT notification of change) batch header: foreign-exchange fields in 5-50."""

    __slots__ = ()
    record_name = "iat_batch_header"
    is_iat_layout = True
    iat_indicator = F(5, 20)  # blank, or "IATCOR" for an IAT notification of change
    foreign_exchange_indicator = F(21, 22, "C")
    foreign_exchange_reference_indicator = F(23, 23, "C")
    foreign_exchange_reference = F(24, 38)
    iso_destination_country_code = F(39, 40, "M")
    originator_identification = F(41, 50, "M")
    iso_originating_currency_code = F(64, 66, "M")
    iso_destination_currency_code = F(67, 69, "M")


AnyBatchHeader = BatchHeader | IATBatchHeader


class _EntryBase(Record):
    """Columns 1-12 and 79-94 (and where the amount ends): the same in every entry detail layout."""

    __slots__ = ()
    transaction_code = F(2, 3, "C")
    rdfi_identification = F(4, 11, "N")
    check_digit = F(12, 12, "N")
    addenda_record_indicator = F(79, 79, "C")
    trace_number = F(80, 94, "N")
    amount_slice: ClassVar[tuple[int, int]] = (29, 39)

    @property
    def amount_cents(self) -> int:
        a, b = self.amount_slice
        return int(self.line[a:b])

    @property
    def rdfi_routing(self) -> str:
        return self.line[3:12]


class EntryDetail(_EntryBase):
    """Entry detail (type 6) in the common layout (PPD, CCD, WEB, TEL, ARC, BOC, RCK, ...)."""

    __slots__ = ()
    record_name = "entry_detail"
    dfi_account_number = F(13, 29, "M")
    amount = F(30, 39, "N")
    identification_number = F(40, 54)
    individual_name = F(55, 76)
    discretionary_data = F(77, 78)


class IATEntryDetail(_EntryBase):
    __slots__ = ()
    record_name = "iat_entry_detail"
    number_of_addenda = F(13, 16, "N")
    reserved_17 = F(17, 29, "R")
    amount = F(30, 39, "N")
    foreign_receiver_account = F(40, 74, "M")
    reserved_75 = F(75, 76, "R")
    gateway_ofac_indicator = F(77, 77)
    secondary_ofac_indicator = F(78, 78)


class ADVEntryDetail(_EntryBase):
    __slots__ = ()
    record_name = "adv_entry_detail"
    dfi_account_number = F(13, 27, "M")
    amount = F(28, 39, "N")
    advice_routing_number = F(40, 48, "N")
    file_identification = F(49, 53)
    ach_operator_data = F(54, 54)
    individual_name = F(55, 76, "M")
    discretionary_data = F(77, 78)
    ach_operator_routing = F(80, 87, "N")
    julian_day = F(88, 90, "N")
    sequence_number = F(91, 94, "N")
    amount_slice: ClassVar[tuple[int, int]] = (27, 39)


AnyEntryDetail = EntryDetail | IATEntryDetail | ADVEntryDetail


class Addenda(Record):
    __slots__ = ()
    record_name = "addenda"
    type_code = F(2, 3, "C")


class Addenda05(Addenda):
    __slots__ = ()
    record_name = "addenda05"
    payment_related_information = F(4, 83)
    addenda_sequence_number = F(84, 87, "N")
    entry_detail_sequence_number = F(88, 94, "N")


class Addenda02(Addenda):
    __slots__ = ()
    record_name = "addenda02"
    reference_information_one = F(4, 10)
    reference_information_two = F(11, 13)
    terminal_identification_code = F(14, 19)
    transaction_serial_number = F(20, 25)
    transaction_date = F(26, 29, "C")
    authorization_code_or_expire_date = F(30, 35)
    terminal_location = F(36, 62)
    terminal_city = F(63, 77)
    terminal_state = F(78, 79)
    trace_number = F(80, 94, "N")


class Addenda98(Addenda):
    __slots__ = ()
    record_name = "addenda98"
    change_code = F(4, 6, "C")
    original_trace_number = F(7, 21, "N")
    reserved_22 = F(22, 27, "R")
    original_rdfi_identification = F(28, 35, "N")
    corrected_data = F(36, 64, "M")
    reserved_65 = F(65, 79, "R")
    trace_number = F(80, 94, "N")


class Addenda99(Addenda):
    __slots__ = ()
    record_name = "addenda99"
    return_reason_code = F(4, 6, "C")
    original_trace_number = F(7, 21, "N")
    date_of_death = F(22, 27)
    original_rdfi_identification = F(28, 35, "N")
    addenda_information = F(36, 79)
    trace_number = F(80, 94, "N")


class IATAddenda(Addenda):
    """IAT addenda 10-18: the layouts differ in 4-87; all end with the entry sequence number."""

    __slots__ = ()
    record_name = "iat_addenda"
    entry_detail_sequence_number = F(88, 94, "N")


class Addenda10(IATAddenda):
    __slots__ = ()
    record_name = "addenda10"
    transaction_type_code = F(4, 6, "C")
    foreign_payment_amount = F(7, 24, "N")
    foreign_trace_number = F(25, 46)
    name = F(47, 81, "M")


class Addenda11(IATAddenda):
    __slots__ = ()
    record_name = "addenda11"
    originator_name = F(4, 38, "M")
    originator_street_address = F(39, 73, "M")


class Addenda12(IATAddenda):
    __slots__ = ()
    record_name = "addenda12"
    originator_city_state = F(4, 38, "M")
    originator_country_postal = F(39, 73, "M")


class Addenda13(IATAddenda):
    __slots__ = ()
    record_name = "addenda13"
    odfi_name = F(4, 38, "M")
    odfi_id_qualifier = F(39, 40, "C")
    odfi_identification = F(41, 74, "M")
    odfi_branch_country_code = F(75, 77, "M")


class Addenda14(IATAddenda):
    __slots__ = ()
    record_name = "addenda14"
    rdfi_name = F(4, 38, "M")
    rdfi_id_qualifier = F(39, 40, "C")
    rdfi_identification = F(41, 74, "M")
    rdfi_branch_country_code = F(75, 77, "M")


class Addenda15(IATAddenda):
    __slots__ = ()
    record_name = "addenda15"
    receiver_identification = F(4, 18)
    receiver_street_address = F(19, 53, "M")


class Addenda16(IATAddenda):
    __slots__ = ()
    record_name = "addenda16"
    receiver_city_state = F(4, 38, "M")
    receiver_country_postal = F(39, 73, "M")


class Addenda17(IATAddenda):
    __slots__ = ()
    record_name = "addenda17"
    payment_related_information = F(4, 83)
    addenda_sequence_number = F(84, 87, "N")


class Addenda18(IATAddenda):
    __slots__ = ()
    record_name = "addenda18"
    foreign_correspondent_bank_name = F(4, 38, "M")
    foreign_correspondent_bank_id_qualifier = F(39, 40, "C")
    foreign_correspondent_bank_id = F(41, 74, "M")
    foreign_correspondent_bank_branch_country = F(75, 77, "M")
    addenda_sequence_number = F(84, 87, "N")


ADDENDA_CLASSES: dict[str, type[Addenda]] = {
    "02": Addenda02,
    "05": Addenda05,
    "98": Addenda98,
    "99": Addenda99,
    "10": Addenda10,
    "11": Addenda11,
    "12": Addenda12,
    "13": Addenda13,
    "14": Addenda14,
    "15": Addenda15,
    "16": Addenda16,
    "17": Addenda17,
    "18": Addenda18,
}


class _BatchControlBase(Record):
    """Columns 1-20 and 80-94: the same in the common and the ADV batch control layouts."""

    __slots__ = ()
    service_class_code = F(2, 4, "C")
    entry_addenda_count = F(5, 10, "N")
    entry_hash = F(11, 20, "N")
    odfi_identification = F(80, 87, "N")
    batch_number = F(88, 94, "N")


class BatchControl(_BatchControlBase):
    __slots__ = ()
    record_name = "batch_control"
    total_debit = F(21, 32, "N")
    total_credit = F(33, 44, "N")
    company_identification = F(45, 54)
    message_authentication_code = F(55, 73)
    reserved_74 = F(74, 79, "R")


class ADVBatchControl(_BatchControlBase):
    __slots__ = ()
    record_name = "adv_batch_control"
    total_debit = F(21, 40, "N")
    total_credit = F(41, 60, "N")
    ach_operator_data = F(61, 79)


class _FileControlBase(Record):
    """Columns 1-31: the same in the common and the ADV file control layouts."""

    __slots__ = ()
    batch_count = F(2, 7, "N")
    block_count = F(8, 13, "N")
    entry_addenda_count = F(14, 21, "N")
    entry_hash = F(22, 31, "N")


class FileControl(_FileControlBase):
    __slots__ = ()
    record_name = "file_control"
    total_debit = F(32, 43, "N")
    total_credit = F(44, 55, "N")
    reserved_56 = F(56, 94, "R")


class ADVFileControl(_FileControlBase):
    __slots__ = ()
    record_name = "adv_file_control"
    total_debit = F(32, 51, "N")
    total_credit = F(52, 71, "N")
    reserved_72 = F(72, 94, "R")


@dataclass(slots=True)
class Entry:
    """An entry detail record and its addenda records."""

    record: AnyEntryDetail
    addenda: list[Addenda] = field(default_factory=list)

    @property
    def line_no(self) -> int:
        return self.record.line_no

    @property
    def amount_cents(self) -> int:
        return self.record.amount_cents

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.record.to_dict()
        a, b = self.record.amount_slice
        out["amount_cents"] = int(self.record.line[a:b]) if is_digits(self.record.line[a:b]) else None
        if self.addenda:
            out["addenda"] = [dict(a.to_dict()) for a in self.addenda]
        return out


class Batch:
    """A batch: header, entries (with their addenda), control.

    A batch read by the fast reader keeps its raw entry lines and builds `Entry` objects only
    when ``entries`` is first used: validation of a plain batch never needs them.
    """

    __slots__ = ("_entries", "_raw", "control", "header")

    def __init__(
        self,
        header: AnyBatchHeader,
        entries: list[Entry] | None = None,
        control: BatchControl | ADVBatchControl | None = None,
        raw: tuple[list[str], int, int] | None = None,
    ) -> None:
        self.header = header
        self.control = control
        self._raw = raw
        self._entries = entries if entries is not None or raw is not None else []

    @property
    def entries(self) -> list[Entry]:
        if self._entries is None:
            lines, start, end = self._raw  # type: ignore[misc]
            self._entries = build_entries(self.header, lines, start, end)
        return self._entries

    @property
    def raw_lines(self) -> list[str] | None:
        """The entry and addenda lines of a lazily read batch whose entries were never built."""
        if self._raw is None or self._entries is not None:
            return None
        lines, start, end = self._raw
        return lines[start:end]

    @property
    def sec(self) -> str:
        return self.header.sec

    def records(self) -> list[Record]:
        out: list[Record] = [self.header]
        for e in self.entries:
            out.append(e.record)
            out.extend(e.addenda)
        if self.control is not None:
            out.append(self.control)
        return out


def entry_class(header: AnyBatchHeader) -> type[EntryDetail] | type[IATEntryDetail] | type[ADVEntryDetail]:
    sec = header.line[50:53]
    if sec == "IAT" or isinstance(header, IATBatchHeader):
        return IATEntryDetail
    if sec == "ADV":
        return ADVEntryDetail
    return EntryDetail


def build_entries(header: AnyBatchHeader, lines: list[str], start: int, end: int) -> list[Entry]:
    """Entries of lines[start:end] (entry and addenda records only, in file order)."""
    cls = entry_class(header)
    out: list[Entry] = []
    for i in range(start, end):
        line = lines[i]
        if line[0] == "6":
            out.append(Entry(cls(line, i + 1)))
        else:
            out[-1].addenda.append(ADDENDA_CLASSES.get(line[1:3], Addenda)(line, i + 1))
    return out


@dataclass(slots=True)
class AchFile:
    """A NACHA file: header, batches, control. ``padding_lines`` counts the all-9 filler records."""

    header: FileHeader | None
    batches: list[Batch] = field(default_factory=list)
    control: FileControl | ADVFileControl | None = None
    padding_lines: int = 0
    options: frozenset[str] = frozenset()

    def records(self) -> list[Record]:
        out: list[Record] = [] if self.header is None else [self.header]
        for b in self.batches:
            out.extend(b.records())
        if self.control is not None:
            out.append(self.control)
        return out

    def to_string(self) -> str:
        """Canonical text: every record on its own line (LF), padded with 9s to the block."""
        from qenex.payments.ach.writer import render

        return render(self)

    def __str__(self) -> str:
        return self.to_string()

    @property
    def entry_count(self) -> int:
        return sum(len(b.entries) for b in self.batches)
