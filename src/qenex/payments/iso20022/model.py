"""Parsed ISO 20022 messages and the typed views other modules read (parties, amounts, ids, UETR).

A message keeps its lxml tree (so nothing the typed views skip is lost) and offers typed
read-outs: `app_header()`, `group_header()`, `transactions()`, `statements()`. Amounts are exact
``Decimal``; nothing here ever uses float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from lxml import etree

from qenex.payments.common import PaymentFormatError
from qenex.payments.iso20022.xmlsafe import local, namespace, parse_xml

ISO_NS_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"
_TYPE_IN_NS = re.compile(r"([a-z]{4}\.\d{3}\.\d{3}\.\d{2})")
ENVELOPE_SEARCH_DEPTH_MAX: Final = 4
TX_ELEMENTS: Final = frozenset({"CdtTrfTxInf", "DrctDbtTxInf", "TxInf", "TxInfAndSts"})
STATEMENT_ELEMENTS: Final = frozenset({"Stmt", "Rpt", "Ntfctn"})


def message_type_of(ns: str) -> str:
    """'urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08' -> 'pacs.008.001.08' ('' if none)."""
    m = _TYPE_IN_NS.search(ns)
    return m.group(1) if m else ""


def _dec(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


# Paths are literals from this package, so the cache stays small; the cap is a safety net.
_PATH_CACHE_MAX: Final = 4096
_CLARK_PATHS: dict[tuple[str, str], str] = {}
_NAME = re.compile(r"[A-Za-z0-9_]+\Z")  # a plain element name: no ElementPath syntax ("*", "..", "[")


class _Reader:
    """Namespace-bound finders: `t(el, 'PmtId/EndToEndId')` reads text by local-name path.

    Paths become Clark notation ('{ns}PmtId/{ns}EndToEndId'), which lxml resolves without a
    prefix map: the fastest form of find()."""

    __slots__ = ("ns", "_uri")

    def __init__(self, ns: str) -> None:
        self.ns = {"d": ns} if ns else {}
        self._uri = ns

    def _path(self, path: str) -> str:
        if not self._uri:
            return path
        key = (self._uri, path)
        cached = _CLARK_PATHS.get(key)
        if cached is None:
            cached = "/".join(f"{{{self._uri}}}{p}" for p in path.split("/"))
            if len(_CLARK_PATHS) < _PATH_CACHE_MAX:
                _CLARK_PATHS[key] = cached
        return cached

    # A one-name path ("XchgRate") is looked up with iterchildren(tag), which matches in C; find()
    # runs lxml's ElementPath engine, written in Python, and costs about half as much again.
    # Longer paths stay with find(): walking them step by step in Python is no faster.
    def f(self, el: etree._Element | None, path: str) -> etree._Element | None:
        if el is None:
            return None
        clark = self._path(path)
        if "/" in path or not _NAME.match(path):
            return el.find(clark)
        for child in el.iterchildren(clark):
            return child
        return None

    def all(self, el: etree._Element | None, path: str) -> list[etree._Element]:
        if el is None:
            return []
        clark = self._path(path)
        if "/" in path or not _NAME.match(path):
            return list(el.findall(clark))
        return list(el.iterchildren(clark))

    def t(self, el: etree._Element | None, *paths: str) -> str | None:
        for path in paths:
            found = self.f(el, path)
            if found is not None and found.text is not None:
                return str(found.text).strip()
        return None


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor, creditor or agent: name, account, BIC and address, as far as the message says."""

    name: str | None = None
    iban: str | None = None
    account_id: str | None = None  # a non-IBAN account identifier
    bic: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()
    clearing_member_id: str | None = None
    lei: str | None = None

    @property
    def account(self) -> str | None:
        return self.iban or self.account_id


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction of a pain/pacs/camt.056 message. Fields a type doesn't carry are None."""

    xpath_index: int
    instr_id: str | None = None
    end_to_end_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    instructed_amount: Decimal | None = None
    instructed_currency: str | None = None
    settlement_date: str | None = None
    requested_date: str | None = None
    payment_info_id: str | None = None
    charge_bearer: str | None = None
    debtor: Party = field(default_factory=Party)
    creditor: Party = field(default_factory=Party)
    debtor_agent: Party = field(default_factory=Party)
    creditor_agent: Party = field(default_factory=Party)
    instructing_agent: Party = field(default_factory=Party)
    instructed_agent: Party = field(default_factory=Party)
    intermediary_agents: tuple[Party, ...] = ()
    ultimate_debtor: Party = field(default_factory=Party)
    ultimate_creditor: Party = field(default_factory=Party)
    remittance: tuple[str, ...] = ()
    structured_reference: str | None = None
    purpose: str | None = None
    service_level: str | None = None
    local_instrument: str | None = None
    category_purpose: str | None = None
    sequence_type: str | None = None
    mandate_id: str | None = None
    mandate_signature_date: str | None = None
    creditor_scheme_id: str | None = None
    original_msg_id: str | None = None
    original_instr_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    status: str | None = None
    reason_code: str | None = None
    reason_info: tuple[str, ...] = ()
    case_id: str | None = None  # RtrId (pacs.004), CxlId (camt.056), StsId (pacs.002)
    # (code, text) pairs of InstrForCdtrAgt / InstrForNxtAgt; either part may be None.
    creditor_agent_instructions: tuple[tuple[str | None, str | None], ...] = ()
    next_agent_instructions: tuple[tuple[str | None, str | None], ...] = ()
    regulatory_reporting: tuple[str, ...] = ()
    settlement_time_request: tuple[tuple[str, str], ...] = ()
    settlement_time_indication: tuple[tuple[str, str], ...] = ()  # (DbtDtTm|CdtDtTm, ISO date-time)
    exchange_rate: Decimal | None = None
    charges: tuple[tuple[Decimal | None, str | None, str | None], ...] = ()  # (amount, currency, agent BIC)


@dataclass(frozen=True, slots=True)
class Balance:
    type_code: str | None
    amount: Decimal | None
    currency: str | None
    credit_debit: str | None  # CRDT / DBIT
    date: str | None


@dataclass(frozen=True, slots=True)
class EntryDetail:
    end_to_end_id: str | None = None
    instr_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None
    msg_id: str | None = None
    account_servicer_ref: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    debtor: Party = field(default_factory=Party)
    creditor: Party = field(default_factory=Party)
    remittance: tuple[str, ...] = ()
    additional_info: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    amount: Decimal | None
    currency: str | None
    credit_debit: str | None
    reversal: bool
    status: str | None
    booking_date: str | None
    value_date: str | None
    account_servicer_ref: str | None
    entry_ref: str | None
    bank_tx_code: str | None
    additional_info: str | None
    details: tuple[EntryDetail, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    """One camt.052 report, camt.053 statement or camt.054 notification."""

    kind: str  # "Stmt", "Rpt", "Ntfctn"
    id: str | None
    sequence_number: str | None
    legal_sequence_number: str | None
    created: str | None
    from_date: str | None
    to_date: str | None
    account: Party
    account_currency: str | None
    balances: tuple[Balance, ...]
    entries: tuple[Entry, ...]
    page_number: str | None = None  # StmtPgntn/PgNb (RptPgntn, NtfctnPgntn)
    last_page: bool | None = None  # .../LastPgInd


@dataclass(frozen=True, slots=True)
class GroupHeader:
    msg_id: str | None
    created: str | None
    nb_of_txs: str | None
    ctrl_sum: Decimal | None
    total_settlement_amount: Decimal | None
    total_settlement_currency: str | None
    settlement_date: str | None
    settlement_method: str | None
    initiating_party: Party
    instructing_agent: Party
    instructed_agent: Party
    instructing_reimbursement_agent: Party = field(default_factory=Party)
    instructed_reimbursement_agent: Party = field(default_factory=Party)
    third_reimbursement_agent: Party = field(default_factory=Party)


@dataclass(frozen=True, slots=True)
class AppHeader:
    """The head.001 Business Application Header."""

    header_type: str
    from_bic: str | None
    to_bic: str | None
    biz_msg_id: str | None
    msg_def_id: str | None
    biz_service: str | None
    created: str | None
    possible_duplicate: bool
    priority: str | None


class Iso20022Message:
    """A parsed ISO 20022 message: an optional Business Application Header plus a Document."""

    __slots__ = ("root", "document", "app_header_el", "message_type", "header_type", "namespace", "r", "_body")

    def __init__(
        self, root: etree._Element, document: etree._Element | None, app_header: etree._Element | None
    ) -> None:
        self.root = root
        self.document = document
        self.app_header_el = app_header
        self.namespace = namespace(document.tag) if document is not None else ""
        self.message_type = message_type_of(self.namespace)
        self.header_type = message_type_of(namespace(app_header.tag)) if app_header is not None else ""
        self.r = _Reader(self.namespace)
        self._body = self._first_child(document)

    # -- identity ---------------------------------------------------------------------------------
    @property
    def is_iso_namespace(self) -> bool:
        return self.namespace == ISO_NS_PREFIX + self.message_type if self.message_type else False

    @property
    def family(self) -> str:
        """'pacs.008' for 'pacs.008.001.08'."""
        return self.message_type[:8]

    @property
    def body(self) -> etree._Element | None:
        """The message element under Document (FIToFICstmrCdtTrf, CstmrCdtTrfInitn, ...)."""
        return self._body

    @staticmethod
    def _first_child(document: etree._Element | None) -> etree._Element | None:
        if document is None:
            return None
        for child in document:
            if isinstance(child.tag, str):
                return child
        return None

    def to_string(self) -> str:
        return render(self)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Iso20022Message({self.message_type or self.header_type!r})"

    # -- typed views ------------------------------------------------------------------------------
    def app_header(self) -> AppHeader | None:
        el = self.app_header_el
        if el is None:
            return None
        r = _Reader(namespace(el.tag))
        bic_paths = ("FIId/FinInstnId/BICFI", "FIId/FinInstnId/BIC", "OrgId/Id/OrgId/AnyBIC")
        return AppHeader(
            header_type=self.header_type,
            from_bic=r.t(r.f(el, "Fr"), *bic_paths),
            to_bic=r.t(r.f(el, "To"), *bic_paths),
            biz_msg_id=r.t(el, "BizMsgIdr"),
            msg_def_id=r.t(el, "MsgDefIdr"),
            biz_service=r.t(el, "BizSvc"),
            created=r.t(el, "CreDt"),
            possible_duplicate=(r.t(el, "PssblDplct") or "").lower() == "true",
            priority=r.t(el, "Prty"),
        )

    def group_header(self) -> GroupHeader | None:
        r = self.r
        gh = r.f(self.body, "GrpHdr")
        if gh is None:
            return None
        ttl = r.f(gh, "TtlIntrBkSttlmAmt")
        return GroupHeader(
            msg_id=r.t(gh, "MsgId"),
            created=r.t(gh, "CreDtTm"),
            nb_of_txs=r.t(gh, "NbOfTxs"),
            ctrl_sum=_dec(r.t(gh, "CtrlSum")),
            total_settlement_amount=_dec(ttl.text) if ttl is not None else None,
            total_settlement_currency=ttl.get("Ccy") if ttl is not None else None,
            settlement_date=r.t(gh, "IntrBkSttlmDt"),
            settlement_method=r.t(gh, "SttlmInf/SttlmMtd"),
            initiating_party=self._party(r.f(gh, "InitgPty")),
            instructing_agent=self._agent(r.f(gh, "InstgAgt")),
            instructed_agent=self._agent(r.f(gh, "InstdAgt")),
            instructing_reimbursement_agent=self._agent(
                r.f(gh, "SttlmInf/InstgRmbrsmntAgt"), r.f(gh, "SttlmInf/InstgRmbrsmntAgtAcct")
            ),
            instructed_reimbursement_agent=self._agent(
                r.f(gh, "SttlmInf/InstdRmbrsmntAgt"), r.f(gh, "SttlmInf/InstdRmbrsmntAgtAcct")
            ),
            third_reimbursement_agent=self._agent(
                r.f(gh, "SttlmInf/ThrdRmbrsmntAgt"), r.f(gh, "SttlmInf/ThrdRmbrsmntAgtAcct")
            ),
        )

    def transaction_elements(self) -> list[etree._Element]:
        body = self.body
        if body is None:
            return []
        ns = self.namespace
        tags = [f"{{{ns}}}{n}" if ns else n for n in TX_ELEMENTS]
        return [el for el in body.iter(*tags)]

    def transactions(self) -> list[Transaction]:
        return [self._transaction(i, el) for i, el in enumerate(self.transaction_elements())]

    def statements(self) -> list[Statement]:
        body = self.body
        if body is None:
            return []
        return [self._statement(el) for el in body if local(el.tag) in STATEMENT_ELEMENTS]

    # -- extraction helpers -----------------------------------------------------------------------
    def _party(self, el: etree._Element | None, account: etree._Element | None = None) -> Party:
        r = self.r
        if el is None and account is None:
            return Party()
        inner = r.f(el, "Pty")
        if inner is not None:  # pain.002 / camt wrap a party in Pty (v04+)
            el = inner
        fin = r.f(el, "FinInstnId")
        if fin is not None:  # pacs.009 debtor/creditor are institutions
            return self._agent(el, account)
        adr = r.f(el, "PstlAdr")
        lines = tuple(x.text.strip() for x in r.all(adr, "AdrLine") if x.text)
        return Party(
            name=r.t(el, "Nm"),
            iban=r.t(account, "Id/IBAN"),
            account_id=r.t(account, "Id/Othr/Id"),
            bic=r.t(el, "Id/OrgId/AnyBIC", "Id/OrgId/BICOrBEI"),
            country=r.t(adr, "Ctry") or r.t(el, "CtryOfRes"),
            address_lines=lines or self._structured_address(adr),
            lei=r.t(el, "Id/OrgId/LEI"),
        )

    def _structured_address(self, adr: etree._Element | None) -> tuple[str, ...]:
        r = self.r
        street = " ".join(x for x in (r.t(adr, "StrtNm"), r.t(adr, "BldgNb")) if x)
        town = " ".join(x for x in (r.t(adr, "PstCd"), r.t(adr, "TwnNm")) if x)
        return tuple(x for x in (street, town) if x)

    def _agent(self, el: etree._Element | None, account: etree._Element | None = None) -> Party:
        r = self.r
        if el is None and account is None:
            return Party()
        fin = r.f(el, "FinInstnId")
        adr = r.f(fin, "PstlAdr")
        return Party(
            name=r.t(fin, "Nm"),
            iban=r.t(account, "Id/IBAN"),
            account_id=r.t(account, "Id/Othr/Id"),
            bic=r.t(fin, "BICFI", "BIC"),
            country=r.t(adr, "Ctry"),
            address_lines=tuple(x.text.strip() for x in r.all(adr, "AdrLine") if x.text),
            clearing_member_id=r.t(fin, "ClrSysMmbId/MmbId"),
            lei=r.t(fin, "LEI"),
        )

    def _amount(self, tx: etree._Element, *paths: str) -> tuple[Decimal | None, str | None]:
        r = self.r
        for path in paths:
            el = r.f(tx, path)
            if el is not None:
                return _dec(el.text), el.get("Ccy")
        return None, None

    def _transaction(self, index: int, tx: etree._Element) -> Transaction:
        r = self.r
        parent = tx.getparent()
        pmt = parent if parent is not None and local(parent.tag) == "PmtInf" else None

        def both(*paths: str) -> str | None:
            return r.t(tx, *paths) or r.t(pmt, *paths)

        def el_both(path: str) -> etree._Element | None:
            found = r.f(tx, path)
            return found if found is not None else r.f(pmt, path)

        amount, ccy = self._amount(
            tx,
            "IntrBkSttlmAmt",
            "RtrdIntrBkSttlmAmt",
            "Amt/InstdAmt",
            "InstdAmt",
            "Amt/EqvtAmt/Amt",
            "OrgnlIntrBkSttlmAmt",
            "OrgnlTxRef/IntrBkSttlmAmt",
            "OrgnlTxRef/Amt/InstdAmt",
        )
        instd, instd_ccy = self._amount(tx, "InstdAmt", "Amt/InstdAmt", "RtrdInstdAmt")
        rmt = tuple(x.text.strip() for x in r.all(tx, "RmtInf/Ustrd") if x.text)
        reasons = tuple(
            x.text.strip()
            for x in r.all(tx, "StsRsnInf/AddtlInf") + r.all(tx, "RtrRsnInf/AddtlInf") + r.all(tx, "CxlRsnInf/AddtlInf")
            if x.text
        )
        intermediaries = tuple(
            self._agent(r.f(tx, name), r.f(tx, name + "Acct"))
            for name in ("IntrmyAgt1", "IntrmyAgt2", "IntrmyAgt3")
            if r.f(tx, name) is not None
        )
        dbtr_el, cdtr_el = el_both("Dbtr"), el_both("Cdtr")
        if dbtr_el is None:
            dbtr_el = r.f(tx, "OrgnlTxRef/Dbtr")
        if cdtr_el is None:
            cdtr_el = r.f(tx, "OrgnlTxRef/Cdtr")
        return Transaction(
            xpath_index=index,
            instr_id=r.t(tx, "PmtId/InstrId"),
            end_to_end_id=r.t(tx, "PmtId/EndToEndId"),
            tx_id=r.t(tx, "PmtId/TxId"),
            uetr=r.t(tx, "PmtId/UETR"),
            amount=amount,
            currency=ccy,
            instructed_amount=instd,
            instructed_currency=instd_ccy,
            settlement_date=r.t(tx, "IntrBkSttlmDt") or self._group_text("IntrBkSttlmDt"),
            requested_date=both("ReqdExctnDt/Dt", "ReqdExctnDt/DtTm", "ReqdExctnDt", "ReqdColltnDt"),
            payment_info_id=r.t(pmt, "PmtInfId"),
            charge_bearer=both("ChrgBr"),
            debtor=self._party(dbtr_el, el_both("DbtrAcct")),
            creditor=self._party(cdtr_el, el_both("CdtrAcct")),
            debtor_agent=self._agent(el_both("DbtrAgt"), el_both("DbtrAgtAcct")),
            creditor_agent=self._agent(el_both("CdtrAgt"), el_both("CdtrAgtAcct")),
            instructing_agent=self._agent(r.f(tx, "InstgAgt")),
            instructed_agent=self._agent(r.f(tx, "InstdAgt")),
            intermediary_agents=intermediaries,
            ultimate_debtor=self._party(el_both("UltmtDbtr")),
            ultimate_creditor=self._party(el_both("UltmtCdtr")),
            remittance=rmt,
            structured_reference=r.t(tx, "RmtInf/Strd/CdtrRefInf/Ref"),
            purpose=r.t(tx, "Purp/Cd"),
            service_level=both("PmtTpInf/SvcLvl/Cd"),
            local_instrument=both("PmtTpInf/LclInstrm/Cd", "PmtTpInf/LclInstrm/Prtry"),
            category_purpose=both("PmtTpInf/CtgyPurp/Cd"),
            sequence_type=both("PmtTpInf/SeqTp"),
            mandate_id=r.t(tx, "DrctDbtTx/MndtRltdInf/MndtId"),
            mandate_signature_date=r.t(tx, "DrctDbtTx/MndtRltdInf/DtOfSgntr"),
            creditor_scheme_id=r.t(tx, "DrctDbtTx/CdtrSchmeId/Id/PrvtId/Othr/Id")
            or r.t(pmt, "CdtrSchmeId/Id/PrvtId/Othr/Id"),
            original_msg_id=r.t(tx, "OrgnlGrpInf/OrgnlMsgId"),
            original_instr_id=r.t(tx, "OrgnlInstrId"),
            original_end_to_end_id=r.t(tx, "OrgnlEndToEndId"),
            original_tx_id=r.t(tx, "OrgnlTxId"),
            original_uetr=r.t(tx, "OrgnlUETR"),
            status=r.t(tx, "TxSts"),
            reason_code=r.t(tx, "StsRsnInf/Rsn/Cd", "RtrRsnInf/Rsn/Cd", "CxlRsnInf/Rsn/Cd"),
            reason_info=reasons,
            case_id=r.t(tx, "RtrId", "CxlId", "StsId"),
            creditor_agent_instructions=self._instructions(tx, "InstrForCdtrAgt"),
            next_agent_instructions=self._instructions(tx, "InstrForNxtAgt"),
            regulatory_reporting=tuple(x.text.strip() for x in r.all(tx, "RgltryRptg/Dtls/Inf") if x.text),
            settlement_time_request=tuple((local(x.tag), x.text.strip()) for x in r.all(tx, "SttlmTmReq/*") if x.text),
            settlement_time_indication=tuple(
                (local(x.tag), x.text.strip()) for x in r.all(tx, "SttlmTmIndctn/*") if x.text
            ),
            exchange_rate=_dec(r.t(tx, "XchgRate")),
            charges=tuple(
                (
                    _dec(r.t(c, "Amt")),
                    (r.f(c, "Amt").get("Ccy") if r.f(c, "Amt") is not None else None),  # type: ignore[union-attr]
                    r.t(c, "Agt/FinInstnId/BICFI", "Agt/FinInstnId/BIC"),
                )
                for c in r.all(tx, "ChrgsInf")
            ),
        )

    def _instructions(self, tx: etree._Element, tag: str) -> tuple[tuple[str | None, str | None], ...]:
        r = self.r
        return tuple((r.t(i, "Cd"), r.t(i, "InstrInf")) for i in r.all(tx, tag))

    def _group_text(self, path: str) -> str | None:
        return self.r.t(self.r.f(self.body, "GrpHdr"), path)

    def _statement(self, st: etree._Element) -> Statement:
        r = self.r
        acct = r.f(st, "Acct")
        svcr = r.f(acct, "Svcr")
        account = Party(
            name=r.t(acct, "Nm"),
            iban=r.t(acct, "Id/IBAN"),
            account_id=r.t(acct, "Id/Othr/Id"),
            bic=r.t(svcr, "FinInstnId/BICFI", "FinInstnId/BIC"),
        )
        balances = tuple(
            Balance(
                type_code=r.t(b, "Tp/CdOrPrtry/Cd", "Tp/CdOrPrtry/Prtry"),
                amount=_dec(r.t(b, "Amt")),
                currency=(r.f(b, "Amt").get("Ccy") if r.f(b, "Amt") is not None else None),  # type: ignore[union-attr]
                credit_debit=r.t(b, "CdtDbtInd"),
                date=r.t(b, "Dt/Dt", "Dt/DtTm"),
            )
            for b in r.all(st, "Bal")
        )
        pages = r.f(st, local(st.tag) + "Pgntn")
        last = r.t(pages, "LastPgInd")
        return Statement(
            page_number=r.t(pages, "PgNb"),
            last_page=None if last is None else last.lower() in ("true", "1"),
            kind=local(st.tag),
            id=r.t(st, "Id"),
            sequence_number=r.t(st, "ElctrncSeqNb"),
            legal_sequence_number=r.t(st, "LglSeqNb"),
            created=r.t(st, "CreDtTm"),
            from_date=r.t(st, "FrToDt/FrDtTm"),
            to_date=r.t(st, "FrToDt/ToDtTm"),
            account=account,
            account_currency=r.t(acct, "Ccy"),
            balances=balances,
            entries=tuple(self._entry(e) for e in r.all(st, "Ntry")),
        )

    def _entry(self, e: etree._Element) -> Entry:
        r = self.r
        amt = r.f(e, "Amt")
        details = tuple(self._entry_detail(d) for d in r.all(e, "NtryDtls/TxDtls"))
        return Entry(
            amount=_dec(amt.text) if amt is not None else None,
            currency=amt.get("Ccy") if amt is not None else None,
            credit_debit=r.t(e, "CdtDbtInd"),
            reversal=(r.t(e, "RvslInd") or "").lower() == "true",
            status=r.t(e, "Sts/Cd", "Sts/Prtry", "Sts"),
            booking_date=r.t(e, "BookgDt/Dt", "BookgDt/DtTm"),
            value_date=r.t(e, "ValDt/Dt", "ValDt/DtTm"),
            account_servicer_ref=r.t(e, "AcctSvcrRef"),
            entry_ref=r.t(e, "NtryRef"),
            bank_tx_code=r.t(e, "BkTxCd/Prtry/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd"),
            additional_info=r.t(e, "AddtlNtryInf"),
            details=details,
        )

    def _entry_detail(self, d: etree._Element) -> EntryDetail:
        r = self.r
        amount, ccy = self._amount(d, "Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt")
        return EntryDetail(
            end_to_end_id=r.t(d, "Refs/EndToEndId"),
            instr_id=r.t(d, "Refs/InstrId"),
            tx_id=r.t(d, "Refs/TxId"),
            uetr=r.t(d, "Refs/UETR"),
            msg_id=r.t(d, "Refs/MsgId"),
            account_servicer_ref=r.t(d, "Refs/AcctSvcrRef"),
            amount=amount,
            currency=ccy,
            debtor=self._party(r.f(d, "RltdPties/Dbtr"), r.f(d, "RltdPties/DbtrAcct")),
            creditor=self._party(r.f(d, "RltdPties/Cdtr"), r.f(d, "RltdPties/CdtrAcct")),
            remittance=tuple(x.text.strip() for x in r.all(d, "RmtInf/Ustrd") if x.text),
            additional_info=r.t(d, "AddtlTxInf"),
        )


def _find_parts(root: etree._Element) -> tuple[etree._Element | None, etree._Element | None]:
    """The Document and AppHdr elements, at the root or inside a transport envelope."""
    document: etree._Element | None = None
    header: etree._Element | None = None
    level = [root]
    for _ in range(ENVELOPE_SEARCH_DEPTH_MAX):
        for el in level:
            name = local(el.tag)
            if name == "Document" and document is None:
                document = el
            elif name == "AppHdr" and header is None:
                header = el
        if document is not None:
            break
        level = [c for el in level for c in el if isinstance(c.tag, str)]
        if not level:
            break
    return document, header


def from_element(root: etree._Element) -> Iso20022Message:
    document, header = _find_parts(root)
    if document is None and header is None:
        raise PaymentFormatError(
            f"not an ISO 20022 message: no Document or AppHdr element (root is <{local(root.tag)}>)",
            code="iso20022_not_a_message",
            location="/" + local(root.tag),
        )
    return Iso20022Message(root, document, header)


def parse(data: str | bytes) -> Iso20022Message:
    """Parse an ISO 20022 message (a Document, an AppHdr + Document envelope, or a header)."""
    return from_element(parse_xml(data))


def render(msg: Iso20022Message) -> str:
    """The canonical text: UTF-8 XML with a declaration, as the message tree holds it."""
    body = str(etree.tostring(msg.root, encoding="unicode"))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
