"""Types every payment format shares: a located validation issue, a report, a format error.

Every format module (swift, iso20022, sepa, ach, fedwire, cards) exposes at least
``parse(data) -> message``, ``validate(data_or_message) -> ValidationReport`` and builders,
and raises `PaymentFormatError` (never a bare exception) for input it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qenex.errors import QenexError

# Limits on untrusted input, named with their unit.
MESSAGE_BYTES_MAX = 64 * 1024 * 1024  # one payment file: NACHA files can be large
ERRORS_PER_REPORT_MAX = 1000  # beyond this, a report says "and N more"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem, located as precisely as the format allows.

    ``location`` is the format's natural address: "line 12", "block 4 field :32A:",
    "{3600}", an XPath such as "/Document/FIToFICstmrCdtTrf/GrpHdr/NbOfTxs".
    """

    code: str
    message: str
    location: str = ""
    severity: str = "error"  # "error" or "warning"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "location": self.location, "severity": self.severity}

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.code}: {self.message}"


@dataclass(slots=True)
class ValidationReport:
    format: str  # "mt", "iso20022", "ach", "fedwire", "card", ...
    message_type: str = ""  # "MT103", "pacs.008.001.08", "NACHA PPD", "CTR", ...
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[ValidationIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def add(self, code: str, message: str, location: str = "", severity: str = "error") -> None:
        if len(self.issues) < ERRORS_PER_REPORT_MAX:
            self.issues.append(ValidationIssue(code, message, location, severity))

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape: every issue under "errors", each with its severity ("error" or
        "warning"); ``valid`` counts only severity "error"."""
        return {
            "format": self.format,
            "message_type": self.message_type,
            "valid": self.valid,
            "errors": [i.to_dict() for i in self.issues],
        }


class PaymentFormatError(QenexError):
    """Input that cannot be parsed at all. Carries the location of the first problem."""

    code = "payment_format_error"

    def __init__(self, message: str, *, location: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code, details={"location": location} if location else None)
        self.location = location

    def as_issue(self) -> ValidationIssue:
        return ValidationIssue(self.code, self.message, self.location)


_Msg = TypeVar("_Msg")


def reject_options(options: Mapping[str, object], label: str, code: str) -> None:
    """A format whose parse takes no options names the first one it was given."""
    if options:
        raise PaymentFormatError(f"unknown {label} option '{next(iter(options))[:40]}'", code=code)


def parsed_or_reported(
    data: object, kind: type[_Msg], parse: Callable[..., _Msg], report: ValidationReport, options: Mapping[str, Any]
) -> _Msg | None:
    """The message a ``validate`` works on: ``data`` itself when already parsed, else
    ``parse(data, **options)``; input that cannot be parsed becomes the report's issue (None)."""
    if isinstance(data, kind):
        return data
    try:
        return parse(data, **options)
    except PaymentFormatError as exc:
        report.issues.append(exc.as_issue())
        return None
