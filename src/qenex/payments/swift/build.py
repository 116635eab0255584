"""Builders of FIN messages: typed arguments in, a validated `Message` out.

Every builder checks its inputs (BICs via schwifty, amounts exact per ISO 4217 decimals, the X
character set), assembles blocks 1-4 with CrLf line ends, generates the UETR (block 3 field 121,
a UUID version 4) for the types that carry one, and validates the result with the same
validator used for incoming messages; a message that fails is never returned.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from qenex.errors import QenexError
from qenex.kernel.money import from_minor, to_minor
from qenex.payments.common import PaymentFormatError, ValidationReport
from qenex.payments.swift import fields as fmt
from qenex.payments.swift.model import Block, Field, Message, MessageBatch
from qenex.payments.swift.validate import UETR_V4, bic_problem, parse, validate
from qenex.payments.swift.values import swift_amount_text, yymmdd

CRLF: Final = "\r\n"
NAME_LINE_CHARS: Final = 35
NAME_LINES_MAX: Final = 4
# CBPR+ convention for a mandatory name the originator did not supply.
NOT_PROVIDED: Final = "NOTPROVIDED"


class MTBuildError(PaymentFormatError):
    """Builder input that cannot make a valid message; `issues` lists every problem found."""

    code = "mt_build_invalid"


def new_uetr() -> str:
    """A fresh Unique End-to-end Transaction Reference: a random UUID version 4, lower case."""
    return str(uuid.uuid4())


def _bic(value: str, what: str) -> str:
    code = (value or "").strip().upper()
    problem = bic_problem(code)
    if problem:
        raise MTBuildError(f"{what}: {problem}", location=what)
    return code


def _lt(bic: str) -> str:
    """12-character logical terminal address: BIC8 + terminal code 'X' + branch (XXX if none)."""
    return bic[:8] + "X" + (bic[8:11] if len(bic) == 11 else "XXX")


def _x(text: str, what: str, max_chars: int) -> str:
    if not text:
        raise MTBuildError(f"{what} must not be empty", location=what)
    if len(text) > max_chars:
        raise MTBuildError(f"{what} is longer than {max_chars} characters", location=what)
    if not fmt.is_x_text(text):
        raise MTBuildError(f"{what} uses characters outside the SWIFT X character set", location=what)
    return text


def _ref(text: str, what: str) -> str:
    _x(text, what, 16)
    if text.startswith("/") or text.endswith("/") or "//" in text:
        raise MTBuildError(f"{what} must not start or end with '/' nor contain '//'", location=what)
    return text


def _lines(text: str, what: str, max_lines: int = NAME_LINES_MAX, width: int = NAME_LINE_CHARS) -> list[str]:
    """Free text wrapped to SWIFT lines (`max_lines` of `width`), X character set enforced."""
    if not fmt.is_x_text(text.replace("\n", " ")):
        raise MTBuildError(f"{what} uses characters outside the SWIFT X character set", location=what)
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(para, width, break_long_words=True, break_on_hyphens=False) or [])
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise MTBuildError(f"{what} must not be empty", location=what)
    if len(lines) > max_lines:
        raise MTBuildError(f"{what} does not fit in {max_lines} lines of {width} characters", location=what)
    # A continuation line must not start with '-' or ':' (it would read as a block end or a tag); the
    # text is never altered silently, so the caller rephrases.
    if any(ln[0] in "-:" for ln in lines[1:]):
        raise MTBuildError(f"{what}: a wrapped line would start with '-' or ':', which SWIFT forbids", location=what)
    return lines


def _amount(amount: Decimal | str | int, currency: str, what: str, allow_zero: bool = False) -> str:
    try:
        minor = to_minor(amount, currency, allow_zero=allow_zero)
        return swift_amount_text(from_minor(minor, currency))
    except QenexError as exc:
        raise MTBuildError(f"{what}: {exc.message}", location=what) from None


def _date(value: date | None) -> str:
    return yymmdd(value or datetime.now(UTC).date())


def _account(value: str, what: str) -> str:
    return "/" + _x(value.replace(" ", ""), what, 34)


def _party(account: str | None, name: str | None, address: Sequence[str] = (), what: str = "party") -> str:
    """Option K/no-letter party: optional /account line, then up to 4 name and address lines."""
    lines = [_account(account, f"{what} account")] if account else []
    body = _lines(name or NOT_PROVIDED, f"{what} name", NAME_LINES_MAX - len(address))
    for i, line in enumerate(address):
        body.append(_x(line, f"{what} address line {i + 1}", NAME_LINE_CHARS))
    return "\n".join(lines + body)


def _bic_party(bic: str, account: str | None = None, what: str = "institution") -> str:
    code = _bic(bic, what)
    return f"{_account(account, what + ' account')}\n{code}" if account else code


def _option_a(tag: str, bic: str | None, what: str) -> list[tuple[str, str]]:
    """An optional institution field in option A (BIC): no field when no BIC is given."""
    return [(tag, _bic_party(bic, what=what))] if bic else []


def _free_text(tag: str, text: str | None, what: str, max_lines: int = NAME_LINES_MAX) -> list[tuple[str, str]]:
    """An optional narrative field (70, 72) wrapped to 35-character lines: none without text."""
    return [(tag, "\n".join(_lines(text, what, max_lines)))] if text else []


def assemble(
    mt: str,
    sender_bic: str,
    receiver_bic: str,
    fields: Sequence[tuple[str, str]],
    user_header: Sequence[tuple[str, str]] = (),
    check: bool = True,
) -> Message:
    """A FIN input message from (tag, value) pairs; values use LF between lines (CrLf is written)."""
    sender = _bic(sender_bic, "sender_bic")
    receiver = _bic(receiver_bic, "receiver_bic")
    blocks = [
        Block("1", raw=f"F01{_lt(sender)}0000000000"),
        Block("2", raw=f"I{mt}{_lt(receiver)}N"),
    ]
    if user_header:
        blocks.append(Block("3", subfields=list(user_header)))
    text_fields = [Field(tag, value.replace("\n", CRLF), CRLF) for tag, value in fields]
    blocks.append(Block("4", fields=text_fields, lead=CRLF, tail="-"))
    msg = Message(blocks=blocks)
    if check:
        report = validate(msg)
        if not report.valid:
            first = report.errors[0]
            err = MTBuildError(f"the built MT{mt} is not valid: {first.message}", location=first.location)
            err.details["issues"] = [i.to_dict() for i in report.errors]
            raise err
    return msg


def _uetr_header(uetr: str | None, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    value = uetr or new_uetr()
    if UETR_V4.match(value) is None:
        raise MTBuildError("uetr must be a UUID version 4 in lower case", location="uetr")
    return [*extra, ("121", value)]


def create_mt103(
    *,
    sender_bic: str,
    receiver_bic: str,
    sender_account: str,
    receiver_account: str,
    amount: Decimal | str | int,
    currency: str,
    reference: str,
    remittance_info: str | None = None,
    ordering_name: str | None = None,
    ordering_address: Sequence[str] = (),
    beneficiary_name: str | None = None,
    beneficiary_address: Sequence[str] = (),
    beneficiary_bank_bic: str | None = None,
    ordering_institution_bic: str | None = None,
    intermediary_bic: str | None = None,
    value_date: date | None = None,
    charges: str = "SHA",
    bank_operation_code: str = "CRED",
    instructed_amount: Decimal | str | int | None = None,
    instructed_currency: str | None = None,
    exchange_rate: Decimal | str | None = None,
    sender_charges: Sequence[tuple[str, Decimal | str]] = (),
    receiver_charges: tuple[str, Decimal | str] | None = None,
    sender_to_receiver: str | None = None,
    uetr: str | None = None,
    stp: bool = False,
) -> Message:
    """An MT103 Single Customer Credit Transfer (MT103 STP with ``stp=True``)."""
    ccy = currency.upper()
    settled = _amount(amount, ccy, "amount")
    fields: list[tuple[str, str]] = [("20", _ref(reference, "reference")), ("23B", bank_operation_code)]
    fields.append(("32A", f"{_date(value_date)}{ccy}{settled}"))
    if instructed_amount is not None or sender_charges or receiver_charges:
        ins_ccy = (instructed_currency or ccy).upper()
        ins_amount = amount if instructed_amount is None else instructed_amount
        fields.append(("33B", f"{ins_ccy}{_amount(ins_amount, ins_ccy, 'instructed_amount')}"))
        if exchange_rate is not None:
            fields.append(("36", swift_amount_text(Decimal(str(exchange_rate)))))
    fields.append(("50K", _party(sender_account, ordering_name, ordering_address, "ordering customer")))
    fields += _option_a("52A", ordering_institution_bic, "ordering_institution_bic")
    fields += _option_a("56A", intermediary_bic, "intermediary_bic")
    fields += _option_a("57A", beneficiary_bank_bic, "beneficiary_bank_bic")
    fields.append(("59", _party(receiver_account, beneficiary_name, beneficiary_address, "beneficiary")))
    fields += _free_text("70", remittance_info, "remittance_info")
    fields.append(("71A", charges))
    for ch_ccy, ch_amount in sender_charges:
        fields.append(("71F", f"{ch_ccy.upper()}{_amount(ch_amount, ch_ccy.upper(), '71F', allow_zero=True)}"))
    if receiver_charges is not None:
        g_ccy = receiver_charges[0].upper()
        fields.append(("71G", f"{g_ccy}{_amount(receiver_charges[1], g_ccy, '71G')}"))
    fields += _free_text("72", sender_to_receiver, "sender_to_receiver", 6)
    header = _uetr_header(uetr, [("119", "STP")] if stp else [])
    return assemble("103", sender_bic, receiver_bic, fields, header)


def _mt202_seq_a(
    reference: str,
    related_reference: str,
    amount: Decimal | str | int,
    currency: str,
    value_date: date | None,
    ordering_institution_bic: str | None,
    intermediary_bic: str | None,
    account_with_bic: str | None,
    beneficiary_institution_bic: str,
    beneficiary_institution_account: str | None,
    sender_to_receiver: str | None,
) -> list[tuple[str, str]]:
    ccy = currency.upper()
    fields = [
        ("20", _ref(reference, "reference")),
        ("21", _ref(related_reference, "related_reference")),
        ("32A", f"{_date(value_date)}{ccy}{_amount(amount, ccy, 'amount')}"),
    ]
    fields += _option_a("52A", ordering_institution_bic, "ordering_institution_bic")
    fields += _option_a("56A", intermediary_bic, "intermediary_bic")
    fields += _option_a("57A", account_with_bic, "account_with_bic")
    fields.append(
        ("58A", _bic_party(beneficiary_institution_bic, beneficiary_institution_account, "beneficiary_institution_bic"))
    )
    fields += _free_text("72", sender_to_receiver, "sender_to_receiver", 6)
    return fields


def create_mt202(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    related_reference: str,
    amount: Decimal | str | int,
    currency: str,
    beneficiary_institution_bic: str,
    beneficiary_institution_account: str | None = None,
    value_date: date | None = None,
    ordering_institution_bic: str | None = None,
    intermediary_bic: str | None = None,
    account_with_bic: str | None = None,
    sender_to_receiver: str | None = None,
    uetr: str | None = None,
) -> Message:
    """An MT202 General Financial Institution Transfer."""
    fields = _mt202_seq_a(
        reference,
        related_reference,
        amount,
        currency,
        value_date,
        ordering_institution_bic,
        intermediary_bic,
        account_with_bic,
        beneficiary_institution_bic,
        beneficiary_institution_account,
        sender_to_receiver,
    )
    return assemble("202", sender_bic, receiver_bic, fields, _uetr_header(uetr))


def create_mt202cov(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    related_reference: str,
    amount: Decimal | str | int,
    currency: str,
    beneficiary_institution_bic: str,
    ordering_customer_account: str | None,
    ordering_customer_name: str,
    beneficiary_account: str | None,
    beneficiary_name: str,
    value_date: date | None = None,
    ordering_institution_bic: str | None = None,
    intermediary_bic: str | None = None,
    account_with_bic: str | None = None,
    underlying_ordering_institution_bic: str | None = None,
    underlying_account_with_bic: str | None = None,
    remittance_info: str | None = None,
    instructed_amount: Decimal | str | int | None = None,
    instructed_currency: str | None = None,
    uetr: str | None = None,
) -> Message:
    """An MT202 COV: the cover of an underlying customer credit transfer (sequence B carries it)."""
    fields = _mt202_seq_a(
        reference,
        related_reference,
        amount,
        currency,
        value_date,
        ordering_institution_bic,
        intermediary_bic,
        account_with_bic,
        beneficiary_institution_bic,
        None,
        None,
    )
    fields.append(("50K", _party(ordering_customer_account, ordering_customer_name, (), "ordering customer")))
    fields += _option_a("52A", underlying_ordering_institution_bic, "underlying ordering inst.")
    fields += _option_a("57A", underlying_account_with_bic, "underlying account with inst.")
    fields.append(("59", _party(beneficiary_account, beneficiary_name, (), "beneficiary")))
    fields += _free_text("70", remittance_info, "remittance_info")
    if instructed_amount is not None:
        ins_ccy = (instructed_currency or currency).upper()
        fields.append(("33B", f"{ins_ccy}{_amount(instructed_amount, ins_ccy, 'instructed_amount')}"))
    return assemble("202", sender_bic, receiver_bic, fields, _uetr_header(uetr, [("119", "COV")]))


def _confirmation(
    mt: str,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    related_reference: str,
    account: str,
    amount: Decimal | str | int,
    currency: str,
    value_date: date | None,
    parties: list[tuple[str, str]],
    sender_to_receiver: str | None,
) -> Message:
    ccy = currency.upper()
    fields = [
        ("20", _ref(reference, "reference")),
        ("21", _ref(related_reference, "related_reference")),
        ("25", _x(account, "account", 35)),
        ("32A", f"{_date(value_date)}{ccy}{_amount(amount, ccy, 'amount')}"),
    ]
    fields.extend(parties)
    fields += _free_text("72", sender_to_receiver, "sender_to_receiver", 6)
    return assemble(mt, sender_bic, receiver_bic, fields)


def create_mt900(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    related_reference: str,
    account: str,
    amount: Decimal | str | int,
    currency: str,
    value_date: date | None = None,
    ordering_institution_bic: str | None = None,
    sender_to_receiver: str | None = None,
) -> Message:
    """An MT900 Confirmation of Debit."""
    parties = _option_a("52A", ordering_institution_bic, "ordering_institution_bic")
    return _confirmation(
        "900",
        sender_bic,
        receiver_bic,
        reference,
        related_reference,
        account,
        amount,
        currency,
        value_date,
        parties,
        sender_to_receiver,
    )


def create_mt910(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    related_reference: str,
    account: str,
    amount: Decimal | str | int,
    currency: str,
    value_date: date | None = None,
    ordering_institution_bic: str | None = None,
    ordering_customer_account: str | None = None,
    ordering_customer_name: str | None = None,
    intermediary_bic: str | None = None,
    sender_to_receiver: str | None = None,
) -> Message:
    """An MT910 Confirmation of Credit (either the ordering customer or institution is required)."""
    parties: list[tuple[str, str]] = []
    if ordering_customer_name:
        parties.append(("50K", _party(ordering_customer_account, ordering_customer_name, (), "ordering customer")))
    parties += _option_a("52A", ordering_institution_bic, "ordering_institution_bic")
    parties += _option_a("56A", intermediary_bic, "intermediary_bic")
    return _confirmation(
        "910",
        sender_bic,
        receiver_bic,
        reference,
        related_reference,
        account,
        amount,
        currency,
        value_date,
        parties,
        sender_to_receiver,
    )


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One statement line: a signed amount (negative = debit), its value date, the transaction type
    (S/N/F + 3 characters, e.g. NTRF), the account owner's reference and optional details."""

    amount: Decimal
    value_date: date
    transaction_type: str = "NTRF"
    reference: str = "NONREF"
    bank_reference: str | None = None
    entry_date: date | None = None
    details: str | None = None  # MT940 only: field 86 information to account owner


def _balance(amount: Decimal, when: date, currency: str, what: str) -> str:
    mark = "D" if amount < 0 else "C"
    return f"{mark}{yymmdd(when)}{currency}{_amount(abs(amount), currency, what, allow_zero=True)}"


def _statement_line(e: StatementEntry, currency: str, with_86: bool) -> list[tuple[str, str]]:
    if e.amount == 0:
        raise MTBuildError("a statement entry amount must not be zero", location="entries")
    mark = "D" if e.amount < 0 else "C"
    entry = e.entry_date.strftime("%m%d") if e.entry_date else ""
    value = f"{yymmdd(e.value_date)}{entry}{mark}{_amount(abs(e.amount), currency, 'entry amount')}"
    value += _x(e.transaction_type, "transaction_type", 4) + _x(e.reference, "entry reference", 16)
    if e.bank_reference:
        value += "//" + _x(e.bank_reference, "bank reference", 16)
    out = [("61", value)]
    if e.details and with_86:
        out.append(("86", "\n".join(_lines(e.details, "entry details", 6, 65))))
    return out


def _create_statement(
    mt: str,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    account: str,
    currency: str,
    opening_balance: Decimal,
    opening_date: date,
    entries: Sequence[StatementEntry],
    closing_date: date | None,
    statement_number: int,
    sequence_number: int | None,
    opening_is_final: bool,
    closing_is_final: bool,
    available_balance: Decimal | None,
) -> Message:
    ccy = currency.upper()
    seq = f"/{sequence_number:05d}" if sequence_number is not None else ""
    fields = [
        ("20", _ref(reference, "reference")),
        ("25", _x(account, "account", 35)),
        ("28C", f"{statement_number:05d}{seq}"),
        ("60F" if opening_is_final else "60M", _balance(opening_balance, opening_date, ccy, "opening")),
    ]
    closing = opening_balance
    for e in entries:
        fields.extend(_statement_line(e, ccy, mt == "940"))
        closing += e.amount  # the closing balance is computed, never trusted from the caller
    closing_on = closing_date or statement_closing_date(opening_date, entries)
    fields.append(("62F" if closing_is_final else "62M", _balance(closing, closing_on, ccy, "closing")))
    if available_balance is not None:
        fields.append(("64", _balance(available_balance, closing_on, ccy, "available")))
    return assemble(mt, sender_bic, receiver_bic, fields)


def statement_closing_date(opening_date: date, entries: Sequence[StatementEntry]) -> date:
    """The date of a statement's closing balances (62a, 64) when the caller names none: the last
    entry's booking date (its entry date, else its value date), or the opening date without entries."""
    return max((e.entry_date or e.value_date for e in entries), default=opening_date)


def create_mt940(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    account: str,
    currency: str,
    opening_balance: Decimal,
    opening_date: date,
    entries: Sequence[StatementEntry],
    closing_date: date | None = None,
    statement_number: int = 1,
    sequence_number: int | None = 1,
    opening_is_final: bool = True,
    closing_is_final: bool = True,
    available_balance: Decimal | None = None,
) -> Message:
    """An MT940 Customer Statement; the closing balance is opening + entries, dated
    ``closing_date`` or, by default, the last entry's booking date (`statement_closing_date`)."""
    return _create_statement(
        "940",
        sender_bic,
        receiver_bic,
        reference,
        account,
        currency,
        opening_balance,
        opening_date,
        entries,
        closing_date,
        statement_number,
        sequence_number,
        opening_is_final,
        closing_is_final,
        available_balance,
    )


def create_mt950(
    *,
    sender_bic: str,
    receiver_bic: str,
    reference: str,
    account: str,
    currency: str,
    opening_balance: Decimal,
    opening_date: date,
    entries: Sequence[StatementEntry],
    closing_date: date | None = None,
    statement_number: int = 1,
    sequence_number: int | None = 1,
    opening_is_final: bool = True,
    closing_is_final: bool = True,
    available_balance: Decimal | None = None,
) -> Message:
    """An MT950 Statement Message (no field 86); the closing balance is opening + entries, dated
    as in `create_mt940`."""
    return _create_statement(
        "950",
        sender_bic,
        receiver_bic,
        reference,
        account,
        currency,
        opening_balance,
        opening_date,
        entries,
        closing_date,
        statement_number,
        sequence_number,
        opening_is_final,
        closing_is_final,
        available_balance,
    )


class SWIFTProtocol:
    """The seed's entry point: builders, parse and validate under one object."""

    create_mt103 = staticmethod(create_mt103)
    create_mt202 = staticmethod(create_mt202)
    create_mt202cov = staticmethod(create_mt202cov)
    create_mt900 = staticmethod(create_mt900)
    create_mt910 = staticmethod(create_mt910)
    create_mt940 = staticmethod(create_mt940)
    create_mt950 = staticmethod(create_mt950)

    @staticmethod
    def parse(data: str | bytes) -> Message | MessageBatch:
        return parse(data)

    @staticmethod
    def validate(data: str | bytes | Message | MessageBatch) -> ValidationReport:
        return validate(data)
