"""Business rules the XSD cannot express: counts and sums computed (never trusted), unique ids,
plausible dates, currency and decimals. Every issue is located by XPath and line."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from lxml import etree

from qenex.kernel.currencies import get_currency
from qenex.payments.common import ERRORS_PER_REPORT_MAX, ValidationReport
from qenex.payments.iso20022.identifiers import iban_checksum_ok
from qenex.payments.iso20022.model import TX_ELEMENTS, Iso20022Message, _dec
from qenex.payments.iso20022.xmlsafe import local, shown, where

# A requested execution / settlement date further than this after the message's creation is
# a typo (a wrong year), not a plan: banks accept warehoused payments up to about a year ahead.
EXECUTION_DATE_AHEAD_DAYS_MAX: Final = 366
# A message created further in the future than this (clock skew) is suspicious.
CREATION_AHEAD_DAYS_MAX: Final = 1
NOT_PROVIDED: Final = "NOTPROVIDED"
# A paginated statement or an intraday report (camt.052) summarises entries the message itself
# does not all carry, so a summary that disagrees with the entries present is only a warning.
_SUMMARY_SEVERITY: Final = "warning"

# Per family: where the amount of one transaction is (first match wins) and whether amounts are
# instructions (errors) or reports (warnings, statements may carry 5 decimals of a rate product).
_TX_AMOUNT_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "pain.001": ("Amt/InstdAmt", "Amt/EqvtAmt/Amt"),
    "pain.008": ("InstdAmt",),
    "pacs.003": ("IntrBkSttlmAmt",),
    "pacs.008": ("IntrBkSttlmAmt",),
    "pacs.009": ("IntrBkSttlmAmt",),
    "pacs.004": ("RtrdIntrBkSttlmAmt",),
    "pacs.010": ("IntrBkSttlmAmt",),
    "camt.056": ("OrgnlIntrBkSttlmAmt",),
}
_WITH_CCY: Final = etree.XPath(".//*[@Ccy]")  # compiled once: every amount carries its currency
_DATE_PATHS: Final = ("ReqdExctnDt/Dt", "ReqdExctnDt/DtTm", "ReqdExctnDt", "ReqdColltnDt", "IntrBkSttlmDt")
_UNIQUE_IDS: Final = (
    ("PmtInfId", "iso20022_duplicate_pmtinfid"),
    ("PmtId/InstrId", "iso20022_duplicate_instrid"),
    ("PmtId/EndToEndId", "iso20022_duplicate_endtoendid"),
    ("PmtId/TxId", "iso20022_duplicate_txid"),
    ("PmtId/UETR", "iso20022_duplicate_uetr"),
)


def check_business_rules(msg: Iso20022Message, report: ValidationReport) -> None:
    if msg.body is None:
        return
    txs = msg.transaction_elements()
    family = msg.family
    tree = _Tree(msg)
    _check_group_counts(msg, tree, txs, report)
    _check_payment_info_counts(msg, tree, report)
    _check_unique_ids(msg, tree, txs, report)
    _check_amounts(msg, report, instruction=family[:4] in ("pain", "pacs") or family == "camt.056")
    _check_dates(msg, tree, txs, report)
    if family in ("camt.052", "camt.053", "camt.054"):
        _check_statement_totals(msg, report)
    _check_ibans(msg, report)


_STEPS_CACHE_MAX: Final = 4096  # (namespace, path) pairs: paths are literals of this module
_STEPS: dict[tuple[str, str], tuple[str, ...]] = {}


class _Tree:
    """The reads of one business-rule pass: each element's children are grouped by tag once, so a
    path is a few dict look-ups. lxml's find() runs its ElementPath engine in Python (1-2 us a call)
    and the rules read some twenty paths per transaction. Same answers as find()/findall() on plain
    name paths; valid while the tree does not change, i.e. for the pass that creates it."""

    __slots__ = ("_prefix", "_kids")

    def __init__(self, msg: Iso20022Message) -> None:
        self._prefix = f"{{{msg.namespace}}}" if msg.namespace else ""
        self._kids: dict[etree._Element, dict[object, list[etree._Element]]] = {}

    def _children(self, el: etree._Element) -> dict[object, list[etree._Element]]:
        kids = self._kids.get(el)
        if kids is None:
            kids = {}
            for child in el:
                kids.setdefault(child.tag, []).append(child)
            self._kids[el] = kids
        return kids

    def _steps(self, path: str) -> tuple[str, ...]:
        key = (self._prefix, path)
        steps = _STEPS.get(key)
        if steps is None:
            steps = tuple(self._prefix + name for name in path.split("/"))
            if len(_STEPS) < _STEPS_CACHE_MAX:
                _STEPS[key] = steps
        return steps

    def _first(self, el: etree._Element, steps: tuple[str, ...], i: int) -> etree._Element | None:
        """The first match in document order (find()'s answer)."""
        matches = self._children(el).get(steps[i])
        if not matches:
            return None
        if i == len(steps) - 1:
            return matches[0]
        for child in matches:
            found = self._first(child, steps, i + 1)
            if found is not None:
                return found
        return None

    def _every(self, el: etree._Element, steps: tuple[str, ...], i: int, out: list[etree._Element]) -> None:
        """Every match in document order (findall()'s answer)."""
        matches = self._children(el).get(steps[i], ())
        if i == len(steps) - 1:
            out.extend(matches)
            return
        for child in matches:
            self._every(child, steps, i + 1, out)

    def f(self, el: etree._Element | None, path: str) -> etree._Element | None:
        return None if el is None else self._first(el, self._steps(path), 0)

    def all(self, el: etree._Element | None, path: str) -> list[etree._Element]:
        out: list[etree._Element] = []
        if el is not None:
            self._every(el, self._steps(path), 0, out)
        return out

    def t(self, el: etree._Element | None, path: str) -> str | None:
        found = self.f(el, path)
        return str(found.text).strip() if found is not None and found.text is not None else None


# Interbank credit transfers move money to and from the accounts they name: an IBAN whose check
# digits fail (ISO 13616 mod 97) cannot be booked, so there it is an error. Elsewhere a wrong IBAN
# may be what the message reports on (a pacs.002 rejecting it, a pacs.004 returning the payment,
# a statement) or a placeholder in a customer's draft: a warning (qenex.payments.sepa makes it an
# error for SEPA files).
IBAN_ERROR_FAMILIES: Final = frozenset({"pacs.008", "pacs.009"})


def _check_ibans(msg: Iso20022Message, report: ValidationReport) -> None:
    # The schema checks an IBAN's shape only; the check digits are checked here.
    severity = "error" if msg.family in IBAN_ERROR_FAMILIES else "warning"
    tag = f"{{{msg.namespace}}}IBAN" if msg.namespace else "IBAN"
    for el in msg.body.iter(tag):  # type: ignore[union-attr]
        if _full(report):
            return
        if not iban_checksum_ok((el.text or "").strip()):
            report.add("iban_invalid", "IBAN check digits are wrong (ISO 13616 mod 97)", where(el), severity)


def _full(report: ValidationReport) -> bool:
    """A full report drops further issues: stop locating them (XPath building costs per issue)."""
    return len(report.issues) >= ERRORS_PER_REPORT_MAX


def _tx_amount(msg: Iso20022Message, r: _Tree, tx: etree._Element) -> Decimal | None:
    for path in _TX_AMOUNT_PATHS.get(msg.family, ()):
        el = r.f(tx, path)
        if el is not None:
            return _dec(el.text)
    return None


def _count_and_sum(msg: Iso20022Message, r: _Tree, txs: Iterable[etree._Element]) -> tuple[int, Decimal, bool]:
    n, total, complete = 0, Decimal(0), True
    for tx in txs:
        n += 1
        amount = _tx_amount(msg, r, tx)
        if amount is None:
            complete = False
        else:
            total += amount
    return n, total, complete


def _compare_count_sum(
    msg: Iso20022Message,
    r: _Tree,
    holder: etree._Element,
    txs: list[etree._Element],
    report: ValidationReport,
    what: str,
) -> None:
    n, total, complete = _count_and_sum(msg, r, txs)
    nb_el = r.f(holder, "NbOfTxs")
    if nb_el is not None and (nb_el.text or "").strip() != str(n):
        report.add(
            "iso20022_nboftxs_mismatch",
            f"{what} NbOfTxs states {shown(nb_el.text)!r} but the message holds {n} transaction(s)",
            where(nb_el),
        )
    sum_el = r.f(holder, "CtrlSum")
    if sum_el is not None and complete and _family_has_amounts(msg):
        stated = _dec(sum_el.text)
        if stated is None or stated != total:
            report.add(
                "iso20022_ctrlsum_mismatch",
                f"{what} CtrlSum states {shown(sum_el.text)} but the amounts add up to {shown(total)}",
                where(sum_el),
            )


def _family_has_amounts(msg: Iso20022Message) -> bool:
    return msg.family in _TX_AMOUNT_PATHS


def _check_group_counts(msg: Iso20022Message, r: _Tree, txs: list[etree._Element], report: ValidationReport) -> None:
    body = msg.body
    holder = r.f(body, "GrpHdr")
    if msg.family == "camt.056":
        holder = r.f(body, "CtrlData")
    if holder is None:
        return
    if not _family_has_amounts(msg):
        return  # other families' counts (pain.013, camt.029, ...) count other things
    _compare_count_sum(msg, r, holder, txs, report, "group header")
    ttl = r.f(holder, "TtlIntrBkSttlmAmt")
    if ttl is None:
        ttl = r.f(holder, "TtlRtrdIntrBkSttlmAmt")
    if ttl is not None:
        _check_total_settlement(r, ttl, txs, report)


def _check_total_settlement(r: _Tree, ttl: etree._Element, txs: list[etree._Element], report: ValidationReport) -> None:
    stated, ccy = _dec(ttl.text), ttl.get("Ccy")
    total, currencies = Decimal(0), set()
    for tx in txs:
        el = r.f(tx, "IntrBkSttlmAmt")
        if el is None:
            el = r.f(tx, "RtrdIntrBkSttlmAmt")
        if el is None:
            return
        total += _dec(el.text) or Decimal(0)
        currencies.add(el.get("Ccy"))
    if currencies and currencies != {ccy}:
        report.add(
            "iso20022_total_currency_mismatch",
            f"total settlement amount is in {shown(ccy)} but transactions settle in "
            f"{shown(', '.join(sorted(map(str, currencies))))}",
            where(ttl),
        )
    elif stated != total:
        report.add(
            "iso20022_total_amount_mismatch",
            f"total settlement amount states {shown(ttl.text)} but the transactions add up to {shown(total)}",
            where(ttl),
        )


def _check_payment_info_counts(msg: Iso20022Message, r: _Tree, report: ValidationReport) -> None:
    for pmt in r.all(msg.body, "PmtInf"):
        if _full(report):
            return
        txs = [c for c in pmt if local(c.tag) in TX_ELEMENTS]
        pid = r.t(pmt, "PmtInfId") or "?"
        _compare_count_sum(msg, r, pmt, txs, report, f"payment information {pid!r}")


def _check_unique_ids(msg: Iso20022Message, r: _Tree, txs: list[etree._Element], report: ValidationReport) -> None:
    for path, code in _UNIQUE_IDS:
        holders = r.all(msg.body, "PmtInf") if path == "PmtInfId" else txs
        seen: dict[str, etree._Element] = {}
        for holder in holders:
            if _full(report):
                return
            el = r.f(holder, path)
            value = (el.text or "").strip() if el is not None else ""
            if not value or value.upper() == NOT_PROVIDED:
                continue
            if path.endswith("UETR"):
                value = value.lower()
            if value in seen:
                report.add(
                    code, f"{path.rsplit('/', 1)[-1]} {shown(value)!r} is not unique within the message", where(el)
                )
            else:
                seen[value] = el


def _check_amounts(msg: Iso20022Message, report: ValidationReport, *, instruction: bool) -> None:
    severity = "error" if instruction else "warning"
    for el in _WITH_CCY(msg.body):
        if _full(report):
            return
        ccy = el.get("Ccy") or ""
        currency = get_currency(ccy)
        if currency is None:
            report.add(
                "iso20022_unknown_currency", f"currency {ccy[:8]!r} is not an active ISO 4217 code", where(el), severity
            )
            continue
        amount = _dec(el.text)
        if amount is None:
            continue  # the XSD reports a malformed amount
        if _excess_decimals(amount, currency.minor_unit):
            report.add(
                "iso20022_amount_precision",
                f"amount {shown(amount)} has more decimals than {ccy} allows ({currency.minor_unit})",
                where(el),
                severity,
            )


def _excess_decimals(amount: Decimal, minor_unit: int) -> bool:
    """True when a nonzero digit lies beyond the currency's minor unit. Works on the digits
    themselves: quantize() would raise on amounts wider than the decimal context."""
    _sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        return False
    extra = -exponent - minor_unit
    return extra > 0 and any(digits[-extra:])


def _parse_dt(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _parse_d(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _check_dates(msg: Iso20022Message, r: _Tree, txs: list[etree._Element], report: ValidationReport) -> None:
    gh = r.f(msg.body, "GrpHdr")
    cre_el = r.f(gh, "CreDtTm")
    created = _parse_dt(cre_el.text if cre_el is not None else None)
    if created is None:
        return
    now = datetime.now(created.tzinfo) if created.tzinfo else datetime.now()
    if created - now > timedelta(days=CREATION_AHEAD_DAYS_MAX):
        report.add("iso20022_creation_in_future", f"CreDtTm {cre_el.text} lies in the future", where(cre_el), "warning")  # type: ignore[union-attr]
    holders = [gh, *r.all(msg.body, "PmtInf"), *txs]
    for holder in holders:
        if _full(report):
            return
        for path in _DATE_PATHS:
            el = r.f(holder, path)
            if el is None or len(el):
                continue
            when = _parse_d(el.text)
            if when is None:
                continue
            ahead = (when - created.date()).days
            if ahead > EXECUTION_DATE_AHEAD_DAYS_MAX:
                report.add(
                    "iso20022_implausible_date",
                    f"{local(el.tag)} {when} is {ahead} days after the message's creation"
                    f" (max {EXECUTION_DATE_AHEAD_DAYS_MAX})",
                    where(el),
                )
            elif ahead < 0:
                report.add(
                    "iso20022_date_before_creation",
                    f"{local(el.tag)} {when} is before the message's creation date {created.date()}",
                    where(el),
                    "warning",
                )


def _check_statement_totals(msg: Iso20022Message, report: ValidationReport) -> None:
    r = msg.r
    for st in msg.body:  # type: ignore[union-attr]
        if local(st.tag) not in ("Stmt", "Rpt", "Ntfctn"):
            continue
        entries = r.all(st, "Ntry")
        if local(st.tag) == "Stmt":
            _check_balance_continuity(msg, st, entries, report)
        summary = r.f(st, "TxsSummry")
        if summary is None:
            continue
        groups = (
            ("TtlNtries", entries),
            ("TtlCdtNtries", [e for e in entries if r.t(e, "CdtDbtInd") == "CRDT"]),
            ("TtlDbtNtries", [e for e in entries if r.t(e, "CdtDbtInd") == "DBIT"]),
        )
        for name, chosen in groups:
            holder = r.f(summary, name)
            if holder is None:
                continue
            nb = r.f(holder, "NbOfNtries")
            if nb is not None and (nb.text or "").strip() != str(len(chosen)):
                report.add(
                    "iso20022_nbofntries_mismatch",
                    f"{name}/NbOfNtries states {shown(nb.text)!r} but the statement holds {len(chosen)} such entries",
                    where(nb),
                    _SUMMARY_SEVERITY,
                )
            total_el = r.f(holder, "Sum")
            amounts = [_dec(r.t(e, "Amt")) for e in chosen]
            if total_el is not None and None not in amounts:
                total = sum((a for a in amounts if a is not None), Decimal(0))
                stated = _dec(total_el.text)
                if stated is not None and stated != total:
                    report.add(
                        "iso20022_entries_sum_mismatch",
                        f"{name}/Sum states {shown(stated)} but the entries add up to {shown(total)}",
                        where(total_el),
                        _SUMMARY_SEVERITY,
                    )


def _signed_amount(msg: Iso20022Message, el: etree._Element) -> Decimal | None:
    amount = _dec(msg.r.t(el, "Amt"))
    side = msg.r.t(el, "CdtDbtInd")
    if amount is None or side not in ("CRDT", "DBIT"):
        return None
    return amount if side == "CRDT" else -amount


def _check_balance_continuity(
    msg: Iso20022Message, st: etree._Element, entries: list[etree._Element], report: ValidationReport
) -> None:
    """Opening booked balance + booked entries = closing booked balance. A warning: a paginated
    statement carries only part of the entries, and banks differ on PRCD versus OPBD."""
    r = msg.r
    balances: dict[str, etree._Element] = {}
    for bal in r.all(st, "Bal"):
        code = r.t(bal, "Tp/CdOrPrtry/Cd")
        if code in ("OPBD", "PRCD", "CLBD") and code not in balances:
            balances[code] = bal
    opening_el = balances.get("OPBD", balances.get("PRCD"))
    closing_el = balances.get("CLBD")
    if opening_el is None or closing_el is None or r.f(msg.body, "GrpHdr/MsgPgntn") is not None:
        return
    opening, closing = _signed_amount(msg, opening_el), _signed_amount(msg, closing_el)
    # ISO 20022 usage: with RvslInd, CdtDbtInd already gives the reversal's own direction (a
    # reversed debit is booked CRDT), so every booked entry counts by its indicator.
    moves = [_signed_amount(msg, e) for e in entries if (r.t(e, "Sts/Cd", "Sts") or "BOOK") == "BOOK"]
    if opening is None or closing is None or None in moves:
        return
    total = opening + sum(m for m in moves if m is not None)
    if total != closing:
        report.add(
            "iso20022_balance_mismatch",
            f"opening balance {shown(opening)} plus booked entries gives {shown(total)},"
            f" but the closing booked balance is {shown(closing)}",
            where(closing_el),
            "warning",
        )
