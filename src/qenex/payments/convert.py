"""Conversion between SWIFT MT and ISO 20022, both ways, after the CBPR+ translation rules:

- MT103 <-> pacs.008.001.08 (customer credit transfer)
- MT202 <-> pacs.009.001.08 (financial institution transfer)
- MT940 <-> camt.053.001.08 (customer statement)

Amounts, parties, references and the UETR are carried across; anything the target cannot carry
is reported in `ConversionResult.lost` (one located issue per item), never dropped silently.
The MT side is built with `qenex.payments.swift` builders and the MX side with
`qenex.payments.iso20022` builders, so every output passes the same validation as any other
message of its type (MT network rules; the official XSD where its schema is installed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final

from lxml import etree

from qenex.errors import QenexError
from qenex.payments import iso20022 as mx
from qenex.payments import swift
from qenex.payments.common import PaymentFormatError, ValidationIssue, ValidationReport
from qenex.payments.swift import fields as mt_fields
from qenex.payments.swift import rules
from qenex.payments.swift.model import Block, Field, Message, MessageBatch
from qenex.payments.swift.values import (
    amount_of,
    read_32a,
    read_61,
    read_balance,
    read_ccy_amount,
    read_party,
    swift_amount_text,
)

TARGETS: Final = ("pacs.008", "mt103", "pacs.009", "mt202", "camt.053", "mt940")
CONVERT_CODE: Final = "payment_convert"
LOST_CODE: Final = "convert_not_carried"
NOT_PROVIDED: Final = "NOTPROVIDED"
NONREF: Final = "NONREF"
MT_REF_CHARS: Final = 16
MX_TEXT_CHARS: Final = 140

# 71A <-> ChrgBr (CBPR+: OUR = DEBT, SHA = SHAR, BEN = CRED).
CHARGES_TO_MX: Final = {"OUR": "DEBT", "SHA": "SHAR", "BEN": "CRED"}
CHARGES_TO_MT: Final = {v: k for k, v in CHARGES_TO_MX.items()}
# 23E codes with a pacs.008 payment type element (CBPR+): SDVA is a service level, INTC and CORT
# are category purposes. The other 23E codes have no element here and are reported.
SERVICE_LEVEL_23E: Final = frozenset({"SDVA"})
CATEGORY_PURPOSE_23E: Final = frozenset({"INTC", "CORT"})


@dataclass(slots=True)
class ConversionResult:
    """The converted message text, its type, and every item that could not be carried across."""

    output: str
    message_type: str
    lost: list[ValidationIssue] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.output

    def __str__(self) -> str:
        return self.output


class _Lost:
    def __init__(self) -> None:
        self.items: list[ValidationIssue] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(ValidationIssue(LOST_CODE, what, where, "warning"))


def convert(data: str | bytes, to: str) -> ConversionResult:
    """Convert an MT or ISO 20022 message to `to` (one of TARGETS). Raises PaymentFormatError for
    input that cannot be read or has no conversion to the target."""
    if to not in TARGETS:
        raise PaymentFormatError(
            f"unknown conversion target {to!r}; use one of {', '.join(TARGETS)}", code=CONVERT_CODE
        )
    try:
        if _looks_like_xml(data):
            return _from_mx(mx.parse(data), to)
        parsed = swift.parse(data)
        if isinstance(parsed, MessageBatch):
            raise PaymentFormatError("convert takes one MT message, not a batch", code=CONVERT_CODE)
        return _from_mt(parsed, to)
    except swift.MTBuildError as exc:  # the source holds something the MT cannot express validly
        raise PaymentFormatError(f"cannot convert: {exc.message}", location=exc.location, code=CONVERT_CODE) from None
    except PaymentFormatError:
        raise
    except QenexError as exc:  # e.g. an amount with more decimals than its currency has
        raise PaymentFormatError(f"cannot convert: {exc.message}", code=CONVERT_CODE) from None
    except (ValueError, ArithmeticError) as exc:  # a date or number the source's schema did not police
        raise PaymentFormatError(f"cannot convert: a value could not be read ({exc})", code=CONVERT_CODE) from None


def _looks_like_xml(data: str | bytes) -> bool:
    head = data[:64]
    text = head.decode("latin-1") if isinstance(head, bytes) else head
    return text.lstrip("\ufeff\xef\xbb\xbf \t\r\n").startswith("<")


def _from_mt(msg: Message, to: str) -> ConversionResult:
    # A message without UETR (pre-2018 archives) still converts: the MX side gets a fresh one, reported.
    _require_valid(swift.validate(msg, allow_missing_uetr=True), "the MT input")
    mt = msg.message_type
    pairs = {
        ("103", "pacs.008"): _mt103_to_pacs008,
        ("202", "pacs.009"): _mt202_to_pacs009,
        ("940", "camt.053"): _mt940_to_camt053,
    }
    fn = pairs.get((mt, to))
    if fn is None:
        raise PaymentFormatError(f"no conversion from MT{mt} to {to}", code=CONVERT_CODE)
    result = fn(msg)
    result.lost[:0] = _header_not_carried(msg, receiver=to != "camt.053")
    if msg.uetr is None and to != "camt.053":
        result.lost.append(
            ValidationIssue(
                LOST_CODE,
                "the MT message has no UETR (block 3 field 121); the converted message carries a newly generated one",
                "block 3",
                "warning",
            )
        )
    return result


def _from_mx(msg: mx.Iso20022Message, to: str) -> ConversionResult:
    family = msg.family
    pairs = {
        ("pacs.008", "mt103"): _pacs008_to_mt103,
        ("pacs.009", "mt202"): _pacs009_to_mt202,
        ("camt.053", "mt940"): _camt053_to_mt940,
    }
    fn = pairs.get((family, to))
    if fn is None:
        raise PaymentFormatError(f"no conversion from {msg.message_type or 'this message'} to {to}", code=CONVERT_CODE)
    _require_valid(mx.validate(msg), "the ISO 20022 input")
    return fn(msg)


def _require_valid(report: ValidationReport, what: str) -> None:
    """Conversion reads and writes only valid messages: the first error of either side stops it."""
    if not report.valid:
        first = report.errors[0]
        raise PaymentFormatError(f"{what} is not valid: {first.message}", location=first.location, code=CONVERT_CODE)


def _valid_text(out: mx.Iso20022Message, what: str) -> str:
    text = out.to_string()
    _require_valid(mx.validate(text), what)
    return text


# ==== MT -> MX ===================================================================================
# CBPR+ identifies the agents by BIC only (BAH Fr/To and every BICFI take BIC8 or BIC11, no other
# element is allowed there), so the FIN addressing details of blocks 1 and 2 have no MX element: the
# logical terminal code (9th character of the 12-character address) and the input priority. The MT
# written back from the MX uses the FIN defaults below; anything else in the source is reported.
DEFAULT_LT_CODE: Final = "X"
DEFAULT_PRIORITY: Final = "N"
_LT_CHARS: Final = 12


def _header_not_carried(msg: Message, receiver: bool = True) -> list[ValidationIssue]:
    lost = _Lost()
    b1, b2 = msg.block("1"), msg.block("2")
    raw1 = b1.raw if b1 is not None else ""
    raw2 = b2.raw if b2 is not None else ""
    if raw2.startswith("O"):  # output: the sender's address is in the MIR of block 2, the receiver's in block 1
        sender, receiver_lt = ("block 2", raw2[14:26]), ("block 1", raw1[3:15])
        priority = raw2[46:47]
    else:
        sender, receiver_lt = ("block 1", raw1[3:15]), ("block 2", raw2[4:16])
        priority = raw2[16:17] if raw2.startswith("I") else ""
    parties = [("sender", *sender), *([("receiver", *receiver_lt)] if receiver else [])]
    for role, where, lt in parties:
        if len(lt) == _LT_CHARS and lt[8] != DEFAULT_LT_CODE:
            lost.add(
                where,
                f"the {role}'s logical terminal code {lt[8]!r} of {lt} is not carried: the MX names the "
                f"agent by BIC ({lt[:8]}{lt[9:]}) only; converted back it is addressed as "
                f"{lt[:8]}{DEFAULT_LT_CODE}{lt[9:]}",
            )
    if priority and priority != DEFAULT_PRIORITY:
        lost.add("block 2", f"message priority {priority!r} is not carried (an MT written back is sent as N)")
    return lost.items


def _text_of(msg: Message, tag: str) -> str | None:
    f = msg.field(tag)
    return f.text if f is not None else None


def _mx_party(f: Field | None, lost: _Lost, role: str) -> mx.PartySpec:
    """A customer party (50a/59a) as an ISO 20022 party: name, postal address, account, BIC."""
    if f is None:
        return mx.PartySpec(name=NOT_PROVIDED)
    party = read_party(f.tag, f.text)
    account = party.account
    iban = account if account and _is_iban(account) else None
    other = None if iban else account
    if f.option == "F":
        return _mx_party_f(party.lines, iban, other)
    if f.option == "A":
        return mx.PartySpec(iban=iban, account_id=other, bic=party.bic)
    name = party.lines[0] if party.lines else NOT_PROVIDED
    return mx.PartySpec(name=name, iban=iban, account_id=other, address_lines=tuple(party.lines[1:]))


def _mx_party_f(lines: Sequence[str], iban: str | None, other: str | None) -> mx.PartySpec:
    """50F/59F structured lines: 1/ name, 2/ address, 3/ country code and town ("3/GB/EPPING")."""
    names = [ln[2:] for ln in lines if ln.startswith("1/")]
    address = [ln[2:] for ln in lines if ln.startswith("2/")]
    country = None
    for ln in lines:
        if ln.startswith("3/"):
            code, _, town = ln[2:].partition("/")
            if len(code) == 2 and code.isascii() and code.isalpha():
                country = code
                if town:
                    address.append(town)
            else:
                address.append(ln[2:])
    return mx.PartySpec(
        name=" ".join(names) or NOT_PROVIDED,
        iban=iban,
        account_id=other,
        country=country,
        address_lines=tuple(a for a in address if a),
    )


def _iban_or_none(account: str | None) -> str | None:
    """The MT account when it is an IBAN (MX then carries it as IBAN, else as an other-id)."""
    return account if account and _is_iban(account) else None


def _is_iban(value: str) -> bool:
    return mx.validate_iban(value).valid


def _agent_bic(msg: Message, number: str, lost: _Lost, what: str) -> str | None:
    """The BIC of an institution field (option A); other options are reported as not carried."""
    f = msg.field(number)
    if f is None:
        return None
    if f.option == "A":
        return read_party(f.tag, f.text).bic
    lost.add(
        f"block 4 :{f.tag}:",
        f"{what} in option {f.option or 'without letter'} (no BIC) is not carried "
        "(the ISO 20022 builders identify agents by BIC or member id)",
    )
    return None


def _remittance(msg: Message) -> tuple[str | None, str | None]:
    """Field 70 as (end-to-end id from /ROC/, unstructured remittance text)."""
    text = _text_of(msg, "70")
    if not text:
        return None, None
    lines = text.split("\n")
    e2e = None
    if lines[0].startswith("/ROC/"):
        e2e, lines = lines[0][5:] or None, lines[1:]
    joined = " ".join(lines)
    if len(joined) > MX_TEXT_CHARS:
        joined = "".join(lines)
    return e2e, joined or None


def _instructions(msg: Message) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Field 72 as (instructions for next agent, for creditor agent, previous instructing agent BIC):
    /ACC/ goes to the creditor agent, a first /INS/<BIC> becomes PrvsInstgAgt1 (CBPR+)."""
    text = _text_of(msg, "72")
    if not text:
        return (), (), None
    items: list[str] = []
    for line in text.split("\n"):
        if line.startswith("//") and items:
            items[-1] += " " + line[2:]
        else:
            items.append(line)
    previous = next((i[5:].strip() for i in items if i.startswith("/INS/")), None)
    if previous is not None and mt_fields.bic_problem(previous) is None:
        items = [i for i in items if i != "/INS/" + previous]
    else:
        previous = None
    for_creditor = tuple(i for i in items if i.startswith("/ACC/"))
    return tuple(i for i in items if not i.startswith("/ACC/")), for_creditor, previous


def _not_carried(msg: Message, lost: _Lost, tags: dict[str, str]) -> None:
    for f in msg.fields:
        why = tags.get(f.tag) or tags.get(f.number)
        if why:
            lost.add(f"block 4 :{f.tag}:", why)
    b3 = msg.block("3")
    for key, value in (b3.subfields or []) if b3 is not None else []:
        if key not in ("121", "119"):
            lost.add(f"block 3 {{{key}:}}", f"user header field {key} ({value}) has no place in the MX message")


def _settlement(msg: Message) -> tuple[date, str, Decimal]:
    a = read_32a(_text_of(msg, "32A") or "")
    if a is None or a.value_date is None:
        raise PaymentFormatError("field 32A cannot be read", location="block 4 :32A:", code=CONVERT_CODE)
    return a.value_date, a.currency, a.amount


def _mt103_to_pacs008(msg: Message) -> ConversionResult:
    lost = _Lost()
    when, ccy, amount = _settlement(msg)
    ref = _text_of(msg, "20") or NOT_PROVIDED
    e2e, remittance = _remittance(msg)
    next_agent, for_creditor, previous_agent = _instructions(msg)
    instructed = read_ccy_amount(_text_of(msg, "33B") or "")
    rate = _text_of(msg, "36")
    sender, receiver = msg.sender_bic or "", msg.receiver_bic or ""
    debtor = _mx_party(msg.field("50"), lost, "Dbtr")
    creditor = _mx_party(msg.field("59"), lost, "Cdtr")
    debtor_agent = _agent_bic(msg, "52", lost, "52a ordering institution") or sender
    creditor_agent = _agent_bic(msg, "57", lost, "57a account with institution") or receiver
    intermediary = _agent_bic(msg, "56", lost, "56a intermediary")
    charges = [(amount_of(c[1]), c[0], sender) for f in msg.all("71F") if (c := read_ccy_amount(f.text))]
    g = read_ccy_amount(_text_of(msg, "71G") or "")
    if g is not None:
        charges.append((amount_of(g[1]), g[0], receiver))
    _not_carried(msg, lost, _MT103_NOT_CARRIED)
    time_request, time_indication = _time_indications(msg, when, lost)
    service_level, category_purpose = _payment_type_codes(msg, lost)
    bank_op = _text_of(msg, "23B")
    if bank_op != "CRED":
        lost.add("block 4 :23B:", f"bank operation code {bank_op} is not carried (pacs.008 has no equivalent)")
    transfer = mx.CreditTransfer(
        amount=amount,
        currency=ccy,
        settlement_date=when,
        instr_id=ref,
        tx_id=ref,
        end_to_end_id=e2e or NOT_PROVIDED,
        uetr=msg.uetr,
        debtor=_with_agent(debtor, debtor_agent),
        creditor=_with_agent(creditor, creditor_agent),
        remittance=remittance,
        charge_bearer=CHARGES_TO_MX.get(_text_of(msg, "71A") or "", "SHAR"),
        instructed_amount=amount_of(instructed[1]) if instructed else None,
        instructed_currency=instructed[0] if instructed else None,
        exchange_rate=amount_of(rate) if rate else None,
        intermediary_agents=(mx.PartySpec(agent_bic=intermediary),) if intermediary else (),
        instructions_for_next_agent=next_agent,
        instructions_for_creditor_agent=for_creditor,
        charges=tuple((a, c, b) for a, c, b in charges),
        service_level=service_level,
        category_purpose=category_purpose,
        settlement_time_request=time_request,
        settlement_time_indication=time_indication,
        regulatory_reporting=_regulatory_reporting(msg),
    )
    chain = _settlement_chain(msg, lost)
    out = mx.build_pacs008(
        [transfer],
        instructing_agent_bic=sender,
        instructed_agent_bic=receiver,
        settlement_method=_settlement_method(chain),
        settlement_date=when,
        msg_id=ref,
    )
    return ConversionResult(_enrich(out, chain, previous_agent), out.message_type, lost.items)


# MT correspondent fields -> GrpHdr/SttlmInf elements (CBPR+): 53A/54A/55A are reimbursement agents,
# the account of 53B is the settlement account.
_REIMBURSEMENT: Final = (("53", "InstgRmbrsmntAgt"), ("54", "InstdRmbrsmntAgt"), ("55", "ThrdRmbrsmntAgt"))


def _settlement_chain(msg: Message, lost: _Lost) -> list[tuple[str, str | None, str | None]]:
    """(element, BIC, account) for SttlmAcct and the reimbursement agents, from 53a/54a/55a."""
    chain: list[tuple[str, str | None, str | None]] = []
    for number, element in _REIMBURSEMENT:
        f = msg.field(number)
        if f is None:
            continue
        party = read_party(f.tag, f.text)
        if f.option == "A":
            chain.append((element, party.bic, party.account))
        elif f.tag == "53B" and party.account:
            chain.append(("SttlmAcct", None, party.account))
            if party.lines:
                lost.add("block 4 :53B:", f"53B location {' '.join(party.lines)!r} is not carried")
        else:
            lost.add(f"block 4 :{f.tag}:", f"{f.tag} without a BIC is not carried (SttlmInf names agents by BIC)")
    return sorted(chain, key=lambda item: 0 if item[0] == "SttlmAcct" else 1)


def _settlement_method(chain: list[tuple[str, str | None, str | None]]) -> str:
    """COVE when a reimbursement agent is named (the cover goes through correspondents), else INDA."""
    return "COVE" if any(element != "SttlmAcct" for element, _, _ in chain) else "INDA"


def _enrich(
    out: mx.Iso20022Message, chain: list[tuple[str, str | None, str | None]], previous_agent: str | None
) -> str:
    """Add what the builders do not write (settlement chain, PrvsInstgAgt1) and re-validate the result."""
    if not chain and previous_agent is None:
        return out.to_string()
    q = f"{{{out.namespace}}}"
    body = out.body
    sttlm = out.r.f(body, "GrpHdr/SttlmInf")
    for element, bic, account in chain:
        if sttlm is None:
            break
        if bic:
            _xml_agent(sttlm, q, element, bic)
        if account:
            tag = "SttlmAcct" if element == "SttlmAcct" else element + "Acct"
            _xml_account(sttlm, q, tag, account)
    if previous_agent is not None:
        tx = out.transaction_elements()[0]
        instg = out.r.f(tx, "InstgAgt")
        node = etree.Element(q + "PrvsInstgAgt1")
        etree.SubElement(etree.SubElement(node, q + "FinInstnId"), q + "BICFI").text = previous_agent
        if instg is not None:
            instg.addprevious(node)
    return _valid_text(out, f"the converted {out.message_type}")


def _xml_account(parent: etree._Element, q: str, tag: str, account: str) -> None:
    acct_id = etree.SubElement(etree.SubElement(parent, q + tag), q + "Id")
    if _is_iban(account):
        etree.SubElement(acct_id, q + "IBAN").text = account
    else:
        etree.SubElement(etree.SubElement(acct_id, q + "Othr"), q + "Id").text = account[:34]


def _payment_type_codes(msg: Message, lost: _Lost) -> tuple[str | None, str | None]:
    """23E codes as (service level, category purpose); any other 23E code is reported as not carried."""
    service_level = category_purpose = None
    for f in msg.all("23E"):
        code = f.text.split("/", 1)[0]
        if code in SERVICE_LEVEL_23E and service_level is None:
            service_level = code
        elif code in CATEGORY_PURPOSE_23E and category_purpose is None:
            category_purpose = code
        else:
            lost.add("block 4 :23E:", f"instruction code {f.text} has no pacs.008 element in this mapping")
    return service_level, category_purpose


def _with_agent(party: mx.PartySpec, agent_bic: str | None) -> mx.PartySpec:
    return mx.PartySpec(
        name=party.name,
        iban=party.iban,
        account_id=party.account_id,
        bic=party.bic,
        agent_bic=agent_bic,
        country=party.country,
        address_lines=party.address_lines,
    )


_MT103_NOT_CARRIED: Final = {
    "26T": "26T transaction type code is not carried",
    "51": "51A sending institution is not carried",
    "77T": "77T envelope contents are not carried",
}

# 13C time indication codes <-> pacs.008/009 elements (CBPR+ translation): the requests are ISO
# times in SttlmTmReq; SNDTIME (debited) and RNCTIME (credited at the receiving central bank) are
# date-times in SttlmTmIndctn, dated with the 32A value date.
TIME_REQUEST_13C: Final = {"CLSTIME": "CLSTm", "TILTIME": "TillTm", "FROTIME": "FrTm", "REJTIME": "RjctTm"}
TIME_INDICATION_13C: Final = {"SNDTIME": "DbtDtTm", "RNCTIME": "CdtDtTm"}
_13C: Final = re.compile(r"/([A-Z0-9]{1,8})/(\d{2})(\d{2})([+-])(\d{2})(\d{2})\Z")
_ISO_TIME: Final = re.compile(r"(?:\d{4}-\d{2}-\d{2}T)?(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})\Z")


def _time_indications(
    msg: Message, value_date: date, lost: _Lost
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """Every 13C as (SttlmTmReq items, SttlmTmIndctn items); an unknown code is reported."""
    request: dict[str, str] = {}
    indication: dict[str, str] = {}
    for f in msg.all("13C"):
        m = _13C.match(f.text)
        if m is None:
            lost.add("block 4 :13C:", f"time indication {f.text[:20]!r} cannot be read")
            continue
        code, hh, mm, sign, oh, om = m.groups()
        iso_time = f"{hh}:{mm}:00{sign}{oh}:{om}"
        if code in TIME_REQUEST_13C and TIME_REQUEST_13C[code] not in request:
            request[TIME_REQUEST_13C[code]] = iso_time
        elif code in TIME_INDICATION_13C and TIME_INDICATION_13C[code] not in indication:
            indication[TIME_INDICATION_13C[code]] = f"{value_date.isoformat()}T{iso_time}"
        else:
            lost.add("block 4 :13C:", f"time indication code {code} has no (further) pacs element")
    return tuple(request.items()), tuple(indication.items())


def _13c_fields(tx: mx.Transaction, lost: _Lost) -> list[tuple[str, str]]:
    """SttlmTmIndctn and SttlmTmReq back as 13C fields (MT order: indications first)."""
    out: list[tuple[str, str]] = []
    codes = {v: k for k, v in (TIME_REQUEST_13C | TIME_INDICATION_13C).items()}
    for kind, value in (*tx.settlement_time_indication, *tx.settlement_time_request):
        m = _ISO_TIME.match(value)
        code = codes.get(kind)
        if m is None or code is None:
            lost.add(f"SttlmTm {kind}", f"{kind} {value[:30]!r} needs a time with a UTC offset for 13C")
            continue
        hh, mm, ss, zone = m.groups()
        if ss not in (None, "00"):
            lost.add(f"SttlmTm {kind}", f"the seconds of {kind} {value[:30]} are cut (13C holds HHMM)")
        offset = "+0000" if zone == "Z" else zone.replace(":", "")
        out.append(("13C", f"/{code}/{hh}{mm}{offset}"))
    return out


# 77B regulatory reporting (3*35x) <-> RgltryRptg/Dtls/Inf, one Inf (Max35Text) per line.
REGULATORY_LINES_MAX: Final = 3


def _regulatory_reporting(msg: Message) -> tuple[str, ...]:
    f = msg.field("77B")
    return tuple(f.lines) if f is not None else ()


def _77b_field(tx: mx.Transaction, lost: _Lost) -> list[tuple[str, str]]:
    lines = [line[:35] for line in tx.regulatory_reporting]
    if not lines:
        return []
    if len(lines) > REGULATORY_LINES_MAX or any(len(x) > 35 for x in tx.regulatory_reporting):
        lost.add("RgltryRptg", "regulatory reporting beyond 3 lines of 35 characters is cut (77B)")
    return [("77B", "\n".join(_x_text(x) for x in lines[:REGULATORY_LINES_MAX]))]


def _mt202_to_pacs009(full: Message) -> ConversionResult:
    lost = _Lost()
    msg, seq_b = _split_cov(full)
    when, ccy, amount = _settlement(msg)
    ref = _text_of(msg, "20") or NOT_PROVIDED
    related = _text_of(msg, "21") or NOT_PROVIDED
    next_agent, for_creditor, previous_agent = _instructions(msg)
    sender, receiver = msg.sender_bic or "", msg.receiver_bic or ""
    debtor_bic = _agent_bic(msg, "52", lost, "52a ordering institution") or sender
    creditor_field = msg.field("58")
    creditor_bic = _agent_bic(msg, "58", lost, "58a beneficiary institution")
    creditor_account = read_party(creditor_field.tag, creditor_field.text).account if creditor_field else None
    creditor_agent = _agent_bic(msg, "57", lost, "57a account with institution")
    intermediary = _agent_bic(msg, "56", lost, "56a intermediary")
    if creditor_bic is None:
        raise PaymentFormatError(
            "58a must identify the beneficiary institution by BIC (option A) for pacs.009",
            location="block 4 :58a:",
            code=CONVERT_CODE,
        )
    _not_carried(msg, lost, {})  # block 3 user header fields
    time_request, time_indication = _time_indications(msg, when, lost)
    chain = _settlement_chain(msg, lost)
    transfer = mx.CreditTransfer(
        amount=amount,
        currency=ccy,
        settlement_date=when,
        instr_id=ref,
        tx_id=ref,
        end_to_end_id=related,
        uetr=msg.uetr,
        debtor=mx.PartySpec(bic=debtor_bic),
        creditor=mx.PartySpec(
            bic=creditor_bic,
            agent_bic=creditor_agent,
            iban=_iban_or_none(creditor_account),
            account_id=None if _iban_or_none(creditor_account) else creditor_account,
        ),
        intermediary_agents=(mx.PartySpec(agent_bic=intermediary),) if intermediary else (),
        instructions_for_next_agent=next_agent,
        instructions_for_creditor_agent=for_creditor,
        settlement_time_request=time_request,
        settlement_time_indication=time_indication,
    )
    out = mx.build_pacs009(
        [transfer],
        instructing_agent_bic=sender,
        instructed_agent_bic=receiver,
        settlement_method=_settlement_method(chain),
        settlement_date=when,
        msg_id=ref,
    )
    text = _enrich(out, chain, previous_agent)  # the tree is updated in place
    if seq_b:
        text = _with_underlying(out, seq_b, debtor_bic, creditor_bic, lost)
    return ConversionResult(text, out.message_type, lost.items)


def _mt940_to_camt053(msg: Message) -> ConversionResult:
    lost = _Lost()
    opening = read_balance((msg.field("60") or Field("60F", "")).text)
    closing_field = msg.field("62")
    closing = read_balance((closing_field or Field("62F", "")).text)
    if opening is None or closing is None or opening.date is None or closing.date is None:
        raise PaymentFormatError("the statement's balances cannot be read", code=CONVERT_CODE)
    account = _text_of(msg, "25") or NOT_PROVIDED
    entries = tuple(_camt_entry(f, msg, i, lost) for i, f in enumerate(msg.fields) if f.tag == "61")
    # 28C statement number / sequence number: the number is ElctrncSeqNb, the sequence number the
    # page (StmtPgntn/PgNb, kept as written), and 62F (final) or 62M (intermediate) says whether
    # it is the last page (LastPgInd).
    number, _, page = (_text_of(msg, "28C") or "1").partition("/")
    available_text = _text_of(msg, "64")
    available = read_balance(available_text) if available_text is not None else None
    if available_text is not None and (available is None or available.date is None):
        raise PaymentFormatError("field 64 cannot be read", location="block 4 :64:", code=CONVERT_CODE)
    _not_carried(
        msg,
        lost,
        {
            "65": "65 forward available balance is not carried",
            "21": "21 related reference is not carried",
            "13D": "13D date/time indication is not carried",
        },
    )
    if msg.receiver_bic:
        lost.add(
            "block 2",
            f"the receiver {msg.receiver_bic} is not carried: camt.053 names the account "
            "servicer only (a business application header routes it)",
        )
    last = msg.fields[-1]
    if last.tag == "86":
        lost.add("block 4 :86:", "statement-level information to account owner (last 86) is not carried")
    spec = mx.StatementSpec(
        id=_text_of(msg, "20") or NOT_PROVIDED,
        account_iban=account if _is_iban(account) else None,
        account_id=None if _is_iban(account) else account,
        currency=opening.currency,
        opening_balance=opening.amount,
        opening_credit=opening.mark == "C",
        opening_date=opening.date,
        closing_date=closing.date,
        entries=entries,
        servicer_bic=msg.sender_bic,
        sequence_number=int(number) if number.isascii() and number.isdigit() else None,
        page_number=page or None,
        last_page=closing_field is None or closing_field.tag != "62M",
        available_balance=available.amount if available is not None else None,
        available_credit=available.mark == "C" if available is not None else True,
        available_date=available.date if available is not None else None,
    )
    out = mx.build_camt053([spec], msg_id=_text_of(msg, "20"))
    computed = next(b for b in out.statements()[0].balances if b.type_code == "CLBD")
    signed = computed.amount if computed.credit_debit == "CRDT" else -(computed.amount or Decimal(0))
    if signed != closing.signed:
        lost.add(
            "block 4 :62a:",
            f"the MT closing balance {closing.signed} differs from opening + entries "
            f"({signed}); camt.053 CLBD carries the computed value",
        )
    return ConversionResult(out.to_string(), out.message_type, lost.items)


def _camt_entry(f: Field, msg: Message, index: int, lost: _Lost) -> mx.StatementEntrySpec:
    line = read_61(f.text)
    if line is None or line.value_date is None:
        raise PaymentFormatError("a statement line cannot be read", location="block 4 :61:", code=CONVERT_CODE)
    booking = line.value_date
    if line.entry_date:
        booking = _entry_date(line.value_date, line.entry_date)
    fields = msg.fields
    info = fields[index + 1].text if index + 1 < len(fields) and fields[index + 1].tag == "86" else None
    if line.funds_code:
        lost.add(f"block 4 :61: {line.value_date_text}", f"funds code {line.funds_code} is not carried")
    if line.details:
        lost.add(f"block 4 :61: {line.value_date_text}", "supplementary details of field 61 are not carried")
    reference = None if line.customer_reference == NONREF else line.customer_reference
    return mx.StatementEntrySpec(
        amount=line.amount,
        credit=line.is_credit,
        reversal=line.mark in ("RC", "RD"),
        booking_date=booking,
        value_date=line.value_date,
        account_servicer_ref=line.bank_reference,
        bank_tx_code=line.transaction_type,
        end_to_end_id=reference,
        additional_info=" ".join(info.split("\n")) if info else None,
    )


def _entry_date(value_date: date, mmdd: str) -> date:
    """The entry date (MMDD) in the year that puts it nearest the value date."""
    candidates = []
    for year in (value_date.year - 1, value_date.year, value_date.year + 1):
        try:
            candidates.append(date(year, int(mmdd[:2]), int(mmdd[2:])))
        except ValueError:
            continue
    return min(candidates, key=lambda d: abs((d - value_date).days)) if candidates else value_date


# ==== MX -> MT ===================================================================================
def _one_tx(msg: mx.Iso20022Message) -> mx.Transaction:
    txs = msg.transactions()
    if len(txs) != 1:
        raise PaymentFormatError(
            f"{msg.message_type} holds {len(txs)} transactions; the MT carries exactly one "
            "(CBPR+ allows one per message)",
            code=CONVERT_CODE,
        )
    return txs[0]


def _mt_ref(value: str | None, where: str, lost: _Lost, default: str = NONREF) -> str:
    """An MX identifier as an MT reference (16x, X set, no leading/trailing or double slash)."""
    if not value or value == NOT_PROVIDED:
        return default
    ref = "".join(ch if mt_fields.is_x_text(ch) else "." for ch in value).strip("/").replace("//", "/")
    if ref != value or len(ref) > MT_REF_CHARS:
        lost.add(
            where, f"identifier {value!r} does not fit the MT reference format (16x); sent as {ref[:MT_REF_CHARS]!r}"
        )
    return ref[:MT_REF_CHARS] or default


def _x_text(value: str) -> str:
    return "".join(ch if mt_fields.is_x_text(ch) else "." for ch in value)


def _sender_receiver(msg: mx.Iso20022Message, tx: mx.Transaction | None) -> tuple[str | None, str | None]:
    header = msg.app_header()
    group = msg.group_header()
    sender = (tx.instructing_agent.bic if tx else None) or (group.instructing_agent.bic if group else None)
    receiver = (tx.instructed_agent.bic if tx else None) or (group.instructed_agent.bic if group else None)
    if header is not None:
        sender = sender or header.from_bic
        receiver = receiver or header.to_bic
    return sender, receiver


def _amount_text(amount: Decimal | None, ccy: str | None, where: str) -> tuple[str, Decimal]:
    if amount is None or not ccy:
        raise PaymentFormatError("the amount or its currency is missing", location=where, code=CONVERT_CODE)
    return ccy, amount


def _wrap(text: str, width: int = 35) -> list[str]:
    """Text as SWIFT lines of `width` (X set): no continuation line may start with '-' or ':', so such a
    line gets a leading space instead (nothing is dropped)."""
    clean = _x_text(" ".join(text.split()))
    lines: list[str] = []
    pos = 0
    while pos < len(clean):
        chunk = clean[pos : pos + width]
        if lines and chunk[0] in "-:":
            chunk = " " + clean[pos : pos + width - 1]
        lines.append(chunk)
        pos += len(chunk) - (1 if chunk[0] == " " and clean[pos] != " " else 0)
    return lines or [NOT_PROVIDED]


def _customer_party(p: mx.Party, lost: _Lost, where: str, letter_tag: str) -> tuple[str, str]:
    """(tag, value) of a 50a/59a customer field for an MX party: option A for a BIC-only party, option F
    when the country is known (so it is carried as 3/CC/town), otherwise option K / no letter."""
    account = p.iban or p.account_id
    acct_line = [f"/{_x_text(account)[:34]}"] if account else []
    if not p.name and p.bic:
        return letter_tag + "A", "\n".join(acct_line + [p.bic])
    if p.bic and p.name:
        lost.add(where, f"party identifier BIC {p.bic} is not carried in a name-and-address option")
    if p.country and (acct_line or letter_tag == "59"):
        return letter_tag + "F", "\n".join(acct_line + _structured_lines(p, lost, where))
    lines = _wrap(p.name or NOT_PROVIDED) + [ln for a in p.address_lines for ln in _wrap(a)]
    if p.country:
        lost.add(where, f"country {p.country} is not carried: option F needs an account for 50a")
    if len(lines) > 4:
        lost.add(where, f"name and address beyond 4 lines of 35 characters are cut: {' '.join(lines[4:])[:60]!r}")
    tag = "50K" if letter_tag == "50" else "59"
    return tag, "\n".join(acct_line + lines[:4])


def _structured_lines(p: mx.Party, lost: _Lost, where: str) -> list[str]:
    """50F/59F numbered lines: 1/ name, 2/ address, 3/ country code and town (the last address line)."""
    address = list(p.address_lines)
    town = address.pop() if address else ""
    lines = [f"1/{chunk}" for chunk in _wrap(p.name or NOT_PROVIDED, 33)]
    lines += [f"2/{chunk}" for a in address for chunk in _wrap(a, 33)]
    lines.append(f"3/{p.country}/{_x_text(town)}"[:35] if town else f"3/{p.country}")
    if len(lines) > 4:
        lost.add(where, f"name and address beyond 4 numbered lines are cut: {' '.join(lines[3:-1])[:60]!r}")
        lines = lines[:3] + lines[-1:]
    return lines


def _instruction_lines(tx_el: object, msg: mx.Iso20022Message, path: str) -> list[str]:
    r = msg.r
    return [x.text.strip() for x in r.all(tx_el, path) if x.text]


def _all_instructions(msg: mx.Iso20022Message, tx_el: etree._Element) -> list[str]:
    return _instruction_lines(tx_el, msg, "InstrForNxtAgt/InstrInf") + _instruction_lines(
        tx_el, msg, "InstrForCdtrAgt/InstrInf"
    )


def _previous_agent_lines(msg: mx.Iso20022Message, tx_el: etree._Element) -> list[str]:
    """PrvsInstgAgt1 back as the /INS/ line of field 72 (CBPR+)."""
    bic = msg.r.t(tx_el, "PrvsInstgAgt1/FinInstnId/BICFI")
    return [f"/INS/{bic}"] if bic else []


def _correspondent_fields(msg: mx.Iso20022Message, numbers: Sequence[str], lost: _Lost) -> list[tuple[str, str]]:
    """GrpHdr/SttlmInf back as 53a/54a/55a: reimbursement agents as option A, SttlmAcct as 53B."""
    r = msg.r
    sttlm = r.f(msg.body, "GrpHdr/SttlmInf")
    if sttlm is None:
        return []
    out: list[tuple[str, str]] = []
    for number, element in _REIMBURSEMENT:
        bic = r.t(sttlm, element + "/FinInstnId/BICFI", element + "/FinInstnId/BIC")
        if not bic:
            continue
        if number not in numbers:
            lost.add(f"GrpHdr/SttlmInf/{element}", f"{element} {bic} has no field in this MT")
            continue
        account = r.t(sttlm, element + "Acct/Id/IBAN", element + "Acct/Id/Othr/Id")
        out.append((number + "A", (f"/{_x_text(account)[:34]}\n" if account else "") + bic))
    settlement_account = r.t(sttlm, "SttlmAcct/Id/IBAN", "SttlmAcct/Id/Othr/Id")
    if settlement_account:
        if out and out[0][0] == "53A":
            lost.add("GrpHdr/SttlmInf/SttlmAcct", "the settlement account is not carried next to 53A")
        else:
            out.insert(0, ("53B", f"/{_x_text(settlement_account)[:34]}"))
    return out


def _line72(items: Sequence[str], lost: _Lost) -> str | None:
    lines: list[str] = []
    for item in items:
        text = _x_text(item)
        if not text.startswith("/"):
            text = "/INS/" + text if len(text) <= 30 else "//" + text
        lines.append(text[:35])
        rest = text[35:]
        while rest:
            lines.append(("//" + rest)[:35])
            rest = rest[33:]
    if len(lines) > 6:
        lost.add("InstrForNxtAgt", "instructions beyond 6 lines of field 72 are cut")
    return "\n".join(lines[:6]) or None


def _pacs008_to_mt103(msg: mx.Iso20022Message) -> ConversionResult:
    lost = _Lost()
    tx, tx_el, sender, receiver = _mx_payment_head(msg, "pacs.008")
    field_32a, ccy, amount = _field_32a(tx)
    fields: list[tuple[str, str]] = [
        ("20", _mt_ref(tx.instr_id or tx.tx_id, "PmtId/InstrId", lost)),
        *_13c_fields(tx, lost),
        ("23B", "CRED"),
        *(("23E", code) for code in _instruction_codes(tx)),
        ("32A", field_32a),
    ]
    charges = _charges(msg, tx_el, sender, receiver)
    # 33B is mandatory with charges (C15) and between two EU/EEA banks (C2); it is then the instructed
    # amount, or the settlement amount when the pacs.008 gives no other.
    eu_pair = sender[4:6] in rules.EU_EEA_COUNTRIES and receiver[4:6] in rules.EU_EEA_COUNTRIES
    if tx.instructed_amount is not None or charges[0] or charges[1] or eu_pair:
        ins_ccy = tx.instructed_currency or ccy
        fields.append(("33B", f"{ins_ccy}{swift_amount_text(tx.instructed_amount or amount)}"))
    rate = msg.r.t(tx_el, "XchgRate")
    if rate and (tx.instructed_currency or ccy) != ccy:
        fields.append(("36", swift_amount_text(Decimal(rate))))
    fields.append(_customer_party(tx.debtor, lost, "Dbtr", "50"))
    if tx.debtor_agent.bic and not _same_bic(tx.debtor_agent.bic, sender):
        fields.append(("52A", tx.debtor_agent.bic))
    fields.extend(_correspondent_fields(msg, ("53", "54", "55"), lost))
    if tx.intermediary_agents and tx.intermediary_agents[0].bic:
        fields.append(("56A", tx.intermediary_agents[0].bic))
    if len(tx.intermediary_agents) > 1:
        lost.add("IntrmyAgt2", "only the first intermediary agent fits MT103 field 56a")
    if tx.creditor_agent.bic and (not _same_bic(tx.creditor_agent.bic, receiver) or tx.intermediary_agents):
        fields.append(("57A", tx.creditor_agent.bic))
    fields.append(_customer_party(tx.creditor, lost, "Cdtr", "59"))
    remittance = _mt103_remittance(tx, lost)
    if remittance:
        fields.append(("70", remittance))
    fields.append(("71A", CHARGES_TO_MT.get(tx.charge_bearer or "", "SHA")))
    if tx.charge_bearer == "SLEV":
        lost.add("ChrgBr", "charge bearer SLEV has no MT103 code; sent as 71A SHA")
    fields.extend(("71F", c) for c in charges[0])
    fields.extend(("71G", c) for c in charges[1][:1])
    line72 = _line72(_previous_agent_lines(msg, tx_el) + _all_instructions(msg, tx_el), lost)
    if line72:
        fields.append(("72", line72))
    fields.extend(_77b_field(tx, lost))
    _mx_not_carried(tx, lost)
    out = swift.assemble("103", sender, receiver, fields, [("121", tx.uetr or swift.new_uetr())])
    return ConversionResult(out.to_string(), "MT103", lost.items)


def _mx_payment_head(msg: mx.Iso20022Message, family: str) -> tuple[mx.Transaction, etree._Element, str, str]:
    """The one transaction of a pacs.008/.009, its element and the MT header's sender and receiver
    (the instructing/instructed agents)."""
    tx = _one_tx(msg)
    tx_el = msg.transaction_elements()[0]
    sender, receiver = _sender_receiver(msg, tx)
    if not sender or not receiver:
        raise PaymentFormatError(
            f"{family} names no instructing/instructed agent BIC for the MT header", code=CONVERT_CODE
        )
    return tx, tx_el, sender, receiver


def _field_32a(tx: mx.Transaction) -> tuple[str, str, Decimal]:
    """Field 32A (value date, currency, settled amount) with its currency and amount."""
    ccy, amount = _amount_text(tx.amount, tx.currency, "IntrBkSttlmAmt")
    when = date.fromisoformat(tx.settlement_date) if tx.settlement_date else None
    return f"{_yymmdd(when)}{ccy}{swift_amount_text(amount)}", ccy, amount


def _same_bic(a: str | None, b: str | None) -> bool:
    """BICs name the same institution: an 8-character BIC is its head office, branch XXX."""
    if not a or not b:
        return False
    return (a + "XXX")[:11] == (b + "XXX")[:11]


def _yymmdd(when: date | None) -> str:
    if when is None:
        raise PaymentFormatError(
            "the interbank settlement date is missing", location="IntrBkSttlmDt", code=CONVERT_CODE
        )
    return when.strftime("%y%m%d")


def _charges(msg: mx.Iso20022Message, tx_el: object, sender: str, receiver: str) -> tuple[list[str], list[str]]:
    """ChrgsInf as (71F sender's charges, 71G receiver's charges): an amount taken by the instructed agent
    under ChrgBr DEBT is the receiver's charge (71G); every other one is a sender's charge (71F)."""
    r = msg.r
    f_items: list[str] = []
    g_items: list[str] = []
    bearer = r.t(tx_el, "ChrgBr")
    for chg in r.all(tx_el, "ChrgsInf"):
        amt = r.f(chg, "Amt")
        if amt is None or amt.text is None:
            continue
        text = f"{amt.get('Ccy')}{swift_amount_text(Decimal(amt.text))}"
        agent = r.t(chg, "Agt/FinInstnId/BICFI")
        (g_items if bearer == "DEBT" and agent == receiver else f_items).append(text)
    return f_items, g_items


def _mt103_remittance(tx: mx.Transaction, lost: _Lost) -> str | None:
    lines: list[str] = []
    if tx.end_to_end_id and tx.end_to_end_id != NOT_PROVIDED:
        roc = f"/ROC/{_x_text(tx.end_to_end_id)}"
        if len(roc) > 35 or roc[5:] != tx.end_to_end_id:
            lost.add(
                "PmtId/EndToEndId",
                f"end-to-end id {tx.end_to_end_id!r} does not fit field 70 /ROC/ "
                f"(35 characters, X set); sent as {roc[5:35]!r}",
            )
        lines.append(roc[:35])
    text = " ".join(tx.remittance)
    if tx.structured_reference:
        text = (text + " " if text else "") + f"/RFB/{tx.structured_reference}"
    lines.extend(_wrap(text) if text else [])
    if len(lines) > 4:
        lost.add(
            "RmtInf", f"remittance information beyond 4 lines of 35 characters is cut: {' '.join(lines[4:])[:60]!r}"
        )
    return "\n".join(lines[:4]) or None


def _instruction_codes(tx: mx.Transaction) -> list[str]:
    """Service level SDVA and category purposes INTC/CORT back as 23E codes (in the MT's code order)."""
    codes = [tx.service_level, tx.category_purpose]
    return [c for c in codes if c is not None and (c in SERVICE_LEVEL_23E or c in CATEGORY_PURPOSE_23E)]


def _mx_not_carried(tx: mx.Transaction, lost: _Lost) -> None:
    checks = [
        (tx.ultimate_debtor.name, "UltmtDbtr", "ultimate debtor"),
        (tx.ultimate_creditor.name, "UltmtCdtr", "ultimate creditor"),
        (tx.purpose, "Purp", "purpose code"),
        (None if tx.service_level in SERVICE_LEVEL_23E else tx.service_level, "PmtTpInf/SvcLvl", "service level"),
        (
            None if tx.category_purpose in CATEGORY_PURPOSE_23E else tx.category_purpose,
            "PmtTpInf/CtgyPurp",
            "category purpose",
        ),
        (tx.local_instrument, "PmtTpInf/LclInstrm", "local instrument"),
        (tx.debtor.lei, "Dbtr/Id/OrgId/LEI", "debtor LEI"),
        (tx.creditor.lei, "Cdtr/Id/OrgId/LEI", "creditor LEI"),
    ]
    for value, where, what in checks:
        if value:
            lost.add(where, f"{what} ({value}) has no MT field in this mapping")
    if tx.end_to_end_id and tx.end_to_end_id != NOT_PROVIDED and tx.tx_id and tx.tx_id != tx.instr_id:
        lost.add("PmtId/TxId", f"transaction id {tx.tx_id!r} is not carried (field 20 carries the InstrId)")


def _pacs009_to_mt202(msg: mx.Iso20022Message) -> ConversionResult:
    lost = _Lost()
    tx, tx_el, sender, receiver = _mx_payment_head(msg, "pacs.009")
    field_32a, _, _ = _field_32a(tx)
    fields: list[tuple[str, str]] = [
        ("20", _mt_ref(tx.instr_id or tx.tx_id, "PmtId/InstrId", lost)),
        ("21", _mt_ref(tx.end_to_end_id, "PmtId/EndToEndId", lost)),
        *_13c_fields(tx, lost),
        ("32A", field_32a),
    ]
    if tx.debtor.bic and not _same_bic(tx.debtor.bic, sender):
        fields.append(("52A", tx.debtor.bic))
    fields.extend(_correspondent_fields(msg, ("53", "54"), lost))
    if tx.intermediary_agents and tx.intermediary_agents[0].bic:
        fields.append(("56A", tx.intermediary_agents[0].bic))
    if tx.creditor_agent.bic and (not _same_bic(tx.creditor_agent.bic, tx.creditor.bic) or tx.intermediary_agents):
        fields.append(("57A", tx.creditor_agent.bic))
    if not tx.creditor.bic:
        raise PaymentFormatError("pacs.009 creditor has no BIC for field 58A", location="Cdtr", code=CONVERT_CODE)
    account = tx.creditor.iban or tx.creditor.account_id
    fields.append(("58A", (f"/{_x_text(account)[:34]}\n" if account else "") + tx.creditor.bic))
    line72 = _line72(_previous_agent_lines(msg, tx_el) + _all_instructions(msg, tx_el), lost)
    if line72:
        fields.append(("72", line72))
    if tx.debtor.name and not tx.debtor.bic:
        lost.add("Dbtr", "debtor institution without BIC is not carried")
    underlying = msg.r.f(tx_el, "UndrlygCstmrCdtTrf")
    header = [("121", tx.uetr or swift.new_uetr())]
    if underlying is not None:
        fields.extend(_seq_b_fields(msg, underlying, tx, lost))
        header.insert(0, ("119", "COV"))
    out = swift.assemble("202", sender, receiver, fields, header)
    return ConversionResult(out.to_string(), "MT202 COV" if underlying is not None else "MT202", lost.items)


# ---- MT202 COV <-> pacs.009 COV (UndrlygCstmrCdtTrf) ----------------------------------------------
def _split_cov(msg: Message) -> tuple[Message, list[Field]]:
    """An MT202 as (sequence A as a message of its own, sequence B fields; empty unless COV)."""
    fields = msg.fields
    start = next((i for i, f in enumerate(fields) if f.number == "50"), len(fields))
    if start == len(fields):
        return msg, []
    head = [b for b in msg.blocks if b.name != "4"]
    return Message(blocks=[*head, Block("4", fields=fields[:start])]), fields[start:]


def _with_underlying(
    out: mx.Iso20022Message, seq_b: list[Field], debtor_bic: str, creditor_bic: str, lost: _Lost
) -> str:
    """The pacs.009 with MT202 COV sequence B as UndrlygCstmrCdtTrf (pacs.009 COV), re-validated."""
    q = f"{{{out.namespace}}}"
    tx = out.transaction_elements()[0]
    und = etree.SubElement(tx, q + "UndrlygCstmrCdtTrf")  # last child: the builder writes no SplmtryData
    by_number = {f.number: f for f in seq_b}
    _xml_party(und, q, "Dbtr", by_number.get("50"))
    agent_52 = by_number.get("52")
    _xml_agent(und, q, "DbtrAgt", _seq_b_bic(agent_52, lost) or debtor_bic)
    if (f56 := _seq_b_bic(by_number.get("56"), lost)) is not None:
        _xml_agent(und, q, "IntrmyAgt1", f56)
    _xml_agent(und, q, "CdtrAgt", _seq_b_bic(by_number.get("57"), lost) or creditor_bic)
    _xml_party(und, q, "Cdtr", by_number.get("59"))
    f72 = by_number.get("72")
    for line in f72.text.split("\n") if f72 else []:
        etree.SubElement(etree.SubElement(und, q + "InstrForNxtAgt"), q + "InstrInf").text = line
    f70 = by_number.get("70")
    if f70 is not None:
        etree.SubElement(etree.SubElement(und, q + "RmtInf"), q + "Ustrd").text = " ".join(f70.lines)[:140]
    instructed = read_ccy_amount(by_number["33"].text) if "33" in by_number else None
    if instructed is not None:
        amount = etree.SubElement(und, q + "InstdAmt", Ccy=instructed[0])
        amount.text = str(amount_of(instructed[1]))
    return _valid_text(out, "the pacs.009 COV built from sequence B")


def _seq_b_bic(f: Field | None, lost: _Lost) -> str | None:
    if f is None:
        return None
    if f.option == "A":
        return read_party(f.tag, f.text).bic
    lost.add(f"block 4 sequence B :{f.tag}:", f"{f.tag} without a BIC is not carried in UndrlygCstmrCdtTrf")
    return None


def _xml_agent(parent: etree._Element, q: str, tag: str, bic: str) -> None:
    fin = etree.SubElement(etree.SubElement(parent, q + tag), q + "FinInstnId")
    etree.SubElement(fin, q + "BICFI").text = bic


def _xml_party(parent: etree._Element, q: str, tag: str, f: Field | None) -> None:
    """Dbtr/Cdtr (and their account) of the underlying transfer from 50a/59a."""
    spec = _mx_party(f, _Lost(), tag)
    node = etree.SubElement(parent, q + tag)
    if spec.name:
        etree.SubElement(node, q + "Nm").text = spec.name
    if spec.country or spec.address_lines:
        adr = etree.SubElement(node, q + "PstlAdr")
        if spec.country:
            etree.SubElement(adr, q + "Ctry").text = spec.country
        for line in spec.address_lines[:7]:
            etree.SubElement(adr, q + "AdrLine").text = line
    if spec.bic:
        org = etree.SubElement(etree.SubElement(node, q + "Id"), q + "OrgId")
        etree.SubElement(org, q + "AnyBIC").text = spec.bic
    if spec.iban or spec.account_id:
        acct_id = etree.SubElement(etree.SubElement(parent, q + tag + "Acct"), q + "Id")
        if spec.iban:
            etree.SubElement(acct_id, q + "IBAN").text = spec.iban
        else:
            etree.SubElement(etree.SubElement(acct_id, q + "Othr"), q + "Id").text = spec.account_id


def _seq_b_fields(
    msg: mx.Iso20022Message, und: etree._Element, tx: mx.Transaction, lost: _Lost
) -> list[tuple[str, str]]:
    """MT202 COV sequence B from a pacs.009 UndrlygCstmrCdtTrf."""
    r = msg.r
    fields = [_customer_party(_read_party(msg, und, "Dbtr"), lost, "UndrlygCstmrCdtTrf/Dbtr", "50")]
    debtor_agent = r.t(und, "DbtrAgt/FinInstnId/BICFI")
    if debtor_agent and not _same_bic(debtor_agent, tx.debtor.bic):
        fields.append(("52A", debtor_agent))
    intermediary = r.t(und, "IntrmyAgt1/FinInstnId/BICFI")
    if intermediary:
        fields.append(("56A", intermediary))
    creditor_agent = r.t(und, "CdtrAgt/FinInstnId/BICFI")
    if creditor_agent and (not _same_bic(creditor_agent, tx.creditor.bic) or intermediary):
        fields.append(("57A", creditor_agent))
    fields.append(_customer_party(_read_party(msg, und, "Cdtr"), lost, "UndrlygCstmrCdtTrf/Cdtr", "59"))
    remittance = " ".join(x.text.strip() for x in r.all(und, "RmtInf/Ustrd") if x.text)
    if remittance:
        lines = _wrap(remittance)
        if len(lines) > 4:
            lost.add("UndrlygCstmrCdtTrf/RmtInf", "remittance information beyond 4 lines of 35 characters is cut")
        fields.append(("70", "\n".join(lines[:4])))
    line72 = _line72([x.text.strip() for x in r.all(und, "InstrForNxtAgt/InstrInf") if x.text], lost)
    if line72:
        fields.append(("72", line72))
    instructed = r.f(und, "InstdAmt")
    if instructed is not None and instructed.text:
        fields.append(("33B", f"{instructed.get('Ccy')}{swift_amount_text(Decimal(instructed.text.strip()))}"))
    return fields


def _read_party(msg: mx.Iso20022Message, und: etree._Element, tag: str) -> mx.Party:
    r = msg.r
    el, acct = r.f(und, tag), r.f(und, tag + "Acct")
    return mx.Party(
        name=r.t(el, "Nm"),
        iban=r.t(acct, "Id/IBAN"),
        account_id=r.t(acct, "Id/Othr/Id"),
        bic=r.t(el, "Id/OrgId/AnyBIC"),
        country=r.t(el, "PstlAdr/Ctry"),
        address_lines=tuple(x.text.strip() for x in r.all(el, "PstlAdr/AdrLine") if x.text),
    )


def _camt053_to_mt940(msg: mx.Iso20022Message) -> ConversionResult:
    lost = _Lost()
    statements = msg.statements()
    if len(statements) != 1:
        raise PaymentFormatError(
            f"camt.053 holds {len(statements)} statements; MT940 carries one per message", code=CONVERT_CODE
        )
    st = statements[0]
    _one_currency(st)
    opening_tag, opening = _opening_balance(st)
    closing_tag, closing = _closing_balance(st)
    # Pagination: page N > 1 opens with an intermediate 60M, a page that is not the last closes
    # with 62M; the page number is 28C's sequence number, as written (up to 5 digits).
    page = st.page_number if st.page_number and st.page_number.isdigit() and len(st.page_number) <= 5 else None
    if st.page_number and page is None:
        lost.add("Stmt/StmtPgntn/PgNb", f"page number {st.page_number[:10]!r} does not fit 28C (5n)")
    if opening_tag == "60F" and page is not None and int(page) > 1:
        opening_tag = "60M"
    if closing_tag == "62F" and st.last_page is False:
        closing_tag = "62M"
    currency = opening[2]
    fields: list[tuple[str, str]] = [
        ("20", _mt_ref(st.id, "Stmt/Id", lost)),
        ("25", _x_text(st.account.account or NOT_PROVIDED)[:35]),
        ("28C", f"{int(st.sequence_number or 1):05d}"[-5:] + (f"/{page}" if page else "")),
        (opening_tag, _mt_balance(*opening)),
    ]
    for b in st.balances:
        if b.type_code not in ("OPBD", "PRCD", "ITBD", "CLBD", "CLAV"):
            lost.add("Stmt/Bal", f"balance {b.type_code} has no MT940 field")
    for i, e in enumerate(st.entries):
        fields.extend(_mt_entry(e, i, currency, lost))
    fields.append((closing_tag, _mt_balance(*closing)))
    available = [b for b in st.balances if b.type_code == "CLAV"]
    if available:
        fields.append(("64", _mt_balance(*_balance_tuple(available[0]))))
    sender, receiver = _sender_receiver(msg, None)
    sender = sender or st.account.bic
    if sender and receiver:
        out = swift.assemble("940", sender, receiver, fields)
        return ConversionResult(out.to_string(), "MT940", lost.items)
    lost.add(
        "AppHdr",
        "no sender and receiver BIC (business application header) for the FIN header: the "
        "statement is written as a bank-export text block without blocks 1 and 2",
    )
    text = "".join(f":{tag}:{value.replace(chr(10), chr(13) + chr(10))}\r\n" for tag, value in fields) + "-\r\n"
    report = swift.validate(text)
    if not report.valid:
        raise PaymentFormatError(
            f"the converted MT940 is not valid: {report.errors[0].message}",
            location=report.errors[0].location,
            code=CONVERT_CODE,
        )
    return ConversionResult(text, "MT940", lost.items)


_Bal = tuple[str, date, str, Decimal]


def _balance_tuple(b: mx.Balance) -> _Bal:
    if b.amount is None or not b.currency or not b.date:
        raise PaymentFormatError(
            f"balance {b.type_code} has no amount, currency or date", location="Stmt/Bal", code=CONVERT_CODE
        )
    return ("D" if b.credit_debit == "DBIT" else "C"), date.fromisoformat(b.date[:10]), b.currency, b.amount


def _opening_balance(st: mx.Statement) -> tuple[str, _Bal]:
    """60F from OPBD (or PRCD, the previous closing); 60M from an interim ITBD (a continued statement)."""
    for b in st.balances:
        if b.type_code in ("OPBD", "PRCD"):
            return "60F", _balance_tuple(b)
    interim = [b for b in st.balances if b.type_code == "ITBD"]
    if interim:
        return "60M", _balance_tuple(interim[0])
    raise PaymentFormatError(
        "the statement has no opening balance (OPBD, PRCD or ITBD)", location="Stmt/Bal", code=CONVERT_CODE
    )


def _closing_balance(st: mx.Statement) -> tuple[str, _Bal]:
    """62F from CLBD; 62M from the last interim ITBD when the statement continues on another page."""
    for b in st.balances:
        if b.type_code == "CLBD":
            return "62F", _balance_tuple(b)
    interim = [b for b in st.balances if b.type_code == "ITBD"]
    if len(interim) >= 2:
        return "62M", _balance_tuple(interim[-1])
    raise PaymentFormatError(
        "the statement has no closing booked balance (CLBD or a second ITBD)", location="Stmt/Bal", code=CONVERT_CODE
    )


def _one_currency(st: mx.Statement) -> None:
    """MT940 states one currency for all balances (C27) and entries; refuse a camt.053 that mixes them."""
    currency = st.account_currency or next((b.currency for b in st.balances if b.currency), None)
    for i, b in enumerate(st.balances, start=1):
        if b.currency and currency and b.currency != currency:
            raise PaymentFormatError(
                f"balance {b.type_code} is in {b.currency}, the statement in {currency}: an "
                "MT940 carries one currency (C27)",
                location=f"Stmt/Bal[{i}]/Amt/@Ccy",
                code=CONVERT_CODE,
            )


def _mt_balance(mark: str, when: date, currency: str, amount: Decimal) -> str:
    return f"{mark}{when.strftime('%y%m%d')}{currency}{swift_amount_text(amount)}"


def _mt_entry(e: mx.Entry, index: int, currency: str, lost: _Lost) -> list[tuple[str, str]]:
    where = f"Stmt/Ntry[{index + 1}]"
    if e.amount is None or not e.value_date and not e.booking_date:
        raise PaymentFormatError("an entry has no amount or date", location=where, code=CONVERT_CODE)
    if e.currency and e.currency != currency:
        raise PaymentFormatError("an entry's currency differs from the statement's", location=where, code=CONVERT_CODE)
    value_date = date.fromisoformat((e.value_date or e.booking_date or "")[:10])
    booking = date.fromisoformat((e.booking_date or e.value_date or "")[:10])
    credit = e.credit_debit == "CRDT"
    mark = ("RD" if credit else "RC") if e.reversal else ("C" if credit else "D")
    code = e.bank_tx_code if e.bank_tx_code and len(e.bank_tx_code) == 4 and e.bank_tx_code[0] in "SNF" else "NMSC"
    if e.bank_tx_code and code != e.bank_tx_code:
        lost.add(where + "/BkTxCd", f"bank transaction code {e.bank_tx_code} is not an MT code; sent as {code}")
    detail = e.details[0] if e.details else None
    reference = _mt_ref(detail.end_to_end_id if detail else None, where + "/NtryDtls", lost)
    value = f"{value_date.strftime('%y%m%d')}{booking.strftime('%m%d')}{mark}{swift_amount_text(e.amount)}"
    value += code + reference
    if e.account_servicer_ref:
        value += "//" + _mt_ref(e.account_servicer_ref, where + "/AcctSvcrRef", lost)
    out = [("61", value)]
    info = e.additional_info or (" ".join(detail.remittance) if detail else "")
    if info:
        lines = _wrap(info, 65)
        if len(lines) > 6:
            lost.add(where + "/AddtlNtryInf", "entry information beyond 6 lines of 65 characters is cut")
        out.append(("86", "\n".join(lines[:6])))
    return out


__all__ = ["TARGETS", "ConversionResult", "convert"]
