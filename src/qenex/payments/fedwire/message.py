"""Fedwire FAIM messages: read the {tag} text, hold elements, write the canonical form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from qenex.payments.ach.codes import is_digits
from qenex.payments.common import MESSAGE_BYTES_MAX, PaymentFormatError
from qenex.payments.fedwire.tags import TAGS, TagSpec

# One FAIM message is small: the largest tags ({8200}, {8300}) hold about 9,000 characters.
FEDWIRE_MESSAGE_BYTES_MAX = 256 * 1024
TAGS_PER_MESSAGE_MAX = 200
DELIMITER = "*"
_TAG = re.compile(r"\{(\d{4})\}", re.ASCII)


@dataclass(slots=True)
class Tag:
    tag: str
    elements: list[str]
    raw: str = ""
    line_no: int = 0
    overflow: str = ""  # text left after the last defined element (reported by validation)

    @property
    def spec(self) -> TagSpec:
        return TAGS[self.tag]

    def get(self, name: str) -> str:
        for e, value in zip(self.spec.elements, self.elements, strict=False):
            if e.name == name:
                return value
        return ""

    def as_dict(self) -> dict[str, str]:
        return {e.name: v for e, v in zip(self.spec.elements, self.elements, strict=False) if v}

    def render(self) -> str:
        """Canonical delimited form: fixed elements at their length, variable ones followed by
        "*", trailing empty elements left out."""
        last = max((i for i, v in enumerate(self.elements) if v), default=-1)
        out = []
        for i, (e, value) in enumerate(zip(self.spec.elements, self.elements, strict=False)):
            if i > last:
                break
            out.append(value.ljust(e.length) if e.fixed else value + DELIMITER)
        return "{" + self.tag + "}" + "".join(out)


def split_elements(spec: TagSpec, value: str) -> Tag:
    """Elements of one tag's value, in delimited or fixed-width (blank-padded) form."""
    elements: list[str] = []
    pos, size = 0, len(value)
    for index, e in enumerate(spec.elements):  # noqa: B007 - index used for the fixed delimiter
        if pos >= size:
            elements.append("")
            continue
        if e.fixed:
            chunk = value[pos : pos + e.length]
            pos += e.length
            if pos < size and value[pos] == DELIMITER and index + 1 < len(spec.elements):
                pos += 1  # some senders delimit fixed elements too
            elements.append(chunk.rstrip())
            continue
        star = value.find(DELIMITER, pos)
        if star != -1 and star - pos <= e.length:
            elements.append(value[pos:star].rstrip())
            pos = star + 1
        else:
            elements.append(value[pos : pos + e.length].rstrip())
            pos += e.length
            if pos < size and value[pos] == DELIMITER:
                pos += 1
    overflow = value[pos:].strip()
    return Tag(spec.tag, elements, value, overflow=overflow)


@dataclass(slots=True)
class FedwireMessage:
    """A FAIM message: tags in the order received. Amount in integer cents."""

    tags: dict[str, Tag] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    unknown: list[tuple[str, int]] = field(default_factory=list)

    def __contains__(self, tag: str) -> bool:
        return tag in self.tags

    def get(self, tag: str, element: str) -> str:
        t = self.tags.get(tag)
        return t.get(element) if t is not None else ""

    @property
    def business_function_code(self) -> str:
        return self.get("3600", "business_function_code")

    @property
    def type_subtype(self) -> str:
        return self.get("1510", "type_code") + self.get("1510", "subtype_code")

    @property
    def amount_cents(self) -> int | None:
        raw = self.get("2000", "amount")
        return int(raw) if len(raw) == 12 and is_digits(raw) else None

    @property
    def imad(self) -> str:
        t = self.tags.get("1520")
        return "".join(t.elements) if t is not None else ""

    def set(self, tag: str, *elements: str) -> FedwireMessage:
        """Set a tag from its elements (in FAIM order); returns self for chaining."""
        spec = TAGS.get(tag)
        if spec is None:
            raise PaymentFormatError(f"unknown FAIM tag {{{tag[:6]}}}", code="fedwire_unknown_tag")
        if len(elements) > len(spec.elements):
            raise PaymentFormatError(f"{{{tag}}} has {len(spec.elements)} elements", code="fedwire_elements")
        values = [str(v) for v in elements] + [""] * (len(spec.elements) - len(elements))
        for e, v in zip(spec.elements, values, strict=True):
            if len(v) > e.length or DELIMITER in v or "{" in v or "\n" in v:
                raise PaymentFormatError(
                    f"{{{tag}}} {e.name} must be at most {e.length} characters, without '*', '{{' or line breaks",
                    location=f"{{{tag}}}",
                    code="fedwire_element",
                )
        self.tags[tag] = Tag(tag, values)
        return self

    def to_string(self) -> str:
        return "\n".join(t.render() for t in self.tags.values()) + "\n"

    def __str__(self) -> str:
        return self.to_string()

    def to_dict(self) -> dict[str, Any]:
        return {f"{{{t.tag}}}": {"name": t.spec.name, **t.as_dict()} for t in self.tags.values()}


def _to_text(data: str | bytes) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > FEDWIRE_MESSAGE_BYTES_MAX:
            raise PaymentFormatError(f"message exceeds {FEDWIRE_MESSAGE_BYTES_MAX} bytes", code="fedwire_too_large")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if not isinstance(data, str):
        raise PaymentFormatError("Fedwire input must be text or bytes", code="fedwire_input_type")
    if len(data) > min(FEDWIRE_MESSAGE_BYTES_MAX, MESSAGE_BYTES_MAX):
        raise PaymentFormatError(f"message exceeds {FEDWIRE_MESSAGE_BYTES_MAX} characters", code="fedwire_too_large")
    return data


def read_message(data: str | bytes) -> FedwireMessage:
    """Parse the {tag}value sequence. Raises PaymentFormatError when it is not a FAIM message."""
    text = _to_text(data)
    matches = list(_TAG.finditer(text))
    if not matches:
        raise PaymentFormatError("no FAIM {tag} found", location="line 1", code="fedwire_no_tags")
    if text[: matches[0].start()].strip():
        raise PaymentFormatError("text before the first {tag}", location="line 1", code="fedwire_leading_text")
    if len(matches) > TAGS_PER_MESSAGE_MAX:
        raise PaymentFormatError(f"more than {TAGS_PER_MESSAGE_MAX} tags", code="fedwire_too_large")
    msg = FedwireMessage()
    line_no, counted_to = 1, 0
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end].rstrip("\r\n")
        tag = m.group(1)
        line_no += text.count("\n", counted_to, m.start())  # incremental: one pass over the text
        counted_to = m.start()
        spec = TAGS.get(tag)
        if spec is None:
            msg.unknown.append((tag, line_no))
            continue
        if tag in msg.tags:
            msg.duplicates.append((tag, line_no))
            continue
        parsed = split_elements(spec, value)
        parsed.line_no = line_no
        msg.tags[tag] = parsed
    return msg
