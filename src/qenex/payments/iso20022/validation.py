"""Validation of an ISO 20022 message: official XSD (header and document), then business rules.

`validate` never raises for bad input: every problem becomes a located issue in the report.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from qenex.payments.common import ERRORS_PER_REPORT_MAX, PaymentFormatError, ValidationReport
from qenex.payments.iso20022 import schemas
from qenex.payments.iso20022.model import ISO_NS_PREFIX, Iso20022Message, message_type_of, parse
from qenex.payments.iso20022.rules import check_business_rules
from qenex.payments.iso20022.structure import check_structure
from qenex.payments.iso20022.xmlsafe import namespace, where, xpath_of

FORMAT: Final = "iso20022"
# validate(**options) this module understands; `qenex payments validate --require-xsd` sets the last.
OPTIONS: Final = frozenset({"xsd", "require_xsd"})
XSD_MESSAGE_CHARS_MAX: Final = 300  # libxml2 echoes the offending value; hostile values are long
_NS_IN_MESSAGE = re.compile(r"\{[^}]{1,200}\}")


def validate(data: str | bytes | Iso20022Message, **options: object) -> ValidationReport:
    """Report every XSD and business-rule problem; never raises for bad input.

    Options: ``xsd=False`` skips schema validation (business rules only);
    ``require_xsd=True`` makes a message type whose official XSD is not installed invalid
    (``xsd_unavailable`` becomes an error) for users who require a schema check. Without a schema
    the message's mandatory structure and vocabulary are checked (`structure.check_structure`).
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise PaymentFormatError(
            f"unknown iso20022 validate option {sorted(unknown)[0][:40]!r}", code="iso20022_unknown_option"
        )
    report = ValidationReport(format=FORMAT)
    if isinstance(data, Iso20022Message):
        msg = data
    else:
        try:
            msg = parse(data)
        except PaymentFormatError as exc:
            report.add(exc.code, exc.message, exc.location)
            return report
    report.message_type = msg.message_type or msg.header_type
    if options.get("xsd", True):
        _validate_parts(msg, report, require_xsd=bool(options.get("require_xsd", False)))
    check_business_rules(msg, report)
    _check_header_consistency(msg, report)
    return report


def _validate_parts(msg: Iso20022Message, report: ValidationReport, *, require_xsd: bool) -> None:
    if msg.app_header_el is not None:
        _validate_against(msg.app_header_el, msg.header_type, report, require_xsd)
    if msg.document is not None:
        if not msg.message_type:
            report.add(
                "iso20022_unknown_message_type",
                f"the Document namespace {namespace(msg.document.tag)[:120]!r} names no ISO 20022 message type",
                where(msg.document),
            )
            return
        if not msg.is_iso_namespace:
            report.add(
                "iso20022_nonstandard_namespace",
                f"namespace {msg.namespace[:120]!r} is not the ISO 20022 one ({ISO_NS_PREFIX}{msg.message_type});"
                " validated by business rules only",
                where(msg.document),
                "warning",
            )
            return
        _validate_against(msg.document, msg.message_type, report, require_xsd)


def _validate_against(el: etree._Element, message_type: str, report: ValidationReport, require_xsd: bool) -> None:
    try:
        schema = schemas.get_schema(message_type)
    except PaymentFormatError as exc:
        report.add(exc.code, exc.message, where(el), "warning")
        return
    if schema is None:
        check_structure(el, message_type, report)
        report.add(
            "xsd_unavailable",
            f"no official XSD for {message_type} is installed; only its mandatory structure was checked"
            f" (set {schemas.ENV_SCHEMA_DIRS} to a directory of official XSDs)",
            where(el),
            "error" if require_xsd else "warning",
        )
        return
    if schema.validate(el):
        return
    for entry in schema.error_log:
        if len(report.issues) >= ERRORS_PER_REPORT_MAX:
            break
        target = _element_at(el, entry.path)
        location = where(target) if target is not None else f"{xpath_of(el)} (line {entry.line})"
        report.add("xsd_invalid", _NS_IN_MESSAGE.sub("", entry.message)[:XSD_MESSAGE_CHARS_MAX], location)


def _element_at(el: etree._Element, path: str | None) -> etree._Element | None:
    """libxml2 paths ('/*/*/*[2]') are relative to the validated element: resolve them to it."""
    if not path or not path.startswith("/*"):
        return None
    rest = path[2:].lstrip("/")
    if not rest:
        return el
    try:
        found = el.xpath(rest)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _check_header_consistency(msg: Iso20022Message, report: ValidationReport) -> None:
    header = msg.app_header()
    if header is None or msg.document is None:
        return
    declared = header.msg_def_id or ""
    if declared and msg.message_type and message_type_of(declared) != msg.message_type:
        report.add(
            "iso20022_header_type_mismatch",
            f"AppHdr/MsgDefIdr says {declared!r} but the Document is {msg.message_type}",
            where(msg.app_header_el),
            "warning",
        )
