"""Ledger domain types: transaction and account kinds, and the commands the engine plans.

Amounts here are integer minor units; Decimal exists only at the SDK edge (`qenex.kernel.money`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum
from typing import Final, NamedTuple


class TransactionType(str, Enum):
    TRANSFER = "TRANSFER"
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    PAYMENT = "PAYMENT"
    FEE = "FEE"
    INTEREST = "INTEREST"
    REVERSAL = "REVERSAL"
    EXCHANGE = "EXCHANGE"
    ADJUSTMENT = "ADJUSTMENT"


class AccountType(str, Enum):
    CHECKING = "CHECKING"
    SAVINGS = "SAVINGS"
    LOAN = "LOAN"
    GL_ASSET = "GL_ASSET"
    GL_LIABILITY = "GL_LIABILITY"
    GL_EQUITY = "GL_EQUITY"
    GL_REVENUE = "GL_REVENUE"
    GL_EXPENSE = "GL_EXPENSE"


class AccountStatus(str, Enum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class EntryKind(IntEnum):
    """What a journal row does. Only POSTED and POST_PENDING change posted balances."""

    POSTED = 0
    PENDING = 1
    POST_PENDING = 2
    VOID = 3
    EXPIRE = 4


class PendingState(IntEnum):
    OPEN = 0
    POSTED = 1
    VOIDED = 2
    EXPIRED = 3


# Accounts whose balance grows with debits (assets and expenses; a customer loan is the bank's asset).
DEBIT_NORMAL_TYPES: Final = frozenset({"LOAN", "GL_ASSET", "GL_EXPENSE"})
# Customer deposit accounts: may not go below -overdraft_limit.
DEPOSIT_TYPES: Final = frozenset({"CHECKING", "SAVINGS"})
CUSTOMER_TYPES: Final = frozenset({"CHECKING", "SAVINGS", "LOAN"})
GL_TYPES: Final = frozenset({"GL_ASSET", "GL_LIABILITY", "GL_EQUITY", "GL_REVENUE", "GL_EXPENSE"})

# Transaction types with one side on the bank's own books, and which side (0 debit, 1 credit):
# that side must be a general-ledger account, so a deposit is never a transfer between two
# customers (cash, revenue and expense stay on the bank's side of every entry).
SETTLEMENT_SIDE: Final[dict[str, int]] = {"DEPOSIT": 0, "WITHDRAWAL": 1, "FEE": 1, "INTEREST": 0}

# System general-ledger accounts, one per currency: (system_code, account type).
SYSTEM_ACCOUNTS: Final[dict[str, str]] = {
    "cash": "GL_ASSET",  # settlement / cash: the other side of deposits and withdrawals
    "fx_position": "GL_ASSET",  # currency exchange position
    "fee_income": "GL_REVENUE",
    "interest_expense": "GL_EXPENSE",
    "adjustments": "GL_EQUITY",
}
SYSTEM_OWNER_ID: Final = "system"

# Limits.
LEGS_PER_TRANSACTION_MAX: Final = 8
IDEMPOTENCY_KEY_CHARS_MAX: Final = 200
METADATA_BYTES_MAX: Final = 8_192
PENDING_TIMEOUT_SECONDS_MAX: Final = 366 * 86_400


@dataclass(slots=True)
class AccountState:
    """An account's mutable totals as the engine sees them inside one batch."""

    id: int
    currency: str
    account_type: str
    status: str
    overdraft_limit: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def debit_normal(self) -> bool:
        return self.account_type in DEBIT_NORMAL_TYPES


@dataclass(slots=True)
class PendingRecord:
    tx_id: int
    debit_account: int
    credit_account: int
    amount: int
    currency: str
    tx_type: str
    expires_at: datetime | None
    state: int


@dataclass(frozen=True, slots=True)
class JournalLeg:
    """A stored journal row, as the engine needs it to reverse or resolve a transaction."""

    seq: int
    tx_id: int
    leg: int
    kind: int
    tx_type: str
    debit_account: int
    credit_account: int
    amount: int
    currency: str
    ref_tx: int | None


class Leg(NamedTuple):
    """One debit/credit pair. A NamedTuple: immutable and cheap to build thousands per batch."""

    debit: int
    credit: int
    amount: int
    currency: str


class NewTransaction(NamedTuple):
    tx_type: str
    legs: tuple[Leg, ...]
    metadata: str | None = None
    pending: bool = False
    timeout_seconds: int | None = None
    fx_rate: str | None = None
    key: str | None = None
    digest: bytes = b""
    linked: bool = False


@dataclass(frozen=True, slots=True)
class PostPending:
    pending_id: int
    amount: int | None = None
    metadata: str | None = None
    key: str | None = None
    digest: bytes = b""
    linked: bool = False


@dataclass(frozen=True, slots=True)
class VoidPending:
    pending_id: int
    metadata: str | None = None
    key: str | None = None
    digest: bytes = b""
    linked: bool = False


@dataclass(frozen=True, slots=True)
class Reverse:
    tx_id: int
    metadata: str | None = None
    key: str | None = None
    digest: bytes = b""
    linked: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that failed validation before reaching the engine; it still takes part in
    linked-chain semantics so a chain with a malformed item fails as a whole."""

    code: str
    message: str
    linked: bool = False


Command = NewTransaction | PostPending | VoidPending | Reverse | Rejected
