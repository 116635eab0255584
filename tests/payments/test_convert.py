"""MT <-> MX conversion: MT103/pacs.008, MT202/pacs.009, MT940/camt.053, both directions.

Every output is validated: MT outputs with the MT validator, MX outputs against the official XSD
(the packaged schema, or ../shared's copy where no maintained package ships that version).
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from mt_samples import mt202_args, mt202cov_args, statement_args

from qenex.payments import convert as cv
from qenex.payments import iso20022 as mx
from qenex.payments import swift
from qenex.payments.common import PaymentFormatError

UETR = "eb6305c9-1f7f-49de-aed0-16487c27b42d"


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


MT103 = crlf(
    "{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{3:{108:MUR0001}{121:" + UETR + "}}{4:\n"
    ":20:REF-0001\n:13C:/SNDTIME/1249+0100\n:23B:CRED\n:32A:240115EUR1234,56\n:33B:EUR1244,56\n"
    ":50K:/BE68539007547034\nJOHN DOE\nRUE DE LA LOI 1\n:52A:BANKBEBB\n:56A:BANKNL2A\n:57A:BANKFRPP\n"
    ":59:/DE89370400440532013000\nJANE ROE\n:70:/ROC/E2E-77\nINVOICE 2024-001\n:71A:SHA\n:71F:EUR10,\n"
    ":72:/INS/BANKGB2L\n-}"
)


@pytest.fixture(scope="module", autouse=True)
def official_schemas() -> None:
    """Use ../shared's official XSDs for the versions no maintained package ships (pacs.009.001.08)."""
    xsd = Path(__file__).resolve().parents[3] / "shared" / "payments" / "iso20022_xsd"
    if xsd.is_dir():
        mx.add_schema_dir(xsd)


def assert_xsd_valid(xml: str, message_type: str) -> None:
    if mx.get_schema(message_type) is None:
        pytest.skip(f"no XSD for {message_type}: ../shared is absent and no package ships it")
    report = mx.validate(xml)
    assert report.message_type == message_type
    assert report.valid, report.errors
    assert not [i for i in report.issues if i.code == "xsd_unavailable"]


def lost_text(result: cv.ConversionResult) -> str:
    return " | ".join(f"{i.location}: {i.message}" for i in result.lost)


def test_mt103_to_pacs008_carries_amounts_parties_references_and_uetr():
    result = cv.convert(MT103, "pacs.008")
    assert result.message_type == "pacs.008.001.08"
    assert_xsd_valid(result.output, "pacs.008.001.08")
    tx = mx.parse(result.output).transactions()[0]
    assert tx.uetr == UETR
    assert tx.amount == Decimal("1234.56") and tx.currency == "EUR" and tx.settlement_date == "2024-01-15"
    assert tx.instructed_amount == Decimal("1244.56")
    assert tx.instr_id == "REF-0001" and tx.end_to_end_id == "E2E-77"
    assert tx.debtor.name == "JOHN DOE" and tx.debtor.iban == "BE68539007547034"
    assert tx.creditor.name == "JANE ROE" and tx.creditor.iban == "DE89370400440532013000"
    assert tx.debtor_agent.bic == "BANKBEBB" and tx.creditor_agent.bic == "BANKFRPP"
    assert tx.intermediary_agents[0].bic == "BANKNL2A"
    assert tx.instructing_agent.bic == "BANKBEBBXXX" and tx.instructed_agent.bic == "BANKDEFFXXX"
    assert tx.remittance == ("INVOICE 2024-001",) and tx.charge_bearer == "SHAR"
    lost = lost_text(result)
    assert "{108:}" in lost and "13C" not in lost  # what pacs.008 cannot carry is reported
    assert tx.settlement_time_indication == (("DbtDtTm", "2024-01-15T12:49:00+01:00"),)


MT103_13C_77B = MT103.replace(
    ":13C:/SNDTIME/1249+0100\r\n",
    ":13C:/SNDTIME/1249+0100\r\n:13C:/RNCTIME/1302+0100\r\n:13C:/CLSTIME/0915-0500\r\n:13C:/REJTIME/1600+0000\r\n",
).replace(":72:/INS/BANKGB2L\r\n", ":72:/INS/BANKGB2L\r\n:77B:/ORDERRES/BE//MEILAAN 1, 9000 GENT\r\n/BENEFRES/DE\r\n")


def test_mt103_13c_and_77b_travel_to_pacs008_and_back():
    """CBPR+ translation: 13C SNDTIME/RNCTIME -> SttlmTmIndctn DbtDtTm/CdtDtTm (dated with 32A),
    CLSTIME/TILTIME/FROTIME/REJTIME -> SttlmTmReq; 77B lines -> RgltryRptg/Dtls/Inf."""
    assert swift.validate(MT103_13C_77B).valid
    result = cv.convert(MT103_13C_77B, "pacs.008")
    assert_xsd_valid(result.output, "pacs.008.001.08")
    assert not [i for i in result.lost if "13C" in i.location or "77B" in i.location], lost_text(result)
    tx = mx.parse(result.output).transactions()[0]
    assert tx.settlement_time_indication == (
        ("DbtDtTm", "2024-01-15T12:49:00+01:00"),
        ("CdtDtTm", "2024-01-15T13:02:00+01:00"),
    )
    assert tx.settlement_time_request == (("CLSTm", "09:15:00-05:00"), ("RjctTm", "16:00:00+00:00"))
    assert tx.regulatory_reporting == ("/ORDERRES/BE//MEILAAN 1, 9000 GENT", "/BENEFRES/DE")
    back = cv.convert(result.output, "mt103")
    assert swift.validate(back.output).valid, swift.validate(back.output).issues
    msg = swift.parse(back.output)
    assert [f.text for f in msg.all("13C")] == [
        "/SNDTIME/1249+0100",
        "/RNCTIME/1302+0100",
        "/CLSTIME/0915-0500",
        "/REJTIME/1600+0000",
    ]
    assert msg.field("77B").lines == ["/ORDERRES/BE//MEILAAN 1, 9000 GENT", "/BENEFRES/DE"]
    assert "13C" not in lost_text(back) and "RgltryRptg" not in lost_text(back)


def test_mt202_13c_travels_to_pacs009_and_back():
    mt202 = _mt202().replace(":32A:", ":13C:/TILTIME/1100+0100\r\n:32A:", 1)
    assert swift.validate(mt202).valid
    result = cv.convert(mt202, "pacs.009")
    tx = mx.parse(result.output).transactions()[0]
    assert tx.settlement_time_request == (("TillTm", "11:00:00+01:00"),)
    back = swift.parse(cv.convert(result.output, "mt202").output)
    assert back.field("13C").text == "/TILTIME/1100+0100"


def test_pacs008_to_mt103_and_back_preserves_the_payment():
    pacs = cv.convert(MT103, "pacs.008").output
    back = cv.convert(pacs, "mt103")
    assert back.message_type == "MT103"
    report = swift.validate(back.output)
    assert report.valid, report.issues
    msg = swift.parse(back.output)
    assert msg.uetr == UETR
    assert msg.field("32A").text == "240115EUR1234,56" and msg.field("33B").text == "EUR1244,56"
    assert msg.field("20").text == "REF-0001"
    assert msg.field("50K").lines == ["/BE68539007547034", "JOHN DOE", "RUE DE LA LOI 1"]
    assert msg.field("59").lines == ["/DE89370400440532013000", "JANE ROE"]
    assert msg.field("70").lines == ["/ROC/E2E-77", "INVOICE 2024-001"]
    assert msg.field("56A").text == "BANKNL2A" and msg.field("57A").text == "BANKFRPP"
    assert msg.field("71A").text == "SHA" and msg.field("71F").text == "EUR10,00"
    assert msg.field("72").text == "/INS/BANKGB2L"
    assert msg.sender_bic == "BANKBEBBXXX" and msg.receiver_bic == "BANKDEFFXXX"


def _pacs008(**extra) -> str:
    extra.setdefault("end_to_end_id", "END-TO-END-ID-LONGER-THAN-16")
    transfer = mx.CreditTransfer(
        amount=Decimal("250.00"),
        currency="USD",
        settlement_date=date(2024, 5, 2),
        instr_id="INSTR-1",
        uetr="0f3d7d5c-8c44-4d8e-9a0c-3f6b2a1e9b71",
        debtor=mx.PartySpec(
            name="ACME CORPORATION WITH A VERY LONG LEGAL NAME THAT WRAPS",
            iban="GB33BUKB20201555555555",
            agent_bic="BUKBGB22",
        ),
        creditor=mx.PartySpec(name="BOB", account_id="12345678", agent_bic="CHASUS33"),
        remittance="INV 9",
        charge_bearer="DEBT",
        **extra,
    )
    return mx.build_pacs008([transfer], instructing_agent_bic="BUKBGB22", instructed_agent_bic="CHASUS33").to_string()


def test_pacs008_to_mt103_reports_what_does_not_fit():
    xml = _pacs008(purpose="SALA", ultimate_debtor=mx.PartySpec(name="PARENT CO"))
    result = cv.convert(xml, "mt103")
    assert swift.validate(result.output).valid
    msg = swift.parse(result.output)
    assert msg.uetr == "0f3d7d5c-8c44-4d8e-9a0c-3f6b2a1e9b71"
    assert msg.field("71A").text == "OUR" and msg.field("32A").text == "240502USD250,00"
    assert msg.field("50K").lines[:3] == [
        "/GB33BUKB20201555555555",
        "ACME CORPORATION WITH A VERY LONG L",
        "EGAL NAME THAT WRAPS",
    ]
    assert msg.field("70").lines[0] == "/ROC/END-TO-END-ID-LONGER-THAN-16"
    lost = lost_text(result)
    assert "UltmtDbtr" in lost and "Purp" in lost and "SALA" in lost
    long_id = cv.convert(_pacs008(end_to_end_id="E" * 35), "mt103")
    assert swift.parse(long_id.output).field("70").lines[0] == "/ROC/" + "E" * 30
    assert "does not fit field 70" in lost_text(long_id)


def test_pacs008_with_two_transactions_is_refused():
    party = mx.PartySpec(name="A", iban="GB33BUKB20201555555555", agent_bic="BUKBGB22")
    t = mx.CreditTransfer(amount="1.00", currency="EUR", debtor=party, creditor=party)
    xml = mx.build_pacs008([t, t], instructing_agent_bic="BUKBGB22", instructed_agent_bic="CHASUS33").to_string()
    with pytest.raises(PaymentFormatError) as info:
        cv.convert(xml, "mt103")
    assert "2 transactions" in info.value.message


def _mt202(**extra) -> str:
    kw = mt202_args(
        amount=Decimal("5000000.00"),
        beneficiary_institution_account="FR7630006000011234567890189",
        intermediary_bic="BANKNL2A",
        account_with_bic="BANKFRPP",
        value_date=date(2024, 2, 1),
        sender_to_receiver="/INS/BANKGB2L",
        uetr=UETR,
    )
    kw.update(extra)
    return str(swift.create_mt202(**kw))


def test_mt202_to_pacs009_and_back():
    result = cv.convert(_mt202(), "pacs.009")
    assert result.message_type == "pacs.009.001.08"
    assert_xsd_valid(result.output, "pacs.009.001.08")
    tx = mx.parse(result.output).transactions()[0]
    assert tx.uetr == UETR and tx.amount == Decimal("5000000.00") and tx.end_to_end_id == "REL-1"
    assert tx.creditor.bic == "BANKFRPP" and tx.creditor.iban == "FR7630006000011234567890189"
    assert tx.debtor.bic == "BANKBEBBXXX" and tx.intermediary_agents[0].bic == "BANKNL2A"
    back = cv.convert(result.output, "mt202")
    assert swift.validate(back.output).valid
    msg = swift.parse(back.output)
    assert msg.field("20").text == "FI-1" and msg.field("21").text == "REL-1" and msg.uetr == UETR
    assert msg.field("32A").text == "240201EUR5000000,00"
    assert msg.field("58A").lines == ["/FR7630006000011234567890189", "BANKFRPP"]
    assert msg.field("72").text == "/INS/BANKGB2L"


def test_mt202cov_to_pacs009_cov_and_back():
    cov = str(
        swift.create_mt202cov(
            **mt202cov_args(
                amount="10.00",
                beneficiary_name="JANE ROE",
                underlying_ordering_institution_bic="BANKBEB1",
                underlying_account_with_bic="BANKFRP1",
                remittance_info="INVOICE 7",
                instructed_amount="10.00",
                uetr=UETR,
            )
        )
    )
    result = cv.convert(cov, "pacs.009")
    assert_xsd_valid(result.output, "pacs.009.001.08")
    doc = mx.parse(result.output)
    und = doc.r.f(doc.transaction_elements()[0], "UndrlygCstmrCdtTrf")
    assert doc.r.t(und, "Dbtr/Nm") == "JOHN DOE" and doc.r.t(und, "DbtrAcct/Id/IBAN") == "BE68539007547034"
    assert doc.r.t(und, "DbtrAgt/FinInstnId/BICFI") == "BANKBEB1"
    assert doc.r.t(und, "CdtrAgt/FinInstnId/BICFI") == "BANKFRP1"
    assert doc.r.t(und, "Cdtr/Nm") == "JANE ROE" and doc.r.t(und, "RmtInf/Ustrd") == "INVOICE 7"
    assert doc.r.t(und, "InstdAmt") == "10.00"
    back = cv.convert(result.output, "mt202")
    assert back.message_type == "MT202 COV"
    report = swift.validate(back.output)
    assert report.valid and report.message_type == "MT202 COV", report.issues
    msg = swift.parse(back.output)
    seq_b = [f.tag for f in msg.fields][[f.tag for f in msg.fields].index("50K") :]
    assert seq_b == ["50K", "52A", "57A", "59", "70", "33B"]
    assert msg.field("59").lines == ["/FR1420041010050500013M02606", "JANE ROE"] and msg.uetr == UETR


def _mt940() -> str:
    entries = [
        swift.StatementEntry(Decimal("-25.50"), date(2024, 1, 15), "NTRF", "NONREF", "B1", date(2024, 1, 15), "RENT"),
        swift.StatementEntry(Decimal("1000.00"), date(2024, 1, 16), "NMSC", "SALARY", "B2", details="SALARY JAN"),
    ]
    return str(swift.create_mt940(**statement_args(entries=entries, closing_date=date(2024, 1, 16))))


def test_mt940_to_camt053_carries_balances_and_entries():
    result = cv.convert(_mt940(), "camt.053")
    assert result.message_type == "camt.053.001.08"
    assert_xsd_valid(result.output, "camt.053.001.08")
    st = mx.parse(result.output).statements()[0]
    assert st.id == "STMT-1" and st.account.iban == "DE89370400440532013000" and st.account.bic == "BANKDEFFXXX"
    balances = {b.type_code: (b.amount, b.credit_debit, b.date) for b in st.balances}
    assert balances["OPBD"] == (Decimal("100.00"), "CRDT", "2024-01-14")
    assert balances["CLBD"] == (Decimal("1074.50"), "CRDT", "2024-01-16")
    first, second = st.entries
    assert (first.amount, first.credit_debit, first.bank_tx_code, first.account_servicer_ref) == (
        Decimal("25.50"),
        "DBIT",
        "NTRF",
        "B1",
    )
    assert first.additional_info == "RENT" and second.details[0].end_to_end_id == "SALARY"
    assert "receiver" in lost_text(result)


def test_mt940_page_number_and_available_balance_to_camt053_and_back():
    """28C statement/sequence number -> ElctrncSeqNb and StmtPgntn/PgNb (LastPgInd from 62F/62M);
    64 closing available balance -> Bal CLAV; and back to the same MT940 fields."""
    entries = [swift.StatementEntry(Decimal("-25.50"), date(2024, 1, 15), "NTRF", "NONREF", "B1")]
    args = statement_args(entries=entries, closing_date=date(2024, 1, 15), available_balance=Decimal("70.25"))
    for closing_is_final in (True, False):
        mt940 = str(
            swift.create_mt940(
                **args, statement_number=7, sequence_number=3, opening_is_final=False, closing_is_final=closing_is_final
            )
        )
        assert ":28C:00007/00003\r\n:60M:" in mt940 and ":64:C240115EUR70,25\r\n" in mt940
        result = cv.convert(mt940, "camt.053")
        assert not [i for i in result.lost if "64" in i.location or "28C" in i.location], lost_text(result)
        assert_xsd_valid(result.output, "camt.053.001.08")
        st = mx.parse(result.output).statements()[0]
        assert (st.sequence_number, st.page_number, st.last_page) == ("7", "00003", closing_is_final)
        balances = {b.type_code: (b.amount, b.credit_debit, b.date) for b in st.balances}
        assert balances["CLAV"] == (Decimal("70.25"), "CRDT", "2024-01-15")
        back = cv.convert(result.output, "mt940").output
        assert swift.validate(back).valid
        msg = swift.parse(back)
        assert msg.field("28C").text == "00007/00003"
        assert msg.field("60M").text == "C240114EUR100,00"
        closing_tag = "62F" if closing_is_final else "62M"
        assert msg.field(closing_tag).tag == closing_tag and msg.field(closing_tag).text == "C240115EUR74,50"
        assert msg.field("64").text == "C240115EUR70,25"


def test_camt053_to_mt940_with_and_without_an_app_header():
    camt = cv.convert(_mt940(), "camt.053").output
    bare = cv.convert(camt, "mt940")
    assert "AppHdr" in lost_text(bare) and not bare.output.startswith("{1:")
    report = swift.validate(bare.output)
    assert report.valid, report.issues
    msg = swift.parse(bare.output)
    assert msg.field("60F").text == "C240114EUR100,00" and msg.field("62F").text == "C240116EUR1074,50"
    assert [f.text for f in msg.all("61")] == ["2401150115D25,50NTRFNONREF//B1", "2401160116C1000,00NMSCSALARY//B2"]
    assert [f.text for f in msg.all("86")] == ["RENT", "SALARY JAN"]
    routed = mx.with_app_header(mx.parse(camt), mx.AppHeaderSpec(from_bic="BANKDEFFXXX", to_bic="BANKBEBBXXX"))
    fin = cv.convert(routed.to_string(), "mt940")
    assert fin.output.startswith("{1:F01BANKDEFFXXXX") and swift.validate(fin.output).valid


@pytest.mark.parametrize(
    ("data", "to", "fragment"),
    [
        (MT103, "camt.053", "no conversion from MT103"),
        (MT103, "pain.001", "unknown conversion target"),
        (MT103.replace(":71A:SHA", ":71A:BEN").replace(":71F:EUR10,\r\n", ""), "pacs.008", "not valid"),
        ("garbage", "pacs.008", ""),
        ("<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08'>", "mt103", ""),
    ],
)
def test_unconvertible_input_raises_payment_format_error(data, to, fragment):
    with pytest.raises(PaymentFormatError) as info:
        cv.convert(data, to)
    assert fragment in info.value.message


def test_result_text_alias_and_lost_are_warnings():
    result = cv.convert(MT103, "pacs.008")
    assert result.text == result.output == str(result)
    assert result.lost and all(i.severity == "warning" and i.location for i in result.lost)


def test_shared_mt_samples_convert_to_schema_valid_mx(shared_dir):
    """Every MT103/202/940 of ../shared that our validator accepts converts, and back, validly."""
    root = shared_dir / "payments" / "dev"
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"].startswith("mt/") and r["path"].endswith(".fin")]
    targets = {
        "103": ("pacs.008", "pacs.008.001.08", "mt103"),
        "202": ("pacs.009", "pacs.009.001.08", "mt202"),
        "940": ("camt.053", "camt.053.001.08", "mt940"),
    }
    converted = 0
    for row in rows:
        data = (root / row["path"]).read_bytes()
        try:
            msg = swift.parse(data)
        except PaymentFormatError:
            continue
        if isinstance(msg, swift.MessageBatch) or msg.message_type not in targets or not swift.validate(msg).valid:
            continue
        to, mx_type, back_to = targets[msg.message_type]
        result = cv.convert(data, to)
        assert_xsd_valid(result.output, mx_type)
        back = cv.convert(result.output, back_to)
        assert swift.validate(back.output).valid, row["path"]
        assert swift.parse(back.output).uetr == msg.uetr or msg.uetr is None
        converted += 1
    assert converted >= 20


def test_shared_mx_samples_convert_to_valid_mt_or_are_refused_precisely(shared_dir):
    """pacs.008/pacs.009/camt.053 samples of ../shared: a valid MT with the same amount and UETR, or a
    PaymentFormatError naming why (Fedwire samples address agents by ABA number, not BIC; test data
    mixing currencies in one statement)."""
    root = shared_dir / "payments" / "dev" / "iso20022_samples"
    targets = {"pacs.008": "mt103", "pacs.009": "mt202", "camt.053": "mt940"}
    converted = refused = 0
    for path in sorted(root.rglob("*.xml")):
        data = path.read_bytes()
        try:
            family = mx.parse(data).family
        except PaymentFormatError:
            continue
        if family not in targets:
            continue
        try:
            result = cv.convert(data, targets[family])
        except PaymentFormatError as exc:
            assert exc.code == "payment_convert" and exc.message, path
            refused += 1
            continue
        report = swift.validate(result.output)
        assert report.valid, (path, report.errors)
        if family != "camt.053":
            tx = mx.parse(data).transactions()[0]
            out = swift.parse(result.output)
            assert out.uetr == tx.uetr or tx.uetr is None, path
            assert Decimal(swift.describe(out)["amount"]) == tx.amount, path
        converted += 1
    assert converted >= 25 and refused < converted


def test_structured_parties_50f_59f_round_trip_with_country_and_town():
    text = MT103.replace(
        ":50K:/BE68539007547034\r\nJOHN DOE\r\nRUE DE LA LOI 1\r\n",
        ":50F:/BE68539007547034\r\n1/JOHN DOE\r\n2/RUE DE LA LOI 1\r\n3/BE/BRUXELLES\r\n",
    ).replace(
        ":59:/DE89370400440532013000\r\nJANE ROE\r\n",
        ":59F:/DE89370400440532013000\r\n1/JANE ROE\r\n2/MAIN STREET 5\r\n3/DE/BERLIN\r\n",
    )
    assert swift.validate(text).valid
    pacs = cv.convert(text, "pacs.008").output
    tx = mx.parse(pacs).transactions()[0]
    assert (tx.debtor.name, tx.debtor.country, tx.debtor.address_lines) == (
        "JOHN DOE",
        "BE",
        ("RUE DE LA LOI 1", "BRUXELLES"),
    )
    back = swift.parse(cv.convert(pacs, "mt103").output)
    assert back.field("50F").lines == ["/BE68539007547034", "1/JOHN DOE", "2/RUE DE LA LOI 1", "3/BE/BRUXELLES"]
    assert back.field("59F").lines == ["/DE89370400440532013000", "1/JANE ROE", "2/MAIN STREET 5", "3/DE/BERLIN"]


def test_mt_without_uetr_converts_with_a_fresh_one_reported():
    text = MT103.replace("{121:" + UETR + "}", "")
    result = cv.convert(text, "pacs.008")
    uetr = mx.parse(result.output).transactions()[0].uetr
    assert uetr and uetr != UETR and "newly generated" in lost_text(result)


def test_correspondents_and_previous_instructing_agent_follow_cbpr_plus():
    text = MT103.replace(":52A:BANKBEBB\r\n", ":52A:BANKBEBB\r\n:53A:/12345\r\nBANKUS33\r\n:54A:BANKDEFF\r\n")
    assert swift.validate(text).valid
    result = cv.convert(text, "pacs.008")
    assert_xsd_valid(result.output, "pacs.008.001.08")
    doc = mx.parse(result.output)
    sttlm = doc.r.f(doc.body, "GrpHdr/SttlmInf")
    assert doc.r.t(sttlm, "SttlmMtd") == "COVE"
    assert doc.r.t(sttlm, "InstgRmbrsmntAgt/FinInstnId/BICFI") == "BANKUS33"
    assert doc.r.t(sttlm, "InstgRmbrsmntAgtAcct/Id/Othr/Id") == "12345"
    assert doc.r.t(sttlm, "InstdRmbrsmntAgt/FinInstnId/BICFI") == "BANKDEFF"
    tx_el = doc.transaction_elements()[0]
    assert doc.r.t(tx_el, "PrvsInstgAgt1/FinInstnId/BICFI") == "BANKGB2L"  # from 72 /INS/
    assert not doc.r.all(tx_el, "InstrForNxtAgt")
    back = swift.parse(cv.convert(result.output, "mt103").output)
    assert back.field("53A").lines == ["/12345", "BANKUS33"] and back.field("54A").text == "BANKDEFF"
    assert back.field("72").text == "/INS/BANKGB2L"
    b53 = MT103.replace(":52A:BANKBEBB\r\n", ":52A:BANKBEBB\r\n:53B:/98765\r\n")
    doc = mx.parse(cv.convert(b53, "pacs.008").output)
    assert doc.r.t(doc.body, "GrpHdr/SttlmInf/SttlmAcct/Id/Othr/Id") == "98765"
    assert doc.r.t(doc.body, "GrpHdr/SttlmInf/SttlmMtd") == "INDA"


def test_instruction_codes_map_to_payment_type_and_back():
    text = MT103.replace(":23B:CRED\r\n", ":23B:CRED\r\n:23E:SDVA\r\n:23E:INTC\r\n:23E:HOLD\r\n")
    assert swift.validate(text).valid
    result = cv.convert(text, "pacs.008")
    assert_xsd_valid(result.output, "pacs.008.001.08")
    tx = mx.parse(result.output).transactions()[0]
    assert (tx.service_level, tx.category_purpose) == ("SDVA", "INTC")
    assert "HOLD" in lost_text(result) and "SDVA" not in lost_text(result)
    back = cv.convert(result.output, "mt103")
    assert [f.text for f in swift.parse(back.output).all("23E")] == ["SDVA", "INTC"]
    assert "SvcLvl" not in lost_text(back) and "CtgyPurp" not in lost_text(back)


def _with_terminals(mt: str, sender_lt: str, receiver_lt: str) -> str:
    """The message with its block 1/2 addresses given non-default logical terminal codes."""
    b1, b2 = mt.index("{1:F01") + 6, mt.index("{2:I") + 7
    return mt[:b1] + sender_lt + mt[b1 + 12 : b2] + receiver_lt + mt[b2 + 12 :]


def _lt_lost(result: cv.ConversionResult) -> dict[str, str]:
    return {i.location: i.message for i in result.lost if "logical terminal" in i.message}


@pytest.mark.parametrize(
    ("source", "to", "back_to", "mx_type"),
    [
        ("mt202", "pacs.009", "mt202", "pacs.009.001.08"),
        ("mt103", "pacs.008", "mt103", "pacs.008.001.08"),
        ("mt940", "camt.053", "mt940", "camt.053.001.08"),
    ],
)
def test_logical_terminal_code_is_reported_as_lost_and_written_back_as_default(source, to, back_to, mx_type):
    """CBPR+ carries agents by BIC only (BAH Fr/To and BICFI admit BIC8/BIC11): a logical terminal
    code other than X cannot cross, so it is a located `lost` warning, and the MT written back uses X."""
    mt = {"mt202": lambda: _mt202(sender_bic="CHASUS33"), "mt103": lambda: MT103, "mt940": _mt940}[source]()
    sender = "CHASUS33AXXX" if source == "mt202" else mt[6:18].replace("XXXX", "AXXX", 1)
    receiver = mt[mt.index("{2:I") + 7 :][:12].replace("XXXX", "BXXX", 1)
    original = _with_terminals(mt, sender, receiver)
    assert swift.validate(original).valid
    result = cv.convert(original, to)
    assert_xsd_valid(result.output, mx_type)
    lost = _lt_lost(result)
    assert f"'A' of {sender}" in lost["block 1"] and f"{sender[:8]}X{sender[9:]}" in lost["block 1"]
    if source == "mt940":  # camt.053 drops the receiver altogether, reported on its own
        assert "block 2" not in lost and "receiver" in lost_text(result)
    else:
        assert f"'B' of {receiver}" in lost["block 2"]
    back = cv.convert(result.output, back_to)
    assert swift.validate(back.output).valid
    if source != "mt940":  # camt.053 names no receiver: its MT940 is written without blocks 1 and 2
        assert back.output.startswith(f"{{1:F01{sender[:8]}X{sender[9:]}")
        assert swift.parse(back.output).receiver_bic == receiver[:8] + receiver[9:]
        assert not _lt_lost(cv.convert(back.output, to))  # the default code X crosses faithfully


def test_default_terminal_codes_and_priority_report_nothing_but_urgent_priority_is_lost():
    assert not _lt_lost(cv.convert(_mt202(), "pacs.009"))
    urgent = _mt202().replace("XXXXN}", "XXXXU3003}", 1)
    assert swift.validate(urgent).valid
    result = cv.convert(urgent, "pacs.009")
    assert any(i.location == "block 2" and "priority 'U'" in i.message for i in result.lost)


def test_output_message_terminals_are_read_from_the_mir_and_block_1():
    """An output message (block 2 'O...') names the sender in its MIR and the receiver in block 1."""
    mt = _mt202()
    mir = "O2021200240201CHASUS33AXXX00001234562402011201U"
    output = mt.replace(mt[mt.index("{1:") : mt.index("{3:")], "{1:F01BANKDEFFBXXX0000000000}{2:" + mir + "}")
    assert swift.validate(output).valid
    lost = cv.convert(output, "pacs.009").lost
    where = {(i.location, i.message.split(" of ")[-1][:12]) for i in lost if "logical terminal" in i.message}
    assert where == {("block 2", "CHASUS33AXXX"), ("block 1", "BANKDEFFBXXX")}
    assert any(i.location == "block 2" and "priority 'U'" in i.message for i in lost)
