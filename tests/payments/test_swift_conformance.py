"""SWIFT MT over ../shared/payments/dev/mt: the manifest's verdicts, and the expected MT940 parses.

- `valid` rows must validate, `invalid` rows must not; where the SWIFT standard disagrees with a
  label, SPEC_EXCEPTIONS names the file and the rule, and the test asserts the standard's verdict.
- `parseable` and `edge` rows must parse and render back byte for byte; `fragment` and `unknown`
  rows either parse or fail with PaymentFormatError (never another exception).
- The WoLpH/mt940 expected parses (.yml next to each .sta) must agree with our reading of every
  statement line: signed amount, value date, debit/credit mark, transaction type, reference.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from qenex.payments import swift
from qenex.payments.common import PaymentFormatError
from qenex.payments.swift.values import read_61, read_balance

_BENIGN_940 = "SWIFT MT940 (Standards MT, Category 9)"
_FRAGMENT = (
    "a bank-export fragment with only some fields; " + _BENIGN_940 + " makes 20, 25a, 28C, 60a and 62a mandatory"
)
# Manifest path -> why the SWIFT standard rejects a file its source labels `valid`.
SPEC_EXCEPTIONS: dict[str, str] = {
    "mt/wolph_mt940/requirements.txt": "a pip requirements file ('-e.[tests]'), not an MT message at all",
    "mt/wolph_mt940/betterplace/amount_formats.sta": "six 60F fields and nothing else; " + _FRAGMENT,
    "mt/wolph_mt940/cmxl/account_balance_debit.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/account_identification_iban.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/account_identification_legacy.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/available_balance.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/closing_balance.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/reference.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/statement_number.sta": _FRAGMENT,
    "mt/wolph_mt940/cmxl/statement_details.sta": "field 86 lines longer than 65 characters (format 6*65x); "
    + _FRAGMENT,
    "mt/wolph_mt940/betterplace/sepa_mt9401.sta": "field 86 with lines over 65 characters (MT940 field 86 is 6*65x)",
    "mt/wolph_mt940/jejik/abnamro.sta": "field :28: (pre-2002 MT940) instead of :28C:, and an empty :86: ; "
    + _BENIGN_940,
    "mt/wolph_mt940/jejik/generic.sta": "field :28: instead of :28C:, empty :86: (x needs 1 character), no 60a/62a",
    "mt/wolph_mt940/jejik/ing.sta": "field 86 carries tabs and non-ASCII bytes, outside the X character set",
    "mt/wolph_mt940/jejik/postfinance.sta": "field 86 lines over 65 characters (6*65x)",
    "mt/wolph_mt940/jejik/rabobank.sta": "field :28: instead of :28C:, no 60a/62a, 61 reference over 16x",
    "mt/wolph_mt940/sberbank/171011_01234945.sta": "61 with mark 'DF' + spaces: no S/N/F transaction type (T53)",
    "mt/wolph_mt940/self-provided/gv_codes.sta": "61 without the mandatory reference for the account owner (16x) "
    "and 86 lines over 65 characters",
    "mt/wolph_mt940/self-provided/mt942.sta": "61 transaction type 'MCI0' does not start with S, N or F (T53)",
    "mt/wolph_mt940/self-provided/raphaelm.sta": "currency DEM is withdrawn from ISO 4217 (T52), 62M without a "
    "currency, and non-standard :NS: fields",
    "mt/wolph_mt940/self-provided/sparkassen.sta": "a field 61 broken over lines (':\\n86:') and no 20/25/28C/60a/62a",
    "mt/ballerina_swiftmt-to-iso20022/test_c_53_1_1_mt_mx/c_53_1_1_camt053_A_B_950__finMessage_5311_mt950_A_B.fin": (
        "MT950 61 bank reference '3841188 FAVOUR H.F. JANSSEN' is longer than //16x (the standard's own "
        "example puts 'FAVOUR H.F. JANSSEN' on the supplementary details line)"
    ),
    "mt/ballerina_swiftmt-to-iso20022/test_custom_mt_mx/custom_a_2014__a_2014.fin": (
        "MT103 71A BEN without any 71F: network rule (error E15) makes 71F mandatory with BEN"
    ),
    "mt/ballerina_swiftmt-to-iso20022/test_p_2_1_2_mt_mx/103_pacs004_B_B__finMessage_p_2_1_2_B_B.fin": (
        "MT103 71A BEN without any 71F: network rule (error E15)"
    ),
    "mt/ballerina_swiftmt-to-iso20022/test_pc_09_1_1mt_mx/pc_09_1_1_pacs009_A_B_112__finMessage_00911_mt202_A_B.fin": (
        "MT202 53A 'CP01AA89787' is not a BIC (4!a2!a2!c[3!c]: the bank code must be letters)"
    ),
    "mt/ballerina_iso20022-to-swiftmt/usecase_c29_1_1_test/C_B_MI__finMessage_2911_C_B_MI.fin": (
        "MT196 with an empty field 21 (16x needs at least one character)"
    ),
    "mt/ballerina_iso20022-to-swiftmt/usecase_c29_1_2_test/C_B__finMessage_2912_C_B.fin": (
        "MT196 with empty fields 20 and 21 (16x needs at least one character)"
    ),
    "mt/ballerina_iso20022-to-swiftmt/usecase_c29_1_2_test/B_C__finMessage_2912_B_C.fin": (
        "MT192 with an empty field 20 (16x needs at least one character)"
    ),
}

ACCEPT = ("valid", "valid (expected output)")


@pytest.fixture(scope="module")
def mt_rows(shared_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    root = shared_dir / "payments" / "dev"
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"{manifest} is absent")
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"].startswith("mt/")]
    return [(root / r["path"], r) for r in rows if r["expected"] not in ("n/a", "license")]


def test_manifest_verdicts(mt_rows):
    disagreements = []
    for path, row in mt_rows:
        expected = row["expected"]
        if expected not in (*ACCEPT, "invalid"):
            continue
        report = swift.validate(path.read_bytes())
        if row["path"] in SPEC_EXCEPTIONS:
            assert expected in ACCEPT
            if report.valid:
                disagreements.append(f"{row['path']}: listed as a spec exception but accepted")
            continue
        if (expected in ACCEPT) != report.valid:
            disagreements.append(f"{row['path']}: expected {expected}, got {[str(i) for i in report.errors[:3]]}")
        for issue in report.errors:
            assert issue.code and issue.location, issue
    assert not disagreements, "\n".join(disagreements)


def test_parseable_and_edge_files_parse_and_round_trip(mt_rows):
    checked = 0
    for path, row in mt_rows:
        data = path.read_bytes()
        if row["expected"] in ("parseable", "edge", *ACCEPT):
            try:
                msg = swift.parse(data)
            except PaymentFormatError:
                assert row["path"] in SPEC_EXCEPTIONS, row["path"]
                continue
            text = data.decode("utf-8") if _utf8(data) else data.decode("latin-1")
            assert msg.to_string() == text, row["path"]  # byte-faithful round trip
            checked += 1
        elif row["expected"] in ("fragment", "unknown"):
            try:
                swift.parse(data)
            except PaymentFormatError as exc:
                assert exc.code.startswith("mt_")
            swift.validate(data)  # never raises
    assert checked > 100


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---- expected MT940 parses ------------------------------------------------------------------------
def _load_expected(path: Path):
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    def python_object(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            items = loader.construct_sequence(node, deep=True)
            if suffix.endswith("decimal.Decimal"):
                return Decimal(items[0])
            if suffix.endswith("models.Date") and items and isinstance(items[0], bytes):
                raw = items[0]
                return date(raw[0] * 256 + raw[1], raw[2], raw[3])
            return items
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", python_object)
    # Back-references from each transaction to its parent make the document recursive; drop them.
    text = re.sub(r"(?m)^\s*transactions: \*id\d+\s*$", "", path.read_text(encoding="utf-8"))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _expected_lines(doc) -> list[tuple[Decimal, date, str, str, str]]:
    out = []
    for tx in doc.get("transactions") or []:
        data = tx["data"]
        out.append((data["amount"]["amount"], data["date"], data["status"], data["id"], data["customer_reference"]))
    return out


def test_mt940_reading_agrees_with_the_expected_parses(shared_dir):
    root = shared_dir / "payments" / "dev" / "mt" / "wolph_mt940"
    compared = 0
    for sta in sorted(root.rglob("*.sta")):
        yml = sta.with_suffix(".yml")
        if not yml.is_file():
            continue
        try:
            msg = swift.parse(sta.read_bytes())
        except PaymentFormatError:
            assert "invalid_statement" in sta.name
            continue
        ours = [read_61(f.text) for f in msg.fields if f.tag == "61"]
        if not ours or any(line is None or line.value_date is None for line in ours):
            # Lines the standard rejects are not compared: a 61 we cannot split, or a value date such as
            # 160230 (30 February) that the library silently "fixes" to 29 February.
            continue
        doc = _load_expected(yml)
        expected = _expected_lines(doc)
        assert len(expected) == len(ours), sta.name
        for line, (amount, value_date, status, type_id, reference) in zip(ours, expected, strict=True):
            assert line is not None
            if line.mark in ("RC", "RD"):
                # The library signs only 'D' negative; SWIFT's RC (reversal of credit) is a debit entry,
                # so our signed amount follows the standard and only the magnitude is compared.
                assert line.amount == abs(amount), (sta.name, line)
            else:
                assert line.signed == amount, (sta.name, line)
            assert line.value_date == value_date, (sta.name, line)
            assert line.mark.replace("R", "") == status.replace("R", ""), (sta.name, line)
            assert line.transaction_type == type_id, (sta.name, line)
            if reference is not None:
                # The library's SEPA post-processor rewrites some references from field 86 ("KREF+//...");
                # the part before '//' is what field 61 itself says. Its regex also reads 16 characters
                # greedily, so "MEBB//9A46" becomes "MEBB/" + "/9A46"; the standard's subfield 8 starts at '//'.
                expected_ref = reference.split("//")[0].strip().rstrip("/")
                assert line.customer_reference.strip() == expected_ref, (sta.name, line)
        _compare_balances(msg, doc["data"], sta.name)
        compared += 1
    assert compared >= 8


def _compare_balances(msg, data, name: str) -> None:
    opening = [read_balance(f.text) for f in msg.fields if f.tag == "60F"]
    closing = [read_balance(f.text) for f in msg.fields if f.tag == "62F"]
    if opening and opening[0] is not None and "final_opening_balance" in data:
        expected = data["final_opening_balance"]["amount"]["amount"]
        assert opening[-1].signed == expected, name  # the library keeps the last statement's
    if closing and closing[-1] is not None and "final_closing_balance" in data:
        expected = data["final_closing_balance"]["amount"]["amount"]
        assert closing[-1].signed == expected, name
