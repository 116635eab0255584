"""Safe, bounded XML reading for ISO 20022 messages, and readable element locations.

Untrusted XML is parsed with entity resolution, DTD loading and network access all off, and
any document carrying a DOCTYPE is refused before parsing: that closes XXE and entity-expansion
("billion laughs") attacks. Size and depth are bounded by named limits.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from qenex.payments.common import MESSAGE_BYTES_MAX, PaymentFormatError

XML_BYTES_MAX: Final = MESSAGE_BYTES_MAX
# Nesting depth is bounded by libxml2 itself: without huge_tree it refuses documents deeper than
# 256 levels (ISO 20022 messages nest about 15 deep).
XML_DEPTH_MAX: Final = 256
_DECL_SCAN_CHARS: Final = 200

_DECL_ENCODING = re.compile(r"""^(\s*<\?xml[^>]{0,150}?encoding\s*=\s*["'])[A-Za-z0-9._-]{1,40}(["'])""")

# One parser per thread would be needed for concurrent parsing; lxml parsers are safe to reuse
# sequentially, and XMLParser objects are cheap, so each call builds its own.
_PARSER_OPTIONS: Final = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=False,
    collect_ids=False,
)


def _as_bytes(data: str | bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if not isinstance(data, str):
        raise PaymentFormatError("input must be str or bytes", code="iso20022_input_type")
    # A str is already decoded: make any declared encoding agree with the UTF-8 we hand lxml.
    text = _DECL_ENCODING.sub(r"\1UTF-8\2", data[:_DECL_SCAN_CHARS], count=1) + data[_DECL_SCAN_CHARS:]
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PaymentFormatError("input contains characters that cannot be encoded", code="iso20022_encoding") from None


def parse_xml(data: str | bytes) -> etree._Element:
    """The root element of a well-formed, DTD-free XML document, or PaymentFormatError."""
    raw = _as_bytes(data)
    if len(raw) > XML_BYTES_MAX:
        raise PaymentFormatError(f"XML input is larger than {XML_BYTES_MAX} bytes", code="iso20022_too_large")
    if not raw.strip():
        raise PaymentFormatError("XML input is empty", code="iso20022_empty")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise PaymentFormatError(
            "XML with a DOCTYPE or entity declaration is refused (XXE / entity expansion)",
            code="iso20022_dtd_forbidden",
            location="line 1",
        )
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else 0)
        msg = str(exc.msg or "malformed XML").split(", line ")[0]
        raise PaymentFormatError(
            f"malformed XML: {msg}", code="iso20022_malformed_xml", location=f"line {line}"
        ) from None
    except (ValueError, TypeError) as exc:
        raise PaymentFormatError(f"unreadable XML: {exc.__class__.__name__}", code="iso20022_malformed_xml") from None
    if root is None:
        raise PaymentFormatError("XML input holds no element", code="iso20022_empty")
    # The byte scan above only sees ASCII-compatible encodings; a UTF-16 document's DOCTYPE is
    # caught here (entities stayed unresolved and nothing was fetched: the parser options forbid it).
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise PaymentFormatError(
            "XML with a DOCTYPE or entity declaration is refused (XXE / entity expansion)",
            code="iso20022_dtd_forbidden",
            location="line 1",
        )
    return root


SHOWN_CHARS_MAX: Final = 40  # a value echoed in an error message is cut to this


def shown(value: object) -> str:
    """A value for an error message: stripped, and cut so hostile input cannot flood a report."""
    text = str(value if value is not None else "").strip()
    return text if len(text) <= SHOWN_CHARS_MAX else text[:SHOWN_CHARS_MAX] + "..."


def local(tag: object) -> str:
    """The local name of an element tag ('{ns}Name' -> 'Name')."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(tag: object) -> str:
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1 : tag.index("}")]
    return ""


def xpath_of(el: etree._Element) -> str:
    """A readable XPath of an element by local names, with [n] only where siblings share a name."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = local(node.tag)
        tag = node.tag
        if isinstance(tag, str):
            # Sibling scans run in C (itersiblings), not over a Python list of 100k transactions.
            before = sum(1 for _ in node.itersiblings(tag, preceding=True))
            after = next(node.itersiblings(tag), None) is not None
            if before or after:
                name += f"[{before + 1}]"
        parts.append(name)
        node = node.getparent()
    return "/" + "/".join(reversed(parts))


def where(el: etree._Element) -> str:
    """XPath plus source line: the location every ISO 20022 issue carries."""
    line = el.sourceline
    return f"{xpath_of(el)} (line {line})" if line else xpath_of(el)
