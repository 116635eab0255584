"""Conformance: the `qenex payments` CLI over the whole ../shared/payments/dev set.

Every file of manifest.csv is accounted for:
- `valid` (and `valid (expected output)`, the expected outputs of converters) must be accepted;
- `invalid` must be rejected, each error with a code and a location;
- `conditional` must be rejected as is and accepted with the relaxation its `reason` names;
- `parseable` and `edge` must at least parse;
- `unknown` and `fragment` are unasserted, but the CLI must answer without an internal error;
- `n/a` rows are expected outputs (YAML/JSON renderings, licences) of a neighbouring sample.

ISO 20022 is checked twice: with only the official XSDs the PyPI dependencies ship (the run-time
configuration) and with the full official set in ../shared; both must agree with the labels.

Where the official specification disagrees with a label, the specification wins; every such
case is listed in EXCEPTIONS or TYPE_EXCEPTIONS below with its reference, and the test asserts
the specification's verdict for it (nothing is silently skipped).
"""

from __future__ import annotations

import collections
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qenex.cli.payments import INTERNAL_ERROR, FileReadError, format_module, payload_for, read_file, resolve_format
from qenex.payments.common import PaymentFormatError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ACCEPT = frozenset({"valid", "valid (expected output)"})
REJECT = frozenset({"invalid"})
PARSE = frozenset({"parseable", "edge"})
UNASSERTED = frozenset({"unknown", "fragment"})
NOT_INPUT = frozenset({"n/a"})
BATCH_FILES = 100
ISO_XSD_ENV = "QENEX_ISO20022_XSD_DIR"  # qenex.payments.iso20022.schemas: extra directories of official XSDs
SHARED_XSD_DIR = Path(__file__).resolve().parents[3] / "shared" / "payments" / "iso20022_xsd"
LARGE_PREFIX = "ach/moov-io_ach/test/testdata/large-files/"

_MOOV_JSON = (
    "a moov-io library's own JSON serialisation, not a payment format: NACHA Operating Rules "
    "Appendix One defines only the 94-character fixed-width record file, FAIM 3.0.x only the "
    "{tag} message, and ISO 20022 only XML instances of its schemas; the CLI rejects it with "
    "payment_unknown_format"
)
# Manifest `type` -> (verdict by the specification, why). Applies to every row of that type.
TYPE_EXCEPTIONS: dict[str, tuple[str, str]] = {
    "moov-ach-json": ("invalid", _MOOV_JSON),
    "moov-wire-json": ("invalid", _MOOV_JSON),
    "moov-iso20022-json": ("invalid", _MOOV_JSON),
}

# Manifest path -> (verdict by the specification, why). Keep small and explicit.
EXCEPTIONS: dict[str, tuple[str, str]] = {
    "mt/wolph_mt940/requirements.txt": (
        "invalid",
        "a pip requirements file ('-e.[tests]'), labelled as a statement by the manifest builder; "
        "SWIFT MT940 (Standards MT November 2023, Cat 9) requires fields 20, 25, 28C, 60a and 62a",
    ),
    "ach/moov-io_ach/test/testdata/20110805A.ach": (
        "invalid",
        "File Control batch count (field 2) is 5 but the file holds 4 batches; NACHA Operating Rules "
        "Appendix One, File Control Record: Batch Count = number of Batch Header records. The label "
        "names no relaxation, and none makes a wrong control total valid",
    ),
    **{
        f"iso20022_samples/ballerina_swiftmt-to-iso20022/tests/custom/{name}.xml": (
            "invalid",
            "GrpHdr/CreDtTm holds the template placeholder 'CURRENT_TIME' (the source substitutes it at run "
            "time); the official pacs.008.001.08 XSD types CreDtTm as ISODateTime, so the file is XSD-invalid",
        )
        for name in ("mt103_fin2", "mt103_fin3", "mt103_pacs008")
    },
    "iso20022_samples/ballerina_swiftmt-to-iso20022/tests/pn_01_1_1/mt101_pain_001_A_B.xml": (
        "invalid",
        "PstlAdr has AdrLine before TwnNm; the official pain.001.001.09 XSD (PostalAddress24) is a sequence "
        "ending ... TwnNm, ..., Ctry, AdrLine, so TwnNm after AdrLine is XSD-invalid",
    ),
    **{
        f"mt/ballerina_swiftmt-to-iso20022/{name}": (
            "invalid",
            "71A is BEN but no 71F follows; SWIFT MT103 network validated rule C14 (error E15): with 71A BEN "
            "at least one 71F is mandatory",
        )
        for name in (
            "test_custom_mt_mx/custom_a_2014__a_2014.fin",
            "test_p_2_1_2_mt_mx/103_pacs004_B_B__finMessage_p_2_1_2_B_B.fin",
        )
    },
    "mt/ballerina_swiftmt-to-iso20022/test_pc_09_1_1mt_mx/pc_09_1_1_pacs009_A_B_112__finMessage_00911_mt202_A_B.fin": (
        "invalid",
        "field 53A holds 'CP01AA89787', which is no BIC: SWIFT MT202 field 53a option A is [/1!a][/34x] then "
        "4!a2!a2!c[3!c]",
    ),
    "mt/ballerina_swiftmt-to-iso20022/test_c_53_1_1_mt_mx/c_53_1_1_camt053_A_B_950__finMessage_5311_mt950_A_B.fin": (
        "invalid",
        ":61: '...S103494931//3841188 FAVOUR H.F. JANSSEN' puts 27 characters after '//', where SWIFT field 61 "
        "allows 16x; supplementary details belong on a second line (34x)",
    ),
    **{
        f"mt/ballerina_iso20022-to-swiftmt/{name}": (
            "invalid",
            "converter output with an empty :20: or :21:; SWIFT format 16x means 1 to 16 characters, and an "
            "empty field is not allowed in FIN",
        )
        for name in (
            "usecase_c29_1_1_test/C_B_MI__finMessage_2911_C_B_MI.fin",
            "usecase_c29_1_2_test/C_B__finMessage_2912_C_B.fin",
            "usecase_c29_1_2_test/B_C__finMessage_2912_B_C.fin",
        )
    },
    # The mt940 library's statement files are bank exports and field-level fragments, parsed by
    # that library leniently; as SWIFT MT940/MT942 (Standards MT, Category 9) each one breaks the spec.
    **{
        f"mt/wolph_mt940/{name}": ("invalid", f"SWIFT MT940/942: {why}")
        for name, why in {
            "betterplace/amount_formats.sta": "only :60F:/:62F: lines; mandatory 20, 25a, 28C missing",
            "betterplace/sepa_mt9401.sta": ":86: lines over 65 characters (German DFUE layout); the spec is 6*65x",
            "cmxl/account_balance_debit.sta": "a lone :60F: field; 20, 25a, 28C, 62a missing",
            "cmxl/account_identification_iban.sta": "a lone :25: field; 20, 28C, 60a, 62a missing",
            "cmxl/account_identification_legacy.sta": "a lone :25: field; 20, 28C, 60a, 62a missing",
            "cmxl/available_balance.sta": "a lone :64: field; 20, 25a, 28C, 60a, 62a missing",
            "cmxl/closing_balance.sta": "a lone :62F: field; 20, 25a, 28C, 60a missing",
            "cmxl/reference.sta": "a lone :20: field; 25a, 28C, 60a, 62a missing",
            "cmxl/statement_details.sta": "a lone :61:/:86: pair; 20, 25a, 28C, 60a, 62a missing",
            "cmxl/statement_number.sta": "a lone :28C: field; 20, 25a, 60a, 62a missing",
            "jejik/abnamro.sta": "uses field :28: where MT940 requires 28C (Statement Number/Sequence Number)",
            "jejik/generic.sta": "uses :28: where 28C is required, and has an empty :86: (6*65x needs content)",
            "jejik/ing.sta": ":86: uses characters outside the SWIFT X character set",
            "jejik/postfinance.sta": ":86: lines over 65 characters; the spec is 6*65x",
            "jejik/rabobank.sta": ":61: reference subfield runs past 16x (a name appended to it); :28: not 28C",
            "sberbank/171011_01234945.sta": ":61: transaction type 'S   ' (1!a3!c cannot hold blanks)",
            "self-provided/gv_codes.sta": ":61: lacks its mandatory reference subfield (16x, 'NONREF' if none)",
            "self-provided/mt942.sta": ":61: transaction type 'MCI0' must start with S, N or F (rule T53)",
            "self-provided/raphaelm.sta": "currency DEM is no longer in ISO 4217 (rule T52); :61: lacks its reference",
            "self-provided/sparkassen.sta": ":61: is broken across lines; 20, 25a, 28C missing",
        }.items()
    },
    **{
        f"iso20022_samples/moov-io_wire20022/CustomerCreditTransfer/{name}.xml": (
            "invalid",
            "DbtrAcct IBAN BE34001216371411 fails the ISO 13616-1 check digits (mod 97 of the rearranged "
            "IBAN is not 1); the pacs.008 XSD checks only the IBAN's shape, but an interbank credit transfer "
            "must name accounts that can be booked (qenex: iban_invalid is an error in pacs.008/009)",
        )
        for name in ("CustomerCreditTransfer_Scenario5_Step1_pacs.008", "CustomerCreditTransfer_Variation6_pacs.008")
    },
    "ach/moov-io_ach/test/issues/testdata/issue1620.ach": (
        "invalid",
        "File Control batch count is 2 for 1 batch, and the file has 9 records with block count 1; "
        "NACHA Operating Rules Appendix One: File Control field 2 (Batch Count) and field 3 (Block Count), "
        "records blocked by 10 and the last block filled with '9' records",
    ),
    "ach/moov-io_ach/test/testdata/20180716-IAT-A17.ach": (
        "invalid",
        "batch 2 has service class code 220 (credits only) but holds a debit entry (transaction code 27); "
        "NACHA Operating Rules Appendix One, Company/Batch Header field 2: 200 mixed, 220 credits only, "
        "225 debits only",
    ),
    "ach/moov-io_ach/test/testdata/20180716-IAT-A17-A18.ach": (
        "invalid",
        "same as 20180716-IAT-A17.ach: a debit entry (27) in a 220 credits-only batch (Appendix One)",
    ),
    "ach/moov-io_ach/test/testdata/iat-addenda98.ach": (
        "invalid",
        "an IAT notification of change (COR) with amount 0000100000; NACHA Operating Rules Appendix Five "
        "(Notification of Change): the NOC entry's amount field is zero",
    ),
}

# Manifest path of a `conditional` row -> the --relax names that make it valid.
RELAX: dict[str, tuple[str, ...]] = {
    "ach/moov-io_ach/test/issues/testdata/issue1378/neither_file_record.txt": (
        "allow_missing_file_header",
        "allow_missing_file_control",
    ),
    # The file header is also 91 characters; the reader pads it to 94 with a warning, as moov's does.
    "ach/moov-io_ach/test/issues/testdata/issue702.ach": ("bypass_destination_validation",),
    # A bare run of batches: no file header/control, no batch controls, batch numbers 188 then 85
    # (Appendix One wants them ascending), so the partial-file and batch-order relaxations.
    "ach/moov-io_ach/test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach": (
        "allow_partial_file",
        "allow_unordered_batch_numbers",
    ),
    "ach/moov-io_ach/test/testdata/extended-ascii.ach": ("allow_special_characters",),
    "ach/moov-io_ach/test/testdata/ppd-debit-invalid-entryDetail-checkDigit.ach": ("allow_invalid_check_digit",),
    "ach/moov-io_ach/test/testdata/return-PPD-custom-reason-code.ach": ("custom_return_codes",),
    "ach/moov-io_ach/test/testdata/skip-validation.ach": ("skip_all",),
}


def _manifest(shared_dir: Path) -> list[dict[str, str]]:
    path = shared_dir / "payments" / "dev" / "manifest.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent; shared payments conformance data not available")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def manifest(shared_dir: Path) -> list[dict[str, str]]:
    return _manifest(shared_dir)


@pytest.fixture(scope="module")
def dev_dir(shared_dir: Path) -> Path:
    return shared_dir / "payments" / "dev"


def expected_verdict(row: dict[str, str]) -> str:
    """What the specification expects: "accept", "reject", "conditional", "parse", "any" or "skip"."""
    for table, key in ((EXCEPTIONS, row["path"]), (TYPE_EXCEPTIONS, row["type"])):
        if key in table:
            return "accept" if table[key][0] == "valid" else "reject"
    label = row["expected"]
    if label in ACCEPT:
        return "accept"
    if label in REJECT:
        return "reject"
    if label == "conditional":
        return "conditional"
    if label in PARSE:
        return "parse"
    if label in UNASSERTED:
        return "any"
    if label in NOT_INPUT:
        return "skip"
    raise AssertionError(f"unclassified manifest label {label!r} for {row['path']}")


# ISO 20022 runs in two schema configurations, and the verdicts must agree with the labels in both:
# - "installed": only the official XSDs the PyPI dependencies ship (what a user gets out of the box);
#   a type without one is checked for its mandatory structure (qenex.payments.iso20022.structure);
# - "shared-xsd": the full official set in ../shared added through QENEX_ISO20022_XSD_DIR.
ISO_CONFIGS = ("installed", "shared-xsd")


def _run_batch(run_cli, args: list[str], isolated: str | None) -> tuple[int, str, str]:
    if isolated is None:
        result = run_cli(*args)
        return result.code, result.out, result.err
    env = {k: v for k, v in os.environ.items() if k != ISO_XSD_ENV}
    if isolated == "shared-xsd":
        env[ISO_XSD_ENV] = str(SHARED_XSD_DIR)
    proc = subprocess.run([sys.executable, "-m", "qenex", *args], capture_output=True, text=True, env=env, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def validate_files(run_cli, paths: list[Path], *extra: str, isolated: str | None = None) -> dict[str, dict]:
    """`qenex payments validate --json` over ``paths``, in batches.

    ``isolated`` (one of ISO_CONFIGS) runs a subprocess of the real entry point in that ISO 20022
    schema configuration, leaving this process's schema cache untouched (other test modules add
    the ../shared directory to it). Other formats run in-process, which is faster.
    """
    results: dict[str, dict] = {}
    for start in range(0, len(paths), BATCH_FILES):
        batch = [str(p) for p in paths[start : start + BATCH_FILES]]
        code, out, err = _run_batch(run_cli, ["payments", "validate", "--json", *extra, *batch], isolated)
        assert code in (0, 1), f"exit {code}: {err}"
        assert "Traceback" not in err, err
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert [line["file"] for line in lines] == batch
        results.update({line["file"]: line for line in lines})
    return results


def _describe(line: dict) -> str:
    errors = "; ".join(f"{e['location']}: {e['code']}: {e['message']}" for e in line["errors"][:3])
    return f"{line['format']}/{line['message_type']}: {errors or 'no errors'}"


# Top folder of a manifest path -> the format family (and module) that owns it.
FAMILY_DIRS = {"mt": "mt", "iso20022_samples": "iso20022", "ach": "ach", "fedwire": "fedwire"}
FAMILIES = tuple(FAMILY_DIRS.values())


def _rows(manifest, family: str, verdicts: set[str], large: bool = False) -> list[dict[str, str]]:
    return [
        r
        for r in manifest
        if FAMILY_DIRS[r["path"].split("/", 1)[0]] == family
        and expected_verdict(r) in verdicts
        and r["path"].startswith(LARGE_PREFIX) == large
    ]


def require(family: str) -> None:
    """Skip, with the reason, while a format module has not landed yet."""
    try:
        format_module(family)
    except PaymentFormatError as exc:
        pytest.skip(f"{family} rows not checked: {exc.message}")


def test_manifest_is_fully_classified(manifest):
    counts = collections.Counter(expected_verdict(r) for r in manifest)
    assert sum(counts.values()) == len(manifest)
    paths = {r["path"] for r in manifest}
    types = {r["type"] for r in manifest}
    assert set(EXCEPTIONS) <= paths, "stale EXCEPTIONS entry"
    assert set(TYPE_EXCEPTIONS) <= types, "stale TYPE_EXCEPTIONS entry"
    conditional = {r["path"] for r in manifest if expected_verdict(r) == "conditional"}
    assert conditional == set(RELAX), "every conditional row needs its relaxation in RELAX"


def _check_internal(line: dict) -> None:
    assert all(e["code"] != INTERNAL_ERROR for e in line["errors"]), _describe(line)


# (family, ISO schema configuration): every family once in-process, ISO 20022 in both configurations.
LABEL_RUNS = [(f, None) for f in FAMILIES if f != "iso20022"] + [("iso20022", c) for c in ISO_CONFIGS]


@pytest.mark.parametrize(("family", "config"), LABEL_RUNS)
def test_valid_and_invalid_labels_agree(manifest, dev_dir, run_cli, family, config):
    require(family)
    rows = _rows(manifest, family, {"accept", "reject"})
    results = validate_files(run_cli, [dev_dir / r["path"] for r in rows], isolated=config)
    disagree = []
    for row in rows:
        line = results[str(dev_dir / row["path"])]
        _check_internal(line)
        want_valid = expected_verdict(row) == "accept"
        if line["valid"] != want_valid:
            disagree.append(f"{row['path']} [{row['expected']}] -> {_describe(line)}")
        if not line["valid"]:
            assert all(e["code"] and e["message"] and e["location"] for e in line["errors"]), _describe(line)
    summary = collections.Counter(r["expected"] for r in rows)
    print(f"conformance {family} {config or ''}: {dict(summary)} checked, {len(rows) - len(disagree)} agree")
    assert not disagree, f"{len(disagree)} of {len(rows)} disagree:\n" + "\n".join(disagree)


@pytest.mark.parametrize("family", FAMILIES)
def test_conditional_rows_need_their_relaxation(manifest, dev_dir, run_cli, family):
    require(family)
    rows = _rows(manifest, family, {"conditional"})
    strict = validate_files(run_cli, [dev_dir / r["path"] for r in rows])
    problems = []
    for row in rows:
        path = dev_dir / row["path"]
        if strict[str(path)]["valid"]:
            problems.append(f"{row['path']}: accepted without {RELAX[row['path']]}")
        relaxed = validate_files(run_cli, [path], *[a for n in RELAX[row["path"]] for a in ("--relax", n)])
        line = relaxed[str(path)]
        _check_internal(line)
        if not line["valid"]:
            problems.append(f"{row['path']}: rejected with {RELAX[row['path']]}: {_describe(line)}")
    assert not problems, "\n".join(problems)


def _parse(path: Path) -> None:
    data = read_file(path)
    fmt = resolve_format(data, "auto")
    format_module(fmt).parse(payload_for(fmt, data))


@pytest.mark.parametrize("family", FAMILIES)
def test_parseable_and_edge_files_parse(manifest, dev_dir, family):
    require(family)
    failures = []
    for row in _rows(manifest, family, {"parse"}):
        try:
            _parse(dev_dir / row["path"])
        except PaymentFormatError as exc:
            failures.append(f"{row['path']} [{row['expected']}: {row['reason'][:60]}] -> {exc}")
    assert not failures, f"{len(failures)} files do not parse:\n" + "\n".join(failures)


@pytest.mark.parametrize("family", FAMILIES)
def test_unasserted_files_get_an_answer(manifest, dev_dir, run_cli, family):
    require(family)
    rows = _rows(manifest, family, {"any"})
    results = validate_files(
        run_cli, [dev_dir / r["path"] for r in rows], isolated="installed" if family == "iso20022" else None
    )
    for line in results.values():
        _check_internal(line)


@pytest.mark.slow
def test_large_gzip_nacha_files_are_valid(manifest, dev_dir, run_cli):
    require("ach")
    rows = _rows(manifest, "ach", {"accept", "reject"}, large=True)
    assert rows, "the large-files rows are missing from the manifest"
    results = validate_files(run_cli, [dev_dir / r["path"] for r in rows])
    for row in rows:
        line = results[str(dev_dir / row["path"])]
        assert line["valid"] == (expected_verdict(row) == "accept"), _describe(line)


def test_unreadable_file_is_a_usage_error(dev_dir, run_cli, tmp_path):
    result = run_cli("payments", "validate", "--json", str(tmp_path))  # a directory
    assert result.code == 2
    assert "cannot read" in result.err
    with pytest.raises(FileReadError):
        read_file(tmp_path / "missing.ach")
