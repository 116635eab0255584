"""Validation of MT messages: blocks 1-5, field formats, structure and network validated rules.

References are to the SWIFT Standards MT (General Information, Category 1/2/9 message reference
guides). Each problem is one `ValidationIssue` with a stable code and a location such as
``block 4 :32A: (line 5)``; validation never raises for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from qenex.payments.common import PaymentFormatError, ValidationReport
from qenex.payments.swift import fields as fmt
from qenex.payments.swift import rules, schemas
from qenex.payments.swift.model import Block, Field, Message, MessageBatch, addresses, decode, parse_text
from qenex.payments.swift.values import date_of

_B1 = re.compile(r"(?P<app>[FAL])(?P<service>01|03|21)(?P<lt>[A-Z0-9]{12})(?P<session>[0-9]{4})(?P<isn>[0-9]{6})\Z")
_B2_IN = re.compile(r"I(?P<mt>[0-9]{3})(?P<lt>[A-Z0-9]{12})(?P<prio>[SUN])?(?P<dm>[123])?(?P<obs>[0-9]{3})?\Z")
_B2_OUT = re.compile(
    r"O(?P<mt>[0-9]{3})(?P<time>[0-9]{4})(?P<date>[0-9]{6})(?P<lt>[A-Z0-9]{12})(?P<session>[0-9]{4})"
    r"(?P<isn>[0-9]{6})(?P<odate>[0-9]{6})(?P<otime>[0-9]{4})(?P<prio>[SUN])?\Z"
)
UETR_V4: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
_B3_FORMATS: Final = {
    "103": re.compile(r"[A-Z]{3}\Z"),
    "113": re.compile(r"[A-Za-z0-9/\-?:().,'+ ]{4}\Z"),
    "108": re.compile(r"[A-Za-z0-9/\-?:().,'+ ]{1,16}\Z"),
    "119": re.compile(r"[A-Za-z0-9]{1,8}\Z"),
    "423": re.compile(r"[0-9]{12}([0-9]{1,6})?\Z"),
    "106": re.compile(r"[0-9]{6}[A-Z0-9]{12}[0-9]{4}[0-9]{6}\Z"),
    "424": re.compile(r"[A-Za-z0-9/\-?:().,'+ ]{1,16}\Z"),
    "111": re.compile(r"[0-9]{3}\Z"),
    "121": UETR_V4,
    "115": re.compile(r".{1,32}\Z"),
    "165": re.compile(r"/[A-Z0-9]{3}/.{0,34}\Z"),
    "433": re.compile(r"/[A-Z]{3}/.{0,26}\Z", re.S),
    "434": re.compile(r"/[A-Z]{3}/.{0,33}\Z", re.S),
}
_B5_TAGS: Final = frozenset({"CHK", "TNG", "PDE", "PDM", "DLM", "MAC", "SYS"})
_CHK = re.compile(r"[0-9A-F]{12}\Z")
# Types whose block 3 must carry the UETR (field 121) since SWIFT's gpi release of November 2018.
UETR_REQUIRED_TYPES: Final = frozenset({"103", "202", "205"})
# Named relaxations for real-world archives, usable as `qenex payments validate --relax NAME`.
RELAXATIONS: Final = {
    "allow_missing_uetr": "accept MT103/202/205 without the UETR (block 3 field 121), e.g. pre-2018 archives",
}
_BAD_CONTINUATION: Final = re.compile(r"\n[-:]")  # a value line after the first starting with '-' or ':'
_BLOCK_ORDER: Final = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "S": 6}


def parse(data: str | bytes) -> Message | MessageBatch:
    """Parse MT text: one FIN message, an RJE/ACK batch, or a statement export (see `model`)."""
    try:
        return parse_text(decode(data))
    except PaymentFormatError:
        raise
    except (RecursionError, MemoryError, UnicodeError) as exc:  # bounded input still protects us
        raise PaymentFormatError(f"MT input could not be read: {type(exc).__name__}", code="mt_syntax") from None


def validate(data: str | bytes | Message | MessageBatch, **options: Any) -> ValidationReport:
    """Validate MT input. Relaxations (see RELAXATIONS): ``allow_missing_uetr=True`` accepts
    MT103/202/205 without block 3 field 121 (archives from before SWIFT made it mandatory)."""
    report = ValidationReport("mt")
    if isinstance(data, Message | MessageBatch):
        parsed: Message | MessageBatch = data
    else:
        try:
            parsed = parse(data)
        except PaymentFormatError as exc:
            report.add(exc.code, exc.message, exc.location)
            return report
    unknown = [name for name in options if name not in RELAXATIONS]
    if unknown:
        report.add("mt_option", f"unknown validation option(s): {', '.join(sorted(unknown))}", "options")
        return report
    require_uetr = not options.get("allow_missing_uetr", False)
    if not isinstance(data, Message | MessageBatch):
        _check_mixed_line_ends(data, parsed, report)
    if isinstance(parsed, MessageBatch):
        types = []
        for i, msg in enumerate(parsed.messages, start=1):
            earlier = parsed.messages[: i - 1]
            types.append(_validate_one(msg, report, f"message {i} ", require_uetr, _lines_in(earlier)))
        report.message_type = "batch of " + ", ".join(sorted(set(types)))
    else:
        report.message_type = _validate_one(parsed, report, "", require_uetr)
    return report


def _check_mixed_line_ends(data: str | bytes, parsed: Message | MessageBatch, report: ValidationReport) -> None:
    """FIN transmits CrLf line ends. A file with LF-only line ends is reported per block 4
    (``mt_line_ends``); one that mixes CrLf with bare LF is reported here, at the first bare LF.
    Bank statement exports (no blocks) are not FIN: they are exempt."""
    if isinstance(parsed, Message) and parsed.bare:
        return
    text = data if isinstance(data, str) else data.decode("latin-1")  # only line positions matter
    crlf_count = text.count("\r\n")
    if not crlf_count or text.count("\n") == crlf_count:
        return
    pos = text.find("\n")
    while pos > 0 and text[pos - 1] == "\r":
        pos = text.find("\n", pos + 1)
    line = text.count("\n", 0, pos) + 1
    report.add(
        "mt_line_ends",
        "line ends mix CrLf and bare LF; FIN transmits CrLf throughout",
        f"line {line}",
        "warning",
    )


def _lines_in(messages: list[Message]) -> Callable[[], int]:
    return lambda: sum(m.to_string().count("\n") for m in messages)


def _validate_one(
    msg: Message, report: ValidationReport, where: str, require_uetr: bool, before: Callable[[], int] = lambda: 0
) -> str:
    if msg.bare:
        return _validate_bare(msg, report)
    mt = msg.message_type
    blocks: dict[str, Block] = {}
    for block in msg.blocks:  # the first block of each name, as Message.block() finds it
        blocks.setdefault(block.name, block)
    b4 = blocks.get("4")
    fields = b4.fields if b4 is not None and b4.fields is not None else []
    b3 = blocks.get("3")
    flag = b3.get("119") if b3 is not None else None
    kind = _kind(mt, flag, fields)
    service = _check_headers(msg, blocks, report, where, mt, require_uetr)
    if b4 is not None and b4.fields is not None:
        if b4.tail != "-":
            report.add("mt_block4_end", "block 4 must end with a line '-' before '}'", f"{where}block 4")
        if b4.lead == "":
            report.add("mt_block4_start", "block 4 must start with a line break after '{4:'", f"{where}block 4")
        elif b4.lead == "\n":
            report.add("mt_line_ends", "block 4 uses LF line ends; FIN transmits CrLf", f"{where}block 4", "warning")
        sender, receiver = addresses(blocks.get("1"), blocks.get("2"))
        _check_fields(b4.fields, report, kind, where, mt, sender, receiver, _block4_line(msg, before))
        _check_validation_flag(flag, fields, report, where, mt)
    elif b4 is None and service in ("01", ""):
        report.add("mt_block_missing", "block 4 (text) is missing", f"{where}message")
    return _type_name(kind, mt, service)


def _check_validation_flag(
    flag: str | None, fields: list[Field], report: ValidationReport, where: str, mt: str
) -> None:
    """Block 3 field 119 and the fields it governs: REMIT carries 77T (and then no 70); COV marks an
    MT202 with the underlying customer transfer in sequence B."""
    tags = {f.tag for f in fields}
    location = f"{where}block 3 {{119:}}"
    if mt == "103":
        if "77T" in tags and flag != "REMIT":
            report.add("mt_validation_flag", "field 77T is allowed only in MT103 REMIT ({119:REMIT})", location)
        if flag == "REMIT" and "77T" not in tags:
            report.add("mt_validation_flag", "MT103 REMIT must carry field 77T (envelope contents)", location)
        if flag == "REMIT" and "70" in tags:
            report.add("mt_validation_flag", "MT103 REMIT must not carry field 70; remittance goes in 77T", location)
        if flag not in (None, "STP", "REMIT"):
            report.add("mt_validation_flag", f"validation flag {flag} is not defined for MT103", location)
    elif mt == "202":
        has_seq_b = any(f.tag[:2] in ("50", "59") for f in fields)
        if has_seq_b and flag != "COV":
            report.add("mt_validation_flag", "an MT202 with sequence B (50a/59a) must carry {119:COV}", location)
        if flag == "COV" and not has_seq_b:
            report.add("mt_validation_flag", "MT202 COV must carry sequence B (50a and 59a)", location)
        if flag not in (None, "COV"):
            report.add("mt_validation_flag", f"validation flag {flag} is not defined for MT202", location)


def _type_name(kind: str, mt: str, service: str) -> str:
    if service in ("21",):
        return "ACK/NAK"
    if kind == "103STP":
        return "MT103 STP"
    if kind == "202COV":
        return "MT202 COV"
    return f"MT{mt}" if mt else "MT"


def _kind(mt: str, flag: str | None, fields: list[Field]) -> str:
    """The structure to check: block 3 {119:} (the flag) selects MT103 STP and MT202 COV."""
    if mt == "103" and flag == "STP":
        return "103STP"
    if mt == "202" and (flag == "COV" or any(f.tag[:2] in ("50", "59") for f in fields)):
        return "202COV"
    return mt


# ---- blocks 1, 2, 3, 5 --------------------------------------------------------------------------
def _check_headers(
    msg: Message, blocks: dict[str, Block], report: ValidationReport, where: str, mt: str, require_uetr: bool
) -> str:
    last = 0
    for block in msg.blocks:
        order = _BLOCK_ORDER.get(block.name)
        if order is None:
            report.add("mt_block_unknown", f"unknown block {block.name!r}", f"{where}block {block.name}")
        elif order <= last:
            report.add(
                "mt_block_order", f"block {block.name} is out of order or repeated", f"{where}block {block.name}"
            )
        else:
            last = order
        if not block.closed:
            report.add("mt_block_unclosed", f"block {block.name} is not closed by '}}'", f"{where}block {block.name}")
    b1 = blocks.get("1")
    service = ""
    if b1 is None:
        report.add("mt_block_missing", "block 1 (basic header) is missing", f"{where}block 1")
    else:
        m1 = _B1.match(b1.raw)
        if m1 is None:
            report.add(
                "mt_block1_format",
                "block 1 must be F01<12-char LT address><4-digit session><6-digit sequence>",
                f"{where}block 1",
            )
        else:
            service = m1["service"]
            _check_lt(m1["lt"], report, f"{where}block 1")
    if service == "21":  # an ACK/NAK service message carries {177:}{451:} and no block 2
        return service
    _check_block2(blocks.get("2"), report, where)
    _check_block3(blocks.get("3"), report, where, mt, require_uetr)
    _check_block5(blocks.get("5"), report, where)
    return service


def _check_lt(lt: str, report: ValidationReport, location: str) -> None:
    bic = lt[:8] + lt[9:]
    problem = bic_problem(bic)
    if problem:
        report.add("mt_bic", f"logical terminal {lt}: {problem}", location)


def _check_block2(b2: Block | None, report: ValidationReport, where: str) -> None:
    if b2 is None:
        report.add("mt_block_missing", "block 2 (application header) is missing", f"{where}block 2")
        return
    raw = b2.raw
    if raw.startswith("I"):
        m = _B2_IN.match(raw)
        if m is None:
            report.add(
                "mt_block2_format",
                "input block 2 must be I<3-digit MT><12-char receiver>[priority][delivery monitoring][obsolescence]",
                f"{where}block 2",
            )
            return
        _check_lt(m["lt"], report, f"{where}block 2")
    elif raw.startswith("O"):
        m = _B2_OUT.match(raw)
        if m is None:
            report.add(
                "mt_block2_format",
                "output block 2 must be O<MT><time><MIR: date, LT, session, ISN><date><time>[priority]",
                f"{where}block 2",
            )
            return
        for key in ("date", "odate"):
            if date_of(m[key]) is None:
                report.add("mt_date", f"block 2 date {m[key]} is not a valid YYMMDD date", f"{where}block 2")
        _check_lt(m["lt"], report, f"{where}block 2")
    else:
        report.add("mt_block2_format", "block 2 must start with I (input) or O (output)", f"{where}block 2")


def _check_block3(b3: Block | None, report: ValidationReport, where: str, mt: str, require_uetr: bool) -> None:
    subs = b3.subfields if b3 is not None and b3.subfields is not None else []
    if b3 is not None and b3.subfields is None:
        report.add("mt_block3_format", "block 3 must be a list of {tag:value} fields", f"{where}block 3")
    seen: set[str] = set()
    for tag, value in subs:
        location = f"{where}block 3 {{{tag}:}}"
        pattern = _B3_FORMATS.get(tag)
        if pattern is None:
            report.add("mt_block3_tag", f"field {tag} is not a user header field", location)
        elif pattern.match(value) is None:
            what = "a UUID version 4 in lower case (8-4-4-4-12)" if tag == "121" else "in its SWIFT format"
            report.add("mt_block3_value", f"field {tag} value {value[:40]!r} is not {what}", location)
        if tag in seen:
            report.add("mt_block3_repeated", f"field {tag} appears twice", location)
        seen.add(tag)
    if require_uetr and mt in UETR_REQUIRED_TYPES and "121" not in seen:
        report.add(
            "mt_uetr_missing",
            f"MT{mt} must carry the UETR in block 3 field 121 (SWIFT gpi, SR 2018)",
            f"{where}block 3",
        )


def _check_block5(b5: Block | None, report: ValidationReport, where: str) -> None:
    if b5 is None:
        return
    if b5.subfields is None:
        if b5.raw:
            report.add("mt_block5_format", "block 5 must be a list of {tag:value} trailers", f"{where}block 5")
        return
    for tag, value in b5.subfields:
        if tag not in _B5_TAGS:
            report.add("mt_block5_tag", f"trailer {tag} is not a SWIFT trailer", f"{where}block 5 {{{tag}:}}")
        elif tag == "CHK" and _CHK.match(value) is None:
            report.add("mt_block5_value", "CHK must be 12 hexadecimal characters", f"{where}block 5 {{CHK:}}")


# ---- block 4 ------------------------------------------------------------------------------------
def _check_fields(
    fields: list[Field],
    report: ValidationReport,
    kind: str,
    where: str,
    mt: str,
    sender: str | None = None,
    receiver: str | None = None,
    first_line: Callable[[], int] | None = None,
) -> None:
    structure = schemas.STRUCTURES.get(kind)
    loc = _locator(fields, where, first_line)
    known, field_report = structure is not None, None
    for i, f in enumerate(fields):
        field_report = _check_field_format(f, report, loc, i, known, field_report)
    if structure is None:
        if mt and not fields:
            report.add("mt_empty", "block 4 has no fields", f"{where}block 4")
        elif mt:
            report.add(
                "mt_rules_not_checked",
                f"MT{mt}: headers, field syntax and the character set were checked; "
                "its structure and network rules are not modelled",
                f"{where}block 4",
                "warning",
            )
        return
    tags = [f.tag for f in fields]
    consumed, missing = schemas.match(kind, tags)
    if missing or consumed < len(tags):
        wrong = schemas.misplaced(kind, tags)
        if wrong is not None:  # every field is there, in the wrong order: one error, not several
            report.add(
                "mt_field_order",
                f"field :{tags[wrong]}: comes after :{tags[wrong - 1]}:, but MT{mt} puts it before;"
                " the fields are all present, out of order",
                loc(wrong),
            )
            return
    for name in missing:
        report.add("mt_field_missing", f"mandatory field {name} is missing", f"{where}block 4")
    if consumed < len(tags):
        allowed = schemas.all_tags(structure)
        tag = tags[consumed]
        if tag in allowed:
            msg = f"field :{tag}: is out of sequence or repeated too often for MT{mt}"
        else:
            msg = f"field :{tag}: is not allowed in {_type_name(kind, mt, '01')}"
        report.add("mt_field_unexpected", msg, loc(consumed))
    elif not missing:  # network rules presuppose a complete structure
        rules.check(kind, fields, report, loc, sender, receiver)


def _locator(fields: list[Field], where: str, first_line: Callable[[], int] | None) -> Callable[[int], str]:
    """Locations "block 4 :32A: (line N)", N counted in the whole input. Lines are counted only when an
    issue is reported, so the common valid path stays cheap."""
    first_lines: list[int] = []

    def loc(i: int) -> str:
        if not first_lines:
            line = first_line() if first_line is not None else 2
            for f in fields:
                first_lines.append(line)
                line += f.value.count("\n") + 1 + max(f.eol.count("\n") - 1, 0)
        return f"{where}block 4 :{fields[i].tag}: (line {first_lines[i]})"

    return loc


def _block4_line(msg: Message, before: Callable[[], int]) -> Callable[[], int]:
    """The input line of block 4's first field: lines of earlier messages + earlier blocks + 1."""

    def line() -> int:
        count = before()
        for block in msg.blocks:
            if block.name == "4":
                return count + block.prefix.count("\n") + block.lead.count("\n") + 1
            count += block.render().count("\n")
        return count + 1

    return line


class _FieldReport:
    """The report as rules.check_field sees it: one per block 4, pointed at the field being checked,
    so a problem is located (line counting) only when there is one."""

    __slots__ = ("report", "loc", "i")

    def __init__(self, report: ValidationReport, loc: Callable[[int], str]) -> None:
        self.report, self.loc, self.i = report, loc, 0

    def add(self, code: str, message: str, location: str = "", severity: str = "error") -> None:
        self.report.add(code, message, self.loc(self.i), severity)


def _check_field_format(
    f: Field,
    report: ValidationReport,
    loc: Callable[[int], str],
    i: int,
    known: bool,
    field_report: _FieldReport | None = None,
) -> _FieldReport | None:
    text = f.text
    compiled = fmt.PATTERNS.get(f.tag)
    ok = None if compiled is None else compiled.match(text) is not None
    if ok is None:
        if known:
            return field_report  # unknown tags are reported by the structure check
        if not fmt.is_x_text(text) and not f.tag.startswith("77"):
            report.add("mt_charset", "value uses characters outside the SWIFT X character set", loc(i))
        return field_report
    if not ok:
        notation = fmt.FORMATS[f.tag]
        if f.tag != "77T" and not fmt.is_x_text(text):
            report.add(
                "mt_charset", f"value uses characters outside the SWIFT X character set (format {notation})", loc(i)
            )
        else:
            report.add("mt_field_format", f"value {_show(text)} does not match the format {notation}", loc(i))
        return field_report
    if "\n" in text and _BAD_CONTINUATION.search(text) is not None:
        report.add("mt_field_line", "a continuation line must not start with '-' or ':'", loc(i))
    if f.tag in rules.CHECKED_TAGS:
        if field_report is None:
            field_report = _FieldReport(report, loc)
        field_report.i = i
        rules.check_field(f, field_report, "")  # type: ignore[arg-type]  # duck-typed report
    return field_report


def _show(text: str) -> str:
    short = text if len(text) <= 40 else text[:37] + "..."
    return repr(short)


# ---- bare statement exports ---------------------------------------------------------------------
def _const(value: int) -> Callable[[], int]:
    return lambda: value


def _validate_bare(msg: Message, report: ValidationReport) -> str:
    """A statement export: statements start at each :20:. Non-field lines before a statement (a
    transport header such as ``ABNANL2A`` / ``940``) are warnings; stray lines inside one are errors."""
    statements: list[list[Field]] = []
    starts: list[int] = []
    line_no = 1
    in_statement = False
    for seg in msg.segments or []:
        if isinstance(seg, Field):
            in_statement = True
            if seg.tag == "20" or not statements:
                statements.append([])
                starts.append(line_no)
            statements[-1].append(seg)
            line_no += seg.value.count("\n") + seg.eol.count("\n")
            continue
        text = seg.strip()
        if text == "-":
            in_statement = False
        elif text:
            severity = "error" if in_statement else "warning"
            report.add("mt_stray_line", f"line {text[:30]!r} is not part of a field", f"line {line_no}", severity)
        line_no += seg.count("\n")
    types = set()
    for n, fields in enumerate(statements, start=1):
        kind = (
            "942"
            if any(f.tag in ("34F", "13D") for f in fields) and not any(f.number == "60" for f in fields)
            else "940"
        )
        types.add(kind)
        _check_fields(fields, report, kind, f"statement {n} ", kind, first_line=_const(starts[n - 1]))
    return "MT" + "/".join(sorted(types))


bic_problem = fmt.bic_problem
