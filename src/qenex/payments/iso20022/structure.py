"""Structure checks for a message whose official XSD is not installed.

Without its schema a message would otherwise pass on business rules alone, so that
``<Document xmlns="...pacs.009.001.08"><Garbage/></Document>`` looked valid. Two checks stand in,
each one a necessary condition that every version of the message definition satisfies:

- mandatory structure: the Document holds exactly one message element, of the name the message
  definition gives it (FICdtTrf for pacs.009, ...), with the group header, items and elements that
  are mandatory in every published version (`SHAPES`); and every SplmtryData holds its Envlp
  (SupplementaryData1 makes it mandatory in every message);
- vocabulary: when the official schema of another version of the same message definition is
  installed (camt.056.001.12 for a camt.056.001.08, head.001.001.02 for a head.001.001.01), an
  element name that none of those versions declares (a misspelt or invented element) is reported.
  Message evolution adds elements and seldom removes any, so the installed versions' names
  cover the versions between them. The names are read once per family from the packaged
  official XSDs (`schemas.packaged_schema_files`).

Neither replaces the XSD (types, order and cardinalities are not checked); the validator still
says ``xsd_unavailable``. Only messages without a schema pay for these checks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final

from lxml import etree

from qenex.payments.common import ERRORS_PER_REPORT_MAX, PaymentFormatError, ValidationReport
from qenex.payments.iso20022 import schemas
from qenex.payments.iso20022.model import _Reader
from qenex.payments.iso20022.xmlsafe import local, namespace, where

XS_NS: Final = "http://www.w3.org/2001/XMLSchema"
UNKNOWN_ELEMENTS_REPORTED_MAX: Final = 20


@dataclass(frozen=True, slots=True)
class Items:
    """A repeating part: its path below the parent, how many there must be at least, and the
    element paths each one must hold."""

    path: str
    minimum: int
    required: tuple[str, ...]
    children: tuple[Items, ...] = ()


@dataclass(frozen=True, slots=True)
class Shape:
    root: str  # the message element under Document (under AppHdr: "" - the header is the root)
    header: str | None  # GrpHdr, Assgnmt
    header_required: tuple[str, ...]
    items: tuple[Items, ...] = ()


_GH: Final = ("MsgId", "CreDtTm")
_GH_SETTLED: Final = ("MsgId", "CreDtTm", "NbOfTxs", "SttlmInf/SttlmMtd")
_ENTRY: Final = Items("Ntry", 0, ("Amt", "CdtDbtInd", "Sts", "BkTxCd"))
_ASSIGNMENT: Final = ("Id", "Assgnr", "Assgne", "CreDtTm")

# Family -> what every published version of the message definition makes mandatory.
SHAPES: Final[dict[str, Shape]] = {
    "pain.001": Shape(
        "CstmrCdtTrfInitn",
        "GrpHdr",
        ("MsgId", "CreDtTm", "NbOfTxs", "InitgPty"),
        (
            Items(
                "PmtInf",
                1,
                ("PmtInfId", "PmtMtd", "ReqdExctnDt", "Dbtr", "DbtrAcct", "DbtrAgt"),
                (Items("CdtTrfTxInf", 1, ("PmtId/EndToEndId", "Amt")),),
            ),
        ),
    ),
    "pain.008": Shape(
        "CstmrDrctDbtInitn",
        "GrpHdr",
        ("MsgId", "CreDtTm", "NbOfTxs", "InitgPty"),
        (
            Items(
                "PmtInf",
                1,
                ("PmtInfId", "PmtMtd", "ReqdColltnDt", "Cdtr", "CdtrAcct", "CdtrAgt"),
                (Items("DrctDbtTxInf", 1, ("PmtId/EndToEndId", "InstdAmt", "DbtrAgt", "Dbtr", "DbtrAcct")),),
            ),
        ),
    ),
    "pain.002": Shape(
        "CstmrPmtStsRpt", "GrpHdr", _GH, (Items("OrgnlGrpInfAndSts", 1, ("OrgnlMsgId", "OrgnlMsgNmId")),)
    ),
    "pacs.002": Shape("FIToFIPmtStsRpt", "GrpHdr", _GH),
    "pacs.003": Shape(
        "FIToFICstmrDrctDbt",
        "GrpHdr",
        _GH_SETTLED,
        (Items("DrctDbtTxInf", 1, ("PmtId/EndToEndId", "IntrBkSttlmAmt", "Cdtr", "CdtrAgt", "Dbtr", "DbtrAgt")),),
    ),
    "pacs.004": Shape("PmtRtr", "GrpHdr", _GH_SETTLED, (Items("TxInf", 0, ("RtrdIntrBkSttlmAmt",)),)),
    "pacs.008": Shape(
        "FIToFICstmrCdtTrf",
        "GrpHdr",
        _GH_SETTLED,
        (
            Items(
                "CdtTrfTxInf",
                1,
                ("PmtId/EndToEndId", "IntrBkSttlmAmt", "ChrgBr", "Dbtr", "DbtrAgt", "CdtrAgt", "Cdtr"),
            ),
        ),
    ),
    "pacs.009": Shape(
        "FICdtTrf",
        "GrpHdr",
        _GH_SETTLED,
        (Items("CdtTrfTxInf", 1, ("PmtId/EndToEndId", "IntrBkSttlmAmt", "Dbtr", "Cdtr")),),
    ),
    "pacs.028": Shape("FIToFIPmtStsReq", "GrpHdr", _GH),
    "camt.052": Shape("BkToCstmrAcctRpt", "GrpHdr", _GH, (Items("Rpt", 1, ("Id", "Acct"), (_ENTRY,)),)),
    "camt.053": Shape("BkToCstmrStmt", "GrpHdr", _GH, (Items("Stmt", 1, ("Id", "Acct", "Bal"), (_ENTRY,)),)),
    "camt.054": Shape("BkToCstmrDbtCdtNtfctn", "GrpHdr", _GH, (Items("Ntfctn", 1, ("Id", "Acct"), (_ENTRY,)),)),
    "camt.056": Shape("FIToFIPmtCxlReq", "Assgnmt", _ASSIGNMENT),
    "camt.029": Shape("RsltnOfInvstgtn", "Assgnmt", _ASSIGNMENT),
    "head.001": Shape("", None, ("Fr", "To", "BizMsgIdr", "MsgDefIdr", "CreDt")),
}

_lock = threading.Lock()
_vocabularies: dict[str, frozenset[str]] = {}  # message family -> element names its official XSDs declare


def vocabulary(family: str) -> frozenset[str]:
    """Every element name the packaged official schemas of a message family declare ('pacs.002':
    every installed pacs.002.001.xx), read once per process; empty when none is installed."""
    names = _vocabularies.get(family)
    if names is None:
        with _lock:
            names = _vocabularies.get(family)
            if names is None:
                names = _vocabularies[family] = frozenset(_read_vocabulary(family))
    return names


def _read_vocabulary(family: str) -> set[str]:
    names: set[str] = set()
    for path in schemas.packaged_schema_files():
        if not path.stem.startswith(family + "."):
            continue
        try:
            tree = schemas.parse_xsd(path)
        except (OSError, etree.XMLSyntaxError, PaymentFormatError):
            continue  # too large or unreadable: the vocabulary is a best effort
        names.update(str(el.get("name")) for el in tree.iter(f"{{{XS_NS}}}element") if el.get("name"))
    return names


def check_structure(el: etree._Element, message_type: str, report: ValidationReport) -> None:
    """Check a Document (or an AppHdr) of ``message_type`` whose XSD is not installed."""
    family = message_type[:8]
    shape = SHAPES.get(family)
    if shape is not None:
        _check_shape(el, shape, report)
    _check_supplementary_data(el, report)
    _check_vocabulary(el, message_type, report)


def _check_shape(el: etree._Element, shape: Shape, report: ValidationReport) -> None:
    f = _Reader(namespace(el.tag))
    if shape.root:
        children = [c for c in el if isinstance(c.tag, str)]
        if len(children) != 1 or local(children[0].tag) != shape.root:
            found = ", ".join(f"<{local(c.tag)[:40]}>" for c in children[:3]) or "no element"
            report.add(
                "iso20022_wrong_message_element",
                f"the Document must hold exactly one <{shape.root}> element; it holds {found}",
                where(el),
            )
            return
        body = children[0]
    else:
        body = el
    if shape.header:
        header = f.f(body, shape.header)
        if header is None:
            _missing(report, body, shape.header)
        else:
            _require(f, header, shape.header_required, report)
    elif shape.header_required:
        _require(f, body, shape.header_required, report)
    for items in shape.items:
        _check_items(f, body, items, report)


def _check_items(f: _Reader, parent: etree._Element, items: Items, report: ValidationReport) -> None:
    found = f.all(parent, items.path)
    if len(found) < items.minimum:
        _missing(report, parent, items.path)
        return
    for item in found:
        if len(report.issues) >= ERRORS_PER_REPORT_MAX:
            return
        _require(f, item, items.required, report)
        for child in items.children:
            _check_items(f, item, child, report)


def _require(f: _Reader, el: etree._Element, paths: tuple[str, ...], report: ValidationReport) -> None:
    for path in paths:
        if f.f(el, path) is None:
            _missing(report, el, path)


def _missing(report: ValidationReport, el: etree._Element, path: str) -> None:
    report.add(
        "iso20022_missing_element",
        f"mandatory element {path} is missing under <{local(el.tag)}>",
        where(el),
    )


def _check_supplementary_data(el: etree._Element, report: ValidationReport) -> None:
    ns = namespace(el.tag)
    f = _Reader(ns)
    for data in el.iter(f"{{{ns}}}SplmtryData" if ns else "SplmtryData"):
        if f.f(data, "Envlp") is None:
            _missing(report, data, "Envlp")


def _check_vocabulary(el: etree._Element, message_type: str, report: ValidationReport) -> None:
    known = vocabulary(message_type[:8])
    if not known:
        return  # no version of this message definition is installed: nothing to compare with
    ns = namespace(el.tag)
    reported: set[str] = set()
    stack = [el]
    while stack:
        node = stack.pop()
        name = local(node.tag)
        if name not in known and name not in reported:
            reported.add(name)
            report.add(
                "iso20022_unknown_element",
                f"<{name[:60]}> is not an element of {message_type[:8]}: no installed version of its"
                " official schema declares it",
                where(node),
            )
            if len(reported) >= UNKNOWN_ELEMENTS_REPORTED_MAX:
                return
        if name == "Envlp":
            continue  # an envelope's content is any XML of its own definition
        # Comments and foreign content (an XML signature inside Sgntr) are not checked.
        stack.extend(reversed([c for c in node if isinstance(c.tag, str) and namespace(c.tag) == ns]))
