"""NACHA rules: field formats, SEC-specific entry rules, addenda, controls and totals.

Every rule adds a located issue ("line N" plus the field name) to the report; nothing stops at
the first problem. The per-entry path is the hot one (files hold hundreds of thousands of
entries): a precompiled whole-record pattern clears a well-formed entry in one C call and the
field-by-field diagnosis only runs when that fails.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from operator import itemgetter

from qenex.payments.ach import codes as C
from qenex.payments.ach.codes import is_digits
from qenex.payments.ach.options import AchOptions
from qenex.payments.ach.reader import block_count
from qenex.payments.ach.records import (
    RECORD_LENGTH_CHARS,
    AchFile,
    Addenda,
    ADVBatchControl,
    Batch,
    Entry,
    IATBatchHeader,
    IATEntryDetail,
    Record,
)
from qenex.payments.common import ERRORS_PER_REPORT_MAX, ValidationIssue, ValidationReport

ENTRY_HASH_MODULO = 10**10
_ID_MODIFIER = re.compile(r"[A-Z0-9]", re.ASCII)
_ALPHA2 = re.compile(r"[A-Z]{2}", re.ASCII)
_ALPHA3 = re.compile(r"[A-Z]{3}", re.ASCII)
_MONTHS = frozenset(f"{m:02d}" for m in range(1, 13))


# Fast path for batches of the common layout (no addenda, or 05s): whole-batch patterns prove
# a batch clean in C; anything doubtful goes to the per-entry path, which locates the problem.
FAST_PATH_ENABLED = True  # tests switch it off to prove both paths agree
_FAST_SEC = frozenset({"PPD", "CCD", "WEB", "TEL", "CTX"})
_TC_ALL = "[2-4][1-46-9]|5[1-6]"
_TC_CREDIT = "[2-5][1-4]"
_TC_DEBIT = "[2-4][6-9]|5[56]"


def _entries_pattern(tc: str) -> re.Pattern[str]:
    one = rf"6(?:{tc})\d{{9}}[ -~]{{17}}\d{{10}}[ -~]{{39}}[01]\d{{15}}"  # printable ASCII only
    return re.compile(rf"{one}(?:\n{one})*", re.ASCII)


_FAST_ENTRIES = {
    C.SCC_MIXED: _entries_pattern(_TC_ALL),
    C.SCC_CREDITS: _entries_pattern(_TC_CREDIT),
    C.SCC_DEBITS: _entries_pattern(_TC_DEBIT),
}
_TRACE = itemgetter(slice(79, 94))
_FIRST = itemgetter(0)
_INDICATOR = itemgetter(78)
_SEQUENCES = itemgetter(slice(83, 94))  # addenda sequence number and entry detail sequence number
_CTX_COUNT = itemgetter(slice(54, 58))
_ENTRY_RUN = re.compile("67*")
_ADDENDA05_FAST_SEC = frozenset({"PPD", "CCD", "WEB", "CTX"})
_ADDENDA05_LINE = r"705[ -~]{80}[0-9]{11}"
_ADDENDA05_MANY = re.compile(rf"{_ADDENDA05_LINE}(?:\n{_ADDENDA05_LINE})*", re.ASCII)
_TRACE_ODFI = itemgetter(slice(79, 87))
_ROUTING = itemgetter(slice(3, 12))
_AMOUNT = itemgetter(slice(29, 39))
# Conditions that send a batch to the per-entry path, one alternation per SEC and options.
_BLANK_ACCOUNT = r"\n6.{11} {17}"
_BLANK_NAME = r"\n6.{53}[ 0]{22}"
_PRENOTE_NONZERO = r"\n6(?:2[3489]|3[3489]|4[3489]|5[34]).{26}(?!0{10})"
_WEB_BAD_PAYMENT_TYPE = rf"\n6(?:{_TC_DEBIT}).{{73}}(?!R |S )"
_TEL_BAD = rf"\n6(?:{_TC_CREDIT})|\n6.{{75}}(?!R |S |  )"


@lru_cache(maxsize=64)
def _doubt_pattern(sec: str, name_required: bool, amounts_checked: bool) -> re.Pattern[str]:
    parts = [_BLANK_ACCOUNT]
    if name_required:
        parts.append(_BLANK_NAME)
    if amounts_checked:
        parts.append(_PRENOTE_NONZERO)
    if sec == "WEB":
        parts.append(_WEB_BAD_PAYMENT_TYPE)
    if sec == "TEL":
        parts.append(_TEL_BAD)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.ASCII)


_DEBIT_AMOUNT = re.compile(rf"\n6(?:{_TC_DEBIT}).{{26}}(\d{{10}})", re.ASCII)
_CREDIT_AMOUNT = re.compile(rf"\n6(?:{_TC_CREDIT}).{{26}}(\d{{10}})", re.ASCII)
_NAME_REQUIRED_SEC = frozenset({"TEL", "WEB", "PPD", "CIE"})


_SAME_DAY_MAX_TEXT = f"{C.SAME_DAY_ENTRY_AMOUNT_MAX_CENTS:010d}"
_RECORD_STRIDE = 95  # 94 characters and the newline


def _column_number_sum(text: str, start: int, width: int) -> int:
    """Sum over all records of the number in columns start..start+width (0-based), where
    ``text`` is "\n" + records joined by "\n" and every one of them is known to hold digits
    there: digit column by digit column, each summed in C over a strided slice."""
    count = len(text) // _RECORD_STRIDE
    total = 0
    for j in range(width):
        column = text[1 + start + j :: _RECORD_STRIDE].encode("ascii")
        total = total * 10 + sum(column) - 48 * count
    return total


_LAYOUT_PATTERNS: dict[type[Record], re.Pattern[str]] = {}


def _layout_pattern(cls: type[Record]) -> re.Pattern[str]:
    pattern = _LAYOUT_PATTERNS.get(cls)
    if pattern is None:
        pattern = _LAYOUT_PATTERNS[cls] = _build_layout_pattern(cls)
    return pattern


def _build_layout_pattern(cls: type[Record]) -> re.Pattern[str]:
    """One pattern per record layout that a clean record matches: digits in numeric fields,
    blanks or zeros in reserved ones, printable ASCII elsewhere (mandatory text is checked apart)."""
    kinds = ["p"] * RECORD_LENGTH_CHARS
    for f in cls.fields:
        for i in range(f.start, min(f.end, RECORD_LENGTH_CHARS)):
            if f.kind == "N":
                kinds[i] = "d"
            elif f.kind == "R" and kinds[i] == "p":
                kinds[i] = "r"
    classes = {"d": "[0-9]", "r": "[ 0]", "p": "[ -~]"}
    out, i = [], 0
    while i < RECORD_LENGTH_CHARS:
        j = i
        while j < RECORD_LENGTH_CHARS and kinds[j] == kinds[i]:
            j += 1
        out.append(f"{classes[kinds[i]]}{{{j - i}}}")
        i = j
    return re.compile("".join(out), re.ASCII)


def _yymmdd(value: str) -> date | None:
    if len(value) != 6 or not is_digits(value):
        return None
    try:
        return date(2000 + int(value[:2]), int(value[2:4]), int(value[4:6]))
    except ValueError:
        return None


class _Checker:
    def __init__(self, report: ValidationReport, opts: AchOptions) -> None:
        self.report = report
        self.opts = opts
        self.routing_ok: dict[str, bool] = {}
        self.file_date: date | None = None

    def err(self, rec: Record, field: str, code: str, message: str) -> None:
        self.report.add(code, message, f"line {rec.line_no} {rec.record_name}.{field}")

    def warn(self, rec: Record, field: str, code: str, message: str) -> None:
        self.report.add(code, message, f"line {rec.line_no} {rec.record_name}.{field}", severity="warning")

    # -- generic field checks -------------------------------------------------------------
    def fields(self, rec: Record) -> bool:
        """Numeric fields hold digits, mandatory ones are not blank, reserved ones are blank.
        Returns True when the whole record also is printable ASCII (no charset check needed)."""
        line = rec.line
        if _layout_pattern(type(rec)).fullmatch(line) is not None:
            for f in rec.mandatory:
                if not line[f.start : f.end].strip():
                    self.err(rec, f.name, "ach_required", f"{f.name} is required")
            return True
        for f in rec.fields:
            value = line[f.start : f.end]
            if f.kind == "N" and not is_digits(value):
                self.err(rec, f.name, "ach_numeric", f"{f.name} must be {f.width} digits, found '{value.strip()}'")
            elif f.kind == "M" and not value.strip():
                self.err(rec, f.name, "ach_required", f"{f.name} is required")
            elif f.kind == "R" and value.strip(" 0"):
                self.warn(rec, f.name, "ach_reserved", f"{f.name} is reserved and should be blank")
        return False

    def charset(self, rec: Record) -> None:
        line = rec.line
        if line.isascii() and line.isprintable():
            return
        if self.opts.allow_special_characters and line.isprintable():
            return
        bad = next((i for i, ch in enumerate(line) if not (" " <= ch <= "~")), 0)
        name = next((f.name for f in rec.fields if f.start <= bad < f.end), "record")
        self.err(rec, name, "ach_character_set", f"character at column {bad + 1} is outside printable ASCII")

    def routing(self, rec: Record, field: str, value: str) -> None:
        ok = self.routing_ok.get(value)
        if ok is None:
            ok = C.routing_valid(value)
            self.routing_ok[value] = ok
        if not ok and not self.opts.allow_invalid_check_digit:
            self.err(rec, field, "ach_routing_check_digit", f"routing number '{value}' fails the check digit")

    # -- file header ------------------------------------------------------------------------
    def file_header(self, f: AchFile) -> None:
        h = f.header
        if h is None:
            return
        self.fields(h)
        line = h.line
        dest = line[3:13]
        if not self.opts.bypass_destination_validation:
            routing = dest.strip()
            if len(routing) != 9 or not is_digits(routing):
                self.err(
                    h,
                    "immediate_destination",
                    "ach_immediate_destination",
                    "immediate destination must be a blank followed by a 9-digit routing number",
                )
            elif not C.routing_valid(routing):
                self.err(
                    h,
                    "immediate_destination",
                    "ach_routing_check_digit",
                    f"immediate destination {routing} routing number check digit mismatch",
                )
        origin = line[13:23]
        if not self.opts.bypass_origin_validation and not origin.strip():
            self.err(h, "immediate_origin", "ach_immediate_origin", "immediate origin is required")
        elif self.opts.require_aba_origin and not (origin[0] == " " and C.routing_valid(origin[1:])):
            self.err(
                h,
                "immediate_origin",
                "ach_immediate_origin",
                "immediate origin must be a blank followed by a valid routing number",
            )
        self.file_date = _yymmdd(line[23:29])
        if self.file_date is None:
            self.err(h, "file_creation_date", "ach_date", f"file creation date '{line[23:29]}' is not YYMMDD")
        time = line[29:33]
        if time.strip() and not (is_digits(time) and int(time[:2]) < 24 and int(time[2:]) < 60):
            self.err(h, "file_creation_time", "ach_time", f"file creation time '{time}' is not HHMM")
        if not _ID_MODIFIER.fullmatch(line[33]):
            self.err(h, "file_id_modifier", "ach_file_id_modifier", "file ID modifier must be A-Z or 0-9")
        if line[34:37] != "094":
            self.err(h, "record_size", "ach_record_size", "record size must be 094")
        if line[37:39] != "10":
            self.err(h, "blocking_factor", "ach_blocking_factor", "blocking factor must be 10")
        if line[39] != "1":
            self.err(h, "format_code", "ach_format_code", "format code must be 1")

    # -- batch header -----------------------------------------------------------------------
    def batch_header(self, b: Batch) -> None:
        h = b.header
        self.fields(h)
        line = h.line
        scc, sec = line[1:4], line[50:53]
        if scc not in C.SERVICE_CLASS_CODES:
            self.err(h, "service_class_code", "ach_service_class_code", f"unknown service class code '{scc}'")
        if sec not in C.SEC_CODES:
            self.err(h, "standard_entry_class_code", "ach_sec_code", f"unknown SEC code '{sec}'")
        elif (sec == "ADV") != (scc == C.SCC_ADV):
            self.err(h, "service_class_code", "ach_service_class_code", "service class 280 is for ADV batches only")
        if not isinstance(h, IATBatchHeader) and line[4:20].strip("0 ") == "":
            self.err(h, "company_name", "ach_only_zeros", "company name must not be blank or all zeros")
        effective = line[69:75]
        # NACHA Appendix Three: the ACH Operator replaces an invalid or stale effective entry
        # date with the next settlement date, so it is not a reason to reject the file.
        if _yymmdd(effective) is None and (effective.strip("0 ") or (sec != "COR" and not self._all_returns(b))):
            self.warn(
                h, "effective_entry_date", "ach_effective_date", f"effective entry date '{effective}' is not YYMMDD"
            )
        if line[78] not in "012":
            self.err(h, "originator_status_code", "ach_originator_status", "originator status code must be 0, 1 or 2")
        if isinstance(h, IATBatchHeader):
            self.iat_header(h)

    def iat_header(self, h: IATBatchHeader) -> None:
        line = h.line
        if line[20:22] not in ("FV", "VF", "FF"):
            self.err(h, "foreign_exchange_indicator", "ach_iat_fx_indicator", "must be FV, VF or FF")
        if line[22] not in "123":
            self.err(h, "foreign_exchange_reference_indicator", "ach_iat_fx_reference", "must be 1, 2 or 3")
        if not _ALPHA2.fullmatch(line[38:40]):
            self.err(h, "iso_destination_country_code", "ach_iso_code", "must be an ISO 3166 alpha-2 code")
        for start, name in ((63, "iso_originating_currency_code"), (66, "iso_destination_currency_code")):
            if not _ALPHA3.fullmatch(line[start : start + 3]):
                self.err(h, name, "ach_iso_code", "must be an ISO 4217 alpha-3 code")

    @staticmethod
    def _all_returns(b: Batch) -> bool:
        return bool(b.entries) and all(e.addenda and e.addenda[0].line[1:3] in ("98", "99") for e in b.entries)

    # -- entries ----------------------------------------------------------------------------
    def batch(self, b: Batch) -> tuple[int, int, int, int]:
        """Checks one batch; returns (entry+addenda count, entry hash, debit, credit)."""
        self.batch_header(b)
        h = b.header
        scc, sec = h.line[1:4], h.line[50:53]
        same_day = self.file_date is not None and _yymmdd(h.line[69:75]) == self.file_date
        raw = b.raw_lines
        if FAST_PATH_ENABLED and raw and sec in _FAST_SEC and not isinstance(h, IATBatchHeader):
            sums = self.fast_batch(raw, scc, sec, same_day, h.line[79:87])
            if sums is not None:
                return sums
        count = ehash = debit = credit = 0
        last_trace = ""
        for e in b.entries:
            line = e.record.line
            cents = self.entry(e, sec, scc, same_day)
            if line[79:87] != h.line[79:87] and sec != "ADV":
                self.err(
                    e.record,
                    "trace_number",
                    "ach_trace_odfi",
                    "the trace number's first 8 digits must equal the batch header's ODFI identification",
                )
            count += 1 + len(e.addenda)
            rdfi = line[3:11]
            if is_digits(rdfi):
                ehash += int(rdfi)
            tc = line[1:3]
            if tc in C.DEBIT_CODES:
                debit += cents
            elif tc in C.CREDIT_CODES:
                credit += cents
            trace = line[79:94]
            if trace <= last_trace and not self.opts.allow_unordered_trace_numbers:
                self.err(e.record, "trace_number", "ach_trace_order", "trace numbers must ascend within a batch")
            last_trace = trace
            if e.addenda or isinstance(h, IATBatchHeader):
                self.addenda(e, sec, iat=isinstance(h, IATBatchHeader))
        if not b.entries:
            self.err(h, "batch", "ach_batch_empty", "batch has no entry detail record")
        return count, ehash % ENTRY_HASH_MODULO, debit, credit

    def fast_batch(
        self, plain: list[str], scc: str, sec: str, same_day: bool, odfi: str
    ) -> tuple[int, int, int, int] | None:
        """Totals of a clean batch, or None when the per-entry path must look at it. Entries
        may carry addenda 05 (one for PPD, CCD, WEB; as declared for CTX); others go the long way."""
        types = "".join(map(_FIRST, plain))
        addenda_count = 0
        if "7" in types or sec == "CTX":
            split = self._split_addenda05(plain, types, sec)
            if split is None:
                return None
            plain, addenda_count = split
        elif "1" in map(_INDICATOR, plain):
            return None
        pattern = _FAST_ENTRIES.get(scc)
        # Every entry starts with "\n6": a literal prefix the regex engine scans for quickly.
        text = "\n" + "\n".join(plain)
        if pattern is None or pattern.fullmatch(text, 1) is None:
            return None
        opts = self.opts
        name_required = sec in _NAME_REQUIRED_SEC and not opts.allow_empty_individual_name
        if _doubt_pattern(sec, name_required, not opts.allow_invalid_amounts).search(text):
            return None
        if set(map(_TRACE_ODFI, plain)) != {odfi}:
            return None
        if not opts.allow_unordered_trace_numbers:
            traces = list(map(_TRACE, plain))
            if sorted(traces) != traces or len(set(traces)) != len(traces):
                return None
        if not opts.allow_invalid_check_digit:
            for routing in set(map(_ROUTING, plain)):
                ok = self.routing_ok.get(routing)
                if ok is None:
                    ok = self.routing_ok[routing] = C.routing_valid(routing)
                if not ok:
                    return None
        if same_day and not opts.allow_invalid_amounts and max(map(_AMOUNT, plain)) > _SAME_DAY_MAX_TEXT:
            return None
        ehash = _column_number_sum(text, 3, 8)
        if scc == C.SCC_CREDITS:
            debit, credit = 0, _column_number_sum(text, 29, 10)
        elif scc == C.SCC_DEBITS:
            debit, credit = _column_number_sum(text, 29, 10), 0
        else:
            debit = sum(map(int, _DEBIT_AMOUNT.findall(text)))
            credit = sum(map(int, _CREDIT_AMOUNT.findall(text)))
        return len(plain) + addenda_count, ehash % ENTRY_HASH_MODULO, debit, credit

    @staticmethod
    def _split_addenda05(lines: list[str], types: str, sec: str) -> tuple[list[str], int] | None:
        """(entry lines, addenda count) when every addenda is a well-formed 05 (one at most, or
        as many as a CTX entry declares), the entry's indicator says so and the addenda and
        entry sequence numbers count up and point back at it; else None."""
        if sec not in _ADDENDA05_FAST_SEC or (sec != "CTX" and "77" in types):
            return None
        entries = [line for line in lines if line[0] == "6"]
        addenda = [line for line in lines if line[0] == "7"]
        counts = [len(run) - 1 for run in _ENTRY_RUN.findall(types)]
        if "".join(map(_INDICATOR, entries)) != "".join(["1" if c else "0" for c in counts]):
            return None
        if addenda and _ADDENDA05_MANY.fullmatch("\n".join(addenda)) is None:
            return None
        expected = [f"{k:04d}{e[87:94]}" for e, c in zip(entries, counts, strict=True) for k in range(1, c + 1)]
        if list(map(_SEQUENCES, addenda)) != expected:
            return None
        if sec == "CTX" and list(map(_CTX_COUNT, entries)) != [f"{c:04d}" for c in counts]:
            return None
        return entries, len(addenda)

    def entry(self, e: Entry, sec: str, scc: str, same_day: bool) -> int:
        rec = e.record
        line = rec.line
        if not self.fields(rec):
            self.charset(rec)
        a, b = rec.amount_slice
        amount = line[a:b]
        cents = int(amount) if is_digits(amount) else 0
        tc = line[1:3]
        self.routing(rec, "check_digit", line[3:12])
        if tc not in C.TRANSACTION_CODES:
            self.err(rec, "transaction_code", "ach_transaction_code", f"unknown transaction code '{tc}'")
        elif scc == C.SCC_CREDITS and tc in C.DEBIT_CODES:
            self.err(rec, "transaction_code", "ach_service_class_mismatch", "debit entry in a credits-only (220) batch")
        elif scc == C.SCC_DEBITS and tc in C.CREDIT_CODES:
            self.err(rec, "transaction_code", "ach_service_class_mismatch", "credit entry in a debits-only (225) batch")
        indicator = line[78]
        if indicator not in "01":
            self.err(
                rec, "addenda_record_indicator", "ach_addenda_indicator", "addenda record indicator must be 0 or 1"
            )
        if (indicator == "1") != bool(e.addenda) and not isinstance(rec, IATEntryDetail):
            self.err(
                rec,
                "addenda_record_indicator",
                "ach_addenda_indicator",
                f"addenda record indicator is {indicator} but the entry has {len(e.addenda)} addenda",
            )
        if not self.opts.allow_invalid_amounts:
            if tc in C.ZERO_AMOUNT_CODES and cents:
                self.err(rec, "amount", "ach_prenote_amount", "prenotification and zero-dollar entries carry 0")
            if same_day and cents > C.SAME_DAY_ENTRY_AMOUNT_MAX_CENTS:
                # Not a rejection: the ACH Operator settles an ineligible entry the next day.
                self.warn(
                    rec,
                    "amount",
                    "ach_same_day_limit",
                    "above the $1,000,000.00 same-day limit: it will settle next day",
                )
        self.sec_rules(e, sec, tc, cents)
        return cents

    def sec_rules(self, e: Entry, sec: str, tc: str, cents: int) -> None:
        rec, line = e.record, e.record.line
        returned = bool(e.addenda) and e.addenda[0].line[1:3] in ("98", "99")
        if sec == "COR":
            if tc not in C.RETURN_NOC_CODES:
                self.err(
                    rec, "transaction_code", "ach_cor_transaction_code", "COR entries use codes 21/26/31/36/41/46/51/56"
                )
            if cents:
                self.err(rec, "amount", "ach_cor_amount", "COR entries carry a zero amount")
            # A domestic COR carries one addenda 98; an IAT one keeps its addenda 10-16 before it.
            types = [a.line[1:3] for a in e.addenda]
            if types.count("98") != 1 or types[-1] != "98" or (len(types) > 1 and types[0] != "10"):
                self.err(rec, "addenda", "ach_cor_addenda", "a COR entry carries exactly one addenda 98")
            return
        if sec == "ADV":
            if tc not in C.ADV_CODES:
                self.err(rec, "transaction_code", "ach_adv_transaction_code", "ADV entries use codes 81-88")
            return
        if sec == "IAT":
            return
        if tc in C.ADV_CODES:
            self.err(rec, "transaction_code", "ach_transaction_code", "codes 81-88 are for ADV batches only")
        if returned:
            return
        if sec in C.DEBIT_ONLY_SEC and tc in C.CREDIT_CODES:
            self.err(rec, "transaction_code", "ach_sec_debit_only", f"{sec} entries must be debits")
        if sec in C.CREDIT_ONLY_SEC and tc in C.DEBIT_CODES:
            self.err(rec, "transaction_code", "ach_sec_credit_only", f"{sec} entries must be credits")
        ceiling = C.SEC_AMOUNT_MAX_CENTS.get(sec)
        if ceiling is not None and cents > ceiling and not self.opts.allow_invalid_amounts:
            self.err(rec, "amount", "ach_sec_amount_limit", f"{sec} entries are limited to {ceiling // 100} dollars")
        if sec in ("ARC", "BOC", "RCK") and not line[39:54].strip():
            self.err(rec, "identification_number", "ach_check_serial", f"{sec} entries need the check serial number")
        if sec == "POP" and (not line[39:48].strip() or not line[48:52].strip() or not line[52:54].strip()):
            self.err(
                rec, "identification_number", "ach_pop_fields", "POP entries need check serial, terminal city and state"
            )
        if (
            sec in ("TEL", "WEB", "PPD", "CIE")
            and not line[54:76].strip("0 ")
            and not self.opts.allow_empty_individual_name
        ):
            self.err(rec, "individual_name", "ach_only_zeros", "individual name must not be blank or all zeros")
        if sec == "WEB" and tc in C.DEBIT_CODES and line[76:78] not in ("R ", "S "):
            self.err(rec, "discretionary_data", "ach_payment_type", "WEB debits carry payment type code R or S")
        if sec == "TEL" and line[76:78] not in ("R ", "S ", "  "):
            self.err(rec, "discretionary_data", "ach_payment_type", "TEL payment type code must be R, S or blank")
        if sec == "CTX":
            declared = line[54:58]
            if not is_digits(declared) or int(declared) != len(e.addenda):
                self.err(
                    rec,
                    "number_of_addenda",
                    "ach_ctx_addenda_count",
                    f"number of addenda records '{declared}' does not match the {len(e.addenda)} present",
                )
        if sec == "SHR" and line[39:41] not in _MONTHS:
            self.err(
                rec,
                "identification_number",
                "ach_card_expiration",
                f"card expiration month '{line[39:41]}' is not 01-12",
            )

    # -- addenda ----------------------------------------------------------------------------
    def addenda(self, e: Entry, sec: str, iat: bool = False) -> None:
        types = [a.line[1:3] for a in e.addenda]
        for a in e.addenda:
            self.one_addenda(a, e)
        # Every entry of an IAT batch, returns (IAT) and notifications of change (COR, IATCOR) included,
        # carries the seven mandatory addenda 10-16 (NACHA Appendix Three, IAT entries; Appendix Four
        # and Five, IAT returns and NOCs), so an IAT entry is checked as one before its 98/99.
        if iat or sec == "IAT" or types[0] == "10":
            self.iat_addenda(e, types)
        elif types[0] in ("98", "99"):
            self.return_addenda(e, sec, types)
        elif sec == "CTX":
            self.ctx_addenda(e, types)
        elif sec in C.ADDENDA02_SEC:
            if types != ["02"]:
                self.err(e.record, "addenda", "ach_addenda_type", f"{sec} entries carry exactly one addenda 02")
        elif any(t != "05" for t in types):
            self.err(e.record, "addenda", "ach_addenda_type", f"{sec} entries carry only addenda 05, 98 or 99")
        elif sec in C.NO_ADDENDA05_SEC:
            self.err(e.record, "addenda", "ach_addenda_count", f"{sec} entries carry no addenda 05")
        elif sec in C.SINGLE_ADDENDA05_SEC and len(types) > 1:
            self.err(e.record, "addenda", "ach_addenda_count", f"{sec} entries carry at most one addenda 05")
        self.addenda_sequence(e)

    def one_addenda(self, a: Addenda, e: Entry) -> None:
        if a.line[1:3] not in ("02", "05", "98", "99", "10", "11", "12", "13", "14", "15", "16", "17", "18"):
            self.err(a, "type_code", "ach_addenda_type", f"unknown addenda type code '{a.line[1:3]}'")
            return
        if not self.fields(a):
            self.charset(a)
        if a.line[1:3] == "02":
            mmdd = a.line[25:29]
            if not (is_digits(mmdd) and mmdd[:2] in _MONTHS and 1 <= int(mmdd[2:]) <= 31):
                self.err(a, "transaction_date", "ach_date", f"transaction date '{mmdd}' is not MMDD")

    def addenda_sequence(self, e: Entry) -> None:
        expected_entry_seq = e.record.line[87:94]
        seq = 0
        for a in e.addenda:
            if a.line[1:3] != "05":
                continue
            seq += 1
            if is_digits(a.line[83:87]) and int(a.line[83:87]) != seq:
                self.err(a, "addenda_sequence_number", "ach_addenda_sequence", f"expected addenda sequence {seq}")
            if a.line[87:94] != expected_entry_seq:
                self.err(
                    a,
                    "entry_detail_sequence_number",
                    "ach_addenda_sequence",
                    "entry detail sequence number must equal the last 7 digits of the entry's trace number",
                )

    def return_addenda(self, e: Entry, sec: str, types: list[str], first: Addenda | None = None) -> None:
        first = first or e.addenda[0]
        kind = types[0]
        # Dishonored (R61-R70) and contested (R71-R77) returns may follow the original 99.
        extra = [a for a in e.addenda[1:] if a.line[1:3] != "05" and not self._dishonor(a)]
        if extra and sec != "IAT":
            self.err(e.record, "addenda", "ach_addenda_count", "a return or NOC entry carries one addenda 98/99")
        code = first.line[3:6]
        if kind == "98" and code not in C.CHANGE_CODES:
            self.err(first, "change_code", "ach_change_code", f"'{code}' is not a NACHA change code (C01-C14, C61-C69)")
        if kind == "99" and code not in C.RETURN_CODES and not self.opts.custom_return_codes:
            self.err(first, "return_reason_code", "ach_return_code", f"'{code}' is not a NACHA return reason code")

    @staticmethod
    def _dishonor(a: Addenda) -> bool:
        code = a.line[3:6]
        return a.line[1:3] == "99" and code[:1] == "R" and is_digits(code[1:]) and 61 <= int(code[1:]) <= 77

    def iat_addenda(self, e: Entry, types: list[str]) -> None:
        rec = e.record
        mandatory = ["10", "11", "12", "13", "14", "15", "16"]
        if rec.line[78:79] != "1":
            self.err(
                rec, "addenda_record_indicator", "ach_addenda_indicator", "IAT entries always carry addenda: use 1"
            )
        if types[:7] != mandatory:
            what = {"98": "an IAT notification of change", "99": "an IAT return"}.get(types[-1] if types else "")
            self.err(
                rec,
                "addenda",
                "ach_iat_addenda",
                f"{what} keeps the seven mandatory addenda 10 to 16, in that order, before its addenda {types[-1]}"
                if what
                else "IAT entries carry addenda 10 to 16, in that order",
            )
            if what:
                self.return_addenda(e, "IAT", types[-1:], first=e.addenda[-1])
            return
        rest = types[7:]
        n17, n18 = rest.count("17"), rest.count("18")
        if rest[-1:] in (["98"], ["99"]):
            self.return_addenda(e, "IAT", rest[-1:], first=e.addenda[-1])
            rest = rest[:-1]
        if rest != ["17"] * n17 + ["18"] * n18:
            self.err(rec, "addenda", "ach_iat_addenda", "after addenda 16 come up to two 17s, then up to five 18s")
        if n17 > C.IAT_ADDENDA17_MAX or n18 > C.IAT_ADDENDA18_MAX:
            self.err(rec, "addenda", "ach_iat_addenda", "at most two addenda 17 and five addenda 18")
        declared = rec.line[12:16]
        if is_digits(declared) and int(declared) != len(types):
            if int(declared) == len(mandatory):
                self.warn(
                    rec,
                    "number_of_addenda",
                    "ach_iat_addenda_count",
                    "number of addenda counts only the seven mandatory records; NACHA counts all",
                )
            else:
                self.err(
                    rec,
                    "number_of_addenda",
                    "ach_iat_addenda_count",
                    f"number of addenda is {int(declared)} but the entry has {len(types)}",
                )
        tt = e.addenda[0].line[3:6]
        if tt not in C.IAT_TRANSACTION_TYPES:
            self.err(
                e.addenda[0],
                "transaction_type_code",
                "ach_iat_transaction_type",
                f"unknown IAT transaction type '{tt}'",
            )

    def ctx_addenda(self, e: Entry, types: list[str]) -> None:
        rec = e.record
        if any(t != "05" for t in types):
            self.err(rec, "addenda", "ach_addenda_type", "CTX entries carry only addenda 05")
        if len(types) > C.CTX_ADDENDA_MAX:
            self.err(rec, "addenda", "ach_addenda_count", f"CTX entries carry at most {C.CTX_ADDENDA_MAX} addenda")

    # -- controls ---------------------------------------------------------------------------
    def batch_control(self, b: Batch, totals: tuple[int, int, int, int], batch_no: str) -> None:
        c = b.control
        if c is None:
            return
        self.fields(c)
        count, ehash, debit, credit = totals
        h = b.header.line
        line = c.line
        if line[1:4] != h[1:4] and not self.opts.unequal_service_class_code:
            self.err(c, "service_class_code", "ach_batch_control", "service class code differs from the batch header")
        self.total(c, "entry_addenda_count", c.entry_addenda_count, count)
        self.total(c, "entry_hash", c.entry_hash, ehash)
        self.total(c, "total_debit", c.total_debit, debit)
        self.total(c, "total_credit", c.total_credit, credit)
        company = line[44:54].strip()
        if not isinstance(c, ADVBatchControl) and company and company != h[40:50].strip():
            self.err(
                c, "company_identification", "ach_batch_control", "company identification differs from the batch header"
            )
        if line[79:87] != h[79:87]:
            self.err(c, "odfi_identification", "ach_batch_control", "ODFI identification differs from the batch header")
        if line[87:94] != batch_no:
            self.err(c, "batch_number", "ach_batch_control", "batch number differs from the batch header")

    def total(self, rec: Record, name: str, declared: str, computed: int) -> None:
        if is_digits(declared) and int(declared) != computed:
            self.err(rec, name, "ach_control_total", f"{name} is {int(declared)} but the records give {computed}")

    def file_control(self, f: AchFile, totals: tuple[int, int, int, int], record_count: int) -> None:
        c = f.control
        if c is None:
            return
        self.fields(c)
        count, ehash, debit, credit = totals
        self.total(c, "batch_count", c.batch_count, len(f.batches))
        self.total(c, "block_count", c.block_count, block_count(record_count))
        self.total(c, "entry_addenda_count", c.entry_addenda_count, count)
        self.total(c, "entry_hash", c.entry_hash, ehash % ENTRY_HASH_MODULO)
        self.total(c, "total_debit", c.total_debit, debit)
        self.total(c, "total_credit", c.total_credit, credit)
        padded = record_count + f.padding_lines
        if padded % 10 and f.padding_lines:
            self.report.add(
                "ach_blocking", f"file has {padded} records: not a multiple of the blocking factor 10", f"line {padded}"
            )
        elif padded % 10:
            self.report.add(
                "ach_blocking",
                "file is not padded with 9s to a multiple of 10 records",
                f"line {padded}",
                severity="warning",
            )


def check_file(f: AchFile, report: ValidationReport, opts: AchOptions) -> None:
    """Every content rule of the file; structure has been checked by the reader."""
    if opts.skip_all:
        return
    ck = _Checker(report, opts)
    if f.header is not None:
        ck.charset(f.header)
    ck.file_header(f)
    if not f.batches and not opts.allow_zero_batches:
        report.add("ach_no_batches", "file has no batch", "line 1")
    totals = [0, 0, 0, 0]
    last_batch_no = -1
    record_count = (f.header is not None) + (f.control is not None)
    for b in f.batches:
        if len(report.issues) >= ERRORS_PER_REPORT_MAX:
            report.issues[-1] = ValidationIssue(
                "ach_too_many_errors",
                f"checking stopped after {ERRORS_PER_REPORT_MAX} issues",
                f"line {b.header.line_no}",
            )
            return
        ck.charset(b.header)
        batch_no = b.header.line[87:94]
        if is_digits(batch_no):
            if int(batch_no) <= last_batch_no and not opts.allow_unordered_batch_numbers:
                ck.err(b.header, "batch_number", "ach_batch_number_order", "batch numbers must ascend")
            last_batch_no = int(batch_no)
        sums = ck.batch(b)
        ck.batch_control(b, sums, batch_no)
        if b.control is not None:
            ck.charset(b.control)
        for i in range(4):
            totals[i] += sums[i]
        record_count += 1 + (b.control is not None) + sums[0]
    ck.file_control(f, (totals[0], totals[1], totals[2], totals[3]), record_count)
