"""Conformance: the `qenex payments` CLI over the whole ../shared/payments/dev set.

Every file of manifest.csv is accounted for:
- `valid` (and `valid (expected output)`, the expected outputs of converters) must be accepted;
- `invalid` must be rejected, each error with a code and a location;
- `conditional` must be rejected as is and accepted with the relaxation its `reason` names;
- `parseable` and `edge` must at least parse;
- `unknown` and `fragment` are unasserted, but the CLI must answer without an internal error;
- `n/a` rows are expected outputs (YAML/JSON renderings, licences) of a neighbouring sample.

Where the official specification disagrees with a label, the specification wins; every such
case is listed in EXCEPTIONS or TYPE_EXCEPTIONS below with its reference, and the test asserts
the specification's verdict for it (nothing is silently skipped).
"""

from __future__ import annotations

import collections
import csv
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
BATCH_FILES = 80
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
}

# Manifest path of a `conditional` row -> the --relax names that make it valid.
RELAX: dict[str, tuple[str, ...]] = {
    "ach/moov-io_ach/test/issues/testdata/issue1378/neither_file_record.txt": (
        "allow_missing_file_header",
        "allow_missing_file_control",
    ),
    "ach/moov-io_ach/test/issues/testdata/issue702.ach": ("bypass_destination_validation",),
    "ach/moov-io_ach/test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach": (
        "allow_missing_file_header",
        "allow_missing_file_control",
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


def validate_files(run_cli, paths: list[Path], *extra: str) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for start in range(0, len(paths), BATCH_FILES):
        batch = [str(p) for p in paths[start : start + BATCH_FILES]]
        result = run_cli("payments", "validate", "--json", *extra, *batch)
        assert result.code in (0, 1), f"exit {result.code}: {result.err}"
        lines = result.json_lines()
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


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_and_invalid_labels_agree(manifest, dev_dir, run_cli, family):
    require(family)
    rows = _rows(manifest, family, {"accept", "reject"})
    results = validate_files(run_cli, [dev_dir / r["path"] for r in rows])
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
    print(f"conformance {family}: {dict(summary)} checked, {len(rows) - len(disagree)} agree")
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
    results = validate_files(run_cli, [dev_dir / r["path"] for r in rows])
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
