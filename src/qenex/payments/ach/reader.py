"""Single-pass NACHA reader: bytes or text in, an `AchFile` plus structural issues out.

The reader only builds the structure (which record belongs to which batch and entry) and
records what breaks it. Field rules, totals and SEC rules live in `validator`.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from operator import itemgetter

from qenex.payments.ach.options import AchOptions
from qenex.payments.ach.records import (
    ADDENDA_CLASSES,
    BLOCKING_FACTOR,
    RECORD_LENGTH_CHARS,
    AchFile,
    Addenda,
    ADVBatchControl,
    ADVFileControl,
    Batch,
    BatchControl,
    BatchHeader,
    Entry,
    FileControl,
    FileHeader,
    IATBatchHeader,
    entry_class,
)
from qenex.payments.common import ERRORS_PER_REPORT_MAX, MESSAGE_BYTES_MAX, PaymentFormatError, ValidationIssue

FILE_LINES_MAX = MESSAGE_BYTES_MAX // RECORD_LENGTH_CHARS + 1
PADDING_RECORD = "9" * RECORD_LENGTH_CHARS
_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(data: bytes) -> bytes:
    """Gunzip with a hard ceiling on the output size (a gzip bomb must not exhaust memory)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(MESSAGE_BYTES_MAX + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise PaymentFormatError(f"corrupt gzip data: {exc.__class__.__name__}", code="ach_gzip") from None
    if len(out) > MESSAGE_BYTES_MAX:
        raise PaymentFormatError(f"decompressed file exceeds {MESSAGE_BYTES_MAX} bytes", code="ach_too_large")
    return out


def to_text(data: str | bytes) -> str:
    """Input as text: gzip is opened, UTF-8 is tried first, Latin-1 (never fails) after."""
    if isinstance(data, str):
        if len(data) > MESSAGE_BYTES_MAX:
            raise PaymentFormatError(f"input exceeds {MESSAGE_BYTES_MAX} characters", code="ach_too_large")
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PaymentFormatError("ACH input must be text or bytes", code="ach_input_type")
    raw = bytes(data)
    if len(raw) > MESSAGE_BYTES_MAX:
        raise PaymentFormatError(f"input exceeds {MESSAGE_BYTES_MAX} bytes", code="ach_too_large")
    if raw[:2] == _GZIP_MAGIC:
        raw = _decompress(raw)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_records(text: str) -> list[str]:
    """Records as lines. A file without line breaks is cut every 94 characters. A leading
    byte-order mark (added by some Windows editors) is not part of the first record."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\n" not in text and "\r" not in text:
        body = text.rstrip(" \x1a")
        if len(body) > RECORD_LENGTH_CHARS:
            if len(body) % RECORD_LENGTH_CHARS:
                raise PaymentFormatError(
                    f"file has no line breaks and its length {len(body)} is not a multiple of "
                    f"{RECORD_LENGTH_CHARS}: records must be {RECORD_LENGTH_CHARS} characters",
                    location="line 1",
                    code="ach_record_length",
                )
            return [body[i : i + RECORD_LENGTH_CHARS] for i in range(0, len(body), RECORD_LENGTH_CHARS)]
        return [body] if body else []
    lines = text.splitlines()
    while lines and not lines[-1].strip(" \x1a"):
        lines.pop()
    return lines


class _Reader:
    """Builds the structure. ``issues`` collects every structural problem, in line order."""

    def __init__(self, opts: AchOptions) -> None:
        self.opts = opts
        self.issues: list[ValidationIssue] = []
        self.file = AchFile(header=None, options=opts.enabled())
        self.batch: Batch | None = None
        self.entry: Entry | None = None
        self.adv_file = False
        self.known_records = 0

    def issue(self, code: str, message: str, line_no: int, severity: str = "error") -> None:
        # Bounded like a report: a file of garbage must not build a million issues.
        if len(self.issues) < ERRORS_PER_REPORT_MAX:
            self.issues.append(ValidationIssue(code, message, f"line {line_no}", severity))

    def fix_length(self, line: str, n: int) -> str | None:
        size = len(line)
        if size == RECORD_LENGTH_CHARS:
            return line
        if size > RECORD_LENGTH_CHARS:
            if not line[RECORD_LENGTH_CHARS:].strip():
                return line[:RECORD_LENGTH_CHARS]
            self.issue("ach_record_length", f"record is {size} characters; must be {RECORD_LENGTH_CHARS}", n)
            return None
        # Editors and mail gateways strip trailing blanks: a short record is read as if padded
        # with blanks (as moov-io/ach does) and reported as a warning, never silently.
        self.issue(
            "ach_record_length",
            f"record is {size} characters; read as padded to {RECORD_LENGTH_CHARS} with blanks",
            n,
            severity="warning",
        )
        return line.ljust(RECORD_LENGTH_CHARS)

    def read(self, lines: list[str]) -> AchFile:
        if len(lines) > FILE_LINES_MAX:
            raise PaymentFormatError(f"file has more than {FILE_LINES_MAX} records", code="ach_too_large")
        handlers = {
            "1": self.on_file_header,
            "5": self.on_batch_header,
            "6": self.on_entry,
            "7": self.on_addenda,
            "8": self.on_batch_control,
            "9": self.on_nine,
        }
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                self.issue("ach_blank_line", "blank line between records", n)
                continue
            line = self.fix_length(raw, n)
            if line is None:
                self.known_records += raw[0] in handlers
                continue
            handler = handlers.get(line[0])
            if handler is not None:
                self.known_records += 1
            else:
                self.issue("ach_record_type", f"unknown record type '{line[0]}'", n)
                continue
            handler(line, n)
        self.finish(len(lines))
        return self.file

    def on_file_header(self, line: str, n: int) -> None:
        if self.file.header is not None or self.file.batches:
            self.issue("ach_file_header_position", "file header must be the first record and appear once", n)
            return
        self.file.header = FileHeader(line, n)

    def close_batch(self, n: int) -> None:
        if self.batch is not None and self.batch.control is None and not self.opts.missing_batch_control_ok:
            self.issue(
                "ach_batch_control_missing",
                f"batch starting at line {self.batch.header.line_no} has no batch control record",
                n,
            )
        self.batch = None
        self.entry = None

    def on_batch_header(self, line: str, n: int) -> None:
        self.close_batch(n)
        if self.file.control is not None:
            self.issue("ach_record_after_file_control", "batch after the file control record", n)
        sec = line[50:53]
        iat = sec == "IAT" or (sec == "COR" and line[4:10] == "IATCOR")
        header = IATBatchHeader(line, n) if iat else BatchHeader(line, n)
        if line[1:4] == "280" or sec == "ADV":
            self.adv_file = True
        self.batch = Batch(header=header, entries=[])
        self.file.batches.append(self.batch)

    def on_entry(self, line: str, n: int) -> None:
        batch = self.batch
        if batch is None:
            self.issue("ach_entry_outside_batch", "entry detail record outside a batch (no batch header)", n)
            self.entry = None
            return
        if batch.control is not None:
            self.issue("ach_entry_after_batch_control", "entry detail record after its batch control", n)
            return
        self.entry = Entry(entry_class(batch.header)(line, n))
        batch.entries.append(self.entry)

    def on_addenda(self, line: str, n: int) -> None:
        if self.entry is None:
            self.issue("ach_addenda_outside_entry", "addenda record not preceded by an entry detail record", n)
            return
        cls = ADDENDA_CLASSES.get(line[1:3], Addenda)
        self.entry.addenda.append(cls(line, n))

    def on_batch_control(self, line: str, n: int) -> None:
        batch = self.batch
        if batch is None or batch.control is not None:
            self.issue("ach_batch_control_outside_batch", "batch control record without an open batch", n)
            return
        adv = batch.header.line[1:4] == "280" or batch.header.line[50:53] == "ADV"
        batch.control = ADVBatchControl(line, n) if adv else BatchControl(line, n)
        self.entry = None

    def on_nine(self, line: str, n: int) -> None:
        if line == PADDING_RECORD:
            if self.file.control is None:
                self.issue("ach_padding_position", "filler record (all 9s) before the file control record", n)
            self.file.padding_lines += 1
            return
        if self.file.control is not None:
            self.issue("ach_file_control_position", "second file control record", n)
            return
        if self.file.padding_lines:
            self.issue("ach_padding_position", "filler record before the file control record", n)
        self.close_batch(n)
        self.file.control = ADVFileControl(line, n) if self.adv_file else FileControl(line, n)

    def finish(self, line_count: int) -> None:
        last = line_count + 1
        if self.batch is not None and self.file.control is None:
            self.close_batch(last)
        if self.file.header is None and not self.opts.missing_header_ok:
            self.issue("ach_file_header_missing", "file has no file header record (type 1)", 1)
        if self.file.control is None and not self.opts.missing_file_control_ok:
            self.issue("ach_file_control_missing", "file has no file control record (type 9)", last)
        if not self.known_records:
            raise PaymentFormatError("no NACHA record found", location="line 1", code="ach_not_nacha")


# A well-formed file's record types, one character per record: header, batches of
# (header, entries with addenda, control), file control, 9-filled padding.
_WELL_FORMED = re.compile(r"1(?:5(?:67*)+8)*9")
_BATCH = re.compile(r"5[67]+8")


def _fast_read(lines: list[str], opts: AchOptions) -> AchFile | None:
    """The common case in C-speed bulk operations; None when anything needs the full reader."""
    if set(map(len, lines)) != {RECORD_LENGTH_CHARS}:
        return None
    types = "".join(map(itemgetter(0), lines))
    head = _WELL_FORMED.match(types)
    if head is None:
        return None
    tail = head.end()
    if lines[tail:] != [PADDING_RECORD] * (len(lines) - tail) or lines[tail - 1] == PADDING_RECORD:
        return None
    f = AchFile(header=FileHeader(lines[0], 1), options=opts.enabled())
    adv = False
    for m in _BATCH.finditer(types, 1, tail - 1):
        s, e = m.start(), m.end() - 1
        hline = lines[s]
        sec = hline[50:53]
        header: BatchHeader | IATBatchHeader
        if sec == "IAT" or (sec == "COR" and hline[4:10] == "IATCOR"):
            header = IATBatchHeader(hline, s + 1)
        else:
            header = BatchHeader(hline, s + 1)
        is_adv = hline[1:4] == "280" or sec == "ADV"
        adv = adv or is_adv
        control = ADVBatchControl(lines[e], e + 1) if is_adv else BatchControl(lines[e], e + 1)
        f.batches.append(Batch(header=header, control=control, raw=(lines, s + 1, e)))
    f.control = ADVFileControl(lines[tail - 1], tail) if adv else FileControl(lines[tail - 1], tail)
    f.padding_lines = len(lines) - tail
    return f


def read(data: str | bytes, opts: AchOptions) -> tuple[AchFile, list[ValidationIssue]]:
    """The file and every structural issue found while reading it."""
    text = to_text(data)
    if not text.strip():
        raise PaymentFormatError("empty ACH file", location="line 1", code="ach_empty")
    lines = split_records(text)
    if not lines:
        raise PaymentFormatError("empty ACH file", location="line 1", code="ach_empty")
    fast = _fast_read(lines, opts)
    if fast is not None:
        return fast, []
    reader = _Reader(opts)
    achfile = reader.read(lines)
    return achfile, reader.issues


def block_count(record_count: int) -> int:
    return -(-record_count // BLOCKING_FACTOR)
