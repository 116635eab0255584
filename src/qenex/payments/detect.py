"""Cheap, robust detection of a payment file's format from its first bytes.

`detect_format` only looks at a bounded prefix, so it costs the same for a 50 MB NACHA
file as for a 300-byte MT103, and it never raises: unknown input is ``None``. The format
modules do the real parsing; detection only decides which one to call.

Signatures, in the order they are tried (each one excludes the others):
- ISO 20022: an XML document (prolog, comment, doctype or a root element).
- SWIFT MT: a FIN message opening with block 1 ``{1:``, or a block-4-only statement
  export (lines like ``:20:``, ``:25:``, ``:61:`` or ``:NS:``, after at most a few header lines).
- Fedwire FAIM: a tag ``{NNNN}`` of four digits, e.g. ``{1500}``.
- NACHA: a file header ``101`` (record type 1, priority code 01) or, for partial and
  vendor files, 94-character records starting with a NACHA record type.

Byte order marks (UTF-8, UTF-16), leading whitespace and CRLF or LF line ends are accepted.
`read_payload` also unwraps gzip, with the decompressed size bounded.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from typing import Final

from qenex.payments.common import MESSAGE_BYTES_MAX, PaymentFormatError

FORMATS: Final = ("mt", "iso20022", "ach", "fedwire")

DETECT_PREFIX_BYTES: Final = 4096  # enough for an XML prolog plus a long comment or BAH
MT_HEADER_LINES_MAX: Final = 8  # bank statement exports put a few header lines before :20:
NACHA_RECORD_CHARS: Final = 94
GZIP_MAGIC: Final = b"\x1f\x8b"
GZIP_CHUNK_BYTES: Final = 1024 * 1024

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")

_XML_START = re.compile(r"<(?:\?xml|!--|!DOCTYPE|[A-Za-z_])")
_FEDWIRE_TAG = re.compile(r"\{\d{4}\}")
_MT_FIELD_LINE = re.compile(r":(?:\d{2}[A-Za-z]?|NS):")
_NACHA_RECORD_TYPES: Final = frozenset("156789")


def _prefix_text(data: str | bytes) -> str:
    """The first bytes as text, BOM removed. Latin-1 never fails, which is all detection needs."""
    if isinstance(data, str):
        return data[:DETECT_PREFIX_BYTES].lstrip("\ufeff")
    head = data[:DETECT_PREFIX_BYTES]
    if head.startswith(_UTF8_BOM):
        return head[len(_UTF8_BOM) :].decode("utf-8", errors="replace")
    if head.startswith(_UTF16_BOMS):
        return head.decode("utf-16", errors="replace").lstrip("\ufeff")
    return head.decode("latin-1")


def _first_lines(text: str, count: int) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n", count)[:count]


def _looks_like_nacha(text: str) -> bool:
    lines = _first_lines(text, 2)
    first = lines[0]
    if first.startswith("101"):
        return True
    if not first or first[0] not in _NACHA_RECORD_TYPES or not first[1:3].isdigit():
        return False
    # A partial or vendor file: records of exactly 94 characters, or one unbroken line of them.
    if len(first) == NACHA_RECORD_CHARS:
        return True
    unbroken = all(not line.strip() for line in lines[1:])
    return unbroken and len(first) > NACHA_RECORD_CHARS


def _looks_like_mt_statement(text: str) -> bool:
    lines = _first_lines(text, MT_HEADER_LINES_MAX)
    return any(_MT_FIELD_LINE.match(line) for line in lines)


def detect_format(data: str | bytes) -> str | None:
    """Return "mt", "iso20022", "ach", "fedwire", or None when no signature matches."""
    text = _prefix_text(data).lstrip()
    if not text:
        return None
    if text.startswith("{1:"):
        return "mt"
    if _XML_START.match(text):
        return "iso20022"
    if _FEDWIRE_TAG.match(text):
        return "fedwire"
    if _looks_like_nacha(text):
        return "ach"
    if _looks_like_mt_statement(text):
        return "mt"
    return None


def strip_bom(data: bytes) -> bytes:
    """Drop a UTF-8 byte order mark; the text formats (MT, NACHA, FAIM) have no use for it."""
    return data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data


def gunzip_bounded(data: bytes, limit_bytes: int = MESSAGE_BYTES_MAX) -> bytes:
    """Decompress gzip data, refusing more than ``limit_bytes`` of output (a gzip bomb)."""
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(GZIP_CHUNK_BYTES):
                out += chunk
                if len(out) > limit_bytes:
                    raise PaymentFormatError(
                        f"decompressed file exceeds {limit_bytes} bytes", code="payment_too_large"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise PaymentFormatError(f"corrupt gzip data: {exc}", code="payment_bad_container") from None
    return bytes(out)


def read_payload(data: bytes, limit_bytes: int = MESSAGE_BYTES_MAX) -> bytes:
    """The payment bytes inside a file: gzip unwrapped, size bounded, UTF-8 BOM kept for XML."""
    if len(data) > limit_bytes:
        raise PaymentFormatError(f"file exceeds {limit_bytes} bytes", code="payment_too_large")
    if data.startswith(GZIP_MAGIC):
        return gunzip_bounded(data, limit_bytes)
    return data
