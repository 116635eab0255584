"""NACHA ACH files: read, write, validate, merge and split.

    from qenex.payments import ach
    f = ach.parse(data)                       # AchFile; PaymentFormatError if the structure is broken
    report = ach.validate(data)               # ValidationReport, every issue located by line and field
    report = ach.validate(data, allow_invalid_check_digit=True)   # named relaxations, see OPTION_DOCS
    text = ach.render(f)                      # canonical text, 9-filled to the block

Amounts are integer cents throughout. Relaxation options (``OPTION_DOCS``) are keyword
arguments of `parse` and `validate`; moov-io/ach's Go names (``AllowInvalidCheckDigit``) are
accepted too (``MOOV_OPTION_NAMES``).
"""

from __future__ import annotations

from typing import Any

from qenex.kernel.money import format_minor
from qenex.payments.ach import codes
from qenex.payments.ach.codes import is_digits, routing_check_digit, routing_valid
from qenex.payments.ach.ops import assemble, merge, segment, split
from qenex.payments.ach.options import MOOV_OPTION_NAMES, OPTION_DOCS, AchOptions, make_options
from qenex.payments.ach.reader import read
from qenex.payments.ach.records import AchFile, Batch, Entry
from qenex.payments.ach.validator import check_file
from qenex.payments.ach.writer import (
    AdvInfo,
    BatchSpec,
    EntrySpec,
    FileBuilder,
    IATHeader,
    IATParties,
    ReturnInfo,
    render,
)
from qenex.payments.common import PaymentFormatError, ValidationIssue, ValidationReport

__all__ = [
    "MOOV_OPTION_NAMES",
    "OPTION_DOCS",
    "AchFile",
    "AchOptions",
    "AdvInfo",
    "Batch",
    "BatchSpec",
    "Entry",
    "EntrySpec",
    "FileBuilder",
    "IATHeader",
    "IATParties",
    "ReturnInfo",
    "assemble",
    "codes",
    "describe",
    "merge",
    "parse",
    "render",
    "routing_check_digit",
    "routing_valid",
    "segment",
    "split",
    "to_bytes",
    "to_string",
    "validate",
]


def parse(data: str | bytes, **options: Any) -> AchFile:
    """Read a NACHA file. Raises PaymentFormatError (with its line) when the record structure
    is broken; field and total rules are reported by `validate`."""
    opts = make_options(options)
    achfile, issues = read(data, opts)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more structural problems)" if len(errors) > 1 else ""
        raise PaymentFormatError(first.message + more, location=first.location, code=first.code)
    return achfile


def validate(data: str | bytes | AchFile, **options: Any) -> ValidationReport:
    """Every problem of the file, located; never raises for bad input."""
    report = ValidationReport(format="ach", message_type="NACHA")
    try:
        opts = make_options(options)
        issues: list[ValidationIssue] = []
        if isinstance(data, AchFile):
            achfile = data
        else:
            achfile, issues = read(data, opts)
    except PaymentFormatError as exc:
        report.issues.append(exc.as_issue())
        return report
    secs = sorted({b.sec for b in achfile.batches})
    if secs:
        report.message_type = "NACHA " + " ".join(secs)
    for issue in issues:
        report.add(issue.code, issue.message, issue.location, issue.severity)
    check_file(achfile, report, opts)
    return report


def describe(f: AchFile) -> dict[str, Any]:
    """Human-oriented summary for `qenex payments show`: file, batches and totals; no account numbers."""
    batches = []
    debit = credit = 0
    for b in f.batches:
        bd = bc = 0
        for e in b.entries:
            a, z = e.record.amount_slice
            raw = e.record.line[a:z]
            cents = int(raw) if is_digits(raw) else 0
            tc = e.record.line[1:3]
            if tc in codes.DEBIT_CODES:
                bd += cents
            elif tc in codes.CREDIT_CODES:
                bc += cents
        debit += bd
        credit += bc
        batches.append(
            {
                "batch_number": b.header.line[87:94],
                "sec": b.sec,
                "service_class_code": b.header.line[1:4],
                "company": b.header.line[4:20].strip(),
                "description": b.header.line[53:63].strip(),
                "effective_date": b.header.line[69:75],
                "entries": len(b.entries),
                "total_debit": format_minor(bd, "USD"),
                "total_credit": format_minor(bc, "USD"),
            }
        )
    header = f.header.line if f.header is not None else ""
    return {
        "format": "ach",
        "immediate_destination": header[3:13].strip(),
        "immediate_origin": header[13:23].strip(),
        "destination_name": header[40:63].strip(),
        "origin_name": header[63:86].strip(),
        "file_creation_date": header[23:29],
        "batch_count": len(f.batches),
        "entry_count": f.entry_count,
        "total_debit": format_minor(debit, "USD"),
        "total_credit": format_minor(credit, "USD"),
        "batches": batches,
    }


def to_string(f: AchFile) -> str:
    """The NACHA text of ``f`` (records of 94 characters, LF line ends, blocked by 10): `render`."""
    return render(f)


def to_bytes(f: AchFile) -> bytes:
    """The NACHA file as ASCII bytes, as banks take it (the records hold ASCII only)."""
    return render(f).encode("ascii")
