"""`Client` (sync) and `AsyncClient`: the kernel SDK's calls over HTTP (httpx).

Results are the same immutable views the in-process SDK returns (`Account`, `Transaction`,
`Statement`, `TransactionResult`), with money as Decimal. Rejections raise `LedgerError` with the
kernel's stable code (or `ClientError` for API-level ones: authentication, rate limits ...).

Retries: connection failures, 429 (after ``Retry-After``) and 502/503/504 are retried with
backoff. Every mutation carries an ``Idempotency-Key`` (a fresh one unless you pass yours), and
a retry reuses it, so a retried write is applied at most once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import httpx

from qenex.errors import QenexError
from qenex.kernel import errors as E
from qenex.kernel.errors import LedgerError
from qenex.kernel.model import TransactionType
from qenex.sdk.views import (
    Account,
    Balances,
    Statement,
    StatementEntry,
    Transaction,
    TransactionLeg,
    TransactionResult,
)

RETRIES_MAX: Final = 4
BACKOFF_BASE_S: Final = 0.2
BACKOFF_MAX_S: Final = 5.0
RETRY_AFTER_MAX_S: Final = 30.0
TIMEOUT_S_DEFAULT: Final = 30.0
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_LEDGER_CODES: Final = frozenset(v for k, v in vars(E).items() if k.isupper() and isinstance(v, str))


class ClientError(QenexError):
    """An API rejection that is not a ledger one (401, 403, 429, 5xx ...), or a transport failure."""

    def __init__(self, code: str, message: str, http_status: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.http_status = http_status


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    none_on_404: bool = False  # get_account / get_transaction return None, like the kernel SDK

    def request_args(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.(Async)Client.request`` beyond method and path."""
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}
        return {"json": self.json, "params": self.params or None, "headers": headers}


def _error(response: httpx.Response) -> QenexError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("code") or f"http_{response.status_code}")
    message = str(body.get("detail") or response.reason_phrase or "request failed")
    if code in _LEDGER_CODES and response.status_code < 500:
        return LedgerError(code, message, details=body.get("details"))
    return ClientError(code, message, response.status_code, body.get("details"))


def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
    if response is not None and response.headers.get("retry-after", "").isdigit():
        return min(float(response.headers["retry-after"]), RETRY_AFTER_MAX_S)
    return float(min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S))


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _dt(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def account_from(d: Mapping[str, Any]) -> Account:
    b = d["balances"]
    return Account(
        id=int(d["id"]), owner_id=d["owner_id"], account_type=d["account_type"], currency=d["currency"],
        status=d["status"], overdraft_limit=_d(d["overdraft_limit"]), metadata=dict(d.get("metadata") or {}),
        balances=Balances(*(_d(b[k]) for k in ("posted", "pending", "available", "debits_posted", "credits_posted",
                                               "debits_pending", "credits_pending"))),
        created_at=_dt(d["created_at"]),
    )


def transaction_from(d: Mapping[str, Any]) -> Transaction:
    return Transaction(
        id=int(d["id"]), type=TransactionType(d["type"]), status=d["status"], kind=d["kind"], amount=_d(d["amount"]),
        currency=d["currency"], from_account=int(d["from_account"]), to_account=int(d["to_account"]),
        legs=tuple(TransactionLeg(int(g["debit_account"]), int(g["credit_account"]), _d(g["amount"]), g["currency"])
                   for g in d["legs"]),
        metadata=dict(d.get("metadata") or {}), created_at=_dt(d["created_at"]),
        related_transaction_id=d.get("related_transaction_id"),
        fx_rate=None if d.get("fx_rate") is None else _d(d["fx_rate"]),
        resolved_by=d.get("resolved_by"), reversed_by=d.get("reversed_by"),
        expires_at=None if d.get("expires_at") is None else _dt(d["expires_at"]),
    )


def statement_from(d: Mapping[str, Any]) -> Statement:
    entries = tuple(StatementEntry(
        seq=int(e["seq"]), transaction_id=int(e["transaction_id"]), type=e["type"], created_at=_dt(e["created_at"]),
        debit=_d(e["debit"]), credit=_d(e["credit"]), amount=_d(e["amount"]), balance=_d(e["balance"]),
        counterparty=int(e["counterparty"]), description=e["description"]) for e in d["entries"])
    return Statement(int(d["account_id"]), d["currency"], _dt(d["start"]), _dt(d["end"]), _d(d["opening_balance"]),
                     _d(d["closing_balance"]), entries)


def _result_from(d: Mapping[str, Any]) -> TransactionResult:
    err = d.get("error")
    return TransactionResult(bool(d["ok"]), d.get("transaction_id"),
                             None if not err else LedgerError(err["code"], err["message"]), bool(d.get("replayed")))


def _text(value: Any) -> Any:
    """Money and ids as the API wants them: Decimal -> decimal string; everything else unchanged."""
    if isinstance(value, float):
        raise LedgerError(E.INVALID_AMOUNT, "amount must be a decimal string, Decimal or integer, never a float")
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value) if isinstance(value, Decimal) else value
    return getattr(value, "value", value)


def _item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if v is not None}
    for name in ("amount", "rate"):
        if name in out:
            out[name] = str(_text(out[name]))
    if "type" in out:
        out["type"] = str(getattr(out["type"], "value", out["type"])).upper()
    for name in ("from_account", "to_account", "original_transaction_id"):
        if name in out:
            out[name] = int(getattr(out[name], "id", out[name]))
    return out


class _Calls:
    """The calls, shared by both clients; each returns ``self._do(call)`` (a value or an awaitable)."""

    def _do(self, call: _Call) -> Any:
        raise TypeError("use Client or AsyncClient")

    @staticmethod
    def _key(idempotency_key: str | None) -> str:
        return idempotency_key or f"sdk-{uuid.uuid4().hex}"

    def health(self) -> Any:
        return self._do(_Call("GET", "/health", lambda r: r.json()))

    def status(self) -> Any:
        return self._do(_Call("GET", "/api/v1/system/status", lambda r: r.json()))

    def create_account(self, owner_id: str, account_type: Any = "CHECKING", currency: str = "USD",
                       initial_balance: Decimal | str | int | None = None, *,
                       overdraft_limit: Decimal | str | int | None = None, metadata: Mapping[str, Any] | None = None,
                       idempotency_key: str | None = None) -> Any:
        body = {"owner_id": owner_id, "account_type": str(getattr(account_type, "value", account_type)).upper(),
                "currency": currency, "metadata": dict(metadata) if metadata is not None else None,
                "initial_balance": None if initial_balance is None else str(_text(initial_balance)),
                "overdraft_limit": None if overdraft_limit is None else str(_text(overdraft_limit))}
        return self._do(_Call("POST", "/api/v1/accounts", lambda r: account_from(r.json()),
                              {k: v for k, v in body.items() if v is not None}, idempotency_key=self._key(
                                  idempotency_key)))

    def get_account(self, account_id: int) -> Any:
        return self._do(_Call("GET", f"/api/v1/accounts/{int(account_id)}", lambda r: account_from(r.json()),
                              none_on_404=True))

    def get_account_balance(self, account_id: int) -> Any:
        return self._do(_Call("GET", f"/api/v1/accounts/{int(account_id)}/balance", lambda r: _d(r.json()["posted"])))

    def list_accounts(self, owner_id: str | None = None, status: str | None = None, after: int | None = None,
                      limit: int = 100) -> Any:
        params = {k: v for k, v in {"owner_id": owner_id, "status": status,
                                    "cursor": None if after is None else str(after), "limit": limit}.items()
                  if v is not None}
        return self._do(_Call("GET", "/api/v1/accounts", lambda r: [account_from(a) for a in r.json()["items"]],
                              params=params))

    def process_transaction(self, transaction_type: Any, from_account: int | None = None,
                            to_account: int | None = None, amount: Decimal | str | int | None = None,
                            currency: str | None = None, metadata: Mapping[str, Any] | None = None,
                            idempotency_key: str | None = None, *, pending: bool = False,
                            timeout_seconds: int | None = None, rate: Decimal | str | None = None,
                            original_transaction_id: int | None = None) -> Any:
        body = _item({"type": transaction_type, "from_account": from_account, "to_account": to_account,
                      "amount": amount, "currency": currency, "metadata": metadata, "pending": pending or None,
                      "timeout_seconds": timeout_seconds, "rate": rate,
                      "original_transaction_id": original_transaction_id})
        return self._do(_Call("POST", "/api/v1/transactions", lambda r: int(r.json()["id"]), body,
                              idempotency_key=self._key(idempotency_key)))

    def process_transactions(self, items: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None) -> Any:
        body = {"items": [_item(i) for i in items]}
        return self._do(_Call("POST", "/api/v1/transactions/batch",
                              lambda r: [_result_from(x) for x in r.json()["results"]], body,
                              idempotency_key=self._key(idempotency_key)))

    def get_transaction(self, transaction_id: int) -> Any:
        return self._do(_Call("GET", f"/api/v1/transactions/{int(transaction_id)}",
                              lambda r: transaction_from(r.json()), none_on_404=True))

    def _resolve(self, name: str, tid: int, body: dict[str, Any], idempotency_key: str | None) -> Any:
        return self._do(_Call("POST", f"/api/v1/transactions/{int(tid)}/{name}", lambda r: int(r.json()["id"]),
                              {k: v for k, v in body.items() if v is not None},
                              idempotency_key=self._key(idempotency_key)))

    def post_pending(self, pending_id: int, amount: Decimal | str | int | None = None, *,
                     metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None) -> Any:
        return self._resolve("post", pending_id, {"amount": None if amount is None else str(_text(amount)),
                                                  "metadata": metadata}, idempotency_key)

    def void_pending(self, pending_id: int, *, metadata: Mapping[str, Any] | None = None,
                     idempotency_key: str | None = None) -> Any:
        return self._resolve("void", pending_id, {"metadata": metadata}, idempotency_key)

    def reverse_transaction(self, transaction_id: int, *, metadata: Mapping[str, Any] | None = None,
                            idempotency_key: str | None = None) -> Any:
        return self._resolve("reverse", transaction_id, {"metadata": metadata}, idempotency_key)

    def statement(self, account_id: int, start: datetime, end: datetime) -> Any:
        return self._do(_Call("GET", f"/api/v1/accounts/{int(account_id)}/statement",
                              lambda r: statement_from(r.json()),
                              params={"from": start.isoformat(), "to": end.isoformat(), "format": "json"}))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _is_final(response: httpx.Response, attempt: int, retries: int) -> bool:
    """A response is the answer unless its status is retryable and a retry is left."""
    return response.status_code not in RETRY_STATUSES or attempt >= retries


def _unreachable(exc: httpx.TransportError) -> ClientError:
    return ClientError("connection_failed", f"cannot reach the API: {exc.__class__.__name__}", 0)


def _finish(call: _Call, response: httpx.Response) -> Any:
    if response.status_code == 404 and call.none_on_404:
        return None
    if response.status_code >= 400:
        raise _error(response)
    return call.parse(response)


class Client(_Calls):
    """Synchronous HTTP client. ``Client("http://localhost:8080", api_key="qnx_...")``."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = TIMEOUT_S_DEFAULT,
                 retries: int = RETRIES_MAX, transport: httpx.BaseTransport | None = None,
                 verify: bool | str = True) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout_s,
                                  transport=transport, verify=verify)
        self.retries = retries

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _do(self, call: _Call) -> Any:
        args = call.request_args()
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(call.method, call.path, **args)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise _unreachable(exc) from None
            if response is not None and _is_final(response, attempt, self.retries):
                return _finish(call, response)
            time.sleep(_retry_delay(attempt, response))
            attempt += 1


class AsyncClient(_Calls):
    """Asynchronous twin of `Client`: every call is awaited."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = TIMEOUT_S_DEFAULT,
                 retries: int = RETRIES_MAX, transport: httpx.AsyncBaseTransport | None = None,
                 verify: bool | str = True) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout_s,
                                       transport=transport, verify=verify)
        self.retries = retries

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _do(self, call: _Call) -> Any:
        args = call.request_args()
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(call.method, call.path, **args)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise _unreachable(exc) from None
            if response is not None and _is_final(response, attempt, self.retries):
                return _finish(call, response)
            await asyncio.sleep(_retry_delay(attempt, response))
            attempt += 1
