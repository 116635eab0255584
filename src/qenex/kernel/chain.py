"""The journal's hash chain: hash_n = SHA-256(hash_{n-1} || canonical(row_n)).

The canonical form is shared by the writer and the verifier, so any modified, deleted,
inserted or reordered row breaks the chain at a located sequence number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

GENESIS_HASH: Final = bytes(32)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (no float on the way)."""
    return (moment - _EPOCH) // _MICROSECOND


def rate_text(rate: Decimal | str | None) -> str:
    """A rate as fixed-point text, identical before storage and after a numeric round trip."""
    if rate is None:
        return ""
    return format(Decimal(rate), "f")


def row_hash(
    prev: bytes,
    seq: int,
    tx_id: int,
    leg: int,
    kind: int,
    tx_type: str,
    debit: int,
    credit: int,
    amount: int,
    currency: str,
    ref_tx: int | None,
    fx_rate: str,
    created_us: int,
    metadata: str | None,
) -> bytes:
    # Metadata is the only free text and comes last, so the '|' separators stay unambiguous.
    text = (
        f"{seq}|{tx_id}|{leg}|{kind}|{tx_type}|{debit}|{credit}|{amount}|{currency}|"
        f"{'' if ref_tx is None else ref_tx}|{fx_rate}|{created_us}|{'' if metadata is None else metadata}"
    )
    return hashlib.sha256(prev + text.encode()).digest()


def chain_hashes(prev: bytes, rows: Sequence[Sequence[Any]], created_us: int) -> list[bytes]:
    """row_hash over a batch of journal rows (seq, tx_id, leg, kind, tx_type, debit, credit, amount,
    currency, ref_tx, fx_rate, metadata) sharing one created_us, each chained on the one before.

    Same canonical text as row_hash (a test holds them equal), built inline: the per-call argument
    passing of row_hash is a large part of its cost at thousands of rows per batch."""
    sha256 = hashlib.sha256
    stamp = f"|{created_us}|"
    out: list[bytes] = []
    append = out.append
    for r in rows:
        ref, fx, meta = r[9], r[10], r[11]
        text = (f"{r[0]}|{r[1]}|{r[2]}|{r[3]}|{r[4]}|{r[5]}|{r[6]}|{r[7]}|{r[8]}|{'' if ref is None else ref}|"
                f"{fx or ''}{stamp}{'' if meta is None else meta}")
        prev = sha256(prev + text.encode()).digest()
        append(prev)
    return out


def chain_hashes_copy(prev: bytes, rows: Sequence[Sequence[Any]], created_us: int, created_text: str,
                      escape: Callable[[str], str]) -> tuple[list[bytes], bytes]:
    """chain_hashes, plus each row as a line of PostgreSQL COPY text (the journal's column order,
    created_at as ``created_text``, metadata escaped by ``escape``), built from the same per-row
    text: the nine leading fields are formatted once for both (a test holds the output equal to
    chain_hashes and the store's own COPY formatting). The leading fields hold no '|', tab or
    line break (integers, a transaction type and a currency code), so their hashed text with '|'
    turned into tabs is their COPY text."""
    sha256 = hashlib.sha256
    stamp = f"|{created_us}|"
    plain_tail = "|" + stamp  # ref '' | fx '' | created_us | metadata ''
    plain_copy = f"\\N\t\\N\t\\N\t{created_text}\t\\\\x"
    created_copy = f"\t{created_text}\t\\\\x"
    null = "\\N"
    out: list[bytes] = []
    lines: list[str] = []
    append, line = out.append, lines.append
    for r in rows:
        ref, fx, meta = r[9], r[10], r[11]
        core = f"{r[0]}|{r[1]}|{r[2]}|{r[3]}|{r[4]}|{r[5]}|{r[6]}|{r[7]}|{r[8]}|"
        if ref is None and fx is None and meta is None:
            prev = sha256(prev + (core + plain_tail).encode()).digest()
            line(core.replace("|", "\t") + plain_copy + prev.hex() + "\n")
        else:
            text = f"{core}{'' if ref is None else ref}|{fx or ''}{stamp}{'' if meta is None else meta}"
            prev = sha256(prev + text.encode()).digest()
            line(core.replace("|", "\t") + f"{null if ref is None else ref}\t{null if fx is None else fx}\t"
                 f"{null if meta is None else escape(meta)}{created_copy}{prev.hex()}\n")
        append(prev)
    return out, "".join(lines).encode()
