"""Field semantics and network validated rules (the "C" rules of each MT).

Rule names follow the SWIFT Standards MT message reference guides; the SWIFT error code of each
rule is given in brackets in the message so an operator can find it in the handbook.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from qenex.payments.common import ValidationReport
from qenex.payments.swift import fields as fmt
from qenex.payments.swift.model import Field
from qenex.payments.swift.values import (
    amount_fits,
    amount_of,
    date_of,
    mmdd_ok,
    read_61,
    read_balance,
    read_ccy_amount,
)

Locator = Callable[[int], str]

BANK_OPERATION_CODES: Final = frozenset({"CRED", "CRTS", "SPAY", "SPRI", "SSTD"})
INSTRUCTION_CODES_103: Final = frozenset(
    {"CHQB", "CORT", "HOLD", "INTC", "PHOB", "PHOI", "PHON", "REPA", "SDVA", "TELB", "TELE", "TELI"}
)
INSTRUCTION_CODES_STP: Final = frozenset({"CORT", "INTC", "REPA", "SDVA"})
# 23E codes that may carry additional information after a slash (D97).
INSTRUCTION_CODES_WITH_INFO: Final = frozenset({"PHON", "PHOB", "PHOI", "TELE", "TELB", "TELI", "HOLD", "REPA"})
CHARGE_CODES: Final = frozenset({"BEN", "OUR", "SHA"})
# MT103 C2 (D49): countries of the EU/EEA payment area list in the MT103 reference guide.
EU_EEA_COUNTRIES: Final = frozenset(
    "AD AT BE BG BV CH CY CZ DE DK EE ES FI FR GB GF GI GP GR HU IE IS IT LI LT LU LV MC MQ MT NL NO PL PM PT "
    "RE RO SE SI SJ SK SM TF VA".split()
)
PARTY_ID_CODES_50F: Final = frozenset({"ARNU", "CCPT", "CUST", "DRLC", "EMPL", "NIDN", "SOSE", "TXID"})
_50F_ID = re.compile(r"(?:/.{1,34}|[A-Z]{4}/[A-Z]{2}/.{1,27})\Z")
_NUMBERED_LINE = re.compile(r"[1-8]/")
_TIME_OFFSET = re.compile(r"([0-9]{2})([0-9]{2})([+-])([0-9]{2})([0-9]{2})\Z")


# ---- single fields ------------------------------------------------------------------------------
def check_field(f: Field, report: ValidationReport, where: str) -> None:
    checker = _FIELD_CHECKS.get(f.tag)
    if checker is not None:
        checker(f.text, report, where)
    if f.tag in fmt.BIC_OPTIONS:
        bic = f.text.rsplit("\n", 1)[-1]
        problem = fmt.bic_problem(bic)
        if problem:
            report.add("mt_bic", problem, where)


def _reference(value: str, report: ValidationReport, where: str) -> None:
    if value.startswith("/") or value.endswith("/") or "//" in value:
        report.add("mt_reference", "a reference must not start or end with '/' nor contain '//' [T26]", where)


def _currency_amount(currency: str, amount: str, report: ValidationReport, where: str) -> None:
    problem = amount_fits(amount, currency)
    if problem:
        code = "mt_currency" if "ISO 4217" in problem else "mt_amount"
        report.add(code, problem + (" [T52]" if code == "mt_currency" else " [C03]"), where)


def _date(text: str, report: ValidationReport, where: str) -> None:
    if date_of(text) is None:
        report.add("mt_date", f"{text} is not a valid YYMMDD date [T50]", where)


def _check_32a(value: str, report: ValidationReport, where: str) -> None:
    _date(value[:6], report, where)
    _currency_amount(value[6:9], value[9:], report, where)


def _check_ccy_amount(value: str, report: ValidationReport, where: str) -> None:
    _currency_amount(value[:3], value[3:], report, where)


def _check_balance(value: str, report: ValidationReport, where: str) -> None:
    if value[0] not in "CD":
        report.add("mt_mark", "the debit/credit mark must be C or D [T51]", where)
    _date(value[1:7], report, where)
    _currency_amount(value[7:10], value[10:], report, where)


def _check_61(value: str, report: ValidationReport, where: str) -> None:
    line = read_61(value)
    if line is None:
        report.add(
            "mt_field_format",
            "field 61 does not split into date, mark (C, D, RC, RD), amount, type (S/N/F + 3 characters) and reference",
            where,
        )
        return
    vd = line.value_date
    if vd is None:
        report.add("mt_date", f"value date {line.value_date_text} is not a valid YYMMDD date [T50]", where)
    elif line.entry_date and not mmdd_ok(line.entry_date, vd.year):
        report.add("mt_date", f"entry date {line.entry_date} is not a valid MMDD date [T50]", where)
    if line.transaction_type[0] not in "SNF":
        report.add("mt_transaction_type", "the transaction type must start with S, N or F [T53]", where)


def _check_13c(value: str, report: ValidationReport, where: str) -> None:
    m = _TIME_OFFSET.match(value.rsplit("/", 1)[-1])
    if m is None or int(m[1]) > 23 or int(m[2]) > 59 or int(m[4]) > 13 or int(m[5]) > 59:
        report.add("mt_time", "time indication must be HHMM, a sign and a UTC offset HHMM [T38/T16]", where)


def _check_13d(value: str, report: ValidationReport, where: str) -> None:
    _date(value[:6], report, where)
    _check_13c(value[6:], report, where)


def _check_36(value: str, report: ValidationReport, where: str) -> None:
    if amount_of(value) == 0:
        report.add("mt_rate", "the exchange rate must not be zero [T43]", where)


def _check_50f(value: str, report: ValidationReport, where: str) -> None:
    lines = value.split("\n")
    first = lines[0]
    if _50F_ID.match(first) is None or (not first.startswith("/") and first[:4] not in PARTY_ID_CODES_50F):
        report.add("mt_party", "50F party identifier must be /account or CODE/CC/identifier [T55]", where)
    _numbered_lines(lines[1:], report, where)


def _check_59f(value: str, report: ValidationReport, where: str) -> None:
    lines = value.split("\n")
    _numbered_lines(lines[1:] if lines[0].startswith("/") else lines, report, where, allowed="123")


def _numbered_lines(lines: list[str], report: ValidationReport, where: str, allowed: str = "12345678") -> None:
    previous = "0"
    for line in lines:
        if _NUMBERED_LINE.match(line) is None or line[0] not in allowed:
            report.add(
                "mt_party",
                f"each name and address line must start with a line number {allowed[0]}-{allowed[-1]} and '/' [T56]",
                where,
            )
            return
        if line[0] < previous:
            report.add("mt_party", "name and address lines must be in ascending number order [T56]", where)
            return
        previous = line[0]
    if lines and lines[0][0] != "1":
        report.add("mt_party", "the first name and address line must be line 1 (name) [T56]", where)


_FIELD_CHECKS: Final[dict[str, Callable[[str, ValidationReport, str], None]]] = {
    "20": _reference,
    "21": _reference,
    "32A": _check_32a,
    "32B": _check_ccy_amount,
    "33B": _check_ccy_amount,
    "71F": _check_ccy_amount,
    "71G": _check_ccy_amount,
    "60F": _check_balance,
    "60M": _check_balance,
    "62F": _check_balance,
    "62M": _check_balance,
    "64": _check_balance,
    "65": _check_balance,
    "61": _check_61,
    "13C": _check_13c,
    "13D": _check_13d,
    "36": _check_36,
    "50F": _check_50f,
    "59F": _check_59f,
}


# Tags with a semantic check beyond their format (the validator skips the others quickly).
CHECKED_TAGS: Final = frozenset(_FIELD_CHECKS) | fmt.BIC_OPTIONS


# ---- network rules ------------------------------------------------------------------------------
def check(
    kind: str,
    fields: list[Field],
    report: ValidationReport,
    loc: Locator,
    sender: str | None = None,
    receiver: str | None = None,
) -> None:
    if kind in ("103", "103STP"):
        _mt103(kind, fields, report, loc, sender, receiver)
    elif kind in ("202", "202COV"):
        _mt202(kind, fields, report, loc)
    elif kind == "910":
        if not any(f.number in ("50", "52") for f in fields):
            report.add("mt_rule", "either field 50a or field 52a must be present [C1/C06]", loc(0))
    elif kind in ("940", "950", "942"):
        _statement(fields, report, loc)


def _index(fields: list[Field]) -> dict[str, int]:
    """First position of each tag and of each field number ("50" for 50K)."""
    out: dict[str, int] = {}
    for i, f in enumerate(fields):
        tag = f.tag
        if tag not in out:
            out[tag] = i
        if tag[:2] not in out:  # Field.number, inlined: this runs for every field of every message
            out[tag[:2]] = i
    return out


def _mt103(
    kind: str, fields: list[Field], report: ValidationReport, loc: Locator, sender: str | None, receiver: str | None
) -> None:
    at = _index(fields)
    value = {f.tag: f.text for f in reversed(fields)}  # first occurrence wins
    bank_op = value.get("23B", "")
    if bank_op not in BANK_OPERATION_CODES:
        report.add("mt_code", f"23B must be one of {', '.join(sorted(BANK_OPERATION_CODES))} [T36]", loc(at["23B"]))
    _mt103_amounts(fields, value, at, report, loc, sender, receiver)
    _mt103_instructions(kind, fields, bank_op, at, report, loc)
    _mt103_parties(bank_op, value, at, fields, report, loc)
    _mt103_charges(fields, value, at, report, loc)
    if kind == "103STP":
        _mt103_stp(fields, value, at, report, loc)


def _mt103_amounts(
    fields: list[Field],
    value: dict[str, str],
    at: dict[str, int],
    report: ValidationReport,
    loc: Locator,
    sender: str | None,
    receiver: str | None,
) -> None:
    settled_ccy = value.get("32A", "")[6:9]
    instructed = value.get("33B")
    if instructed is not None and instructed[:3] != settled_ccy:
        if "36" not in value:
            report.add(
                "mt_rule",
                "33B currency differs from 32A, so field 36 (exchange rate) is mandatory [C1/D75]",
                loc(at["33B"]),
            )
    elif "36" in value:
        report.add(
            "mt_rule",
            "field 36 is allowed only when 33B is present with a currency other than 32A's [C1/D75]",
            loc(at["36"]),
        )
    if (
        sender
        and receiver
        and "33B" not in value
        and sender[4:6] in EU_EEA_COUNTRIES
        and receiver[4:6] in EU_EEA_COUNTRIES
    ):
        report.add(
            "mt_rule",
            "sender and receiver are both in the EU/EEA country list, so 33B is mandatory [C2/D49]",
            loc(at.get("32A", 0)),
        )
    if ("71F" in value or "71G" in value) and "33B" not in value:
        report.add(
            "mt_rule",
            "field 33B is mandatory when 71F or 71G is present [C16/D51]",
            loc(at.get("71F", at.get("71G", 0))),
        )


def _mt103_instructions(
    kind: str, fields: list[Field], bank_op: str, at: dict[str, int], report: ValidationReport, loc: Locator
) -> None:
    codes: list[str] = []
    for i, f in enumerate(fields):
        if f.tag != "23E":
            continue
        code, _, info = f.text.partition("/")
        codes.append(code)
        allowed = INSTRUCTION_CODES_STP if kind == "103STP" else INSTRUCTION_CODES_103
        if code not in allowed:
            report.add(
                "mt_code", f"23E code {code} is not allowed; use one of {', '.join(sorted(allowed))} [T47]", loc(i)
            )
        elif info and code not in INSTRUCTION_CODES_WITH_INFO:
            report.add("mt_code", f"23E code {code} must not carry additional information [D97]", loc(i))
        if bank_op == "SPRI" and code not in ("SDVA", "TELB", "PHOB", "INTC"):
            report.add("mt_rule", "with 23B SPRI, 23E may only be SDVA, TELB, PHOB or INTC [C3/E01]", loc(i))
        elif bank_op in ("SSTD", "SPAY"):
            report.add("mt_rule", f"with 23B {bank_op}, field 23E must not be present [C3/E02]", loc(i))
    if len(codes) != len(set(codes)):
        report.add("mt_rule", "a 23E code must not be repeated [E46]", loc(at["23E"]))
    if "56" not in at and any(c in ("TELI", "PHOI") for c in codes):
        report.add("mt_rule", "without field 56a, 23E must not contain TELI or PHOI [E44]", loc(at["23E"]))
    if "CHQB" in codes:
        ben = next((f for f in fields if f.number == "59"), None)
        if ben is not None and ben.text.startswith("/"):
            report.add(
                "mt_rule",
                "with 23E CHQB (pay by cheque), the beneficiary account must not be present [E18]",
                loc(at["59"]),
            )
    if "57" not in at and any(c in ("TELE", "PHON") for c in codes):
        report.add("mt_rule", "without field 57a, 23E must not contain TELE or PHON [E45]", loc(at["23E"]))


def _mt103_parties(
    bank_op: str, value: dict[str, str], at: dict[str, int], fields: list[Field], report: ValidationReport, loc: Locator
) -> None:
    restricted = bank_op in ("SPRI", "SSTD", "SPAY")
    if "55" in at and not ("53" in at and "54" in at):
        report.add("mt_rule", "when 55a is present, 53a and 54a are mandatory [C7/E06]", loc(at["55"]))
    if "56" in at and "57" not in at:
        report.add("mt_rule", "when 56a is present, 57a is mandatory [C9/C81]", loc(at["56"]))
    if not restricted:
        return
    checks = [
        ("53D", "53a must not use option D [C4/E03]"),
        ("54B", "54a may only use option A [C6/E05]"),
        ("54D", "54a may only use option A [C6/E05]"),
        ("55B", "55a may only use option A [C8/E07]"),
        ("55D", "55a may only use option A [C8/E07]"),
        ("57B", "57a may only use option A, C or D [E09]"),
    ]
    for tag, text in checks:
        if tag in at:
            report.add("mt_rule", f"with 23B {bank_op}, {text}", loc(at[tag]))
    if "53B" in value and not value["53B"].startswith("/"):
        report.add("mt_rule", f"with 23B {bank_op}, 53B must carry a party identifier [C5/E04]", loc(at["53B"]))
    if bank_op == "SPRI" and "56" in at:
        report.add("mt_rule", "with 23B SPRI, field 56a must not be present [E16]", loc(at["56"]))
    elif "56D" in at:
        report.add("mt_rule", f"with 23B {bank_op}, 56a may only use option A or C [E17]", loc(at["56D"]))
    if "57D" in value and not value["57D"].startswith("/"):
        report.add("mt_rule", f"with 23B {bank_op}, 57D must carry a party identifier [E09]", loc(at["57D"]))
    ben = next((f for f in fields if f.number == "59"), None)
    if ben is not None and not ben.text.startswith("/"):
        report.add(
            "mt_rule",
            f"with 23B {bank_op}, the beneficiary account (59a /account) is mandatory [E10]",
            loc(at["59"]),
        )


def _mt103_stp(
    fields: list[Field], value: dict[str, str], at: dict[str, int], report: ValidationReport, loc: Locator
) -> None:
    """MT103 STP: 53B names the account, the beneficiary's account is always given, and field 72
    uses no reject/return codes and names the instructing institution by BIC after /INS/."""
    if "53B" in value and not value["53B"].startswith("/"):
        report.add("mt_rule", "MT103 STP: 53B must carry a party identifier (account) [E04]", loc(at["53B"]))
    ben = next((f for f in fields if f.number == "59"), None)
    if ben is not None and not ben.text.startswith("/"):
        report.add("mt_rule", "MT103 STP: the beneficiary account (59a /account) is mandatory [E10]", loc(at["59"]))
    text72 = value.get("72")
    if text72 is None:
        return
    for line in text72.split("\n"):
        code = line[1:5] if line.startswith("/") and line[5:6] == "/" else ""
        if code in ("REJT", "RETN"):
            report.add("mt_rule", f"MT103 STP: field 72 must not use /{code}/", loc(at["72"]))
        if line.startswith("/INS/") and fmt.bic_problem(line[5:].strip()) is not None:
            report.add("mt_rule", "MT103 STP: /INS/ in field 72 must be followed by a valid BIC", loc(at["72"]))


def _mt103_charges(
    fields: list[Field], value: dict[str, str], at: dict[str, int], report: ValidationReport, loc: Locator
) -> None:
    charges = value.get("71A", "")
    if charges not in CHARGE_CODES:
        report.add("mt_code", "71A must be BEN, OUR or SHA [T08]", loc(at["71A"]))
        return
    has_f, has_g = "71F" in value, "71G" in value
    if charges == "OUR" and has_f:
        report.add("mt_rule", "with 71A OUR, field 71F must not be present [E13]", loc(at["71F"]))
    if charges == "SHA" and has_g:
        report.add("mt_rule", "with 71A SHA, field 71G must not be present [D50]", loc(at["71G"]))
    if charges == "BEN":
        if not has_f:
            report.add("mt_rule", "with 71A BEN, at least one 71F is mandatory [E15]", loc(at["71A"]))
        if has_g:
            report.add("mt_rule", "with 71A BEN, field 71G must not be present [E15]", loc(at["71G"]))
    if has_g:
        pair = read_ccy_amount(value["71G"])
        if pair is not None and amount_of(pair[1]) == 0:
            report.add("mt_rule", "the amount in 71G must not be zero [D57]", loc(at["71G"]))


def _mt202(kind: str, fields: list[Field], report: ValidationReport, loc: Locator) -> None:
    split = next((i for i, f in enumerate(fields) if f.number == "50"), len(fields))
    for start, end, seq in ((0, split, "A"), (split, len(fields), "B")):
        numbers = {f.number: start + i for i, f in enumerate(fields[start:end])}
        if "56" in numbers and "57" not in numbers:
            report.add("mt_rule", f"sequence {seq}: when 56a is present, 57a is mandatory [C1/C81]", loc(numbers["56"]))


def _statement(fields: list[Field], report: ValidationReport, loc: Locator) -> None:
    """Balances share one currency [C27]; 61 amounts fit it; opening + entries = closing (warning)."""
    currency: str | None = None
    opening: Decimal | None = None
    total = Decimal(0)
    for i, f in enumerate(fields):
        if f.number in ("60", "62", "64", "65"):
            bal = read_balance(f.text)
            if bal is None:
                continue
            if currency is None:
                currency = bal.currency
            elif bal.currency != currency:
                report.add(
                    "mt_rule",
                    f"balance currency {bal.currency} differs from {currency}; all balances of "
                    "a statement use one currency [C2/C27]",
                    loc(i),
                )
            if f.number == "60":
                opening = bal.signed
            elif f.number == "62" and opening is not None and opening + total != bal.signed:
                report.add(
                    "mt_balance",
                    f"opening balance {opening} plus entries {total} does not equal the closing balance {bal.signed}",
                    loc(i),
                    "warning",
                )
        elif f.tag == "61":
            line = read_61(f.text)
            if line is None:
                continue
            if currency is not None and (problem := amount_fits(line.amount_text, currency)) is not None:
                report.add("mt_amount", problem + " [C03]", loc(i))
            total += line.signed
