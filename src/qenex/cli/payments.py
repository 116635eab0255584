"""`qenex payments validate|show|convert`: payment files from the command line.

The CLI is an edge: it reads files, detects the format (`qenex.payments.detect`), calls the
format module's `parse`/`validate`/`describe` (the payments contract) and renders the result.
Exit codes: 0 all files valid, 1 any file invalid, 2 usage error or unreadable file.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import typer

from qenex.payments.common import MESSAGE_BYTES_MAX, PaymentFormatError, ValidationReport
from qenex.payments.detect import FORMATS, detect_format, read_payload, strip_bom

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2

FILES_PER_RUN_MAX: Final = 10_000
INTERNAL_ERROR: Final = "payment_internal_error"  # a validator bug; the conformance and fuzz tests forbid it
SHOW_VALUE_CHARS_MAX: Final = 200  # a long free-text field is cut in `show`, never in validate
SHOW_ITEMS_MAX: Final = 200  # rows of a list (entries, transactions) rendered by `show`

_MODULES: Final = {
    "mt": "qenex.payments.swift",
    "iso20022": "qenex.payments.iso20022",
    "ach": "qenex.payments.ach",
    "fedwire": "qenex.payments.fedwire",
}
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CONTRACT: Final = ("parse", "validate", "describe")
CONVERT_TARGETS: Final = ("pacs.008", "mt103", "camt.053", "mt940", "pacs.009", "mt202")

payments_app = typer.Typer(
    name="payments",
    help="Validate, show and convert payment files (SWIFT MT, ISO 20022, NACHA, Fedwire).",
    no_args_is_help=True,
)


class FileReadError(Exception):
    """A file the CLI could not read at all (missing, a directory, no permission)."""


def register(app: typer.Typer) -> None:
    app.add_typer(payments_app, name="payments")


# ---------------------------------------------------------------- reading and dispatch


def read_file(path: Path) -> bytes:
    """The payment bytes of ``path``: size-bounded, gzip unwrapped. Unreadable -> FileReadError."""
    try:
        # Read at most one byte past the limit: stat() sizes lie for pipes and devices (/dev/zero).
        with path.open("rb") as fh:
            raw = fh.read(MESSAGE_BYTES_MAX + 1)
    except (IsADirectoryError, PermissionError, FileNotFoundError, NotADirectoryError) as exc:
        raise FileReadError(f"{path}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise FileReadError(f"{path}: {exc.strerror or exc}") from None
    return read_payload(raw)


def format_module(fmt: str) -> ModuleType:
    """The format's module; it must follow the payments contract (parse, validate, describe)."""
    try:
        module = importlib.import_module(_MODULES[fmt])
    except ImportError as exc:
        raise PaymentFormatError(f"format {fmt!r} is not available: {exc}", code="payment_format_unavailable") from None
    missing = [name for name in _CONTRACT if not callable(getattr(module, name, None))]
    if missing:
        raise PaymentFormatError(
            f"format {fmt!r} is not available: {_MODULES[fmt]} lacks {', '.join(missing)}",
            code="payment_format_unavailable",
        )
    return module


def resolve_format(data: bytes, requested: str) -> str:
    if requested != "auto":
        return requested
    fmt = detect_format(data)
    if fmt is None:
        raise PaymentFormatError(
            "unrecognised payment format (expected SWIFT MT, ISO 20022 XML, NACHA or Fedwire FAIM)",
            location="byte 0",
            code="payment_unknown_format",
        )
    return fmt


def payload_for(fmt: str, data: bytes) -> bytes:
    # XML keeps its BOM (the parser reads the encoding from it); the text formats drop it.
    return data if fmt == "iso20022" else strip_bom(data)


def normalise_relax(names: Sequence[str]) -> list[str]:
    """snake_case names: "allow-invalid-check-digit" and moov-io's "AllowInvalidCheckDigit" alike."""
    return [_CAMEL_BOUNDARY.sub("_", n.strip()).replace("-", "_").lower() for n in names if n.strip()]


def relax_options(module: ModuleType, names: Sequence[str]) -> dict[str, Any]:
    """Keyword options for ``module.validate`` from ``--relax`` names.

    A module lists the relaxations it understands in ``RELAXATIONS`` (or ``OPTION_DOCS``, name ->
    description); a name it doesn't know is a usage error rather than silently ignored.
    """
    if not names:
        return {}
    declared = getattr(module, "RELAXATIONS", None) or getattr(module, "OPTION_DOCS", None) or ()
    known = {str(n).lower() for n in declared}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise typer.BadParameter(f"unknown relaxation {', '.join(unknown)} for this format (known: {listed})")
    return {name: True for name in names}


def validate_bytes(
    data: bytes, requested: str = "auto", relax: Sequence[str] = (), *, require_xsd: bool = False
) -> ValidationReport:
    """Detect, then validate. Bad input always ends as a report, never an exception.

    ``require_xsd``: an ISO 20022 message whose official XSD is not installed is invalid."""
    fmt = requested if requested != "auto" else (detect_format(data) or "unknown")
    try:
        fmt = resolve_format(data, requested)
        module = format_module(fmt)
        options = relax_options(module, relax)
        if require_xsd and fmt == "iso20022":
            options["require_xsd"] = True
        report = module.validate(payload_for(fmt, data), **options)
    except PaymentFormatError as exc:
        report = ValidationReport(format=fmt)
        report.issues.append(exc.as_issue())
    except typer.BadParameter:
        raise
    except Exception as exc:  # noqa: BLE001 - a validator bug must not become a user-facing traceback
        report = ValidationReport(format=fmt)
        report.add(
            INTERNAL_ERROR,
            f"internal error in the {fmt} validator ({type(exc).__name__}); please report it",
            location="validator",
        )
    if not isinstance(report, ValidationReport):
        report = ValidationReport(format=fmt)
        report.add(INTERNAL_ERROR, f"the {fmt} validator returned no report; please report it", "validator")
    return report


# ---------------------------------------------------------------- validate


def _report_line(path: str, report: ValidationReport) -> dict[str, Any]:
    out = report.to_dict()
    if out["format"] == "unknown":
        out["format"] = None  # JSON consumers test for null, not a sentinel string
    return {"file": path, **out}


def _print_human(path: str, report: ValidationReport) -> None:
    kind = " ".join(x for x in (report.format, report.message_type) if x)
    verdict = "valid" if report.valid else f"INVALID ({len(report.errors)} error(s))"
    typer.echo(f"{path}: {verdict} [{kind}]")
    for issue in report.issues:
        typer.echo(f"  {issue.severity}: {issue}")


def _validate_one(path: Path, fmt: str, relax: Sequence[str], as_json: bool, require_xsd: bool = False) -> int:
    try:
        data = read_file(path)
        report = validate_bytes(data, fmt, relax, require_xsd=require_xsd)
    except FileReadError as exc:
        if as_json:
            report = ValidationReport(format="unknown")
            report.add("file_unreadable", str(exc), str(path))
            typer.echo(json.dumps(_report_line(str(path), report), ensure_ascii=False))
        typer.echo(f"qenex: cannot read {exc}", err=True)
        return EXIT_USAGE
    except PaymentFormatError as exc:  # a container problem (too large, corrupt gzip)
        report = ValidationReport(format="unknown")
        report.issues.append(exc.as_issue())
    if as_json:
        typer.echo(json.dumps(_report_line(str(path), report), ensure_ascii=False))
    else:
        _print_human(str(path), report)
    return EXIT_OK if report.valid else EXIT_INVALID


@payments_app.command("validate")
def validate_cmd(
    files: list[Path] = typer.Argument(..., help="Payment files to validate (gzip is unwrapped)."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto|mt|iso20022|ach|fedwire"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
    relax: list[str] = typer.Option([], "--relax", help="Named relaxation of the format's rules (repeatable)."),
    require_xsd: bool = typer.Option(
        False,
        "--require-xsd",
        help="ISO 20022: a message type whose official XSD is not installed is invalid (xsd_unavailable error).",
    ),
) -> None:
    """Validate payment files; report every error with its location."""
    if fmt not in ("auto", *FORMATS):
        raise typer.BadParameter(f"--format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    if len(files) > FILES_PER_RUN_MAX:
        raise typer.BadParameter(f"at most {FILES_PER_RUN_MAX} files per run")
    names = normalise_relax(relax)
    worst = EXIT_OK
    for path in files:
        worst = max(worst, _validate_one(path, fmt, names, as_json, require_xsd))
    raise typer.Exit(worst)


# ---------------------------------------------------------------- show


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOW_VALUE_CHARS_MAX else text[: SHOW_VALUE_CHARS_MAX - 1] + "…"


def _tree_add(node: Any, key: str, value: Any) -> None:
    """Add ``value`` under ``node``: mappings and lists become branches, scalars leaves."""
    if isinstance(value, Mapping):
        branch = node.add(f"[bold]{key}[/]")
        for k, v in value.items():
            _tree_add(branch, str(k), v)
    elif isinstance(value, list | tuple):
        branch = node.add(f"[bold]{key}[/] ({len(value)})")
        for i, item in enumerate(value[:SHOW_ITEMS_MAX], start=1):
            _tree_add(branch, f"#{i}", item)
        if len(value) > SHOW_ITEMS_MAX:
            branch.add(f"… and {len(value) - SHOW_ITEMS_MAX} more")
    else:
        node.add(f"{key}: {_escape(_short(value))}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def render_summary(title: str, summary: Mapping[str, Any], report: ValidationReport | None) -> None:
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree(f"[bold]{_escape(title)}[/]")
    for key, value in summary.items():
        _tree_add(tree, str(key), value)
    if report is not None:
        verdict = "[green]valid[/]" if report.valid else f"[red]invalid[/] ({len(report.errors)} error(s))"
        node = tree.add(f"[bold]validation[/]: {verdict}")
        for issue in report.issues[:SHOW_ITEMS_MAX]:
            node.add(_escape(f"{issue.severity}: {issue}"))
    Console(soft_wrap=True).print(tree)


@payments_app.command("show")
def show_cmd(
    file: Path = typer.Argument(..., help="A payment file."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto|mt|iso20022|ach|fedwire"),
) -> None:
    """Print a human-readable rendering of a payment file."""
    if fmt not in ("auto", *FORMATS):
        raise typer.BadParameter(f"--format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    data = _read_or_exit(file)
    fmt = resolve_format(data, fmt)
    module = format_module(fmt)
    payload = payload_for(fmt, data)
    message = module.parse(payload)  # PaymentFormatError -> exit 1 with its location (qenex.cli.main)
    summary = module.describe(message)
    report = module.validate(message)
    render_summary(f"{file} [{fmt} {report.message_type}]".strip(), summary, report)
    raise typer.Exit(EXIT_OK if report.valid else EXIT_INVALID)


def _read_or_exit(path: Path) -> bytes:
    try:
        return read_file(path)
    except FileReadError as exc:
        typer.echo(f"qenex: cannot read {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


# ---------------------------------------------------------------- convert


@payments_app.command("convert")
def convert_cmd(
    file: Path = typer.Argument(..., help="The source message (MT103/202/940 or pacs.008/009, camt.053)."),
    to: str = typer.Option(..., "--to", help="|".join(CONVERT_TARGETS)),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Convert between SWIFT MT and ISO 20022 (CBPR+ rules); report what could not be carried."""
    if to not in CONVERT_TARGETS:
        raise typer.BadParameter(f"--to must be one of {', '.join(CONVERT_TARGETS)}; got {to!r}")
    data = _read_or_exit(file)
    fmt = resolve_format(data, "auto")
    if fmt not in ("mt", "iso20022"):
        raise PaymentFormatError(f"conversion needs SWIFT MT or ISO 20022 input, not {fmt}", code="payment_convert")
    from qenex.payments import convert

    result = convert.convert(payload_for(fmt, data), to)
    _emit_conversion(result, output)


def _emit_conversion(result: Any, output: Path | None) -> None:
    text = result.text if hasattr(result, "text") else str(result)
    for note in getattr(result, "lost", ()) or ():
        typer.echo(f"qenex: not carried across: {note}", err=True)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
