"""ISO 20022 builders: every generated message validates against the official XSD (the packaged
schemas, and the ../shared copies where present), and parses back to the same values."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from qenex.payments import iso20022 as iso
from qenex.payments.common import PaymentFormatError
from qenex.payments.iso20022 import (
    AppHeaderSpec,
    CreditTransfer,
    DirectDebit,
    PartySpec,
    StatementEntrySpec,
    StatementSpec,
    StatusSpec,
)

CREATED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DEBTOR = PartySpec(
    name="Max Mustermann",
    iban="DE89370400440532013000",
    agent_bic="COBADEFFXXX",
    country="DE",
    address_lines=("Hauptstrasse 1", "10115 Berlin"),
)
CREDITOR = PartySpec(name="Pierre Dupont", iban="FR1420041010050500013M02606", agent_bic="BNPAFRPPXXX")
UETR = "8a562c67-ca16-48ba-b074-65581be6f011"


def transfer(amount: str = "1500.00", e2e: str = "E2E-1", when: date = date(2026, 3, 3), **kw) -> CreditTransfer:
    return CreditTransfer(
        amount=Decimal(amount),
        currency=kw.pop("currency", "EUR"),
        debtor=kw.pop("debtor", DEBTOR),
        creditor=kw.pop("creditor", CREDITOR),
        end_to_end_id=e2e,
        requested_date=when,
        settlement_date=when,
        **kw,
    )


def statement() -> StatementSpec:
    return StatementSpec(
        id="STMT-2026-03-02",
        account_iban="DE89370400440532013000",
        currency="EUR",
        opening_balance="50.00",
        opening_credit=True,
        opening_date=date(2026, 3, 1),
        closing_date=date(2026, 3, 2),
        servicer_bic="COBADEFFXXX",
        entries=(
            StatementEntrySpec(
                amount="100.00",
                credit=True,
                booking_date=date(2026, 3, 2),
                end_to_end_id="E2E-IN",
                uetr=UETR,
                counterparty=CREDITOR,
                remittance="Invoice 7",
            ),
            StatementEntrySpec(amount="30.25", credit=False, booking_date=date(2026, 3, 2), bank_tx_code="NTRF"),
        ),
    )


def built_messages() -> dict[str, iso.Iso20022Message]:
    fi_debtor, fi_creditor = PartySpec(bic="CHASUS33XXX"), PartySpec(bic="DEUTDEFFXXX")
    dd = DirectDebit(
        amount="12.00",
        currency="EUR",
        debtor=DEBTOR,
        mandate_id="MANDATE-1",
        mandate_signature_date=date(2025, 1, 1),
        end_to_end_id="DD-1",
    )
    status = StatusSpec(original_end_to_end_id="E2E-1", original_uetr=UETR, status="RJCT", reason_code="AC01")
    money_back = StatusSpec(original_end_to_end_id="E2E-1", amount="10.00", currency="EUR", reason_code="AC04")
    common = {"created": CREATED}
    out = {
        "pain.001.001.03": iso.build_pain001(
            [transfer()], initiating_party=DEBTOR, version="pain.001.001.03", **common
        ),
        "pain.001.001.09": iso.build_pain001([transfer(uetr=UETR)], initiating_party=DEBTOR, **common),
        "pain.008.001.02": iso.build_pain008(
            [dd],
            creditor=CREDITOR,
            creditor_scheme_id="DE98ZZZ09999999999",
            collection_date=date(2026, 3, 9),
            sequence_type="FRST",
            version="pain.008.001.02",
            **common,
        ),
        "pain.008.001.08": iso.build_pain008(
            [dd],
            creditor=CREDITOR,
            creditor_scheme_id="DE98ZZZ09999999999",
            collection_date=date(2026, 3, 9),
            sequence_type="RCUR",
            **common,
        ),
        "pain.002.001.03": iso.build_pain002([status], original_msg_id="MSG-1", group_status="PART", **common),
        "pain.002.001.12": iso.build_pain002(
            [status], original_msg_id="MSG-1", group_status="RJCT", version="pain.002.001.12", **common
        ),
        "pacs.008.001.08": iso.build_pacs008(
            [transfer(uetr=UETR, instr_id="INSTR-1", charge_bearer="SHAR", remittance="Invoice 1")],
            instructing_agent_bic="COBADEFFXXX",
            instructed_agent_bic="BNPAFRPPXXX",
            **common,
        ),
        "pacs.009.001.08": iso.build_pacs009(
            [
                CreditTransfer(
                    amount="1000000.00", currency="USD", debtor=fi_debtor, creditor=fi_creditor, end_to_end_id="FI-1"
                )
            ],
            instructing_agent_bic="CHASUS33XXX",
            instructed_agent_bic="DEUTDEFFXXX",
            settlement_date=date(2026, 3, 2),
            **common,
        ),
        "pacs.002.001.10": iso.build_pacs002([status], original_msg_id="MSG-1", **common),
        "pacs.004.001.09": iso.build_pacs004(
            [money_back], original_msg_id="MSG-1", settlement_date=date(2026, 3, 2), **common
        ),
        "camt.056.001.08": iso.build_camt056(
            [money_back], assigner_bic="COBADEFFXXX", assignee_bic="BNPAFRPPXXX", original_msg_id="MSG-1", **common
        ),
        "camt.053.001.02": iso.build_camt053([statement()], version="camt.053.001.02", **common),
        "camt.053.001.08": iso.build_camt053([statement()], **common),
        "camt.054.001.08": iso.build_camt054([statement()], **common),
    }
    return out


BUILT = built_messages()


@pytest.fixture(scope="module")
def shared_xsd(shared_dir: Path):
    root = shared_dir / "payments" / "iso20022_xsd"
    if not root.is_dir():
        pytest.skip("../shared/payments/iso20022_xsd is absent")

    def schema(message_type: str) -> etree.XMLSchema:
        path = root / f"{message_type}.xsd"
        if not path.is_file():
            pytest.skip(f"no shared XSD for {message_type}")
        return etree.XMLSchema(etree.parse(str(path)))

    return schema


@pytest.mark.parametrize("message_type", sorted(BUILT))
def test_built_message_validates_against_shared_official_xsd(message_type, shared_xsd):
    msg = BUILT[message_type]
    assert msg.message_type == message_type
    document = etree.fromstring(msg.to_string().encode())
    schema = shared_xsd(message_type)
    assert schema.validate(document), [e.message for e in schema.error_log]


@pytest.mark.parametrize("message_type", sorted(BUILT))
def test_built_message_validates_with_packaged_schema_and_rules(message_type):
    msg = BUILT[message_type]
    report = iso.validate(msg.to_string())
    assert report.valid, [str(i) for i in report.errors]
    assert report.message_type == message_type
    path = iso.schema_path(message_type)
    if path is not None:  # packaged (pain001/camt053/pacs008) or a configured directory
        assert etree.XMLSchema(etree.parse(str(path))).validate(etree.fromstring(msg.to_string().encode()))


def test_packaged_schemas_cover_the_core_message_types():
    # These ship in maintained PyPI packages; the run time needs nothing else.
    for mt in (
        "pain.001.001.03",
        "pain.001.001.09",
        "pain.008.001.02",
        "pain.008.001.08",
        "pain.002.001.03",
        "pain.002.001.12",
        "pacs.008.001.08",
        "camt.053.001.02",
        "camt.053.001.08",
        "camt.054.001.08",
    ):
        assert iso.schema_path(mt) is not None, mt
        assert iso.get_schema(mt) is iso.get_schema(mt)  # compiled once, cached


def test_pain001_counts_and_sums_are_computed_and_batched_by_date():
    txs = [
        transfer("10.10", "A", date(2026, 3, 3)),
        transfer("20.20", "B", date(2026, 3, 4)),
        transfer("30.30", "C", date(2026, 3, 3)),
    ]
    msg = iso.build_pain001(txs, initiating_party=DEBTOR, created=CREATED)
    gh = msg.group_header()
    assert gh is not None and gh.nb_of_txs == "3" and gh.ctrl_sum == Decimal("60.60")
    blocks = msg.r.all(msg.body, "PmtInf")
    assert len(blocks) == 2
    by_date = {msg.r.t(b, "ReqdExctnDt/Dt"): (msg.r.t(b, "NbOfTxs"), msg.r.t(b, "CtrlSum")) for b in blocks}
    assert by_date == {"2026-03-03": ("2", "40.40"), "2026-03-04": ("1", "20.20")}


def test_pacs008_round_trip_keeps_amounts_parties_references_and_uetr():
    msg = iso.parse(BUILT["pacs.008.001.08"].to_string())
    (tx,) = msg.transactions()
    assert tx.amount == Decimal("1500.00") and tx.currency == "EUR"
    assert tx.uetr == UETR and tx.instr_id == "INSTR-1" and tx.end_to_end_id == "E2E-1"
    assert tx.debtor.name == "Max Mustermann" and tx.debtor.iban == "DE89370400440532013000"
    assert tx.debtor.address_lines == ("Hauptstrasse 1", "10115 Berlin") and tx.debtor.country == "DE"
    assert tx.creditor.iban == "FR1420041010050500013M02606"
    assert tx.debtor_agent.bic == "COBADEFFXXX" and tx.creditor_agent.bic == "BNPAFRPPXXX"
    assert tx.instructing_agent.bic == "COBADEFFXXX" and tx.instructed_agent.bic == "BNPAFRPPXXX"
    assert tx.charge_bearer == "SHAR" and tx.remittance == ("Invoice 1",)
    assert tx.settlement_date == "2026-03-03"
    assert iso.render(msg) == BUILT["pacs.008.001.08"].to_string()


def test_generated_uetr_is_a_uuid_version_4():
    msg = iso.build_pacs008([transfer()], instructing_agent_bic="COBADEFFXXX", instructed_agent_bic="BNPAFRPPXXX")
    (tx,) = msg.transactions()
    assert uuid.UUID(tx.uetr).version == 4
    assert iso.new_uetr() != iso.new_uetr()


def test_pacs009_parties_are_institutions():
    (tx,) = iso.parse(BUILT["pacs.009.001.08"].to_string()).transactions()
    assert tx.debtor.bic == "CHASUS33XXX" and tx.creditor.bic == "DEUTDEFFXXX"
    assert tx.amount == Decimal("1000000.00") and tx.currency == "USD"


def test_status_return_and_cancellation_views():
    (st,) = iso.parse(BUILT["pacs.002.001.10"].to_string()).transactions()
    assert (st.status, st.reason_code, st.original_uetr) == ("RJCT", "AC01", UETR)
    (rt,) = iso.parse(BUILT["pacs.004.001.09"].to_string()).transactions()
    assert rt.amount == Decimal("10.00") and rt.reason_code == "AC04" and rt.original_end_to_end_id == "E2E-1"
    cx_msg = iso.parse(BUILT["camt.056.001.08"].to_string())
    (cx,) = cx_msg.transactions()
    assert cx.amount == Decimal("10.00") and cx.reason_code == "AC04"
    assert cx_msg.r.t(cx_msg.body, "CtrlData/NbOfTxs") == "1" and cx_msg.r.t(cx_msg.body, "CtrlData/CtrlSum") == "10.00"


@pytest.mark.parametrize("message_type", ["camt.053.001.02", "camt.053.001.08"])
def test_camt053_balances_and_entries(message_type):
    (st,) = iso.parse(BUILT[message_type].to_string()).statements()
    assert st.account.iban == "DE89370400440532013000" and st.account_currency == "EUR"
    assert [(b.type_code, b.amount, b.credit_debit) for b in st.balances] == [
        ("OPBD", Decimal("50.00"), "CRDT"),
        ("CLBD", Decimal("119.75"), "CRDT"),  # 50.00 + 100.00 - 30.25, computed
    ]
    credit, debit = st.entries
    assert (credit.amount, credit.credit_debit, credit.status) == (Decimal("100.00"), "CRDT", "BOOK")
    assert credit.details[0].end_to_end_id == "E2E-IN" and credit.details[0].remittance == ("Invoice 7",)
    assert credit.details[0].debtor.name == "Pierre Dupont"
    if message_type.endswith("08"):
        assert credit.details[0].uetr == UETR
    assert (debit.amount, debit.credit_debit, debit.bank_tx_code) == (Decimal("30.25"), "DBIT", "NTRF")


def test_app_header_envelope(shared_xsd):
    wrapped = iso.with_app_header(
        BUILT["pacs.008.001.08"],
        AppHeaderSpec(
            from_bic="COBADEFFXXX",
            to_bic="BNPAFRPPXXX",
            biz_msg_id="BIZ-1",
            biz_service="swift.cbprplus.02",
            created=CREATED,
        ),
    )
    parsed = iso.parse(wrapped.to_string())
    header = parsed.app_header()
    assert header is not None
    assert (header.from_bic, header.to_bic, header.msg_def_id, header.biz_msg_id) == (
        "COBADEFFXXX",
        "BNPAFRPPXXX",
        "pacs.008.001.08",
        "BIZ-1",
    )
    assert parsed.message_type == "pacs.008.001.08" and parsed.transactions()[0].uetr == UETR
    assert shared_xsd("head.001.001.02").validate(parsed.app_header_el)
    assert iso.validate(wrapped.to_string()).valid


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("1.001", "EUR", "amount_precision"),
        ("100.5", "JPY", "amount_precision"),
        ("0", "EUR", "invalid_amount"),
        ("-5", "EUR", "invalid_amount"),
        ("10", "XYZ", "invalid_currency"),
    ],
)
def test_builder_rejects_bad_amounts_with_stable_codes(amount, currency, code):
    with pytest.raises(PaymentFormatError) as err:
        iso.build_pacs008(
            [transfer(amount, currency=currency)],
            instructing_agent_bic="COBADEFFXXX",
            instructed_agent_bic="BNPAFRPPXXX",
        )
    assert err.value.code == code


def test_builder_rejects_overlong_ids_and_empty_batches():
    with pytest.raises(PaymentFormatError) as err:
        iso.build_pacs008(
            [transfer(e2e="X" * 36)], instructing_agent_bic="COBADEFFXXX", instructed_agent_bic="BNPAFRPPXXX"
        )
    assert err.value.code == "iso20022_build_invalid"
    with pytest.raises(PaymentFormatError):
        iso.build_pain001([], initiating_party=DEBTOR)
    with pytest.raises(PaymentFormatError):
        iso.build_pain001([transfer()], initiating_party=DEBTOR, version="pain.001.001.42")


def test_builder_refuses_what_the_xsd_would_refuse():
    bad_bic = PartySpec(name="X", iban="DE89370400440532013000", agent_bic="not a bic")
    with pytest.raises(PaymentFormatError) as err:
        iso.build_pacs008(
            [transfer(debtor=bad_bic)], instructing_agent_bic="COBADEFFXXX", instructed_agent_bic="BNPAFRPPXXX"
        )
    assert "XSD" in err.value.message


def test_describe_summarises_for_show():
    summary = iso.describe(BUILT["pacs.008.001.08"])
    assert summary["message_type"] == "pacs.008.001.08" and summary["transaction_count"] == 1
    assert summary["transactions"][0]["amount"] == "1500.00" and summary["transactions"][0]["uetr"] == UETR
    stmt = iso.describe(BUILT["camt.053.001.08"])
    assert stmt["statements"][0]["entry_count"] == 2


def test_pacs008_carries_mt103_extras_and_reads_them_back(shared_xsd):
    full = transfer(
        uetr=UETR,
        instr_id="REF-103",
        charge_bearer="CRED",
        instructed_amount="1510.00",
        instructed_currency="EUR",
        exchange_rate="1.0",
        charges=(("10.00", "EUR", "COBADEFFXXX"),),
        intermediary_agents=(PartySpec(agent_bic="CITIUS33XXX"),),
        creditor_agent_instruction_codes=("PHOB",),
        instructions_for_creditor_agent=("CALL BENEFICIARY",),
        next_agent_instruction_codes=("TELA",),
        regulatory_reporting=("BENEFRES/BE//MEILAAN 1",),
        settlement_time_request=(("CLSTm", "09:15:00+01:00"), ("RjctTm", "16:00:00+01:00")),
    )
    agents = iso.ReimbursementAgents(
        instructing=PartySpec(agent_bic="DEUTDEFFXXX", account_id="ACC-53"),
        instructed=PartySpec(agent_bic="CHASUS33XXX"),
    )
    msg = iso.build_pacs008(
        [full],
        instructing_agent_bic="COBADEFFXXX",
        instructed_agent_bic="BNPAFRPPXXX",
        settlement_method="COVE",
        reimbursement_agents=agents,
        created=CREATED,
    )
    assert shared_xsd("pacs.008.001.08").validate(etree.fromstring(msg.to_string().encode()))
    parsed = iso.parse(msg.to_string())
    (tx,) = parsed.transactions()
    assert tx.creditor_agent_instructions == (("PHOB", None), (None, "CALL BENEFICIARY"))
    assert tx.next_agent_instructions == (("TELA", None),)
    assert tx.regulatory_reporting == ("BENEFRES/BE//MEILAAN 1",)
    assert tx.settlement_time_request == (("CLSTm", "09:15:00+01:00"), ("RjctTm", "16:00:00+01:00"))
    assert tx.instructed_amount == Decimal("1510.00") and tx.exchange_rate == Decimal("1.0")
    assert tx.charges == ((Decimal("10.00"), "EUR", "COBADEFFXXX"),)
    assert tx.intermediary_agents[0].bic == "CITIUS33XXX"
    gh = parsed.group_header()
    assert gh.settlement_method == "COVE"
    assert gh.instructing_reimbursement_agent.bic == "DEUTDEFFXXX"
    assert gh.instructing_reimbursement_agent.account_id == "ACC-53"
    assert gh.instructed_reimbursement_agent.bic == "CHASUS33XXX" and gh.third_reimbursement_agent.bic is None
    assert iso.validate(msg).valid
