"""Immutable results the in-process SDK returns. Money fields are Decimal (the edge)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from qenex.kernel.errors import LedgerError
from qenex.kernel.model import TransactionType


@dataclass(frozen=True, slots=True)
class Balances:
    posted: Decimal
    pending: Decimal
    available: Decimal
    debits_posted: Decimal
    credits_posted: Decimal
    debits_pending: Decimal
    credits_pending: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    owner_id: str
    account_type: str
    currency: str
    status: str
    overdraft_limit: Decimal
    metadata: dict[str, Any]
    balances: Balances
    created_at: datetime
    system_code: str | None = None

    @property
    def balance(self) -> Decimal:
        return self.balances.posted

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class TransactionLeg:
    debit_account: int
    credit_account: int
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    type: TransactionType
    status: str  # posted, pending, voided, expired, reversed (and void/expire records: voided, expired)
    kind: str  # posted, pending, post_pending, void, expire
    amount: Decimal
    currency: str
    from_account: int
    to_account: int
    legs: tuple[TransactionLeg, ...]
    metadata: dict[str, Any]
    created_at: datetime
    related_transaction_id: int | None = None  # the pending one (post/void/expire) or the reversed one
    fx_rate: Decimal | None = None
    resolved_by: int | None = None
    reversed_by: int | None = None
    expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True, slots=True)
class TransactionResult:
    ok: bool
    transaction_id: int | None
    error: LedgerError | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class StatementEntry:
    seq: int
    transaction_id: int
    type: str
    created_at: datetime
    debit: Decimal
    credit: Decimal
    amount: Decimal  # signed effect on the account's normal-side balance
    balance: Decimal  # running balance after this entry
    counterparty: int
    description: str


@dataclass(frozen=True, slots=True)
class Statement:
    account_id: int
    currency: str
    start: datetime
    end: datetime
    opening_balance: Decimal
    closing_balance: Decimal
    entries: tuple[StatementEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["seq", "transaction_id", "date", "type", "description", "counterparty", "debit", "credit",
                    "amount", "balance"])
        w.writerow(["", "", self.start.isoformat(), "OPENING_BALANCE", "", "", "", "", "",
                    str(self.opening_balance)])
        for e in self.entries:
            w.writerow([e.seq, e.transaction_id, e.created_at.isoformat(), e.type, e.description, e.counterparty,
                        str(e.debit), str(e.credit), str(e.amount), str(e.balance)])
        w.writerow(["", "", self.end.isoformat(), "CLOSING_BALANCE", "", "", "", "", "", str(self.closing_balance)])
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    seq: int
    event: str  # transaction.created, transaction.completed, transaction.voided, transaction.expired
    transaction_id: int
    type: str
    status: str
    amount: Decimal
    currency: str
    from_account: int
    to_account: int
    related_transaction_id: int | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = _jsonable(asdict(obj))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, TransactionType):
        return value.value
    return value
