"""Builder arguments the MT tests share: one sample of each message family (banks, references,
accounts), so that every test builds it the same way and states only what it is about:
``swift.create_mt202(**mt202_args(amount="1.00"))``."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

_MT202: dict[str, Any] = {
    "sender_bic": "BANKBEBB",
    "receiver_bic": "BANKDEFF",
    "reference": "FI-1",
    "related_reference": "REL-1",
    "currency": "EUR",
    "beneficiary_institution_bic": "BANKFRPP",
}

_MT202COV: dict[str, Any] = {
    "sender_bic": "BANKBEBB",
    "receiver_bic": "BANKDEFF",
    "reference": "COV-1",
    "related_reference": "REF-0001",
    "currency": "EUR",
    "beneficiary_institution_bic": "BANKFRPP",
    "ordering_customer_account": "BE68539007547034",
    "ordering_customer_name": "JOHN DOE",
    "beneficiary_account": "FR1420041010050500013M02606",
}

_CONFIRMATION: dict[str, Any] = {  # MT900 / MT910
    "sender_bic": "BANKDEFF",
    "receiver_bic": "BANKBEBB",
    "related_reference": "REF-0001",
    "account": "123-456",
    "amount": "99.99",
    "currency": "USD",
}

_STATEMENT: dict[str, Any] = {  # MT940 / MT950
    "sender_bic": "BANKDEFF",
    "receiver_bic": "BANKBEBB",
    "reference": "STMT-1",
    "account": "DE89370400440532013000",
    "currency": "EUR",
    "opening_balance": Decimal("100.00"),
    "opening_date": date(2024, 1, 14),
}


def mt202_args(**changes: Any) -> dict[str, Any]:
    return {**_MT202, **changes}


def mt202cov_args(**changes: Any) -> dict[str, Any]:
    return {**_MT202COV, **changes}


def confirmation_args(**changes: Any) -> dict[str, Any]:
    return {**_CONFIRMATION, **changes}


def statement_args(**changes: Any) -> dict[str, Any]:
    return {**_STATEMENT, **changes}
