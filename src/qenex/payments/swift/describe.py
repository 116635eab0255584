"""Human-oriented summary of an MT message, for `qenex payments show`."""

from __future__ import annotations

from typing import Any

from qenex.payments.swift.model import Message, MessageBatch
from qenex.payments.swift.values import (
    amount_fits,
    decimal_in,
    read_32a,
    read_61,
    read_balance,
    read_ccy_amount,
    read_party,
)

_PARTIES = {
    "50": "ordering_customer",
    "52": "ordering_institution",
    "53": "senders_correspondent",
    "54": "receivers_correspondent",
    "56": "intermediary",
    "57": "account_with_institution",
    "58": "beneficiary_institution",
    "59": "beneficiary",
}


def describe(msg: Message | MessageBatch) -> dict[str, Any]:
    """Key facts of a message: type, parties, references, amounts (as decimal strings), UETR."""
    if isinstance(msg, MessageBatch):
        return {"format": "mt", "messages": [describe(m) for m in msg.messages]}
    out: dict[str, Any] = {"format": "mt", "message_type": f"MT{msg.message_type}" if msg.message_type else "MT"}
    if msg.is_stp:
        out["message_type"] += " STP"
    if msg.is_cov:
        out["message_type"] += " COV"
    for key, value in (("sender", msg.sender_bic), ("receiver", msg.receiver_bic), ("uetr", msg.uetr)):
        if value:
            out[key] = value
    for tag, key in (
        ("20", "reference"),
        ("21", "related_reference"),
        ("23B", "bank_operation_code"),
        ("25", "account"),
        ("28C", "statement_number"),
        ("70", "remittance_info"),
        ("71A", "charges"),
    ):
        f = msg.field(tag)
        if f is not None:
            out[key] = f.text.replace("\n", " ")
    _amounts(msg, out)
    _parties(msg, out)
    _statement(msg, out)
    return out


def _amounts(msg: Message, out: dict[str, Any]) -> None:
    f = msg.field("32A")
    if f is not None and (a := read_32a(f.text)) is not None:
        out["value_date"] = a.value_date.isoformat() if a.value_date else None
        out["currency"] = a.currency
        out["amount"] = _decimal_text(a.amount_text, a.currency)
    f = msg.field("33B")
    if f is not None and (pair := read_ccy_amount(f.text)) is not None:
        out["instructed_amount"] = f"{pair[0]} {pair[1].replace(',', '.')}"


def _decimal_text(amount_text: str, currency: str) -> str:
    """The amount with exactly its currency's decimals when it fits, else as written."""
    if amount_fits(amount_text, currency) is None:
        return str(decimal_in(amount_text, currency))
    return amount_text.replace(",", ".")


def _parties(msg: Message, out: dict[str, Any]) -> None:
    seen: set[str] = set()
    for f in msg.fields:
        key = _PARTIES.get(f.number)
        if key is None or key in seen:
            continue
        seen.add(key)
        party = read_party(f.tag, f.text)
        out[key] = {
            k: v
            for k, v in (
                ("account", party.account),
                ("bic", party.bic),
                ("name_address", " / ".join(party.lines) or None),
            )
            if v
        }


def _statement(msg: Message, out: dict[str, Any]) -> None:
    for tag, key in (("60", "opening_balance"), ("62", "closing_balance"), ("64", "available_balance")):
        f = msg.field(tag)
        if f is not None and (bal := read_balance(f.text)) is not None:
            out[key] = {
                "date": bal.date.isoformat() if bal.date else bal.date_text,
                "currency": bal.currency,
                "amount": str(bal.signed),
            }
    lines = [read_61(f.text) for f in msg.all("61")]
    if lines:
        out["entries"] = [
            {
                "value_date": ln.value_date_text,
                "mark": ln.mark,
                "amount": str(ln.amount),
                "type": ln.transaction_type,
                "reference": ln.customer_reference,
            }
            for ln in lines
            if ln is not None
        ][:1000]
