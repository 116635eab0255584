"""Request (input) and response (output) models. Inputs forbid unknown fields and bound every
string; money is a decimal string both ways (never a JSON float)."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from qenex.kernel.engine import BATCH_ITEMS_MAX
from qenex.kernel.model import IDEMPOTENCY_KEY_CHARS_MAX, PENDING_TIMEOUT_SECONDS_MAX
from qenex.security.inputs import refuse_forbidden

# The API's batch bound: the 8,000 (the kernel's own is a little higher).
API_BATCH_ITEMS_MAX: Final = min(8_000, BATCH_ITEMS_MAX)
OWNER_ID_CHARS_MAX: Final = 200
METADATA_KEYS_MAX: Final = 64
ID_MAX: Final = 2**63 - 1
LIST_LIMIT_MAX: Final = 1_000

DecimalText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[0-9]{1,20}(\.[0-9]{1,18})?$")
]
CurrencyCode = Annotated[str, StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
# OwnerId and Metadata refuse NUL and unpaired surrogates anywhere, nested keys included (the
# database cannot store them; typed ``str`` fields already refuse surrogates: ``string_unicode``).
OwnerId = Annotated[str, StringConstraints(min_length=1, max_length=OWNER_ID_CHARS_MAX),
                    AfterValidator(refuse_forbidden)]
ItemKey = Annotated[str, StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_CHARS_MAX - 72,
                                           pattern=r"^[\x21-\x7e]+$")]
Id = Annotated[int, Field(gt=0, le=ID_MAX)]
Metadata = Annotated[dict[str, Any], Field(max_length=METADATA_KEYS_MAX), AfterValidator(refuse_forbidden)]

TransactionTypeName = Literal["TRANSFER", "DEPOSIT", "WITHDRAWAL", "PAYMENT", "FEE", "INTEREST", "REVERSAL",
                              "EXCHANGE", "ADJUSTMENT"]
AccountTypeName = Literal["CHECKING", "SAVINGS", "LOAN", "GL_ASSET", "GL_LIABILITY", "GL_EQUITY", "GL_REVENUE",
                          "GL_EXPENSE"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountIn(_In):
    owner_id: OwnerId
    account_type: AccountTypeName = "CHECKING"
    currency: CurrencyCode = "USD"
    initial_balance: DecimalText | None = None
    overdraft_limit: DecimalText | None = None
    metadata: Metadata | None = None


class TransactionIn(_In):
    type: TransactionTypeName
    from_account: Id | None = None
    to_account: Id | None = None
    amount: DecimalText | None = None
    currency: CurrencyCode | None = None
    metadata: Metadata | None = None
    pending: bool = False
    timeout_seconds: Annotated[int, Field(ge=1, le=PENDING_TIMEOUT_SECONDS_MAX)] | None = None
    rate: DecimalText | None = None
    original_transaction_id: Id | None = None
    linked: bool = False
    idempotency_key: ItemKey | None = Field(default=None, description="Per-item key (batch items).")


class PostPendingIn(_In):
    amount: DecimalText | None = Field(default=None, description="Partial amount; the whole hold when absent.")
    metadata: Metadata | None = None


class ResolveIn(_In):
    metadata: Metadata | None = None


class BalancesOut(BaseModel):
    posted: str
    pending: str
    available: str
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str


class AccountOut(BaseModel):
    id: int
    owner_id: str
    account_type: str
    currency: str
    status: str
    balance: str
    overdraft_limit: str
    balances: BalancesOut
    metadata: dict[str, Any]
    created_at: str


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_cursor: str | None


class BalanceOut(BaseModel):
    account_id: int
    currency: str
    posted: str
    pending: str
    available: str


class LegOut(BaseModel):
    debit_account: int
    credit_account: int
    amount: str
    currency: str


class TransactionOut(BaseModel):
    id: int
    type: str
    status: str
    kind: str
    amount: str
    currency: str
    from_account: int
    to_account: int
    legs: list[LegOut]
    metadata: dict[str, Any]
    created_at: str
    related_transaction_id: int | None
    fx_rate: str | None
    resolved_by: int | None
    reversed_by: int | None
    expires_at: str | None
    replayed: bool = False


class TransactionAccepted(BaseModel):
    """What ``POST /transactions`` answers: the transaction as accepted (``GET`` shows it in full)."""

    id: int
    type: str
    status: str
    amount: str
    currency: str
    from_account: int
    to_account: int
    metadata: dict[str, Any]
    replayed: bool


class ItemErrorOut(BaseModel):
    code: str
    message: str


class BatchItemOut(BaseModel):
    index: int
    ok: bool
    transaction_id: int | None
    replayed: bool
    error: ItemErrorOut | None


class BatchOut(BaseModel):
    results: list[BatchItemOut]
    succeeded: int
    failed: int


class StatementEntryOut(BaseModel):
    seq: int
    transaction_id: int
    type: str
    created_at: str
    debit: str
    credit: str
    amount: str
    balance: str
    counterparty: int
    description: str


class StatementOut(BaseModel):
    account_id: int
    currency: str
    start: str
    end: str
    opening_balance: str
    closing_balance: str
    entries: list[StatementEntryOut]


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    database: bool
    migrations_current: bool


class DatabaseStatusOut(BaseModel):
    reachable: bool
    migration_version: int
    pending_migrations: int


class CountsOut(BaseModel):
    accounts: int
    transactions: int


class StatusOut(BaseModel):
    """Everyone gets version, uptime and status; the bank-wide fields (environment, database,
    counts, stream subscribers, Redis) are for staff credentials only, never for a customer."""

    version: str
    uptime_seconds: int
    status: Literal["ok", "degraded"]
    environment: str | None = None
    database: DatabaseStatusOut | None = None
    counts: CountsOut | None = None
    stream_subscribers: int | None = None
    redis: bool | None = None


class AuditRecordOut(BaseModel):
    id: int
    occurred_at: str
    actor: str
    action: str
    resource: str
    outcome: str
    source_ip: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecordOut]
    next_cursor: str | None
