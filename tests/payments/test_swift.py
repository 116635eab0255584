"""SWIFT MT: parsing with a byte-faithful round trip, field formats, network rules, builders.

Fixtures are written here from the SWIFT Standards MT message reference guides (MT103, MT202,
MT202 COV, MT900, MT910, MT940, MT950); no third-party sample is copied.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mt_samples import confirmation_args, mt202_args, mt202cov_args, statement_args

from qenex.payments import SWIFTProtocol, swift
from qenex.payments.common import PaymentFormatError
from qenex.payments.swift import MessageBatch, StatementEntry


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


UETR = "eb6305c9-1f7f-49de-aed0-16487c27b42d"

MT103 = crlf(
    "{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{3:{108:MUR0001}{121:" + UETR + "}}{4:\n"
    ":20:REF-0001\n"
    ":13C:/SNDTIME/1249+0100\n"
    ":23B:CRED\n"
    ":32A:240115EUR1234,56\n"
    ":33B:EUR1234,56\n"
    ":50K:/BE68539007547034\n"
    "JOHN DOE\n"
    "RUE DE LA LOI 1\n"
    "1000 BRUXELLES\n"
    ":52A:BANKBEBB\n"
    ":57A:BANKDEFF\n"
    ":59:/DE89370400440532013000\n"
    "JANE ROE\n"
    "MAIN STREET 5\n"
    ":70:INVOICE 2024-001\n"
    ":71A:SHA\n"
    "-}{5:{CHK:123456789ABC}}"
)


def mutate(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def codes(report) -> list[str]:
    return [i.code for i in report.errors]


def messages(report) -> str:
    return " | ".join(i.message for i in report.errors)


# ---- parsing and round trip ---------------------------------------------------------------------
def test_mt103_parses_with_typed_access_and_round_trips_byte_for_byte():
    msg = swift.parse(MT103)
    assert msg.message_type == "103"
    assert msg.uetr == UETR
    assert msg.sender_bic == "BANKBEBBXXX" and msg.receiver_bic == "BANKDEFFXXX"
    assert [f.tag for f in msg.fields][:4] == ["20", "13C", "23B", "32A"]
    assert msg.field("50").tag == "50K" and msg.field("50").lines[1] == "JOHN DOE"
    assert swift.render(msg) == MT103
    assert swift.render(msg).encode() == MT103.encode()
    report = swift.validate(MT103)
    assert report.valid, report.issues
    assert report.message_type == "MT103"


@pytest.mark.parametrize(
    "text",
    [
        MT103.replace("\r\n", "\n"),  # LF line ends, as many archives store FIN
        MT103 + "\r\n",  # trailing line break after block 5
        "  " + MT103,  # leading whitespace
        MT103 + "$" + MT103 + "\n",  # an RJE batch of two
    ],
)
def test_round_trip_is_exact_for_every_layout(text):
    parsed = swift.parse(text)
    assert swift.render(parsed) == text
    assert swift.parse(text.encode("ascii")).to_string() == text


def test_rje_batch_and_ack_with_original_are_batches():
    batch = swift.parse(MT103 + "$" + MT103)
    assert isinstance(batch, MessageBatch) and len(batch.messages) == 2
    ack = "{1:F21BANKBEBBAXXX0000000000}{4:{177:2401151200}{451:0}}" + MT103
    parsed = swift.parse(ack)
    assert isinstance(parsed, MessageBatch) and len(parsed.messages) == 2
    assert parsed.to_string() == ack
    report = swift.validate(ack)
    assert report.valid, report.issues
    assert "ACK/NAK" in report.message_type and "MT103" in report.message_type


def test_bare_statement_export_round_trips_and_validates():
    text = crlf(
        "BANKHEADER\n"
        ":20:STMT-1\n:25:DE89370400440532013000\n:28C:1/1\n:60F:C240115EUR100,00\n"
        ":61:2401150115D25,50NTRFNONREF//B1\n:86:RENT JANUARY\n\n"
        ":62F:C240115EUR74,50\n-\n"
    )
    msg = swift.parse(text)
    assert msg.bare and msg.to_string() == text
    report = swift.validate(text)
    assert report.valid, report.issues
    assert [i.code for i in report.issues] == ["mt_stray_line"]  # the header line, as a warning


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "mt_empty"),
        ("   \n", "mt_empty"),
        ("{1:F01BANKBEBBAXXX0000000000", "mt_syntax"),
        ("{4:\r\n:20:X\r\n", "mt_syntax"),
        ("{1:F01BANKBEBBAXXX0000000000}garbage{2:I103BANKDEFFXXXXN}", "mt_syntax"),
        ("1\n2\n3\n", "mt_syntax"),
        ("{x", "mt_syntax"),
        ("{3:{108:abc", "mt_syntax"),
    ],
)
def test_unreadable_input_raises_payment_format_error_with_location(text, code):
    with pytest.raises(PaymentFormatError) as info:
        swift.parse(text)
    assert info.value.code == code
    report = swift.validate(text)
    assert not report.valid and report.errors[0].code == code


def test_oversized_input_is_refused():
    with pytest.raises(PaymentFormatError) as info:
        swift.parse(b":20:X\n" * 2_000_000)
    assert info.value.code == "mt_too_large"


def test_non_utf8_bytes_fall_back_to_latin1_and_round_trip():
    data = ":20:REF\n:86:M\xfcller\n".encode("latin-1")
    msg = swift.parse(data)
    assert msg.to_string().encode("latin-1") == data
    report = swift.validate(data)
    assert "mt_charset" in codes(report)


# ---- headers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("{1:F01BANKBEBBAXXX0000000000}", "{1:F01BANKBEBB0000000000}", "mt_block1_format"),
        ("{1:F01BANKBEBBAXXX0000000000}", "{1:F01BANKQQBBAXXX0000000000}", "mt_bic"),
        ("{2:I103BANKDEFFXXXXN}", "{2:I103BANKDEFFXXXXZ}", "mt_block2_format"),
        ("{121:" + UETR + "}", "{121:" + UETR.upper() + "}", "mt_block3_value"),
        ("{121:" + UETR + "}", "{121:" + str(uuid.uuid1()) + "}", "mt_block3_value"),
        ("{108:MUR0001}{121:" + UETR + "}", "{108:MUR0001}", "mt_uetr_missing"),
        ("{108:MUR0001}", "{999:X}", "mt_block3_tag"),
        ("{CHK:123456789ABC}", "{CHK:12345}", "mt_block5_value"),
        ("\r\n-}{5:", "\r\n}{5:", "mt_block4_end"),
    ],
)
def test_header_errors_are_located(old, new, code):
    report = swift.validate(mutate(MT103, old, new))
    assert code in codes(report), report.issues
    assert all(i.location for i in report.errors)


def test_missing_uetr_is_accepted_with_the_named_relaxation():
    text = mutate(MT103, "{121:" + UETR + "}", "")
    assert "mt_uetr_missing" in codes(swift.validate(text))
    assert swift.validate(text, allow_missing_uetr=True).valid
    assert "allow_missing_uetr" in swift.RELAXATIONS
    assert codes(swift.validate(text, bogus=True)) == ["mt_option"]


def test_blocks_out_of_order_are_reported():
    text = mutate(
        MT103,
        "{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}",
        "{2:I103BANKDEFFXXXXN}{1:F01BANKBEBBAXXX0000000000}",
    )
    assert "mt_block_order" in codes(swift.validate(text))


# ---- field formats ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (":32A:240115EUR1234,56", ":32A:240115EUR1234.56", "mt_field_format"),  # decimal point, not comma
        (":32A:240115EUR1234,56", ":32A:240115EUR1234", "mt_field_format"),  # comma is mandatory
        (":32A:240115EUR1234,56", ":32A:240115EUR1234,567", "mt_amount"),  # EUR has 2 decimals
        (":32A:240115EUR1234,56", ":32A:240230EUR1234,56", "mt_date"),  # 30 February
        (":32A:240115EUR1234,56", ":32A:240115XYZ1234,56", "mt_currency"),
        (":20:REF-0001", ":20:REF-0001-TOO-LONG-REF", "mt_field_format"),  # 16x
        (":20:REF-0001", ":20:/REF", "mt_reference"),  # T26
        (":20:REF-0001", ":20:REF//1", "mt_reference"),
        (":70:INVOICE 2024-001", ":70:INVOICE {2024}", "mt_charset"),  # braces are not in the X set
        (":52A:BANKBEBB", ":52A:BANK1EBB", "mt_field_format"),
        (":52A:BANKBEBB", ":52A:BANKQQBB", "mt_bic"),  # QQ is not a country
        (":13C:/SNDTIME/1249+0100", ":13C:/SNDTIME/2561+0100", "mt_time"),
        ("JANE ROE\r\nMAIN STREET 5", "JANE ROE\r\n-MAIN STREET 5", "mt_field_line"),
    ],
)
def test_field_format_errors(old, new, code):
    report = swift.validate(mutate(MT103, old, new))
    assert code in codes(report), report.issues
    located = [i for i in report.errors if i.code == code]
    assert "block 4 :" in located[0].location and "(line " in located[0].location


def test_jpy_amount_must_have_no_decimals_and_kwd_three():
    ok = mutate(mutate(MT103, ":32A:240115EUR1234,56", ":32A:240115JPY1234,"), ":33B:EUR1234,56", ":33B:JPY1234,")
    assert swift.validate(ok).valid
    bad = mutate(ok, ":32A:240115JPY1234,", ":32A:240115JPY1234,5")
    assert "mt_amount" in codes(swift.validate(bad))
    kwd = mutate(mutate(MT103, ":32A:240115EUR1234,56", ":32A:240115KWD1,234"), ":33B:EUR1234,56", ":33B:KWD1,234")
    assert swift.validate(kwd).valid


# ---- MT103 network rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (":33B:EUR1234,56", ":33B:USD1400,00", "field 36"),  # C1: other currency needs 36
        (":33B:EUR1234,56", ":33B:EUR1234,56\r\n:36:0,9", "field 36 is allowed only"),  # C1
        (":33B:EUR1234,56\r\n", "", "33B is mandatory"),  # C2: BE and DE are in the EU/EEA list
        (":71A:SHA", ":71A:BEN", "at least one 71F"),  # BEN needs 71F
        (":71A:SHA", ":71A:OUR\r\n:71F:EUR1,00", "71F must not be present"),
        (":71A:SHA", ":71A:SHA\r\n:71G:EUR1,00", "71G must not be present"),
        (":71A:SHA", ":71A:OUR\r\n:71G:EUR0,", "must not be zero"),
        (":71A:SHA", ":71A:XXX", "71A must be"),
        (":23B:CRED", ":23B:CRED\r\n:23E:XXXX", "23E code XXXX"),
        (":23B:CRED", ":23B:SSTD\r\n:23E:SDVA", "23E must not be present"),
        (":23B:CRED", ":23B:SPRI\r\n:23E:HOLD", "SDVA, TELB, PHOB or INTC"),
        (":23B:CRED", ":23B:CRED\r\n:23E:CHQB/INFO", "must not carry additional"),
        (":23B:CRED", ":23B:CRED\r\n:23E:TELI", "TELI or PHOI"),
        (":23B:CRED", ":23B:CRED\r\n:23E:CHQB", "pay by cheque"),
        (":23B:CRED", ":23B:XXXX", "23B must be"),
        (":52A:BANKBEBB", ":52A:BANKBEBB\r\n:56A:BANKFRPP", ""),  # 56a with 57a: fine
        (":57A:BANKDEFF\r\n", ":56A:BANKFRPP\r\n", "57a is mandatory"),
        (":52A:BANKBEBB", ":52A:BANKBEBB\r\n:55A:BANKFRPP", "53a and 54a are mandatory"),
        (":23B:CRED", ":23B:SPRI", ""),  # SPRI without 23E and 56a: fine
        (":59:/DE89370400440532013000\r\nJANE ROE", ":59:JANE ROE\r\nCITY", ""),
    ],
)
def test_mt103_network_rules(old, new, fragment):
    report = swift.validate(mutate(MT103, old, new))
    if fragment:
        assert fragment in messages(report), report.issues
    else:
        assert report.valid, report.issues


def test_mt103_beneficiary_account_required_with_sstd():
    text = mutate(mutate(MT103, ":23B:CRED", ":23B:SSTD"), ":59:/DE89370400440532013000\r\nJANE ROE", ":59:JANE ROE")
    assert "beneficiary account" in messages(swift.validate(text))


def test_mt103_structure_missing_and_unexpected_fields():
    report = swift.validate(mutate(MT103, ":71A:SHA\r\n", ""))
    assert "mt_field_missing" in codes(report) and "71A" in messages(report)
    report = swift.validate(mutate(MT103, ":70:INVOICE 2024-001", ":70:X\r\n:99:Y"))
    assert "mt_field_unexpected" in codes(report)
    # Every field present but two swapped: one located ordering error, not a cascade of "missing".
    report = swift.validate(
        mutate(MT103, ":20:REF-0001\r\n:13C:/SNDTIME/1249+0100\r\n:23B:CRED", ":23B:CRED\r\n:20:REF-0001")
    )
    assert [(i.code, i.location) for i in report.issues] == [("mt_field_order", "block 4 :20: (line 3)")]
    assert ":20: comes after :23B:" in report.issues[0].message
    swapped = mutate(MT103, ":57A:BANKDEFF\r\n", "")
    swapped = mutate(swapped, ":71A:SHA\r\n", ":71A:SHA\r\n:57A:BANKDEFF\r\n")
    assert [(i.code, i.location) for i in swift.validate(swapped).issues] == [
        ("mt_field_order", "block 4 :57A: (line 17)")
    ]
    # A missing field stays a missing field, even when others are also out of order.
    report = swift.validate(mutate(swapped, ":32A:240115EUR1234,56\r\n", ""))
    assert "mt_field_order" not in codes(report) and "mt_field_missing" in codes(report)


def test_line_ends_lf_only_or_mixed_are_warnings():
    mixed = mutate(MT103, ":23B:CRED\r\n", ":23B:CRED\n")
    for data in (mixed, mixed.encode()):
        report = swift.validate(data)
        assert report.valid and [(i.code, i.location, i.severity) for i in report.issues] == [
            ("mt_line_ends", "line 4", "warning")
        ]
    lf_only = MT103.replace("\r\n", "\n")
    report = swift.validate(lf_only)
    assert report.valid and [(i.code, i.severity) for i in report.issues] == [("mt_line_ends", "warning")]
    assert not swift.validate(MT103).issues


def test_mt103_stp_restricts_options_and_codes():
    stp = mutate(MT103, "{108:MUR0001}", "{108:MUR0001}{119:STP}")
    assert swift.validate(stp).valid
    report = swift.validate(stp)
    assert report.message_type == "MT103 STP"
    report = swift.validate(mutate(stp, ":52A:BANKBEBB", ":52D:SOME BANK\r\nBRUSSELS"))
    assert "not allowed in MT103 STP" in messages(report)
    report = swift.validate(mutate(stp, ":23B:CRED", ":23B:CRED\r\n:23E:HOLD"))
    assert "23E code HOLD" in messages(report)
    report = swift.validate(mutate(stp, ":71A:SHA", ":71A:SHA\r\n:72:/INS/NOT A BIC"))
    assert "/INS/ in field 72" in messages(report)
    report = swift.validate(mutate(stp, ":71A:SHA", ":71A:SHA\r\n:72:/REJT/XX"))
    assert "/REJT/" in messages(report)
    assert swift.validate(mutate(stp, ":71A:SHA", ":71A:SHA\r\n:72:/INS/BANKGB2L")).valid
    report = swift.validate(mutate(stp, ":59:/DE89370400440532013000\r\nJANE ROE", ":59:JANE ROE"))
    assert "beneficiary account" in messages(report)


# ---- builders -----------------------------------------------------------------------------------
def test_seed_api_create_mt103_is_a_valid_fin_message():
    mt103 = SWIFTProtocol().create_mt103(
        sender_bic="CHASUS33XXX",
        receiver_bic="DEUTDEFFXXX",
        sender_account="123456789",
        receiver_account="987654321",
        amount=Decimal("100000.00"),
        currency="USD",
        reference="INVOICE-2024-001",
        remittance_info="Payment for services",
    )
    text = str(mt103)
    assert text.startswith("{1:F01CHASUS33XXXX0000000000}{2:I103DEUTDEFFXXXXN}{3:{121:")
    assert ":32A:" in text and "USD100000,00" in text and ":70:Payment for services\r\n" in text
    assert "\r\n-}" in text
    parsed = swift.parse(text)
    assert parsed.to_string() == text
    assert swift.validate(text).valid
    uetr = uuid.UUID(parsed.uetr)
    assert uetr.version == 4 and parsed.uetr == str(uetr)
    summary = swift.describe(parsed)
    assert summary["amount"] == "100000.00" and summary["currency"] == "USD"


def test_each_builder_generates_a_fresh_uetr():
    kw = dict(
        sender_bic="CHASUS33",
        receiver_bic="DEUTDEFF",
        sender_account="1",
        receiver_account="2",
        amount="1.00",
        currency="USD",
        reference="R1",
    )
    assert swift.create_mt103(**kw).uetr != swift.create_mt103(**kw).uetr


def test_builder_full_mt103_with_charges_and_stp():
    msg = swift.create_mt103(
        sender_bic="BANKBEBB",
        receiver_bic="BANKDEFF",
        sender_account="BE68539007547034",
        receiver_account="DE89370400440532013000",
        amount=Decimal("1000.00"),
        currency="EUR",
        reference="R-2",
        ordering_name="JOHN DOE",
        ordering_address=["RUE DE LA LOI 1"],
        beneficiary_name="JANE ROE",
        beneficiary_bank_bic="BANKDEFF",
        charges="BEN",
        instructed_amount=Decimal("1010.00"),
        sender_charges=[("EUR", Decimal("10.00"))],
        value_date=date(2024, 1, 15),
        stp=True,
        remittance_info="A" * 100,
    )
    text = str(msg)
    assert "{119:STP}" in text and ":71F:EUR10,00\r\n" in text and ":33B:EUR1010,00\r\n" in text
    assert swift.validate(text).valid
    assert msg.field("70").value.count("\r\n") == 2  # 100 characters wrapped on 35-character lines


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"sender_bic": "NOTABIC"}, "sender_bic"),
        ({"receiver_bic": "DEUTQQFF"}, "receiver_bic"),
        ({"amount": Decimal("1.001")}, "more decimals"),
        ({"amount": 1.5}, "never a float"),
        ({"amount": Decimal("0")}, "positive"),
        ({"currency": "ABC"}, "currency"),
        ({"reference": "REF{1}"}, "X character set"),
        ({"reference": "R" * 17}, "longer than 16"),
        ({"remittance_info": "Zahlung für Dienste"}, "X character set"),
        ({"remittance_info": "W " * 80}, "does not fit"),
        ({"uetr": "not-a-uuid"}, "UUID version 4"),
        ({"remittance_info": "A" * 35 + " -NOTE"}, "would start with"),
        ({"charges": "BEN"}, "71F"),
    ],
)
def test_builder_rejects_bad_input_with_a_clear_error(change, fragment):
    kw = dict(
        sender_bic="CHASUS33",
        receiver_bic="DEUTDEFF",
        sender_account="1",
        receiver_account="2",
        amount=Decimal("10.00"),
        currency="USD",
        reference="R1",
    )
    kw.update(change)
    with pytest.raises(PaymentFormatError) as info:
        swift.create_mt103(**kw)
    assert fragment in info.value.message


def test_create_mt202_and_cov():
    m202 = swift.create_mt202(
        **mt202_args(
            amount=Decimal("5000000.00"),
            account_with_bic="BANKFRPP",
            intermediary_bic="BANKNL2A",
            value_date=date(2024, 2, 1),
        )
    )
    text = str(m202)
    assert swift.validate(text).valid and swift.validate(text).message_type == "MT202"
    assert ":58A:BANKFRPP\r\n" in text and m202.uetr
    cov = swift.create_mt202cov(
        **mt202cov_args(
            amount="1234.56", beneficiary_name="PIERRE DUPONT", remittance_info="INVOICE 1", instructed_amount="1234.56"
        )
    )
    report = swift.validate(str(cov))
    assert report.valid, report.issues
    assert report.message_type == "MT202 COV" and "{119:COV}" in str(cov)


def test_mt202cov_sequence_b_rules():
    cov = str(
        swift.create_mt202cov(
            **mt202cov_args(
                amount="1.00", ordering_customer_account=None, beneficiary_account="123", beneficiary_name="X"
            )
        )
    )
    report = swift.validate(mutate(cov, ":59:/123\r\nX\r\n", ""))
    assert "59a Beneficiary Customer (sequence B)" in messages(report)
    report = swift.validate(mutate(cov, ":59:/123", ":56A:BANKFRPP\r\n:59:/123"))
    assert "sequence B: when 56a is present, 57a is mandatory" in messages(report)


def test_create_mt900_and_mt910():
    m900 = swift.create_mt900(**confirmation_args(reference="D-1", value_date=date(2024, 3, 1)))
    assert swift.validate(str(m900)).valid
    m910 = swift.create_mt910(**confirmation_args(reference="C-1", ordering_institution_bic="BANKFRPP"))
    assert swift.validate(str(m910)).message_type == "MT910"
    with pytest.raises(PaymentFormatError) as info:  # MT910 C1: 50a or 52a
        swift.create_mt910(**confirmation_args(reference="C-1", related_reference="R", account="1", amount="1.00"))
    assert "50a or field 52a" in info.value.message


def _entries():
    return [
        StatementEntry(Decimal("-25.50"), date(2024, 1, 15), "NTRF", "NONREF", "B1", date(2024, 1, 15), "RENT"),
        StatementEntry(Decimal("1000.00"), date(2024, 1, 16), "NMSC", "SALARY", details="SALARY JANUARY"),
    ]


def test_create_mt940_computes_the_closing_balance():
    msg = swift.create_mt940(**statement_args(entries=_entries(), closing_date=date(2024, 1, 16)))
    text = str(msg)
    assert ":62F:C240116EUR1074,50\r\n" in text
    assert ":61:2401150115D25,50NTRFNONREF//B1\r\n:86:RENT\r\n" in text
    report = swift.validate(text)
    assert report.valid and not report.issues, report.issues
    summary = swift.describe(swift.parse(text))
    assert summary["closing_balance"]["amount"] == "1074.50" and len(summary["entries"]) == 2


def test_create_mt950_has_no_86_and_negative_balances():
    msg = swift.create_mt950(
        **statement_args(
            reference="STMT-2", account="123", currency="USD", opening_balance=Decimal("-10.00"), entries=_entries()
        )
    )
    text = str(msg)
    # Without a closing date the closing balance is dated with the last entry (16 January), not
    # the opening date.
    assert ":86:" not in text and ":60F:D240114USD10,00\r\n" in text and ":62F:C240116USD964,50\r\n" in text
    assert swift.validate(text).valid


def test_statement_closing_date_defaults_to_the_last_entry():
    entries = [
        StatementEntry(Decimal("5.00"), date(2024, 1, 20), entry_date=date(2024, 1, 18)),  # booked the 18th
        StatementEntry(Decimal("-1.00"), date(2024, 1, 17)),
    ]
    args = statement_args(entries=entries, available_balance=Decimal("4.00"))
    text = str(swift.create_mt940(**args))
    assert ":62F:C240118EUR104,00\r\n:64:C240118EUR4,00\r\n" in text  # the latest booking date
    explicit = str(swift.create_mt940(**{**args, "closing_date": date(2024, 1, 31)}))
    assert ":62F:C240131EUR104,00\r\n:64:C240131EUR4,00\r\n" in explicit
    empty = str(swift.create_mt940(**statement_args(entries=[])))
    assert ":62F:C240114EUR100,00\r\n" in empty  # no entries: the opening date


def test_statement_rules():
    text = str(swift.create_mt940(**statement_args(reference="S", account="1", entries=_entries())))
    report = swift.validate(mutate(text, ":62F:C240116EUR1074,50", ":62F:C240116USD1074,5"))
    assert "one currency" in messages(report)
    report = swift.validate(mutate(text, ":62F:C240116EUR1074,50", ":62F:C240116EUR1074,60"))
    assert report.valid and [i.code for i in report.issues] == ["mt_balance"]  # a warning
    report = swift.validate(mutate(text, "D25,50NTRF", "D25,50XTRF"))
    assert "S, N or F" in messages(report)
    report = swift.validate(mutate(text, ":61:2401150115D25,50", ":61:2401151315D25,50"))
    assert "entry date" in messages(report)
    report = swift.validate(mutate(text, ":28C:00001/00001\r\n", ""))
    assert "28C" in messages(report)


def test_other_message_types_get_structural_checks():
    text = crlf("{1:F01BANKBEBBAXXX0000000000}{2:I199BANKDEFFXXXXN}{4:\n:20:REF\n:79:FREE TEXT\nLINE 2\n-}")
    report = swift.validate(text)
    assert report.valid and report.message_type == "MT199"
    report = swift.validate(text.replace("FREE TEXT", "FREE {TEXT}"))
    assert "mt_charset" in codes(report)


def test_describe_mt103():
    summary = swift.describe(swift.parse(MT103))
    assert summary["message_type"] == "MT103" and summary["uetr"] == UETR
    assert summary["amount"] == "1234.56" and summary["value_date"] == "2024-01-15"
    assert summary["ordering_customer"]["account"] == "BE68539007547034"
    assert summary["beneficiary"]["name_address"].startswith("JANE ROE")
    assert summary["account_with_institution"]["bic"] == "BANKDEFF"


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (":71A:SHA", ":71A:SHA\r\n:77T:/NARR/REMITTANCE", "only in MT103 REMIT"),
        ("{108:MUR0001}", "{108:MUR0001}{119:REMIT}", "must carry field 77T"),
        ("{108:MUR0001}", "{108:MUR0001}{119:XYZ}", "not defined for MT103"),
    ],
)
def test_mt103_validation_flags(old, new, fragment):
    assert fragment in messages(swift.validate(mutate(MT103, old, new)))


def test_mt103_remit_is_valid_with_77t_and_without_70():
    text = mutate(mutate(MT103, "{108:MUR0001}", "{108:MUR0001}{119:REMIT}"), ":70:INVOICE 2024-001\r\n", "")
    text = mutate(text, ":71A:SHA", ":71A:SHA\r\n:77T:/NARR/EXTENDED REMITTANCE {DATA @ #1\r\nSECOND LINE")
    report = swift.validate(text)
    assert report.valid, report.issues


def test_mt202_cov_flag_and_sequence_b_go_together():
    m202 = str(swift.create_mt202(**mt202_args(amount="1.00")))
    report = swift.validate(m202.replace("{3:{", "{3:{119:COV}{"))
    assert "must carry sequence B" in messages(report)


# ---- properties ---------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "{1:F01BANKBEBBAXXX0000000000}",
        "{2:I103BANKDEFFXXXXN}",
        "{3:{121:" + UETR + "}}",
        "{4:",
        "-}",
        "}",
        "{5:{CHK:123456789ABC}}",
        ":20:",
        ":32A:",
        ":61:",
        ":86:",
        ":NS:",
        "\r\n",
        "\n",
        "\r",
        "$",
        "{",
        ":",
        "240115EUR1,00",
        "ABC",
        " ",
        "-",
        "/",
        "\x0b",
        "\u2028",
        "\xfc",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=40))
def test_parse_is_total_and_round_trips_exactly(pieces):
    text = "".join(pieces)
    try:
        parsed = swift.parse(text)
    except PaymentFormatError as exc:
        assert exc.code.startswith("mt_")
    else:
        assert parsed.to_string() == text
        assert swift.describe(parsed)["format"] == "mt"  # never raises either
    report = swift.validate(text)  # never raises
    assert all(i.code and i.location for i in report.errors)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(MT103) - 1), st.text(max_size=5))
def test_mutated_mt103_never_crashes_validation_or_conversion(pos, junk):
    from qenex.payments import convert

    text = MT103[:pos] + junk + MT103[pos + 1 :]
    swift.validate(text)
    try:
        convert.convert(text, "pacs.008")
    except PaymentFormatError:
        pass


def test_locations_count_lines_in_the_whole_input():
    bad = mutate(MT103, ":32A:240115EUR1234,56", ":32A:240115EUR1234")
    assert swift.validate(bad).errors[0].location == "block 4 :32A: (line 5)"
    batch = swift.validate(MT103 + "$\r\n" + bad)
    assert [i.location for i in batch.errors] == ["message 2 block 4 :32A: (line 23)"]
    assert bad.split("\r\n")[4] == ":32A:240115EUR1234" and (MT103 + "$\r\n" + bad).split("\r\n")[22].startswith(
        ":32A:"
    )
    export = crlf(
        "HEADER\n:20:S1\n:25:1\n:28C:1\n:60F:C240115EUR1,00\n:62F:C240115EUR1,00\n-\n"
        ":20:S2\n:25:1\n:28C:2\n:60F:C240115EUR1,00\n:62F:C240115EUR1,0X\n-\n"
    )
    report = swift.validate(export)
    assert [i.location for i in report.errors] == ["statement 2 block 4 :62F: (line 12)"]


# -- the block 4 splitter against a plain reference --------------------------------------------
def _reference_split(body: str) -> list[tuple[str, str, str]] | None:
    """Block 4 fields by the definition: a field starts at the beginning and after every line break
    followed by ':tag:'; its value runs to the next such line break, which is its line end."""
    import re

    starts = [m for m in re.finditer(r"(?:^|(?<=\n)):([0-9]{2}[A-Z]?|NS):", body)]
    if not starts or starts[0].start() != 0:
        return None
    out = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
        value = body[m.end() : end]
        eol = "\r\n" if value.endswith("\r\n") else "\n" if value.endswith("\n") else ""
        out.append((m.group(1), value[: len(value) - len(eol)], eol))
    return out


_BODY_PIECES = st.sampled_from([":20:", ":23B:", ":50K:", ":NS:", ":7:", "\r\n", "\n", "\r", "REF", "/", "-", ":", " "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BODY_PIECES, min_size=1, max_size=30).map("".join))
def test_block4_split_matches_the_definition(body: str) -> None:
    from qenex.payments.swift import model

    expected = _reference_split(body)
    if expected is None:
        with pytest.raises(PaymentFormatError):
            model._split_fields(body, body, 0)
        return
    got = model._split_fields(body, body, 0)
    assert [(f.tag, f.value, f.eol) for f in got] == expected
    assert "".join(f":{f.tag}:{f.value}{f.eol}" for f in got) == body  # byte-faithful


# -- the one-message fast path builds exactly what the general block reader builds ---------------
def _both_ways(text: str):
    from qenex.payments.swift import model

    def run():
        try:
            return model.parse_text(text)
        except PaymentFormatError as exc:
            return ("error", exc.code, exc.message, exc.location)

    fast = run()
    model.FAST_PATH_ENABLED = False
    try:
        general = run()
    finally:
        model.FAST_PATH_ENABLED = True
    return fast, general


_FIN_PIECES = st.sampled_from(
    [
        "{1:F01BANKBEBBAXXX0000000000}",
        "{2:I103BANKDEFFXXXXN}",
        "{3:{108:REF}{121:eb6305c9-1f7f-49de-aed0-16487c27b42d}}",
        "{4:\r\n",
        "{4:\n",
        "{4:",
        ":20:REF\r\n",
        ":32A:240115EUR1,\n",
        ":59:/X\r\nNAME\r\n",
        "-}",
        "\r\n-}",
        "{5:{CHK:123456789ABC}}",
        "{5:{CHK:\n-}}",
        "{5:}",
        "\r\n",
        " ",
        "$",
        "{",
        "}",
        "-",
        "{1:",
        "{S:{SAC:}}",
    ]
)


_B12 = "{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FIN_PIECES, min_size=1, max_size=12).map("".join))
@example(_B12 + "{4:-}{5:{CHK:\n-}}")  # the general reader ends block 4 at a "\n-}" in block 5
@example(_B12 + "{4:\r\n:20:REF-}{5:{CHK:\n-}}\r\n")
@example(_B12 + "{4:\r\n:20:REF\r\n-}{5:{CHK:\n-}}")
@example(_B12 + "{4:\r\n:20:REF\r\n-} $")
@example(" " + _B12 + "{4:\r\n:20:REF\r\n-}")
def test_fin_fast_path_equals_general_reader(text: str) -> None:
    fast, general = _both_ways(text)
    assert fast == general


def test_fin_fast_path_equals_general_reader_on_real_messages(shared_dir) -> None:
    from pathlib import Path

    paths = sorted(Path(__file__).parent.glob("fixtures/**/*.fin"))
    paths += sorted((shared_dir / "payments" / "dev" / "mt").rglob("*.fin"))
    compared = 0
    for path in paths:
        text = path.read_bytes().decode("latin-1")
        if not text.lstrip().startswith("{"):
            continue
        fast, general = _both_ways(text)
        assert fast == general, path
        compared += 1
    assert compared >= 20
