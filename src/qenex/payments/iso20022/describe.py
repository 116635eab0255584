"""A human-oriented summary of an ISO 20022 message for `qenex payments show`."""

from __future__ import annotations

from typing import Any

from qenex.payments.iso20022.model import Iso20022Message, Party

DESCRIBE_ITEMS_MAX = 50  # transactions/entries listed; the counts say how many more there are


def _party(p: Party) -> dict[str, Any]:
    return {k: v for k, v in (("name", p.name), ("account", p.account), ("bic", p.bic), ("country", p.country)) if v}


def describe(msg: Iso20022Message) -> dict[str, Any]:
    out: dict[str, Any] = {"format": "iso20022", "message_type": msg.message_type or msg.header_type}
    header = msg.app_header()
    if header is not None:
        out["app_header"] = {
            "type": header.header_type,
            "from": header.from_bic,
            "to": header.to_bic,
            "business_message_id": header.biz_msg_id,
            "message_definition": header.msg_def_id,
            "created": header.created,
        }
    gh = msg.group_header()
    if gh is not None:
        out["message_id"] = gh.msg_id
        out["created"] = gh.created
        if gh.nb_of_txs is not None:
            out["number_of_transactions"] = gh.nb_of_txs
        if gh.ctrl_sum is not None:
            out["control_sum"] = str(gh.ctrl_sum)
    txs = msg.transactions()
    if txs:
        out["transactions"] = [
            {
                k: v
                for k, v in (
                    ("end_to_end_id", t.end_to_end_id or t.original_end_to_end_id),
                    ("uetr", t.uetr or t.original_uetr),
                    ("amount", str(t.amount) if t.amount is not None else None),
                    ("currency", t.currency),
                    ("date", t.settlement_date or t.requested_date),
                    ("debtor", _party(t.debtor) or None),
                    ("creditor", _party(t.creditor) or None),
                    ("status", t.status),
                    ("reason", t.reason_code),
                    ("remittance", " ".join(t.remittance) or None),
                )
                if v
            }
            for t in txs[:DESCRIBE_ITEMS_MAX]
        ]
        out["transaction_count"] = len(txs)
    statements = msg.statements()
    if statements:
        out["statements"] = [
            {
                "id": s.id,
                "account": s.account.account,
                "currency": s.account_currency,
                "balances": [
                    {
                        "type": b.type_code,
                        "amount": str(b.amount),
                        "currency": b.currency,
                        "side": b.credit_debit,
                        "date": b.date,
                    }
                    for b in s.balances
                ],
                "entry_count": len(s.entries),
                "entries": [
                    {
                        "amount": str(e.amount),
                        "currency": e.currency,
                        "side": e.credit_debit,
                        "booked": e.booking_date,
                        "status": e.status,
                        "reference": e.account_servicer_ref,
                    }
                    for e in s.entries[:DESCRIBE_ITEMS_MAX]
                ],
            }
            for s in statements
        ]
    return out
