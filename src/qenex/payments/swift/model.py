"""The SWIFT MT message model and its byte-faithful parser and renderer.

A FIN message is a run of blocks ``{1:...}{2:...}{3:{108:...}{121:...}}{4:<CrLf>:20:...<CrLf>-}{5:{CHK:...}}``.
Blocks 3 and 5 (and block 4 of service messages such as ACKs) are lists of ``{tag:value}``
sub-blocks; block 4 of a user message is an ordered list of ``:tag:value`` fields ending in
``-}``. The model keeps every byte it needs to render the input back exactly: each field
remembers the line break that followed it, and text between messages of a batch (RJE ``$``
separators, line breaks) is kept as is. Bank statement exports without the FIN envelope
("bare" text blocks) are also read, with their header and separator lines kept verbatim.

The parser only reads; `qenex.payments.swift.validate` checks formats and network rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from qenex.payments.common import MESSAGE_BYTES_MAX, PaymentFormatError

MT_MESSAGE_BYTES_MAX: Final = 10 * 1024 * 1024  # a FIN message is at most 10,000 characters; batches more
BLOCKS_PER_MESSAGE_MAX: Final = 16
FIELDS_PER_MESSAGE_MAX: Final = 20_000  # statements with many entries
MESSAGES_PER_BATCH_MAX: Final = 10_000
HEADER_LINES_MAX: Final = 16  # non-field lines a bare statement export may carry before its first field

_FIELD_START = re.compile(r":([0-9]{2}[A-Z]?|NS):")
_SUBBLOCK = re.compile(r"\{([A-Za-z0-9]{1,8}):([^{}]*)\}")
_BLOCK_ID = re.compile(r"\{([0-9A-Z]{1,3}):")
_BARE_LINE_FIELD = re.compile(r":([0-9]{2}[A-Z]?|NS):")


@dataclass(slots=True)
class Field:
    """One ``:tag:value`` field of block 4. `value` keeps its original inner line breaks; `text` is
    the value with line breaks normalised to LF (what formats are checked against), computed once.
    Change a value with `set_value` so that both stay in step."""

    tag: str
    value: str
    eol: str = "\r\n"  # what followed the value in the source: a line break, or "" before "-}"
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.text = self.value.replace("\r\n", "\n")

    def set_value(self, value: str) -> None:
        self.value = value
        self.text = value.replace("\r\n", "\n")

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def number(self) -> str:
        return self.tag[:2]

    @property
    def option(self) -> str:
        return self.tag[2:]


@dataclass(slots=True)
class Block:
    """One block. `subfields` for blocks made of ``{tag:value}`` items (3, 5, service block 4);
    `fields` for a user text block 4; `raw` for headers (1, 2) and anything else."""

    name: str
    raw: str = ""
    prefix: str = ""  # text before the block in the source: whitespace, or an RJE "$" separator
    subfields: list[tuple[str, str]] | None = None
    fields: list[Field] | None = None
    lead: str = "\r\n"  # the line break after "{4:" in a text block
    tail: str = "-"  # what closes a text block before "}" (normally "-")
    closed: bool = True  # False when the input ended before the block's closing brace

    @property
    def _close(self) -> str:
        return "}" if self.closed else ""

    def render(self) -> str:
        if self.fields is not None:
            body = self.lead + "".join(f":{f.tag}:{f.value}{f.eol}" for f in self.fields) + self.tail
            return f"{self.prefix}{{{self.name}:{body}{self._close}"
        if self.subfields is not None:
            subs = "".join(f"{{{k}:{v}}}" for k, v in self.subfields)
            return f"{self.prefix}{{{self.name}:{subs}{self._close}"
        return f"{self.prefix}{{{self.name}:{self.raw}{self._close}"

    def get(self, key: str) -> str | None:
        for k, v in self.subfields or ():
            if k == key:
                return v
        return None


@dataclass(slots=True)
class Message:
    """One MT message: its blocks in source order (a bare statement export has only block 4)."""

    blocks: list[Block] = field(default_factory=list)
    bare: bool = False  # a text block without FIN envelope (bank statement export)
    segments: list[Field | str] | None = None  # bare exports: fields and verbatim non-field lines
    trailer: str = ""  # whitespace after the last block

    # ---- access ---------------------------------------------------------------------------------
    def block(self, name: str) -> Block | None:
        for b in self.blocks:
            if b.name == name:
                return b
        return None

    @property
    def fields(self) -> list[Field]:
        if self.segments is not None:
            return [s for s in self.segments if isinstance(s, Field)]
        b4 = self.block("4")
        return list(b4.fields) if b4 is not None and b4.fields is not None else []

    def field(self, tag: str) -> Field | None:
        """The first field with exactly this tag ("32A"), or with this number and any option ("50")."""
        for f in self.fields:
            if f.tag == tag or (len(tag) == 2 and f.number == tag):
                return f
        return None

    def all(self, tag: str) -> list[Field]:
        return [f for f in self.fields if f.tag == tag or (len(tag) == 2 and f.number == tag)]

    @property
    def message_type(self) -> str:
        """ "103", "202", ... from block 2; for a bare export, "940" (or "942" when 13D/34F show it)."""
        b2 = self.block("2")
        if b2 is not None and len(b2.raw) >= 4 and b2.raw[1:4].isascii() and b2.raw[1:4].isdigit():
            return b2.raw[1:4]
        if self.bare:
            tags = {f.tag for f in self.fields}
            return "942" if ("34F" in tags or "13D" in tags) and "60F" not in tags else "940"
        return ""

    @property
    def is_cov(self) -> bool:
        b3 = self.block("3")
        return b3 is not None and b3.get("119") == "COV"

    @property
    def is_stp(self) -> bool:
        b3 = self.block("3")
        return b3 is not None and b3.get("119") == "STP"

    @property
    def uetr(self) -> str | None:
        b3 = self.block("3")
        return b3.get("121") if b3 is not None else None

    @property
    def sender_bic(self) -> str | None:
        """The sender's BIC (8 or 11): from block 1 on an input message, from the MIR of an output."""
        return addresses(self.block("1"), self.block("2"))[0]

    @property
    def receiver_bic(self) -> str | None:
        return addresses(self.block("1"), self.block("2"))[1]

    # ---- rendering ------------------------------------------------------------------------------
    def to_string(self) -> str:
        if self.segments is not None:
            return "".join(s if isinstance(s, str) else f":{s.tag}:{s.value}{s.eol}" for s in self.segments)
        return "".join(b.render() for b in self.blocks) + self.trailer

    def __str__(self) -> str:
        return self.to_string()


@dataclass(slots=True)
class MessageBatch:
    """Several messages in one file: an RJE ``$``-separated batch, or an ACK followed by the copy
    of its original. Separators are kept as the `prefix` of each message's first block."""

    messages: list[Message]

    def to_string(self) -> str:
        return "".join(m.to_string() for m in self.messages)

    def __str__(self) -> str:
        return self.to_string()

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)


def addresses(b1: Block | None, b2: Block | None) -> tuple[str | None, str | None]:
    """(sender BIC, receiver BIC) from blocks 1 and 2. Input message: the sender is block 1's
    logical terminal, the receiver block 2's; output message: the sender is in the MIR of block 2,
    the receiver is block 1's terminal."""
    raw1 = b1.raw if b1 is not None else ""
    raw2 = b2.raw if b2 is not None else ""
    has_lt1 = len(raw1) >= 15
    if raw2.startswith("O"):
        sender = _bic_of_lt(raw2[14:26]) if len(raw2) >= 36 else _bic_of_lt(raw1[3:15]) if has_lt1 else None
        return sender, _bic_of_lt(raw1[3:15]) if has_lt1 else None
    sender = _bic_of_lt(raw1[3:15]) if has_lt1 else None
    return sender, _bic_of_lt(raw2[4:16]) if raw2.startswith("I") and len(raw2) >= 16 else None


def _bic_of_lt(lt: str) -> str:
    """BIC of a 12-character logical terminal address (BIC8 + terminal code + branch)."""
    if len(lt) != 12:
        return lt
    return lt[:8] + lt[9:12]


# ---- parsing ------------------------------------------------------------------------------------
def decode(data: str | bytes) -> str:
    """Input as text. FIN is ASCII; bank exports are often Latin-1, so bytes that are not UTF-8 fall
    back to Latin-1 (which maps every byte and keeps the round trip exact)."""
    if isinstance(data, bytes):
        if len(data) > min(MESSAGE_BYTES_MAX, MT_MESSAGE_BYTES_MAX):
            raise PaymentFormatError("MT input is larger than the size limit", code="mt_too_large")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    if not isinstance(data, str):
        raise PaymentFormatError("MT input must be text or bytes", code="mt_bad_input")
    if len(data) > MT_MESSAGE_BYTES_MAX:
        raise PaymentFormatError("MT input is larger than the size limit", code="mt_too_large")
    return data


def parse_text(text: str) -> Message | MessageBatch:
    """Parse decoded text into one Message, or a MessageBatch when it holds several."""
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise PaymentFormatError("empty MT input", location="line 1", code="mt_empty")
    if text[start] == "{":
        return _parse_fin(text)
    return _parse_bare(text)


# One FIN message in the usual shape, {1:}{2:}[{3:{..}..}]{4:<text>-}[{5:{..}..}], with no brace
# inside blocks 1, 2 or 4: the general block reader below would find the same boundaries, so the
# blocks are cut out by one match and built by the same code. Anything else takes the general way.
FAST_PATH_ENABLED = True  # tests switch it off to prove both ways give the same message
_SUBBLOCKS = r"(?:\{[A-Za-z0-9]{1,8}:[^{}]*\})+"
_FIN_ONE = re.compile(
    rf"\{{1:([^{{}}]*)\}}\{{2:([^{{}}]*)\}}(?:\{{3:({_SUBBLOCKS})\}})?\{{4:([^{{}}]*)-\}}"
    rf"(?:\{{5:({_SUBBLOCKS})\}})?([ \t\r\n]*)\Z"
)


def _parse_one(text: str, m: re.Match[str]) -> Message | None:
    body, body_start = m[4], m.start(4)
    # The general reader ends block 4 at the first "\n-}" anywhere after it (one in block 5
    # included) before it settles for "-}": leave such input to it.
    if not body.endswith("\n") and text.find("\n-}", m.end(4)) >= 0:
        return None
    blocks = [Block("1", raw=m[1]), Block("2", raw=m[2])]
    if m[3] is not None:
        blocks.append(Block("3", subfields=_SUBBLOCK.findall(m[3])))
    lead_len = 2 if body.startswith("\r\n") else 1 if body.startswith("\n") else 0
    fields = _split_fields(body[lead_len:], text, body_start + lead_len)
    blocks.append(Block("4", fields=fields, lead=body[:lead_len], tail="-"))
    if m[5] is not None:
        blocks.append(Block("5", subfields=_SUBBLOCK.findall(m[5])))
    return Message(blocks=blocks, trailer=m[6])


def _parse_fin(text: str) -> Message | MessageBatch:
    if FAST_PATH_ENABLED:
        one = _FIN_ONE.match(text)
        msg = _parse_one(text, one) if one is not None else None
        if msg is not None:
            return msg
    messages: list[Message] = []
    pos, n = 0, len(text)
    current: Message | None = None
    while pos < n:
        brace = text.find("{", pos)
        gap = text[pos:] if brace < 0 else text[pos:brace]
        if gap.strip(" \t\r\n$"):
            raise PaymentFormatError(
                f"unexpected text {gap.strip()[:20]!r} between blocks", location=_where(text, pos), code="mt_syntax"
            )
        if brace < 0:
            if current is not None:
                current.trailer = gap
            break
        block, end = _read_block(text, brace)
        block.prefix = gap
        if current is None or "$" in gap or (block.name == "1" and current.block("1") is not None):
            if len(messages) >= MESSAGES_PER_BATCH_MAX:
                raise PaymentFormatError("too many messages in one batch", code="mt_too_large")
            current = Message()
            messages.append(current)
        if len(current.blocks) >= BLOCKS_PER_MESSAGE_MAX:
            raise PaymentFormatError("too many blocks in one message", location=_where(text, brace), code="mt_syntax")
        current.blocks.append(block)
        pos = end
    if len(messages) == 1:
        return messages[0]
    return MessageBatch(messages)


def _read_block(text: str, start: int) -> tuple[Block, int]:
    m = _BLOCK_ID.match(text, start)
    if m is None:
        raise PaymentFormatError("a block must start with '{<id>:'", location=_where(text, start), code="mt_syntax")
    name, body_start = m.group(1), m.end()
    if name == "4" and not text.startswith("{", body_start):
        return _read_text_block(text, body_start)
    if text.startswith("{", body_start):  # a block of {tag:value} sub-blocks
        subs: list[tuple[str, str]] = []
        pos = body_start
        while text.startswith("{", pos):
            sm = _SUBBLOCK.match(text, pos)
            if sm is None:
                raise PaymentFormatError(
                    f"malformed sub-block in block {name}", location=_where(text, pos), code="mt_syntax"
                )
            subs.append((sm.group(1), sm.group(2)))
            pos = sm.end()
        if pos == len(text):  # the input ends inside the block: kept, and reported by validate()
            return Block(name, subfields=subs, closed=False), pos
        if not text.startswith("}", pos):
            raise PaymentFormatError(f"block {name} is not closed", location=_where(text, pos), code="mt_syntax")
        return Block(name, subfields=subs), pos + 1
    end = text.find("}", body_start)
    inner_open = text.find("{", body_start)
    if end < 0 or 0 <= inner_open < end:
        raise PaymentFormatError(f"block {name} is not closed", location=_where(text, start), code="mt_syntax")
    return Block(name, raw=text[body_start:end]), end + 1


def _read_text_block(text: str, body_start: int) -> tuple[Block, int]:
    """Block 4 of a user message: line break, ``:tag:value`` fields, ``-}``.

    The block ends at the first ``-}`` (normally on its own line) that does not run into the next
    message; failing that, at the first ``}``. A stray brace inside a value, or a missing ``-``,
    is kept and reported by validate(), as real-world parsers accept such blocks.
    """
    end = -1
    for marker in ("\n-}", "-}"):
        found = text.find(marker, body_start)
        if found >= 0 and text.find("{1:", body_start, found) < 0:
            end = found + len(marker) - 1
            break
    if end < 0:
        end = text.find("}", body_start)
    if end < 0:
        raise PaymentFormatError("block 4 is not closed by '-}'", location=_where(text, body_start), code="mt_syntax")
    body = text[body_start:end]
    tail = "-" if body.endswith("-") else ""
    body = body[: len(body) - len(tail)]
    lead_len = 2 if body.startswith("\r\n") else 1 if body.startswith("\n") else 0
    fields = _split_fields(body[lead_len:], text, body_start + lead_len)
    return Block("4", fields=fields, lead=body[:lead_len], tail=tail), end + 1


# A field starts after a line break with ":tag:". The pattern begins with a literal, so the scan
# jumps from line break to line break in C; split() returns tags and values in one call.
_FIELD_TAGS = re.compile(r"\n:([0-9]{2}[A-Z]?|NS):")


def _split_fields(body: str, text: str, offset: int) -> list[Field]:
    """Fields start at the beginning and at every ``:tag:`` right after a line break (one C-level split).

    split() gives ["", tag, value, tag, value, ...]; every value but the last lost its final "\n" to
    the next separator, so its line end is "\r\n" when it still ends in "\r", else "\n"."""
    if not body:
        return []
    parts = _FIELD_TAGS.split("\n" + body)
    if len(parts) < 3 or parts[0]:
        raise PaymentFormatError(
            "block 4 must start with a ':tag:' field", location=_where(text, offset), code="mt_syntax"
        )
    if len(parts) // 2 > FIELDS_PER_MESSAGE_MAX:
        raise PaymentFormatError("too many fields in block 4", code="mt_too_large")
    fields: list[Field] = []
    append = fields.append
    last = len(parts) - 2
    for i in range(1, last, 2):
        value = parts[i + 1]
        if value[-1:] == "\r":
            append(Field(parts[i], value[:-1], "\r\n"))
        else:
            append(Field(parts[i], value, "\n"))
    value = parts[-1]
    if value[-2:] == "\r\n":
        append(Field(parts[last], value[:-2], "\r\n"))
    elif value[-1:] == "\n":
        append(Field(parts[last], value[:-1], "\n"))
    else:
        append(Field(parts[last], value, ""))
    return fields


def _parse_bare(text: str) -> Message | MessageBatch:
    """A statement export without FIN envelope: header lines, fields, ``-`` separator lines."""
    lines = text.splitlines(keepends=True)
    segments: list[Field | str] = []
    current: Field | None = None
    leading = 0
    seen_field = False
    for line in lines:
        body = line.rstrip("\r\n")
        brk = line[len(body) :]
        m = _BARE_LINE_FIELD.match(body)
        if m:
            current = Field(m.group(1), body[m.end() :], brk)
            segments.append(current)
            seen_field = True
        elif current is not None and body.strip() != "-" and body.strip():
            current.set_value(current.value + current.eol + body)
            current.eol = brk
        elif current is not None and body == "":
            current.eol += brk  # blank lines after a field belong to its line end
        else:
            if not seen_field and body.strip():
                leading += 1
                if leading > HEADER_LINES_MAX:
                    raise PaymentFormatError(
                        "too many lines before the first ':tag:' field; this is not an MT message",
                        location=f"line {leading}",
                        code="mt_syntax",
                    )
            segments.append(line)
            current = None
    if not seen_field:
        raise PaymentFormatError(
            "no SWIFT block and no ':tag:' field found; this is not an MT message",
            location="line 1",
            code="mt_syntax",
        )
    return Message(blocks=[], bare=True, segments=segments)


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}"
