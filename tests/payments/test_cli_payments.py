"""`qenex payments validate|show|convert` on this project's own spec-written fixtures."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from test_fuzz_parsers import FIXTURES, module_or_skip

FILES = {"mt": "mt103.fin", "iso20022": "pacs008.xml", "ach": "ppd.ach", "fedwire": "fedwire_ctr.txt"}
MESSAGE_TYPES = {"mt": "MT103", "iso20022": "pacs.008.001.08", "ach": "NACHA", "fedwire": "CTR"}


def broken(fmt: str) -> str:
    """The fixture with one rule broken that the spec makes an error."""
    text = (FIXTURES / FILES[fmt]).read_bytes().decode("utf-8")  # keep CRLF: MT block 4 uses it
    if fmt == "mt":
        return text.replace(":23B:CRED\r\n", "")  # 23B Bank Operation Code is mandatory in MT103
    if fmt == "iso20022":
        return text.replace("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>")  # NbOfTxs must be computed
    if fmt == "ach":
        return text.replace("0000001000ID000000", "0000001999ID000000", 1)  # batch credit total now wrong
    return text.replace("{3600}CTR\n", "")  # business function code is mandatory


@pytest.fixture(params=list(FILES))
def fmt(request) -> str:
    module_or_skip(request.param)
    return request.param


def test_validate_each_format_valid(run_cli, fmt):
    path = FIXTURES / FILES[fmt]
    result = run_cli("payments", "validate", "--json", str(path))
    assert result.code == 0, result.out + result.err
    (line,) = result.json_lines()
    assert line["file"] == str(path)
    assert line["format"] == fmt
    assert line["valid"] is True and line["errors"] == []
    assert MESSAGE_TYPES[fmt] in line["message_type"]
    human = run_cli("payments", "validate", str(path))
    assert human.code == 0 and "valid" in human.out


def test_validate_each_format_invalid_with_location(run_cli, fmt, tmp_path):
    path = tmp_path / FILES[fmt]
    path.write_bytes(broken(fmt).encode("utf-8"))
    result = run_cli("payments", "validate", "--json", str(path))
    assert result.code == 1, result.out
    (line,) = result.json_lines()
    assert line["valid"] is False and line["format"] == fmt
    assert line["errors"], "an invalid file needs at least one error"
    assert all(e["code"] and e["message"] and e["location"] for e in line["errors"]), line["errors"]
    human = run_cli("payments", "validate", str(path))
    assert human.code == 1 and "INVALID" in human.out


def test_forced_format_overrides_detection(run_cli):
    module_or_skip("ach")
    result = run_cli("payments", "validate", "--json", "--format", "ach", str(FIXTURES / "mt103.fin"))
    assert result.code == 1
    assert result.json_lines()[0]["format"] == "ach"


def test_gzip_file_is_validated(run_cli, tmp_path):
    module_or_skip("ach")
    path = tmp_path / "ppd.ach.gz"
    path.write_bytes(gzip.compress((FIXTURES / "ppd.ach").read_bytes()))
    result = run_cli("payments", "validate", "--json", str(path))
    assert result.code == 0, result.out
    assert result.json_lines()[0]["format"] == "ach"


def test_unknown_format_is_invalid_not_a_crash(run_cli, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n", encoding="utf-8")
    result = run_cli("payments", "validate", "--json", str(path))
    assert result.code == 1
    (line,) = result.json_lines()
    assert line["format"] is None and line["valid"] is False
    assert line["errors"][0]["code"] == "payment_unknown_format"


def test_exit_codes_combine_worst_wins(run_cli, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("nope", encoding="utf-8")
    result = run_cli("payments", "validate", "--json", str(bad), str(tmp_path / "missing.fin"))
    assert result.code == 2
    lines = result.json_lines()
    assert [ln["file"] for ln in lines] == [str(bad), str(tmp_path / "missing.fin")]
    assert lines[1]["errors"][0]["code"] == "file_unreadable"
    assert "cannot read" in result.err


@pytest.mark.parametrize(
    "args",
    [
        ("payments", "validate", "--format", "xml", "x"),
        ("payments", "validate"),
        ("payments", "convert", "--to", "pacs.999", "x"),
        ("payments", "show"),
    ],
)
def test_usage_errors_exit_2_on_one_line(run_cli, args):
    result = run_cli(*args)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_unknown_relaxation_is_a_usage_error(run_cli):
    module_or_skip("ach")
    result = run_cli("payments", "validate", "--relax", "allow_everything", str(FIXTURES / "ppd.ach"))
    assert result.code == 2
    assert "allow_everything" in result.err


def test_known_relaxation_is_accepted(run_cli):
    module_or_skip("ach")
    result = run_cli("payments", "validate", "--relax", "allow-invalid-check-digit", str(FIXTURES / "ppd.ach"))
    assert result.code == 0, result.out + result.err


def test_show_renders_fields(run_cli, fmt):
    result = run_cli("payments", "show", str(FIXTURES / FILES[fmt]))
    assert result.code == 0, result.out + result.err
    assert "validation" in result.out and "valid" in result.out
    expected = {"mt": "INVOICE-2024-001", "iso20022": "QNX-MSG-2024-0001", "ach": "QENEX", "fedwire": "CTR"}[fmt]
    assert expected in result.out


def test_show_unparseable_is_one_line_error(run_cli, tmp_path):
    module_or_skip("mt")
    path = tmp_path / "broken.fin"
    path.write_text("{1:F01BANK", encoding="utf-8")
    result = run_cli("payments", "show", str(path))
    assert result.code == 1
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_real_entry_point_subprocess(tmp_path):
    """The installed `python -m qenex` path: exit code and no traceback on a user's mistake."""
    path = tmp_path / "junk.bin"
    path.write_bytes(bytes(range(256)))
    proc = subprocess.run(
        [sys.executable, "-m", "qenex", "payments", "validate", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"valid": false' in proc.stdout


def _convert(run_cli, source: Path, target: str):
    return run_cli("payments", "convert", "--to", target, str(source))


def test_convert_mt103_to_pacs008_validates(run_cli, tmp_path):
    module_or_skip("mt")
    iso = module_or_skip("iso20022")
    pytest.importorskip("qenex.payments.convert", reason="qenex.payments.convert (P1) has not landed")
    result = _convert(run_cli, FIXTURES / "mt103.fin", "pacs.008")
    assert result.code == 0, result.err
    report = iso.validate(result.out.encode())
    assert report.valid, [str(i) for i in report.errors]
    assert "e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71" in result.out  # the UETR is carried
    assert "100000" in result.out


def test_convert_pacs008_to_mt103_validates(run_cli):
    swift = module_or_skip("mt")
    module_or_skip("iso20022")
    pytest.importorskip("qenex.payments.convert", reason="qenex.payments.convert (P1) has not landed")
    result = _convert(run_cli, FIXTURES / "pacs008.xml", "mt103")
    assert result.code == 0, result.err
    report = swift.validate(result.out)
    assert report.valid, [str(i) for i in report.errors]
    assert ":32A:240115EUR1500,00" in result.out
    assert "e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71" in result.out


def test_convert_rejects_non_convertible_input(run_cli):
    module_or_skip("ach")
    result = _convert(run_cli, FIXTURES / "ppd.ach", "pacs.008")
    assert result.code == 1
    assert "Traceback" not in result.err


def test_mt_relaxation_by_name(run_cli, tmp_path):
    module_or_skip("mt")
    text = (FIXTURES / "mt103.fin").read_bytes().decode("utf-8")
    path = tmp_path / "no-uetr.fin"
    path.write_bytes(text.replace("{121:e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71}", "").encode())
    strict = run_cli("payments", "validate", "--json", str(path))
    assert strict.code == 1
    assert any("121" in e["location"] + e["message"] for e in strict.json_lines()[0]["errors"])
    relaxed = run_cli("payments", "validate", "--relax", "allow-missing-uetr", str(path))
    assert relaxed.code == 0, relaxed.out


def test_endless_device_is_bounded(run_cli):
    """/dev/zero has no size: reading stops one byte past the limit and the file is refused."""
    result = run_cli("payments", "validate", "--json", "/dev/zero")
    assert result.code == 1
    assert result.json_lines()[0]["errors"][0]["code"] == "payment_too_large"


# ---------------------------------------------------------------- every conversion, both ways

OFFICIAL_XSD_DIR = Path(__file__).resolve().parents[3] / "shared" / "payments" / "iso20022_xsd"


def assert_mx_valid(iso, xml: str, message_type: str) -> None:
    """The product's own validation, plus the official XSD from ../shared when it is there
    (tests only) -- the packaged schemas do not cover every version, e.g. pacs.009.001.08."""
    report = iso.validate(xml.encode())
    assert report.valid, [str(i) for i in report.errors]
    assert report.message_type == message_type
    xsd = OFFICIAL_XSD_DIR / f"{message_type}.xsd"
    if xsd.is_file():
        from lxml import etree

        schema = etree.XMLSchema(etree.parse(str(xsd)))
        doc = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
        assert schema.validate(doc), [str(e) for e in schema.error_log][:3]


CONVERSIONS = [
    # source fixture, target, expected message type, text the output must carry
    ("mt103.fin", "pacs.008", "pacs.008.001.08", ["e2b4a3d2-7f5c-4a8e-9b1d-3c6f0a9e8d71", "100000.00", "INVOICE-2024"]),
    ("mt202.fin", "pacs.009", "pacs.009.001.08", ["7d3c2b1a-9e8f-4a6b-8c5d-1f2e3a4b5c6d", "2500000.00", "RELATED-REF"]),
    ("mt940.fin", "camt.053", "camt.053.001.08", ["DE89370400440532013000", "1350.00", "150.00", "500.00"]),
]


@pytest.mark.parametrize(("source", "target", "message_type", "carried"), CONVERSIONS)
def test_convert_mt_to_mx_and_back(run_cli, tmp_path, source, target, message_type, carried):
    swift = module_or_skip("mt")
    iso = module_or_skip("iso20022")
    pytest.importorskip("qenex.payments.convert", reason="qenex.payments.convert (P1) has not landed")
    there = _convert(run_cli, FIXTURES / source, target)
    assert there.code == 0, there.err
    assert_mx_valid(iso, there.out, message_type)
    for text in carried:
        assert text in there.out, f"{text} not carried into {target}"

    mx_path = tmp_path / f"{target}.xml"
    mx_path.write_text(there.out, encoding="utf-8")
    back_to = {"pacs.008": "mt103", "pacs.009": "mt202", "camt.053": "mt940"}[target]
    back = _convert(run_cli, mx_path, back_to)
    assert back.code == 0, back.err
    report = swift.validate(back.out)
    assert report.valid, [str(i) for i in report.errors]
    original = swift.parse((FIXTURES / source).read_bytes())
    returned = swift.parse(back.out)
    for tag in {"mt103": ("32A", "59"), "mt202": ("32A", "58A", "21"), "mt940": ("60F", "62F", "25")}[back_to]:
        assert _field(returned, tag) == _field(original, tag), f":{tag}: changed in the round trip"


def _field(message, tag: str) -> str | None:
    """Value of the first block 4 field ``tag``, whatever shape the message model gives it."""
    text = message.to_string() if hasattr(message, "to_string") else str(message)
    marker = f":{tag}:"
    at = text.find(marker)
    if at < 0:
        return None
    rest = text[at + len(marker) :]
    end = min(
        (i for i in (rest.find("\r\n:"), rest.find("\n:"), rest.find("\r\n-"), rest.find("\n-")) if i >= 0),
        default=len(rest),
    )
    return rest[:end].replace("\r\n", "\n")


JSON_KEYS = {"file", "format", "message_type", "valid", "errors"}
ISSUE_KEYS = {"code", "message", "location", "severity"}


def test_json_lines_have_exactly_the_five_keys(run_cli, tmp_path):
    """The issue's shape, one object per file: {"file", "format", "message_type", "valid", "errors"}.
    Warnings travel in "errors" with severity "warning"; "valid" counts severity "error" only."""
    module_or_skip("iso20022")
    valid = FIXTURES / FILES["iso20022"]
    invalid = tmp_path / "invalid.xml"
    invalid.write_text(broken("iso20022"), encoding="utf-8")
    warning_only = tmp_path / "warning.xml"  # settlement date before creation: a warning, not an error
    warning_only.write_text(
        valid.read_text(encoding="utf-8").replace(
            "<IntrBkSttlmDt>2024-01-15</IntrBkSttlmDt>", "<IntrBkSttlmDt>2024-01-14</IntrBkSttlmDt>"
        ),
        encoding="utf-8",
    )
    unreadable = tmp_path / "missing.xml"
    result = run_cli("payments", "validate", "--json", str(valid), str(invalid), str(warning_only), str(unreadable))
    assert result.code == 2
    lines = {Path(line["file"]).name: line for line in result.json_lines()}
    assert set(lines) == {valid.name, "invalid.xml", "warning.xml", "missing.xml"}
    for line in lines.values():
        assert set(line) == JSON_KEYS, line
        assert all(set(e) == ISSUE_KEYS for e in line["errors"]), line
        assert line["valid"] == (not [e for e in line["errors"] if e["severity"] == "error"])
    assert lines[valid.name]["valid"] is True and lines[valid.name]["errors"] == []
    assert lines["invalid.xml"]["valid"] is False
    warned = lines["warning.xml"]
    assert warned["valid"] is True
    assert [(e["code"], e["severity"]) for e in warned["errors"]] == [("iso20022_date_before_creation", "warning")]
    missing = lines["missing.xml"]
    assert missing["valid"] is False and missing["format"] is None and missing["message_type"] == ""
    assert [(e["code"], e["severity"], e["location"]) for e in missing["errors"]] == [
        ("file_unreadable", "error", str(unreadable))
    ]
