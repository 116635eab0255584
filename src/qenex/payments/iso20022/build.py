"""Builders: Python values in, an `Iso20022Message` out whose XML validates against the official XSD.

Elements are written in the exact order the schemas' sequences require. Amounts go through
qenex.kernel.money (exact, currency decimals enforced); counts and control sums are computed.
When the message type's schema is installed, every built message is XSD-validated before it is
returned, so a builder never hands out a message the schema would reject.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from lxml import etree

from qenex.errors import QenexError
from qenex.kernel.money import format_minor, to_minor
from qenex.payments.common import PaymentFormatError
from qenex.payments.iso20022 import schemas
from qenex.payments.iso20022.model import ISO_NS_PREFIX, Iso20022Message

BATCH_TRANSACTIONS_MAX: Final = 100_000
TEXT35_CHARS_MAX: Final = 35
TEXT140_CHARS_MAX: Final = 140
PAGE_NUMBER_DIGITS_MAX: Final = 5  # Max5NumericText
NOT_PROVIDED: Final = "NOTPROVIDED"
CHARGE_BEARERS: Final = frozenset({"DEBT", "CRED", "SHAR", "SLEV"})
SETTLEMENT_METHODS: Final = frozenset({"INDA", "INGA", "COVE", "CLRG"})

# Versions each builder writes. The first is the default: the version CBPR+ uses.
PACS009_VERSIONS: Final = ("pacs.009.001.08", "pacs.009.001.10")
PACS002_VERSIONS: Final = ("pacs.002.001.10", "pacs.002.001.12")
PACS004_VERSIONS: Final = ("pacs.004.001.09", "pacs.004.001.11")
CAMT056_VERSIONS: Final = ("camt.056.001.08", "camt.056.001.12")

_BIC_TAG_V2: Final = {
    "pain.001.001.03": "BIC",
    "pain.008.001.02": "BIC",
    "camt.053.001.02": "BIC",
    "pain.002.001.03": "BIC",
}


def new_uetr() -> str:
    """A UETR: a random (version 4) UUID in its lowercase canonical form, as SWIFT gpi requires."""
    return str(uuid.uuid4())


def _new_id() -> str:
    return uuid.uuid4().hex  # 32 characters, inside Max35Text


@dataclass(frozen=True, slots=True)
class PartySpec:
    """A party: its name, its account (IBAN or other id), its own BIC (for institutions) and the
    BIC of the institution servicing its account (``agent_bic``)."""

    name: str | None = None
    iban: str | None = None
    account_id: str | None = None
    bic: str | None = None
    agent_bic: str | None = None
    agent_member_id: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()
    lei: str | None = None
    private_id: str | None = None  # e.g. a SEPA creditor identifier


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One credit transfer for pain.001, pacs.008 or pacs.009."""

    amount: Decimal | str | int
    currency: str
    debtor: PartySpec
    creditor: PartySpec
    end_to_end_id: str = NOT_PROVIDED
    instr_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None
    remittance: str | None = None
    structured_reference: str | None = None
    purpose: str | None = None
    charge_bearer: str = "SLEV"
    requested_date: date | None = None
    settlement_date: date | None = None
    service_level: str | None = None
    local_instrument: str | None = None
    category_purpose: str | None = None
    instructed_amount: Decimal | str | int | None = None
    instructed_currency: str | None = None
    exchange_rate: Decimal | str | None = None
    intermediary_agents: tuple[PartySpec, ...] = ()
    instructions_for_next_agent: tuple[str, ...] = ()
    instructions_for_creditor_agent: tuple[str, ...] = ()
    charges: tuple[tuple[Decimal | str, str, str], ...] = ()  # (amount, currency, agent BIC)
    ultimate_debtor: PartySpec | None = None
    ultimate_creditor: PartySpec | None = None
    # Coded instructions (pacs.008): creditor agent CHQB/HOLD/PHOB/TELB, next agent PHOA/TELA.
    creditor_agent_instruction_codes: tuple[str, ...] = ()
    next_agent_instruction_codes: tuple[str, ...] = ()
    regulatory_reporting: tuple[str, ...] = ()  # free-text details, 35 characters each
    # Settlement time request (pacs.008/009): (kind, ISO time) with kind CLSTm, TillTm, FrTm, RjctTm.
    settlement_time_request: tuple[tuple[str, str], ...] = ()
    # Settlement time indication (pacs.008/009): (kind, ISO date-time) with kind DbtDtTm, CdtDtTm.
    settlement_time_indication: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DirectDebit:
    """One direct debit collection for pain.008."""

    amount: Decimal | str | int
    currency: str
    debtor: PartySpec
    mandate_id: str
    mandate_signature_date: date
    end_to_end_id: str = NOT_PROVIDED
    instr_id: str | None = None
    remittance: str | None = None
    structured_reference: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class StatusSpec:
    """One transaction's status (pacs.002 / pain.002), return (pacs.004) or cancellation (camt.056)."""

    original_end_to_end_id: str | None = None
    original_instr_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    status: str | None = None  # ACCP, ACSC, RJCT, PDNG ... (status reports)
    reason_code: str | None = None
    reason_info: tuple[str, ...] = ()
    amount: Decimal | str | int | None = None  # returned / original settlement amount
    currency: str | None = None
    case_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatementEntrySpec:
    amount: Decimal | str | int
    credit: bool
    booking_date: date
    value_date: date | None = None
    status: str = "BOOK"
    reversal: bool = False
    account_servicer_ref: str | None = None
    entry_ref: str | None = None
    bank_tx_code: str | tuple[str, str, str] = ("PMNT", "RCDT", "OTHR")
    end_to_end_id: str | None = None
    instr_id: str | None = None
    uetr: str | None = None
    counterparty: PartySpec | None = None
    remittance: str | None = None
    additional_info: str | None = None


@dataclass(frozen=True, slots=True)
class StatementSpec:
    id: str
    account_iban: str | None
    currency: str
    opening_balance: Decimal | str | int
    opening_credit: bool
    opening_date: date
    closing_date: date
    entries: tuple[StatementEntrySpec, ...] = ()
    account_id: str | None = None
    account_owner: str | None = None
    servicer_bic: str | None = None
    sequence_number: int | None = None
    from_datetime: datetime | None = None
    to_datetime: datetime | None = None
    # Pagination (StmtPgntn / NtfctnPgntn, camt.053/054 .03 and later): page number (1-5 digits,
    # kept as written, e.g. "00003" from MT940 28C) and whether this is the last page.
    page_number: str | None = None
    last_page: bool = True
    # Closing available balance (CLAV, MT940 field 64); dated closing_date unless available_date.
    available_balance: Decimal | str | int | None = None
    available_credit: bool = True
    available_date: date | None = None


@dataclass(frozen=True, slots=True)
class AppHeaderSpec:
    from_bic: str
    to_bic: str
    biz_msg_id: str | None = None
    biz_service: str | None = None
    created: datetime | None = None
    possible_duplicate: bool = False
    priority: str | None = None


class _W:
    """Writes elements in one namespace; bic_tag is 'BIC' (older versions) or 'BICFI'."""

    def __init__(self, message_type: str) -> None:
        self.mt = message_type
        self.ns = ISO_NS_PREFIX + message_type
        self.bic_tag = _BIC_TAG_V2.get(message_type, "BICFI")

    def root(self) -> etree._Element:
        return etree.Element(f"{{{self.ns}}}Document", nsmap={None: self.ns})

    def el(self, parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        node = etree.SubElement(parent, f"{{{self.ns}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    def opt(self, parent: etree._Element, tag: str, text: str | None) -> None:
        if text:
            self.el(parent, tag, text)

    def amount(
        self, parent: etree._Element, tag: str, value: Decimal | str | int, ccy: str, *, zero: bool = False
    ) -> Decimal:
        minor = _minor(value, ccy, zero=zero)
        self.el(parent, tag, format_minor(minor, ccy), Ccy=ccy)
        return Decimal(format_minor(minor, ccy))

    def agent(self, parent: etree._Element, tag: str, bic: str | None, member_id: str | None = None) -> None:
        fin = self.el(self.el(parent, tag), "FinInstnId")
        if bic:
            self.el(fin, self.bic_tag, bic)
        if member_id:
            self.el(self.el(fin, "ClrSysMmbId"), "MmbId", member_id)
        if not bic and not member_id:
            self.el(self.el(fin, "Othr"), "Id", NOT_PROVIDED)

    def party(self, parent: etree._Element, tag: str, p: PartySpec) -> None:
        node = self.el(parent, tag)
        self.opt(node, "Nm", _text(p.name, TEXT140_CHARS_MAX, f"{tag} name"))
        if p.country or p.address_lines:
            adr = self.el(node, "PstlAdr")
            self.opt(adr, "Ctry", p.country)
            for line in p.address_lines[:7]:
                self.el(adr, "AdrLine", _text(line, 70, f"{tag} address line"))
        if p.bic or p.lei:
            org = self.el(self.el(node, "Id"), "OrgId")
            if p.bic:
                self.el(org, "BICOrBEI" if self.bic_tag == "BIC" else "AnyBIC", p.bic)
            if p.lei and self.bic_tag != "BIC":
                self.el(org, "LEI", p.lei)
        elif p.private_id:
            othr = self.el(self.el(self.el(node, "Id"), "PrvtId"), "Othr")
            self.el(othr, "Id", p.private_id)

    def fi_party(self, parent: etree._Element, tag: str, p: PartySpec) -> None:
        """An institution as debtor/creditor (pacs.009)."""
        fin = self.el(self.el(parent, tag), "FinInstnId")
        if p.bic:
            self.el(fin, self.bic_tag, p.bic)
        if p.agent_member_id:
            self.el(self.el(fin, "ClrSysMmbId"), "MmbId", p.agent_member_id)
        if p.lei:
            self.el(fin, "LEI", p.lei)
        if p.name:
            self.el(fin, "Nm", _text(p.name, TEXT140_CHARS_MAX, f"{tag} name"))
        if not (p.bic or p.agent_member_id or p.lei or p.name):
            raise PaymentFormatError(
                f"{tag} institution needs a BIC, member id, LEI or name", code="iso20022_build_invalid"
            )

    def account(self, parent: etree._Element, tag: str, p: PartySpec, *, required: bool = False) -> None:
        if p.iban:
            self.el(self.el(self.el(parent, tag), "Id"), "IBAN", p.iban.replace(" ", "").upper())
        elif p.account_id:
            self.el(self.el(self.el(self.el(parent, tag), "Id"), "Othr"), "Id", _text(p.account_id, 34, f"{tag} id"))
        elif required:
            raise PaymentFormatError(f"{tag}: an IBAN or account id is required", code="iso20022_build_invalid")

    def remittance(self, parent: etree._Element, text: str | None, reference: str | None) -> None:
        if not text and not reference:
            return
        rmt = self.el(parent, "RmtInf")
        if text:
            self.el(rmt, "Ustrd", _text(text, TEXT140_CHARS_MAX, "remittance information"))
        if reference:
            strd = self.el(rmt, "Strd")
            ref = self.el(strd, "CdtrRefInf")
            tp = self.el(self.el(ref, "Tp"), "CdOrPrtry")
            self.el(tp, "Cd", "SCOR")
            self.el(ref, "Ref", _text(reference, TEXT35_CHARS_MAX, "creditor reference"))


def _minor(value: Decimal | str | int, ccy: str, *, zero: bool = False) -> int:
    try:
        return to_minor(value, ccy, allow_zero=zero)
    except QenexError as exc:
        raise PaymentFormatError(exc.message, code=exc.code) from None


def _text(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PaymentFormatError(f"{what} must be non-empty text", code="iso20022_build_invalid")
    if len(value) > limit:
        raise PaymentFormatError(f"{what} is longer than {limit} characters", code="iso20022_build_invalid")
    return value


def _id(value: str | None, what: str) -> str:
    return _text(value if value is not None else _new_id(), TEXT35_CHARS_MAX, what) or _new_id()


def _dt(value: datetime | None) -> str:
    moment = value or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def _check_version(version: str, supported: tuple[str, ...], what: str) -> None:
    if version not in supported:
        raise PaymentFormatError(f"unsupported {what} version {version!r}", code="iso20022_build_invalid")


def _start(
    w: _W, body_tag: str, msg_id: str | None, stamp: str
) -> tuple[etree._Element, etree._Element, etree._Element]:
    """Document root, its message element and the group header every builder opens with
    (MsgId, CreDtTm); the caller adds what its message puts in the header next."""
    root = w.root()
    body = w.el(root, body_tag)
    gh = w.el(body, "GrpHdr")
    w.el(gh, "MsgId", _id(msg_id, "MsgId"))
    w.el(gh, "CreDtTm", stamp)
    return root, body, gh


def _original_group(
    w: _W, parent: etree._Element, tag: str, original_msg_id: str, original_msg_type: str
) -> etree._Element:
    og = w.el(parent, tag)
    w.el(og, "OrgnlMsgId", _id(original_msg_id, "OrgnlMsgId"))
    w.el(og, "OrgnlMsgNmId", original_msg_type)
    return og


def _check_batch(items: Sequence[object], what: str) -> None:
    if not items:
        raise PaymentFormatError(f"{what}: at least one transaction is required", code="iso20022_build_invalid")
    if len(items) > BATCH_TRANSACTIONS_MAX:
        raise PaymentFormatError(
            f"{what}: more than {BATCH_TRANSACTIONS_MAX} transactions", code="iso20022_build_too_large"
        )


def _finish(root: etree._Element, message_type: str) -> Iso20022Message:
    schema = schemas.get_schema(message_type)
    if schema is not None and not schema.validate(root):
        first = schema.error_log[0] if schema.error_log else None
        detail = first.message if first is not None else "schema violation"
        raise PaymentFormatError(
            f"built {message_type} does not satisfy its XSD: {detail}", code="iso20022_build_invalid"
        )
    return Iso20022Message(root, root, None)


def _payment_type(
    w: _W, parent: etree._Element, svc: str | None, lcl: str | None, ctgy: str | None, seq: str | None = None
) -> None:
    if not (svc or lcl or ctgy or seq):
        return
    pti = w.el(parent, "PmtTpInf")
    if svc:
        w.el(w.el(pti, "SvcLvl"), "Cd", svc)
    if lcl:
        w.el(w.el(pti, "LclInstrm"), "Cd", lcl)
    if seq:
        w.el(pti, "SeqTp", seq)
    if ctgy:
        w.el(w.el(pti, "CtgyPurp"), "Cd", ctgy)


# -- pain.001 ---------------------------------------------------------------------------------------


def build_pain001(
    transfers: Sequence[CreditTransfer],
    *,
    initiating_party: PartySpec,
    version: str = "pain.001.001.09",
    msg_id: str | None = None,
    created: datetime | None = None,
    batch_booking: bool | None = None,
) -> Iso20022Message:
    """A customer credit transfer initiation: one PmtInf per (requested date, debtor, payment type)."""
    _check_version(version, ("pain.001.001.03", "pain.001.001.09"), "pain.001")
    _check_batch(transfers, "pain.001")
    w = _W(version)
    root, body, gh = _start(w, "CstmrCdtTrfInitn", msg_id, _dt(created))
    nb, ctrl = w.el(gh, "NbOfTxs"), w.el(gh, "CtrlSum")
    w.party(gh, "InitgPty", initiating_party)
    groups: dict[tuple[object, ...], list[CreditTransfer]] = {}
    for t in transfers:
        key = (t.requested_date or date.today(), t.debtor, t.service_level, t.local_instrument, t.category_purpose)
        groups.setdefault(key, []).append(t)
    total = Decimal(0)
    for index, (group_key, items) in enumerate(groups.items(), start=1):
        total += _pain001_payment_info(w, body, group_key, items, index, batch_booking)
    nb.text, ctrl.text = str(len(transfers)), str(total)
    return _finish(root, version)


def _pain001_payment_info(
    w: _W, body: etree._Element, key: tuple[object, ...], items: list[CreditTransfer], index: int, batch: bool | None
) -> Decimal:
    when, debtor = key[0], items[0].debtor
    pmt = w.el(body, "PmtInf")
    w.el(pmt, "PmtInfId", f"PMT-{index}-{uuid.uuid4().hex[:20]}")
    w.el(pmt, "PmtMtd", "TRF")
    if batch is not None:
        w.el(pmt, "BtchBookg", "true" if batch else "false")
    nb, ctrl = w.el(pmt, "NbOfTxs"), w.el(pmt, "CtrlSum")
    first = items[0]
    _payment_type(w, pmt, first.service_level, first.local_instrument, first.category_purpose)
    exec_date = when.isoformat() if isinstance(when, date) else str(when)
    if w.mt == "pain.001.001.03":
        w.el(pmt, "ReqdExctnDt", exec_date)
    else:
        w.el(w.el(pmt, "ReqdExctnDt"), "Dt", exec_date)
    w.party(pmt, "Dbtr", debtor)
    w.account(pmt, "DbtrAcct", debtor, required=True)
    w.agent(pmt, "DbtrAgt", debtor.agent_bic, debtor.agent_member_id)
    bearers = {t.charge_bearer for t in items}
    if len(bearers) == 1:
        w.el(pmt, "ChrgBr", _bearer(first.charge_bearer))
    subtotal = Decimal(0)
    for t in items:
        subtotal += _pain001_tx(w, pmt, t, per_tx_bearer=len(bearers) > 1)
    nb.text, ctrl.text = str(len(items)), str(subtotal)
    return subtotal


def _bearer(value: str) -> str:
    if value not in CHARGE_BEARERS:
        raise PaymentFormatError(
            f"charge bearer must be one of {sorted(CHARGE_BEARERS)}", code="iso20022_build_invalid"
        )
    return value


def _pain001_tx(w: _W, pmt: etree._Element, t: CreditTransfer, *, per_tx_bearer: bool) -> Decimal:
    tx = w.el(pmt, "CdtTrfTxInf")
    pid = w.el(tx, "PmtId")
    w.opt(pid, "InstrId", _text(t.instr_id, TEXT35_CHARS_MAX, "InstrId"))
    w.el(pid, "EndToEndId", _id(t.end_to_end_id, "EndToEndId"))
    if w.mt != "pain.001.001.03" and t.uetr:
        w.el(pid, "UETR", t.uetr)
    amt = w.el(tx, "Amt")
    value = w.amount(amt, "InstdAmt", t.amount, t.currency)
    if per_tx_bearer:
        w.el(tx, "ChrgBr", _bearer(t.charge_bearer))
    for i, agent in enumerate(t.intermediary_agents[:3], start=1):
        w.agent(tx, f"IntrmyAgt{i}", agent.agent_bic or agent.bic, agent.agent_member_id)
    if t.creditor.agent_bic or t.creditor.agent_member_id:
        w.agent(tx, "CdtrAgt", t.creditor.agent_bic, t.creditor.agent_member_id)
    w.party(tx, "Cdtr", t.creditor)
    w.account(tx, "CdtrAcct", t.creditor, required=True)
    if t.ultimate_creditor is not None:
        w.party(tx, "UltmtCdtr", t.ultimate_creditor)
    if t.purpose:
        w.el(w.el(tx, "Purp"), "Cd", t.purpose)
    w.remittance(tx, t.remittance, t.structured_reference)
    return value


# -- pain.008 ---------------------------------------------------------------------------------------


def build_pain008(
    debits: Sequence[DirectDebit],
    *,
    creditor: PartySpec,
    creditor_scheme_id: str,
    collection_date: date,
    sequence_type: str,
    scheme: str = "CORE",
    version: str = "pain.008.001.08",
    initiating_party: PartySpec | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    batch_booking: bool | None = None,
) -> Iso20022Message:
    """A customer direct debit initiation with one PmtInf (one date, sequence type and scheme).

    `qenex.payments.sepa` groups collections into several calls / PmtInf blocks by date."""
    return build_pain008_groups(
        [(collection_date, sequence_type, scheme, list(debits))],
        creditor=creditor,
        creditor_scheme_id=creditor_scheme_id,
        version=version,
        initiating_party=initiating_party,
        msg_id=msg_id,
        created=created,
        batch_booking=batch_booking,
    )


def build_pain008_groups(
    groups: Sequence[tuple[date, str, str, list[DirectDebit]]],
    *,
    creditor: PartySpec,
    creditor_scheme_id: str,
    version: str = "pain.008.001.08",
    initiating_party: PartySpec | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    batch_booking: bool | None = None,
) -> Iso20022Message:
    """pain.008 with one PmtInf per (collection date, sequence type, scheme) group."""
    _check_version(version, ("pain.008.001.02", "pain.008.001.08"), "pain.008")
    all_items = [d for g in groups for d in g[3]]
    _check_batch(all_items, "pain.008")
    w = _W(version)
    root, body, gh = _start(w, "CstmrDrctDbtInitn", msg_id, _dt(created))
    nb, ctrl = w.el(gh, "NbOfTxs"), w.el(gh, "CtrlSum")
    w.party(gh, "InitgPty", initiating_party or PartySpec(name=creditor.name))
    total = Decimal(0)
    for index, (when, seq, scheme, items) in enumerate(groups, start=1):
        if items:
            total += _pain008_payment_info(
                w, body, index, when, seq, scheme, items, creditor, creditor_scheme_id, batch_booking
            )
    nb.text, ctrl.text = str(len(all_items)), str(total)
    return _finish(root, version)


def _pain008_payment_info(
    w: _W,
    body: etree._Element,
    index: int,
    when: date,
    seq: str,
    scheme: str,
    items: list[DirectDebit],
    creditor: PartySpec,
    scheme_id: str,
    batch: bool | None,
) -> Decimal:
    pmt = w.el(body, "PmtInf")
    w.el(pmt, "PmtInfId", f"DD-{index}-{uuid.uuid4().hex[:20]}")
    w.el(pmt, "PmtMtd", "DD")
    if batch is not None:
        w.el(pmt, "BtchBookg", "true" if batch else "false")
    nb, ctrl = w.el(pmt, "NbOfTxs"), w.el(pmt, "CtrlSum")
    _payment_type(w, pmt, "SEPA", scheme, None, seq)
    w.el(pmt, "ReqdColltnDt", when.isoformat())
    w.party(pmt, "Cdtr", creditor)
    w.account(pmt, "CdtrAcct", creditor, required=True)
    w.agent(pmt, "CdtrAgt", creditor.agent_bic, creditor.agent_member_id)
    w.el(pmt, "ChrgBr", "SLEV")
    _scheme_id(w, pmt, scheme_id)
    subtotal = Decimal(0)
    for d in items:
        tx = w.el(pmt, "DrctDbtTxInf")
        pid = w.el(tx, "PmtId")
        w.opt(pid, "InstrId", _text(d.instr_id, TEXT35_CHARS_MAX, "InstrId"))
        w.el(pid, "EndToEndId", _id(d.end_to_end_id, "EndToEndId"))
        subtotal += w.amount(tx, "InstdAmt", d.amount, d.currency)
        mandate = w.el(w.el(tx, "DrctDbtTx"), "MndtRltdInf")
        w.el(mandate, "MndtId", _text(d.mandate_id, TEXT35_CHARS_MAX, "mandate id"))
        w.el(mandate, "DtOfSgntr", d.mandate_signature_date.isoformat())
        w.agent(tx, "DbtrAgt", d.debtor.agent_bic, d.debtor.agent_member_id)
        w.party(tx, "Dbtr", d.debtor)
        w.account(tx, "DbtrAcct", d.debtor, required=True)
        if d.purpose:
            w.el(w.el(tx, "Purp"), "Cd", d.purpose)
        w.remittance(tx, d.remittance, d.structured_reference)
    nb.text, ctrl.text = str(len(items)), str(subtotal)
    return subtotal


def _scheme_id(w: _W, parent: etree._Element, scheme_id: str) -> None:
    othr = w.el(w.el(w.el(w.el(parent, "CdtrSchmeId"), "Id"), "PrvtId"), "Othr")
    w.el(othr, "Id", _text(scheme_id, TEXT35_CHARS_MAX, "creditor scheme id"))
    w.el(w.el(othr, "SchmeNm"), "Prtry", "SEPA")


# -- pacs.008 / pacs.009 ----------------------------------------------------------------------------


def build_pacs008(
    transfers: Sequence[CreditTransfer],
    *,
    instructing_agent_bic: str,
    instructed_agent_bic: str,
    settlement_method: str = "INDA",
    settlement_date: date | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    reimbursement_agents: ReimbursementAgents | None = None,
) -> Iso20022Message:
    """pacs.008.001.08 FI to FI customer credit transfer (CBPR+ shape: agents per transaction).

    ``reimbursement_agents`` (MT103 fields 53a/54a/55a) go to GrpHdr/SttlmInf, usually with
    settlement method COVE."""
    return _build_pacs_ct(
        "pacs.008.001.08",
        "FIToFICstmrCdtTrf",
        transfers,
        instructing_agent_bic,
        instructed_agent_bic,
        settlement_method,
        settlement_date,
        msg_id,
        created,
        reimbursement_agents,
    )


def build_pacs009(
    transfers: Sequence[CreditTransfer],
    *,
    instructing_agent_bic: str,
    instructed_agent_bic: str,
    settlement_method: str = "INDA",
    settlement_date: date | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    reimbursement_agents: ReimbursementAgents | None = None,
    version: str = "pacs.009.001.08",
) -> Iso20022Message:
    """pacs.009 financial institution credit transfer: debtor and creditor are institutions.

    ``version``: pacs.009.001.08 (CBPR+, the default) or pacs.009.001.10; the elements written
    here have the same names and order in both."""
    _check_version(version, PACS009_VERSIONS, "pacs.009")
    return _build_pacs_ct(
        version,
        "FICdtTrf",
        transfers,
        instructing_agent_bic,
        instructed_agent_bic,
        settlement_method,
        settlement_date,
        msg_id,
        created,
        reimbursement_agents,
    )


@dataclass(frozen=True, slots=True)
class ReimbursementAgents:
    """Settlement reimbursement agents (GrpHdr/SttlmInf): MT fields 53a, 54a and 55a."""

    instructing: PartySpec | None = None  # 53a sender's correspondent
    instructed: PartySpec | None = None  # 54a receiver's correspondent
    third: PartySpec | None = None  # 55a third reimbursement institution


def _build_pacs_ct(
    mt: str,
    body_tag: str,
    transfers: Sequence[CreditTransfer],
    instg: str,
    instd: str,
    method: str,
    when: date | None,
    msg_id: str | None,
    created: datetime | None,
    reimbursement: ReimbursementAgents | None = None,
) -> Iso20022Message:
    _check_batch(transfers, mt)
    if method not in SETTLEMENT_METHODS:
        raise PaymentFormatError(
            f"settlement method must be one of {sorted(SETTLEMENT_METHODS)}", code="iso20022_build_invalid"
        )
    w = _W(mt)
    root, body, gh = _start(w, body_tag, msg_id, _dt(created))
    w.el(gh, "NbOfTxs", str(len(transfers)))
    sttlm = w.el(gh, "SttlmInf")
    w.el(sttlm, "SttlmMtd", method)
    if reimbursement is not None:
        for tag, agent in (
            ("InstgRmbrsmntAgt", reimbursement.instructing),
            ("InstdRmbrsmntAgt", reimbursement.instructed),
            ("ThrdRmbrsmntAgt", reimbursement.third),
        ):
            if agent is not None:
                w.agent(sttlm, tag, agent.agent_bic or agent.bic, agent.agent_member_id)
                w.account(sttlm, tag + "Acct", agent)
    for t in transfers:
        _pacs_tx(w, body, t, instg, instd, when, fi=mt.startswith("pacs.009"))
    return _finish(root, mt)


def _pacs_tx(
    w: _W, body: etree._Element, t: CreditTransfer, instg: str, instd: str, when: date | None, *, fi: bool
) -> None:
    tx = w.el(body, "CdtTrfTxInf")
    pid = w.el(tx, "PmtId")
    w.el(pid, "InstrId", _id(t.instr_id, "InstrId"))
    w.el(pid, "EndToEndId", _id(t.end_to_end_id, "EndToEndId"))
    w.opt(pid, "TxId", _text(t.tx_id, TEXT35_CHARS_MAX, "TxId"))
    w.el(pid, "UETR", t.uetr or new_uetr())
    _payment_type(w, tx, t.service_level, t.local_instrument, t.category_purpose)
    w.amount(tx, "IntrBkSttlmAmt", t.amount, t.currency)
    settle = t.settlement_date or when or date.today()
    w.el(tx, "IntrBkSttlmDt", settle.isoformat())
    _settlement_times(w, tx, "SttlmTmIndctn", _TIME_INDICATION_ORDER, t.settlement_time_indication)
    _settlement_times(w, tx, "SttlmTmReq", _TIME_REQUEST_ORDER, t.settlement_time_request)
    if not fi:
        if t.instructed_amount is not None:
            w.amount(tx, "InstdAmt", t.instructed_amount, t.instructed_currency or t.currency)
        if t.exchange_rate is not None:
            w.el(tx, "XchgRate", str(Decimal(str(t.exchange_rate))))
        w.el(tx, "ChrgBr", _bearer(t.charge_bearer))
        for amount, ccy, bic in t.charges:
            chg = w.el(tx, "ChrgsInf")
            w.amount(chg, "Amt", amount, ccy, zero=True)
            w.agent(chg, "Agt", bic)
    w.agent(tx, "InstgAgt", instg)
    w.agent(tx, "InstdAgt", instd)
    for i, agent in enumerate(t.intermediary_agents[:3], start=1):
        w.agent(tx, f"IntrmyAgt{i}", agent.agent_bic or agent.bic, agent.agent_member_id)
        if agent.iban or agent.account_id:
            w.account(tx, f"IntrmyAgt{i}Acct", agent)
    if fi:
        w.fi_party(tx, "Dbtr", t.debtor)
        w.account(tx, "DbtrAcct", t.debtor)
        if t.debtor.agent_bic:
            w.agent(tx, "DbtrAgt", t.debtor.agent_bic)
        if t.creditor.agent_bic:
            w.agent(tx, "CdtrAgt", t.creditor.agent_bic)
        w.fi_party(tx, "Cdtr", t.creditor)
        w.account(tx, "CdtrAcct", t.creditor)
    else:
        if t.ultimate_debtor is not None:
            w.party(tx, "UltmtDbtr", t.ultimate_debtor)
        w.party(tx, "Dbtr", t.debtor)
        w.account(tx, "DbtrAcct", t.debtor)
        w.agent(tx, "DbtrAgt", t.debtor.agent_bic, t.debtor.agent_member_id)
        w.agent(tx, "CdtrAgt", t.creditor.agent_bic, t.creditor.agent_member_id)
        w.party(tx, "Cdtr", t.creditor)
        w.account(tx, "CdtrAcct", t.creditor)
        if t.ultimate_creditor is not None:
            w.party(tx, "UltmtCdtr", t.ultimate_creditor)
    if not fi:
        for code in t.creditor_agent_instruction_codes:
            w.el(w.el(tx, "InstrForCdtrAgt"), "Cd", code)
    for line in t.instructions_for_creditor_agent:
        w.el(w.el(tx, "InstrForCdtrAgt"), "InstrInf", _text(line, TEXT140_CHARS_MAX, "instruction"))
    if not fi:
        for code in t.next_agent_instruction_codes:
            w.el(w.el(tx, "InstrForNxtAgt"), "Cd", code)
    for line in t.instructions_for_next_agent:
        w.el(w.el(tx, "InstrForNxtAgt"), "InstrInf", _text(line, TEXT140_CHARS_MAX, "instruction"))
    if t.purpose:
        w.el(w.el(tx, "Purp"), "Cd", t.purpose)
    if t.regulatory_reporting and not fi:
        details = w.el(w.el(tx, "RgltryRptg"), "Dtls")
        for line in t.regulatory_reporting:
            w.el(details, "Inf", _text(line, TEXT35_CHARS_MAX, "regulatory reporting"))
    w.remittance(tx, t.remittance, None if fi else t.structured_reference)


_TIME_REQUEST_ORDER: Final = ("CLSTm", "TillTm", "FrTm", "RjctTm")
_TIME_INDICATION_ORDER: Final = ("DbtDtTm", "CdtDtTm")


def _settlement_times(
    w: _W, tx: etree._Element, tag: str, order: tuple[str, ...], items: tuple[tuple[str, str], ...]
) -> None:
    """SttlmTmReq (ISO times) or SttlmTmIndctn (ISO date-times), children in schema order."""
    if not items:
        return
    kinds = dict(items)
    unknown = set(kinds) - set(order)
    if unknown:
        raise PaymentFormatError(f"{tag} kinds are {', '.join(order)}", code="iso20022_build_invalid")
    node = w.el(tx, tag)
    for kind in order:
        if kind in kinds:
            w.el(node, kind, kinds[kind])


# -- status, return, cancellation -------------------------------------------------------------------


def build_pacs002(
    statuses: Sequence[StatusSpec],
    *,
    original_msg_id: str,
    original_msg_type: str = "pacs.008.001.08",
    group_status: str | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    instructing_agent_bic: str | None = None,
    instructed_agent_bic: str | None = None,
    version: str = "pacs.002.001.10",
) -> Iso20022Message:
    """FI to FI payment status report: pacs.002.001.10 (CBPR+, the default) or pacs.002.001.12."""
    _check_version(version, PACS002_VERSIONS, "pacs.002")
    mt = version
    w = _W(mt)
    root, body, gh = _start(w, "FIToFIPmtStsRpt", msg_id, _dt(created))
    if instructing_agent_bic:
        w.agent(gh, "InstgAgt", instructing_agent_bic)
    if instructed_agent_bic:
        w.agent(gh, "InstdAgt", instructed_agent_bic)
    og = _original_group(w, body, "OrgnlGrpInfAndSts", original_msg_id, original_msg_type)
    w.opt(og, "GrpSts", group_status)
    for s in statuses:
        tx = w.el(body, "TxInfAndSts")
        w.opt(tx, "StsId", _text(s.case_id, TEXT35_CHARS_MAX, "StsId"))
        _original_refs(w, tx, s)
        w.opt(tx, "TxSts", s.status)
        _reason(w, tx, "StsRsnInf", s)
    return _finish(root, mt)


def build_pain002(
    statuses: Sequence[StatusSpec],
    *,
    original_msg_id: str,
    original_msg_type: str = "pain.001.001.03",
    group_status: str | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    initiating_party: PartySpec | None = None,
    version: str = "pain.002.001.03",
) -> Iso20022Message:
    """Customer payment status report: pain.002.001.03 (the version SEPA uses) or .12 (with
    UETR); the packaged schemas ship these two, not .10/.11."""
    _check_version(version, ("pain.002.001.03", "pain.002.001.12"), "pain.002")
    mt = version
    w = _W(mt)
    root, body, gh = _start(w, "CstmrPmtStsRpt", msg_id, _dt(created))
    if initiating_party is not None:
        w.party(gh, "InitgPty", initiating_party)
    og = _original_group(w, body, "OrgnlGrpInfAndSts", original_msg_id, original_msg_type)
    w.opt(og, "GrpSts", group_status)
    if statuses:
        pmt = w.el(body, "OrgnlPmtInfAndSts")
        w.el(pmt, "OrgnlPmtInfId", NOT_PROVIDED)
        for s in statuses:
            tx = w.el(pmt, "TxInfAndSts")
            w.opt(tx, "StsId", _text(s.case_id, TEXT35_CHARS_MAX, "StsId"))
            w.opt(tx, "OrgnlInstrId", s.original_instr_id)
            w.opt(tx, "OrgnlEndToEndId", s.original_end_to_end_id)
            if mt != "pain.002.001.03":
                w.opt(tx, "OrgnlUETR", s.original_uetr)
            w.opt(tx, "TxSts", s.status)
            _reason(w, tx, "StsRsnInf", s)
    return _finish(root, mt)


def build_pacs004(
    returns: Sequence[StatusSpec],
    *,
    original_msg_id: str,
    original_msg_type: str = "pacs.008.001.08",
    settlement_method: str = "INDA",
    settlement_date: date | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    version: str = "pacs.004.001.09",
) -> Iso20022Message:
    """Payment return, pacs.004.001.09 (CBPR+, the default) or pacs.004.001.11; each StatusSpec
    needs amount, currency and reason_code."""
    _check_version(version, PACS004_VERSIONS, "pacs.004")
    mt = version
    _check_batch(returns, mt)
    w = _W(mt)
    root, body, gh = _start(w, "PmtRtr", msg_id, _dt(created))
    w.el(gh, "NbOfTxs", str(len(returns)))
    w.el(w.el(gh, "SttlmInf"), "SttlmMtd", settlement_method)
    _original_group(w, body, "OrgnlGrpInf", original_msg_id, original_msg_type)
    for s in returns:
        if s.amount is None or not s.currency:
            raise PaymentFormatError("a return needs an amount and a currency", code="iso20022_build_invalid")
        tx = w.el(body, "TxInf")
        w.el(tx, "RtrId", _id(s.case_id, "RtrId"))
        _original_refs(w, tx, s)
        w.amount(tx, "RtrdIntrBkSttlmAmt", s.amount, s.currency)
        w.el(tx, "IntrBkSttlmDt", (settlement_date or date.today()).isoformat())
        _reason(w, tx, "RtrRsnInf", s)
    return _finish(root, mt)


def build_camt056(
    cancellations: Sequence[StatusSpec],
    *,
    assigner_bic: str,
    assignee_bic: str,
    original_msg_id: str,
    original_msg_type: str = "pacs.008.001.08",
    case_id: str | None = None,
    msg_id: str | None = None,
    created: datetime | None = None,
    version: str = "camt.056.001.08",
) -> Iso20022Message:
    """FI to FI payment cancellation request (CtrlData computed): camt.056.001.08 (CBPR+, the
    default) or camt.056.001.12, whose official XSD ships with camt-exceptions."""
    _check_version(version, CAMT056_VERSIONS, "camt.056")
    mt = version
    _check_batch(cancellations, mt)
    w = _W(mt)
    root = w.root()
    body = w.el(root, "FIToFIPmtCxlReq")
    asg = w.el(body, "Assgnmt")
    w.el(asg, "Id", _id(msg_id, "Assgnmt/Id"))
    w.agent(w.el(asg, "Assgnr"), "Agt", assigner_bic)
    w.agent(w.el(asg, "Assgne"), "Agt", assignee_bic)
    w.el(asg, "CreDtTm", _dt(created))
    case = w.el(body, "Case")
    w.el(case, "Id", _id(case_id, "Case/Id"))
    w.agent(w.el(case, "Cretr"), "Agt", assigner_bic)
    ctrl = w.el(body, "CtrlData")
    w.el(ctrl, "NbOfTxs", str(len(cancellations)))
    und = w.el(body, "Undrlyg")
    total, complete = Decimal(0), True
    for s in cancellations:
        tx = w.el(und, "TxInf")
        w.el(tx, "CxlId", _id(s.case_id, "CxlId"))
        _original_group(w, tx, "OrgnlGrpInf", original_msg_id, original_msg_type)
        _original_refs(w, tx, s)
        if s.amount is not None and s.currency:
            total += w.amount(tx, "OrgnlIntrBkSttlmAmt", s.amount, s.currency)
        else:
            complete = False
        _reason(w, tx, "CxlRsnInf", s)
    if complete:
        w.el(ctrl, "CtrlSum", str(total))
    return _finish(root, mt)


def _original_refs(w: _W, tx: etree._Element, s: StatusSpec) -> None:
    w.opt(tx, "OrgnlInstrId", _text(s.original_instr_id, TEXT35_CHARS_MAX, "OrgnlInstrId"))
    w.opt(tx, "OrgnlEndToEndId", _text(s.original_end_to_end_id, TEXT35_CHARS_MAX, "OrgnlEndToEndId"))
    w.opt(tx, "OrgnlTxId", _text(s.original_tx_id, TEXT35_CHARS_MAX, "OrgnlTxId"))
    w.opt(tx, "OrgnlUETR", s.original_uetr)


def _reason(w: _W, tx: etree._Element, tag: str, s: StatusSpec) -> None:
    if not s.reason_code and not s.reason_info:
        return
    info = w.el(tx, tag)
    if s.reason_code:
        w.el(w.el(info, "Rsn"), "Cd", s.reason_code)
    for line in s.reason_info[:2]:
        w.el(info, "AddtlInf", _text(line, 105, "reason information"))


# -- camt.053 / camt.054 ----------------------------------------------------------------------------


def build_camt053(
    statements: Sequence[StatementSpec],
    *,
    version: str = "camt.053.001.08",
    msg_id: str | None = None,
    created: datetime | None = None,
) -> Iso20022Message:
    """Bank to customer statement: balances OPBD/CLBD (closing computed from the entries)."""
    _check_version(version, ("camt.053.001.02", "camt.053.001.08"), "camt.053")
    return _build_camt(version, "BkToCstmrStmt", "Stmt", statements, msg_id, created)


def build_camt054(
    notifications: Sequence[StatementSpec],
    *,
    msg_id: str | None = None,
    created: datetime | None = None,
) -> Iso20022Message:
    """camt.054.001.08 debit/credit notification (no balances)."""
    return _build_camt("camt.054.001.08", "BkToCstmrDbtCdtNtfctn", "Ntfctn", notifications, msg_id, created)


def _build_camt(
    mt: str, body_tag: str, item_tag: str, items: Sequence[StatementSpec], msg_id: str | None, created: datetime | None
) -> Iso20022Message:
    _check_batch(items, mt)
    w = _W(mt)
    stamp = _dt(created)
    root, body, _ = _start(w, body_tag, msg_id, stamp)
    for spec in items:
        _camt_statement(w, body, item_tag, spec, stamp)
    return _finish(root, mt)


def _camt_statement(w: _W, body: etree._Element, tag: str, s: StatementSpec, stamp: str) -> None:
    st = w.el(body, tag)
    w.el(st, "Id", _text(s.id, TEXT35_CHARS_MAX, "statement id"))
    if s.page_number is not None:
        if w.mt == "camt.053.001.02" or not (s.page_number.isascii() and s.page_number.isdigit()):
            raise PaymentFormatError(
                f"page number {s.page_number[:8]!r} needs 1-5 digits and camt.053.001.03 or later",
                code="iso20022_build_invalid",
            )
        pages = w.el(st, "StmtPgntn" if tag == "Stmt" else "NtfctnPgntn")
        w.el(pages, "PgNb", _text(s.page_number, PAGE_NUMBER_DIGITS_MAX, "page number"))
        w.el(pages, "LastPgInd", "true" if s.last_page else "false")
    if s.sequence_number is not None:
        w.el(st, "ElctrncSeqNb", str(s.sequence_number))
    w.el(st, "CreDtTm", stamp)
    if s.from_datetime and s.to_datetime:
        frto = w.el(st, "FrToDt")
        w.el(frto, "FrDtTm", _dt(s.from_datetime))
        w.el(frto, "ToDtTm", _dt(s.to_datetime))
    acct = w.el(st, "Acct")
    acct_id = w.el(acct, "Id")
    if s.account_iban:
        w.el(acct_id, "IBAN", s.account_iban)
    else:
        w.el(w.el(acct_id, "Othr"), "Id", _text(s.account_id, 34, "account id") or NOT_PROVIDED)
    w.el(acct, "Ccy", s.currency)
    if s.account_owner:
        w.el(w.el(acct, "Ownr"), "Nm", _text(s.account_owner, TEXT140_CHARS_MAX, "account owner"))
    if s.servicer_bic:
        w.agent(acct, "Svcr", s.servicer_bic)
    opening = _minor(s.opening_balance, s.currency, zero=True) * (1 if s.opening_credit else -1)
    moves = [(_minor(e.amount, s.currency) * (1 if e.credit else -1), e) for e in s.entries]
    closing = opening + sum(m for m, e in moves if e.status == "BOOK")
    if tag == "Stmt":
        _balance(w, st, "OPBD", opening, s.currency, s.opening_date)
        _balance(w, st, "CLBD", closing, s.currency, s.closing_date)
        if s.available_balance is not None:
            available = _minor(s.available_balance, s.currency, zero=True) * (1 if s.available_credit else -1)
            _balance(w, st, "CLAV", available, s.currency, s.available_date or s.closing_date)
    if moves:
        _summary(w, st, moves, s.currency)
    for minor, e in moves:
        _entry(w, st, e, abs(minor), s.currency)


def _balance(w: _W, st: etree._Element, code: str, minor: int, ccy: str, when: date) -> None:
    bal = w.el(st, "Bal")
    w.el(w.el(w.el(bal, "Tp"), "CdOrPrtry"), "Cd", code)
    w.el(bal, "Amt", format_minor(abs(minor), ccy), Ccy=ccy)
    w.el(bal, "CdtDbtInd", "CRDT" if minor >= 0 else "DBIT")
    w.el(w.el(bal, "Dt"), "Dt", when.isoformat())


def _summary(w: _W, st: etree._Element, moves: list[tuple[int, StatementEntrySpec]], ccy: str) -> None:
    summary = w.el(st, "TxsSummry")
    credits = [m for m, _ in moves if m > 0]
    debits = [-m for m, _ in moves if m < 0]
    ttl = w.el(summary, "TtlNtries")
    w.el(ttl, "NbOfNtries", str(len(moves)))
    w.el(ttl, "Sum", format_minor(sum(credits) + sum(debits), ccy))
    for name, group in (("TtlCdtNtries", credits), ("TtlDbtNtries", debits)):
        if group:
            node = w.el(summary, name)
            w.el(node, "NbOfNtries", str(len(group)))
            w.el(node, "Sum", format_minor(sum(group), ccy))


def _entry(w: _W, st: etree._Element, e: StatementEntrySpec, minor: int, ccy: str) -> None:
    ntry = w.el(st, "Ntry")
    w.opt(ntry, "NtryRef", _text(e.entry_ref, TEXT35_CHARS_MAX, "entry reference"))
    w.el(ntry, "Amt", format_minor(minor, ccy), Ccy=ccy)
    w.el(ntry, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
    if e.reversal:
        w.el(ntry, "RvslInd", "true")
    if w.mt == "camt.053.001.02":
        w.el(ntry, "Sts", e.status)
    else:
        w.el(w.el(ntry, "Sts"), "Cd", e.status)
    w.el(w.el(ntry, "BookgDt"), "Dt", e.booking_date.isoformat())
    w.el(w.el(ntry, "ValDt"), "Dt", (e.value_date or e.booking_date).isoformat())
    w.el(ntry, "AcctSvcrRef", _id(e.account_servicer_ref, "AcctSvcrRef"))
    code = w.el(ntry, "BkTxCd")
    if isinstance(e.bank_tx_code, str):
        w.el(w.el(code, "Prtry"), "Cd", e.bank_tx_code)
    else:
        domain, family, sub = e.bank_tx_code
        dom = w.el(code, "Domn")
        w.el(dom, "Cd", domain)
        fam = w.el(dom, "Fmly")
        w.el(fam, "Cd", family)
        w.el(fam, "SubFmlyCd", sub)
    if e.end_to_end_id or e.instr_id or e.uetr or e.counterparty or e.remittance:
        _entry_details(w, ntry, e)
    w.opt(ntry, "AddtlNtryInf", _text(e.additional_info, 500, "additional entry information"))


def _entry_details(w: _W, ntry: etree._Element, e: StatementEntrySpec) -> None:
    tx = w.el(w.el(ntry, "NtryDtls"), "TxDtls")
    if e.end_to_end_id or e.instr_id or e.uetr:
        refs = w.el(tx, "Refs")
        w.opt(refs, "InstrId", _text(e.instr_id, TEXT35_CHARS_MAX, "InstrId"))
        w.opt(refs, "EndToEndId", _text(e.end_to_end_id, TEXT35_CHARS_MAX, "EndToEndId"))
        if e.uetr and w.mt != "camt.053.001.02":
            w.el(refs, "UETR", e.uetr)
    if e.counterparty is not None:
        parties = w.el(tx, "RltdPties")
        role = "Dbtr" if e.credit else "Cdtr"
        holder = w.el(parties, role)
        target = holder if w.mt == "camt.053.001.02" else w.el(holder, "Pty")
        w.opt(target, "Nm", _text(e.counterparty.name, TEXT140_CHARS_MAX, "counterparty name"))
        w.account(parties, role + "Acct", e.counterparty)
    if e.remittance:
        w.el(w.el(tx, "RmtInf"), "Ustrd", _text(e.remittance, TEXT140_CHARS_MAX, "remittance information"))


# -- head.001 ---------------------------------------------------------------------------------------

HEADER_TYPE: Final = "head.001.001.02"


def build_app_header(spec: AppHeaderSpec, msg_def_id: str) -> etree._Element:
    """A head.001.001.02 Business Application Header element for a message of type msg_def_id."""
    ns = ISO_NS_PREFIX + HEADER_TYPE
    hdr = etree.Element(f"{{{ns}}}AppHdr", nsmap={None: ns})

    def el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        node = etree.SubElement(parent, f"{{{ns}}}{tag}")
        node.text = text
        return node

    for tag, bic in (("Fr", spec.from_bic), ("To", spec.to_bic)):
        el(el(el(el(hdr, tag), "FIId"), "FinInstnId"), "BICFI", bic)
    el(hdr, "BizMsgIdr", _id(spec.biz_msg_id, "BizMsgIdr"))
    el(hdr, "MsgDefIdr", msg_def_id)
    if spec.biz_service:
        el(hdr, "BizSvc", _text(spec.biz_service, TEXT35_CHARS_MAX, "BizSvc"))
    el(hdr, "CreDt", _dt(spec.created))
    if spec.possible_duplicate:
        el(hdr, "PssblDplct", "true")
    if spec.priority:
        el(hdr, "Prty", spec.priority)
    schema = schemas.get_schema(HEADER_TYPE)
    if schema is not None and not schema.validate(hdr):
        raise PaymentFormatError(
            f"built AppHdr does not satisfy its XSD: {schema.error_log[0].message}", code="iso20022_build_invalid"
        )
    return hdr


ENVELOPE_NS: Final = "urn:qenex:xsd:envelope"


def with_app_header(msg: Iso20022Message, spec: AppHeaderSpec) -> Iso20022Message:
    """The message wrapped with a Business Application Header: <Envelope><AppHdr/><Document/></Envelope>.

    The envelope element is a transport wrapper (as SWIFT's and Fedwire's are); AppHdr and
    Document each validate against their own official schema."""
    if msg.document is None:
        raise PaymentFormatError("only a Document can get an application header", code="iso20022_build_invalid")
    root = etree.Element(f"{{{ENVELOPE_NS}}}Envelope", nsmap={None: ENVELOPE_NS})
    header = build_app_header(spec, msg.message_type)
    root.append(header)
    document = etree.fromstring(etree.tostring(msg.document))
    root.append(document)
    return Iso20022Message(root, document, header)
