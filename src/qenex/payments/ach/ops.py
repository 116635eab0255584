"""File operations: merge files, split a file by size, segment credits from debits.

Every result is re-assembled from the entries: batch numbers, controls, hashes and totals are
recomputed, never copied, and the result is read back through the reader.
"""

from __future__ import annotations

from qenex.payments.ach import codes as C
from qenex.payments.ach.codes import is_digits
from qenex.payments.ach.records import BLOCKING_FACTOR, AchFile, Entry
from qenex.payments.common import PaymentFormatError

# NACHA files in practice stay under 10,000 records (operators' limit on many networks).
FILE_LINES_MAX = 10_000
MERGE_FILES_MAX = 10_000


def _batch_lines(header: str, entries: list[Entry], number: int) -> list[str]:
    adv = header[1:4] == C.SCC_ADV
    count = ehash = debit = credit = 0
    body: list[str] = []
    for e in entries:
        line = e.record.line
        body.append(line)
        body.extend(a.line for a in e.addenda)
        count += 1 + len(e.addenda)
        ehash += int(line[3:11]) if is_digits(line[3:11]) else 0
        a, b = e.record.amount_slice
        cents = int(line[a:b]) if is_digits(line[a:b]) else 0
        if line[1:3] in C.DEBIT_CODES:
            debit += cents
        elif line[1:3] in C.CREDIT_CODES:
            credit += cents
    num = str(number).zfill(7)
    head = header[:87] + num
    ehash %= 10**10
    if adv:
        control = f"8{header[1:4]}{count:06d}{ehash:010d}{debit:020d}{credit:020d}" + " " * 19 + header[79:87] + num
    else:
        control = (
            f"8{header[1:4]}{count:06d}{ehash:010d}{debit:012d}{credit:012d}"
            + header[40:50]
            + " " * 25
            + header[79:87]
            + num
        )
    return [head, *body, control]


def assemble(file_header: str, batches: list[tuple[str, list[Entry]]]) -> AchFile:
    """A complete file from a file header line and (batch header line, entries) pairs."""
    from qenex.payments.ach import parse

    lines = [file_header]
    count = ehash = debit = credit = 0
    adv = False
    for number, (header, entries) in enumerate(batches, 1):
        block = _batch_lines(header, entries, number)
        lines.extend(block)
        control = block[-1]
        adv = adv or header[1:4] == C.SCC_ADV
        count += int(control[4:10])
        ehash += int(control[10:20])
        if header[1:4] == C.SCC_ADV:
            debit += int(control[20:40])
            credit += int(control[40:60])
        else:
            debit += int(control[20:32])
            credit += int(control[32:44])
    blocks = -(-(len(lines) + 1) // BLOCKING_FACTOR)
    width = 20 if adv else 12
    tail = " " * (23 if adv else 39)
    lines.append(
        f"9{len(batches):06d}{blocks:06d}{count:08d}{ehash % 10**10:010d}{debit:0{width}d}{credit:0{width}d}{tail}"
    )
    return parse("\n".join(lines) + "\n", allow_zero_batches=not batches)


def _lines_of(entries: list[Entry]) -> int:
    return sum(1 + len(e.addenda) for e in entries)


def merge(files: list[AchFile], *, file_lines_max: int = FILE_LINES_MAX) -> list[AchFile]:
    """Merge files with the same immediate destination and origin; batches are renumbered and a
    new file is started when one would exceed ``file_lines_max`` records."""
    if len(files) > MERGE_FILES_MAX:
        raise PaymentFormatError(f"merge takes at most {MERGE_FILES_MAX} files", code="ach_too_many_files")
    groups: dict[tuple[str, str], tuple[str, list[tuple[str, list[Entry]]]]] = {}
    for f in files:
        if f.header is None:
            raise PaymentFormatError("cannot merge a file without a file header", code="ach_file_header_missing")
        key = (f.header.line[3:13], f.header.line[13:23])
        _, batches = groups.setdefault(key, (f.header.line, []))
        batches.extend((b.header.line, b.entries) for b in f.batches)
    out: list[AchFile] = []
    for header, batches in groups.values():
        out.extend(_pack(header, batches, file_lines_max))
    return out


def _pack(header: str, batches: list[tuple[str, list[Entry]]], lines_max: int) -> list[AchFile]:
    out: list[AchFile] = []
    current: list[tuple[str, list[Entry]]] = []
    used = 2  # file header and file control
    for batch in batches:
        size = 2 + _lines_of(batch[1])
        if used + size > lines_max:
            if not current:
                raise PaymentFormatError(f"one batch alone exceeds {lines_max} records", code="ach_file_too_large")
            out.append(assemble(header, current))
            current, used = [], 2
        current.append(batch)
        used += size
    if current:
        out.append(assemble(header, current))
    return out


def split(f: AchFile, *, file_lines_max: int = FILE_LINES_MAX) -> list[AchFile]:
    """Split a file into files of at most ``file_lines_max`` records, keeping batches whole."""
    if f.header is None:
        raise PaymentFormatError("cannot split a file without a file header", code="ach_file_header_missing")
    return _pack(f.header.line, [(b.header.line, b.entries) for b in f.batches], file_lines_max)


def segment(f: AchFile) -> tuple[AchFile, AchFile]:
    """(credits file, debits file): every batch split by entry direction, service class set."""
    if f.header is None:
        raise PaymentFormatError("cannot segment a file without a file header", code="ach_file_header_missing")
    credits: list[tuple[str, list[Entry]]] = []
    debits: list[tuple[str, list[Entry]]] = []
    for b in f.batches:
        cr = [e for e in b.entries if e.record.line[1:3] in C.CREDIT_CODES]
        dr = [e for e in b.entries if e.record.line[1:3] in C.DEBIT_CODES]
        adv = b.header.line[1:4] == C.SCC_ADV
        if cr:
            credits.append((b.header.line if adv else "5" + C.SCC_CREDITS + b.header.line[4:], cr))
        if dr:
            debits.append((b.header.line if adv else "5" + C.SCC_DEBITS + b.header.line[4:], dr))
    return assemble(f.header.line, credits), assemble(f.header.line, debits)
