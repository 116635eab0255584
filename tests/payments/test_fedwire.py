"""Fedwire FAIM: build, write, read (delimited and fixed-width forms), validate per BFC."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qenex.payments import fedwire
from qenex.payments.common import PaymentFormatError

SENDER = "121042882"
RECEIVER = "231380104"


def ctr(**overrides) -> fedwire.FedwireMessage:
    args = dict(
        amount_cents=1_234_567,
        sender_aba=SENDER,
        sender_name="WELLS FARGO NA",
        receiver_aba=RECEIVER,
        receiver_name="CITADEL",
        originator=("D", "123456789", "ACME CORP"),
        beneficiary=("D", "987654321", "JANE DOE"),
        sender_reference="INV-2024-001",
        input_source="SOURCE08",
        input_sequence=1,
        cycle_date=date(2024, 3, 4),
        remittance=("INVOICE 2024-001",),
    )
    args.update(overrides)
    return fedwire.customer_transfer(**args)


def bank_message(bfc: str, type_subtype: str) -> fedwire.FedwireMessage:
    """A message between two banks, with no customer parties (BTR, SVC)."""
    return fedwire.new_message(
        business_function_code=bfc,
        type_subtype=type_subtype,
        amount_cents=100,
        sender_aba=SENDER,
        sender_name="A",
        receiver_aba=RECEIVER,
        receiver_name="B",
        input_source="SOURCE08",
        input_sequence=2,
        cycle_date=date(2024, 3, 4),
    )


def codes(report) -> set[str]:
    return {i.code for i in report.errors}


def test_customer_transfer_round_trip() -> None:
    msg = ctr()
    text = msg.to_string()
    assert text.startswith("{1500}30")
    assert "{2000}000001234567\n" in text
    assert "{3100}121042882WELLS FARGO NA*\n" in text
    assert "{4200}D987654321*JANE DOE*\n" in text
    report = fedwire.validate(text)
    assert report.valid, report.issues
    assert report.message_type == "CTR"
    again = fedwire.parse(text)
    assert again.to_string() == text
    assert again.amount_cents == 1_234_567
    summary = fedwire.describe(again)
    assert summary["amount"] == "12345.67" and summary["business_function_code"] == "CTR"
    assert summary["beneficiary"] == "JANE DOE"


def test_fixed_width_form_reads_like_the_delimited_form() -> None:
    delimited = ctr().to_string()
    fixed = delimited.replace("{3100}121042882WELLS FARGO NA*", "{3100}121042882WELLS FARGO NA    ")
    fixed = fixed.replace("{3320}INV-2024-001*", "{3320}INV-2024-001    ")
    fixed = fixed.replace("{4200}D987654321*JANE DOE*", "{4200}D" + "987654321".ljust(34) + "JANE DOE".ljust(35))
    a, b = fedwire.parse(delimited), fedwire.parse(fixed)
    assert a.to_dict() == b.to_dict()
    assert fedwire.validate(fixed).valid


def test_mandatory_tags_and_locations() -> None:
    text = ctr().to_string()
    lines = [line for line in text.splitlines() if not line.startswith(("{3100}", "{5000}"))]
    report = fedwire.validate("\n".join(lines))
    locations = {i.location for i in report.errors if i.code == "fedwire_tag_missing"}
    assert locations == {"{3100}", "{5000}"}


def test_element_formats() -> None:
    text = ctr().to_string()
    bad = text.replace("{3400}231380104", "{3400}231380105").replace("{1520}20240304", "{1520}20241304")
    report = fedwire.validate(bad)
    assert {i.location for i in report.errors} == {"{3400} receiver_aba", "{1520} input_cycle_date"}
    assert "fedwire_format" in codes(fedwire.validate(text.replace("{2000}000001234567", "{2000}00000123456X")))
    assert "fedwire_amount" in codes(fedwire.validate(text.replace("{2000}000001234567", "{2000}000000000000")))


def test_business_function_rules() -> None:
    msg = ctr()
    msg.set("9000", "SERVICE LINE")
    assert "fedwire_tag_prohibited" in codes(fedwire.validate(msg))
    msg = ctr()
    msg.set("1510", "10", "31")
    assert "fedwire_type_subtype" in codes(fedwire.validate(msg))
    msg = ctr()
    msg.set("1510", "10", "02")
    assert "fedwire_tag_missing" in codes(fedwire.validate(msg))  # a reversal needs {3500}
    msg.set("3500", "20240303SOURCE08000001")
    assert fedwire.validate(msg).valid
    msg = ctr()
    msg.set("3600", "CTR", "COV")
    assert "fedwire_transaction_type" in codes(fedwire.validate(msg))


def test_service_message_requires_9000() -> None:
    svc = bank_message("SVC", "1001")
    svc.set("3500", "20240303SOURCE08000001")
    assert "fedwire_tag_missing" in codes(fedwire.validate(svc))
    svc.set("9000", "PLEASE REVERSE OUR TRANSFER")
    assert fedwire.validate(svc).valid


def test_customer_transfer_plus_local_instruments() -> None:
    msg = ctr()
    msg.tags["3600"] = fedwire.parse("{3600}CTP*").tags["3600"]
    assert "fedwire_tag_missing" in codes(fedwire.validate(msg))  # {3610} required for CTP
    msg.set("3610", "RMTS")
    report = fedwire.validate(msg)
    assert {i.location for i in report.errors} == {"{8300}", "{8350}", "{8400}", "{8450}"}
    msg.set("3610", "PROP")
    assert "fedwire_required" in codes(fedwire.validate(msg))
    msg.set("3610", "PROP", "OUR CODE")
    assert fedwire.validate(msg).valid
    msg.set("7050", ":50K:", "ORDERING CUSTOMER")
    assert "fedwire_tag_prohibited" in codes(fedwire.validate(msg))


def test_originator_option_f() -> None:
    msg = ctr()
    msg.tags["3600"] = fedwire.parse("{3600}CTP*").tags["3600"]
    msg.set("3610", "PROP", "OUR CODE")
    del msg.tags["5000"]
    msg.set("5010", "TXID/123-45-6789", "1/JANE DOE", "2/1000 MAIN STREET", "3/US/PHILADELPHIA")
    assert fedwire.validate(msg).valid
    msg.set("5010", "XXXX/1", "JANE DOE", "9/SOMEWHERE")
    assert {i.location for i in fedwire.validate(msg).errors} == {
        "{5010} party_identifier",
        "{5010} name",
        "{5010} line_1",
    }


def test_structure_errors() -> None:
    with pytest.raises(PaymentFormatError):
        fedwire.parse("not a fedwire message")
    with pytest.raises(PaymentFormatError):
        fedwire.parse("junk {1500}30")
    text = ctr().to_string()
    report = fedwire.validate(text + "{1500}30ABCDEFGHT \n{1599}X\n")
    assert {"fedwire_duplicate_tag", "fedwire_unknown_tag"} <= codes(report)
    with pytest.raises(PaymentFormatError):
        ctr().set("3320", "WAY TOO LONG SENDER REFERENCE")
    with pytest.raises(PaymentFormatError):
        ctr(amount_cents=10**12)


def test_unknown_option_is_an_error_parse_raises_and_validate_reports() -> None:
    text = ctr().to_string()
    with pytest.raises(PaymentFormatError) as info:
        fedwire.parse(text, strict=True)
    assert info.value.code == "fedwire_unknown_option" and "'strict'" in info.value.message
    report = fedwire.validate(text, strict=True)
    assert not report.valid and codes(report) == {"fedwire_unknown_option"}
    assert fedwire.validate(ctr(), strict=True).valid  # a parsed message has no parse options to check


def test_shared_samples(shared_dir: Path) -> None:
    manifest = shared_dir / "payments" / "dev" / "manifest.csv"
    if not manifest.is_file():
        pytest.skip("shared manifest absent")
    rows = [r for r in csv.DictReader(manifest.open()) if r["type"] == "fedwire-faim"]
    assert rows
    for row in rows:
        data = (shared_dir / "payments" / "dev" / row["path"]).read_bytes()
        report = fedwire.validate(data)
        if row["expected"] == "valid":
            assert report.valid, (row["path"], report.errors)
            # writing and reading back keeps every element
            msg = fedwire.parse(data)
            assert fedwire.parse(msg.to_string()).to_dict() == msg.to_dict()
        elif row["expected"] == "invalid":
            assert not report.valid and all(i.location for i in report.errors)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_crashes(junk: str) -> None:
    text = ctr().to_string()
    for candidate in (junk, text[: len(junk)] + junk, "{1500}" + junk):
        try:
            fedwire.parse(candidate)
        except PaymentFormatError:
            pass
        fedwire.validate(candidate)


def _with_bfc(bfc: str, ttc: str = "") -> fedwire.FedwireMessage:
    """A message that is valid for ``bfc`` apart from {3600} element 02 (transaction type code)."""
    if bfc == "CTR":
        msg = ctr()
    elif bfc == "CTP":
        msg = ctr()
        msg.set("3610", "PROP", "OUR CODE")
    else:  # BTR: bank to bank
        msg = bank_message("BTR", "1000")
    if ttc:
        msg.set("3600", bfc, ttc)
    else:
        msg.set("3600", bfc)
    return msg


@pytest.mark.parametrize(
    ("bfc", "ttc", "valid"),
    [
        ("BTR", "", True),
        ("BTR", "COV", False),  # BTR takes no transaction type code at all
        ("CTR", "", True),  # element 02 is optional for CTR
        ("CTR", "COV", False),  # ... but never COV: a cover payment is CTP with {3610} COVS
        ("CTR", "ABC", True),
        ("CTP", "", True),
        ("CTP", "COV", False),  # CTP takes no element 02 either (FAIM; moov-io/wire agrees)
    ],
)
def test_transaction_type_code_per_business_function(bfc, ttc, valid) -> None:
    msg = _with_bfc(bfc, ttc)
    report = fedwire.validate(msg.to_string())
    assert report.valid is valid, [str(i) for i in report.issues]
    if not valid:
        assert [(i.code, i.location) for i in report.errors] == [
            ("fedwire_transaction_type", "{3600} transaction_type_code")
        ]
