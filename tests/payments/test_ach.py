"""NACHA ACH: builder, reader, validator rules, relaxations, merge/split, fast path = slow path.

Fixtures are built here from the NACHA Operating Rules record layouts (Appendix One/Three);
the shared moov-io corpus is only used (when present) to prove the two validation paths agree.
"""

from __future__ import annotations

import gzip
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qenex.payments import ach
from qenex.payments.ach import validator as ach_validator
from qenex.payments.ach.ops import assemble
from qenex.payments.common import PaymentFormatError

ODFI = "121042882"
RDFI = "231380104"
CREATED = datetime(2024, 3, 4, 9, 30)


def codes(report) -> set[str]:
    return {i.code for i in report.errors}


def build(sec: str = "PPD", entries: int = 2, *, same_day: bool = False, debit: bool = False, addenda=None):
    fb = ach.FileBuilder(RDFI, " " + ODFI, "FEDERAL RESERVE BANK", "MY BANK", created=CREATED)
    batch = fb.add_batch(
        sec, "ACME CORP", "1234567890", "PAYROLL", ODFI, effective_date=date(2024, 3, 5), same_day=same_day
    )
    for i in range(entries):
        batch.add_entry(
            "27" if debit else "22",
            RDFI,
            f"ACCT{i}",
            1000 + i,
            identification=f"ID{i}",
            name=f"RECEIVER {i}",
            discretionary="S " if sec == "WEB" else "",
            addenda05=addenda,
        )
    return fb.build()


def rebuild(f: ach.AchFile, entry_lines: dict[int, str]) -> ach.AchFile:
    """The file with some entry lines replaced (by index) and every control recomputed."""
    b = f.batches[0]
    entries = list(b.entries)
    for idx, line in entry_lines.items():
        e = entries[idx]
        entries[idx] = ach.Entry(type(e.record)(line, e.record.line_no), e.addenda)
    return assemble(f.header.line, [(b.header.line, entries)])


def replace(line: str, start: int, value: str) -> str:
    """Overwrite 1-based column ``start`` onwards with ``value``."""
    return line[: start - 1] + value + line[start - 1 + len(value) :]


# -- routing check digit -----------------------------------------------------------------
@pytest.mark.parametrize("routing", ["021000021", "231380104", "121042882", "011000015"])
def test_routing_check_digit_valid(routing: str) -> None:
    assert ach.routing_valid(routing)
    assert ach.routing_check_digit(routing[:8]) == int(routing[8])


@pytest.mark.parametrize("routing", ["021000022", "23138010", "2313801045", "23138O104", ""])
def test_routing_check_digit_invalid(routing: str) -> None:
    assert not ach.routing_valid(routing)


# -- builder and round trip --------------------------------------------------------------
def test_built_file_is_valid_blocked_and_round_trips() -> None:
    f = build(entries=3)
    text = f.to_string()
    lines = text.splitlines()
    assert all(len(line) == 94 for line in lines)
    assert len(lines) % 10 == 0 and lines[-1] == "9" * 94
    report = ach.validate(text)
    assert report.valid, report.issues
    assert report.message_type == "NACHA PPD"
    again = ach.parse(text)
    assert ach.render(again) == text  # byte-faithful for canonical input
    b = again.batches[0]
    assert [e.amount_cents for e in b.entries] == [1000, 1001, 1002]
    control = b.control
    assert int(control.total_credit) == 3003 and int(control.total_debit) == 0
    assert int(control.entry_hash) == 3 * int(RDFI[:8])
    assert b.header.service_class_code == "220"


def test_builder_mixed_batch_and_describe() -> None:
    fb = ach.FileBuilder(RDFI, "1234567890", "DEST", "ORIG", created=CREATED)
    batch = fb.add_batch("CCD", "ACME", "1234567890", "VENDORPAY", ODFI, effective_date=date(2024, 3, 5))
    batch.add_entry("22", RDFI, "111", 12345, name="SUPPLIER")
    batch.add_entry("27", RDFI, "222", 500, name="CLIENT")
    f = fb.build()
    assert ach.validate(f).valid
    summary = ach.describe(f)
    assert summary["total_credit"] == "123.45" and summary["total_debit"] == "5.00"
    assert summary["batches"][0]["service_class_code"] == "200"


def test_builder_ctx_counts_addenda() -> None:
    f = build("CTX", entries=1, addenda=["ISA*00*PAYMENT ONE", "ISA*00*PAYMENT TWO", "SE*3*0001"])
    report = ach.validate(f.to_string())
    assert report.valid, report.issues
    e = f.batches[0].entries[0]
    assert e.record.line[54:58] == "0003" and len(e.addenda) == 3
    assert [a.line[83:87] for a in e.addenda] == ["0001", "0002", "0003"]


def test_builder_refuses_bad_input() -> None:
    fb = ach.FileBuilder(RDFI, "1234567890", "DEST", "ORIG", created=CREATED)
    batch = fb.add_batch("PPD", "ACME", "1234567890", "PAYROLL", ODFI, effective_date=date(2024, 3, 5))
    with pytest.raises(PaymentFormatError):
        batch.add_entry("22", "231380105", "1", 100, name="X")
        fb.build()
    fb2 = ach.FileBuilder(RDFI, "1234567890", "DEST", "ORIG", created=CREATED)
    b2 = fb2.add_batch("PPD", "ACME", "1234567890", "PAYROLL", ODFI, effective_date=date(2024, 3, 5))
    b2.add_entry("22", RDFI, "1", 10**10, name="X")
    with pytest.raises(PaymentFormatError, match="amount"):
        fb2.build()
    with pytest.raises(PaymentFormatError):
        ach.FileBuilder("123456789", "1", "D", "O")
    with pytest.raises(PaymentFormatError, match="addenda"):
        build("PPD", entries=1, addenda=["ONE", "TWO"])


def test_same_day_batch_uses_creation_date_and_warns_above_limit() -> None:
    f = build(same_day=True, entries=1)
    assert f.batches[0].header.line[69:75] == "240304"
    line = f.batches[0].entries[0].record.line
    big = rebuild(f, {0: replace(line, 30, "0200000000")})
    report = ach.validate(big)
    assert report.valid
    assert any(i.code == "ach_same_day_limit" and i.severity == "warning" for i in report.issues)


# -- rules, each located ------------------------------------------------------------------
def test_bad_check_digit_is_located_and_relaxable() -> None:
    f = build(entries=2)
    line = f.batches[0].entries[1].record.line
    bad = rebuild(f, {1: replace(line, 12, "5")})
    report = ach.validate(bad)
    assert "ach_routing_check_digit" in codes(report)
    issue = next(i for i in report.errors if i.code == "ach_routing_check_digit")
    assert issue.location == "line 4 entry_detail.check_digit"
    assert ach.validate(bad, allow_invalid_check_digit=True).valid
    assert ach.validate(bad, AllowInvalidCheckDigit=True).valid  # moov-io/ach's name


def test_control_totals_are_computed_not_trusted() -> None:
    text = build(entries=2).to_string()
    lines = text.splitlines()
    lines[4] = replace(lines[4], 21, "000000000001")  # batch control total debit
    lines[5] = replace(lines[5], 22, "9999999999")  # file control entry hash
    report = ach.validate("\n".join(lines))
    messages = {i.location: i.message for i in report.errors}
    assert "total_debit is 1 but the records give 0" in messages["line 5 batch_control.total_debit"]
    assert "line 6 file_control.entry_hash" in messages


def test_blocking_and_record_length() -> None:
    lines = build().to_string().splitlines()
    unpadded = "\n".join(lines[:6])
    report = ach.validate(unpadded)
    assert any(i.code == "ach_blocking" and i.severity == "warning" for i in report.issues)
    lines[2] = lines[2] + "X"
    report = ach.validate("\n".join(lines))
    assert "ach_record_length" in codes(report)
    with pytest.raises(PaymentFormatError) as exc:
        ach.parse("\n".join(lines))
    assert exc.value.location == "line 3"


def test_byte_order_mark_and_crlf_are_tolerated() -> None:
    text = build().to_string()
    assert ach.validate(("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8")).valid


def test_unbroken_file_is_cut_every_94_characters() -> None:
    text = build().to_string().replace("\n", "")
    assert ach.validate(text).valid
    with pytest.raises(PaymentFormatError, match="multiple of 94"):
        ach.parse(text + "1")


def test_structure_errors() -> None:
    lines = build().to_string().splitlines()
    no_header = "\n".join(lines[1:])
    assert "ach_file_header_missing" in codes(ach.validate(no_header))
    assert ach.validate(no_header, allow_missing_file_header=True).valid is False  # block count still wrong
    orphan_addenda = "\n".join([lines[0], lines[1], "705" + " " * 80 + "0001" + "0000001", *lines[2:]])
    assert "ach_addenda_outside_entry" in codes(ach.validate(orphan_addenda))
    with pytest.raises(PaymentFormatError):
        ach.parse("")
    with pytest.raises(PaymentFormatError):
        ach.parse("hello world")


def test_blank_account_number_is_reported() -> None:
    f = build(entries=2)
    line = f.batches[0].entries[0].record.line
    report = ach.validate(rebuild(f, {0: replace(line, 13, " " * 17)}))
    assert {(i.code, i.location) for i in report.errors} == {("ach_required", "line 3 entry_detail.dfi_account_number")}


def test_sec_specific_rules() -> None:
    tel = build("TEL", entries=1, debit=True)
    assert ach.validate(tel).valid
    line = tel.batches[0].entries[0].record.line
    blank_name = rebuild(tel, {0: replace(line, 55, " " * 22)})
    assert "ach_only_zeros" in codes(ach.validate(blank_name))
    assert ach.validate(blank_name, allow_empty_individual_name=True).valid
    web = build("WEB", entries=1, debit=True)
    assert ach.validate(web).valid
    line = web.batches[0].entries[0].record.line
    assert "ach_payment_type" in codes(ach.validate(rebuild(web, {0: replace(line, 77, "X ")})))
    rck = build("RCK", entries=1, debit=True)
    line = rck.batches[0].entries[0].record.line
    assert "ach_sec_amount_limit" in codes(ach.validate(rebuild(rck, {0: replace(line, 30, "0000250001")})))
    prenote = build(entries=1)
    line = prenote.batches[0].entries[0].record.line
    assert "ach_prenote_amount" in codes(ach.validate(rebuild(prenote, {0: replace(line, 2, "23")})))
    assert "ach_service_class_mismatch" in codes(ach.validate(rebuild(prenote, {0: replace(line, 2, "27")})))


def _with_addenda(f: ach.AchFile, addenda_line: str, entry_line: str | None = None) -> ach.AchFile:
    b = f.batches[0]
    e = b.entries[0]
    line = entry_line or replace(e.record.line, 79, "1")
    entry = ach.Entry(type(e.record)(line), [ach.records.ADDENDA_CLASSES[addenda_line[1:3]](addenda_line)])
    return assemble(f.header.line, [(b.header.line, [entry])])


def test_return_and_noc_addenda() -> None:
    f = build(entries=1)
    trace = f.batches[0].entries[0].record.line[79:94]
    r01 = "799R01" + trace + " " * 6 + RDFI[:8] + "INSUFFICIENT FUNDS".ljust(44) + trace
    assert ach.validate(_with_addenda(f, r01)).valid
    r97 = r01.replace("R01", "R97", 1)
    assert "ach_return_code" in codes(ach.validate(_with_addenda(f, r97)))
    assert ach.validate(_with_addenda(f, r97), custom_return_codes=True).valid
    cor = build("COR", entries=1)
    line = replace(cor.batches[0].entries[0].record.line, 2, "21")
    line = replace(line, 30, "0000000000")
    c01 = "798C01" + trace + " " * 6 + RDFI[:8] + "1918171614".ljust(29) + " " * 15 + trace
    assert ach.validate(_with_addenda(cor, c01, replace(line, 79, "1"))).valid
    c99 = c01.replace("C01", "C99", 1)
    report = ach.validate(_with_addenda(cor, c99, replace(line, 79, "1")))
    assert "ach_change_code" in codes(report)
    assert "ach_cor_addenda" in codes(ach.validate(_with_addenda(cor, r01, replace(line, 79, "1"))))


def _iat_file(addenda_types: list[str], tx_type: str = "ANN") -> str:
    header = "101 " + RDFI + " " + ODFI + "2403040930A094101" + "DEST".ljust(23) + "ORIG".ljust(23) + " " * 8
    bh = (
        "5220"
        + " " * 16
        + "FF3"
        + " " * 15
        + "US"
        + "1234567890"
        + "IAT"
        + "TRADEPAYMT"
        + "CADUSD"
        + "240305"
        + "   1"
        + ODFI[:8]
        + "0000001"
    )
    entry = (
        "6221210428820"
        + f"{len(addenda_types):03d}"
        + " " * 13
        + "0000100000"
        + "ACCOUNT 1".ljust(35)
        + "  "
        + "  "
        + "1"
        + ODFI[:8]
        + "0000001"
    )
    body = {
        "10": "710" + tx_type + "000000000000100000" + " " * 22 + "BEK ENTERPRISES".ljust(35) + " " * 6,
        "11": "711" + "BEK SOLUTIONS".ljust(35) + "15 WEST PLACE STREET".ljust(35) + " " * 14,
        "12": "712" + "JACOBSTOWN*PA\\".ljust(35) + "US*19305\\".ljust(35) + " " * 14,
        "13": "713" + "WELLS FARGO".ljust(35) + "01" + RDFI.ljust(34) + "US " + " " * 10,
        "14": "714" + "CITADEL BANK".ljust(35) + "01" + ODFI.ljust(34) + "CA " + " " * 10,
        "15": "715" + "987465493213987".ljust(15) + "2121 FRONT STREET".ljust(35) + " " * 34,
        "16": "716" + "LETTERTOWN*AB\\".ljust(35) + "CA*80014\\".ljust(35) + " " * 14,
        "17": "717" + "THIS IS AN INTERNATIONAL PAYMENT".ljust(80) + "0001",
        "18": "718" + "BANK OF FRANCE".ljust(35) + "01" + "456456456987987".ljust(34) + "FR " + " " * 6 + "0001",
    }
    lines = [header, bh, entry] + [body[t] + "0000001" for t in addenda_types]
    records = assemble(
        header,
        [(bh, ach.parse("\n".join([header, bh, entry] + lines[3:]), allow_partial_file=True).batches[0].entries)],
    )
    return records.to_string()


def test_iat_addenda_rules() -> None:
    full = ["10", "11", "12", "13", "14", "15", "16", "17", "18"]
    report = ach.validate(_iat_file(full))
    assert report.valid, report.issues
    assert report.message_type == "NACHA IAT"
    assert "ach_iat_addenda" in codes(ach.validate(_iat_file(["10", "11", "12", "14", "13", "15", "16"])))
    assert "ach_iat_transaction_type" in codes(ach.validate(_iat_file(full, tx_type="BIL")))


def test_special_characters_option() -> None:
    f = build(entries=1)
    line = f.batches[0].entries[0].record.line
    accented = rebuild(f, {0: replace(line, 55, "JOS\u00c9 N\u00da\u00d1EZ".ljust(22))})
    assert "ach_character_set" in codes(ach.validate(accented.to_string().encode("latin-1")))
    assert ach.validate(accented.to_string().encode("latin-1"), allow_special_characters=True).valid


def test_require_aba_origin() -> None:
    company_origin = build().to_string().replace(" " + ODFI + "2403", "1234567890" + "2403", 1)
    assert ach.validate(company_origin).valid
    assert "ach_immediate_origin" in codes(ach.validate(company_origin, require_aba_origin=True))
    assert ach.validate(build().to_string(), RequireABAOrigin=True).valid


def test_unknown_option_is_reported() -> None:
    report = ach.validate(build().to_string(), allow_everything=True)
    assert "ach_unknown_option" in codes(report)
    with pytest.raises(PaymentFormatError):
        ach.parse(build().to_string(), skip_all="yes")


def test_skip_all_and_gzip() -> None:
    text = build().to_string()
    lines = text.splitlines()
    lines[2] = replace(lines[2], 12, "9")
    assert not ach.validate("\n".join(lines)).valid
    assert ach.validate("\n".join(lines), skip_all=True).valid
    assert ach.validate(gzip.compress(text.encode())).valid
    with pytest.raises(PaymentFormatError):
        ach.parse(b"\x1f\x8b" + b"not really gzip")


# -- merge, split, segment ----------------------------------------------------------------
def test_merge_split_segment() -> None:
    a, b = build(entries=3), build(entries=4, debit=True)
    merged = ach.merge([a, b])
    assert len(merged) == 1
    m = merged[0]
    assert ach.validate(m).valid
    assert [x.header.line[87:94] for x in m.batches] == ["0000001", "0000002"]
    assert m.entry_count == 7
    parts = ach.split(m, file_lines_max=10)
    assert len(parts) == 2 and all(ach.validate(p).valid for p in parts)
    with pytest.raises(PaymentFormatError):
        ach.split(m, file_lines_max=5)
    mixed = ach.merge([a, b])[0]
    credits, debits = ach.segment(mixed)
    assert ach.validate(credits).valid and ach.validate(debits).valid
    assert int(credits.control.total_debit) == 0 and int(debits.control.total_credit) == 0
    assert credits.entry_count == 3 and debits.entry_count == 4


# -- the fast path and the per-entry path agree -------------------------------------------
def _both(data: str | bytes, **opts) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    fast = ach.validate(data, **opts)
    ach_validator.FAST_PATH_ENABLED = False
    try:
        slow = ach.validate(data, **opts)
    finally:
        ach_validator.FAST_PATH_ENABLED = True
    return ({(i.code, i.location) for i in fast.issues}, {(i.code, i.location) for i in slow.issues})


def test_trace_number_carries_the_odfi() -> None:
    f = build(entries=2)
    line = f.batches[0].entries[1].record.line
    report = ach.validate(rebuild(f, {1: replace(line, 80, "99999999")}))
    assert ("ach_trace_odfi", "line 4 entry_detail.trace_number") in {(i.code, i.location) for i in report.errors}


@pytest.mark.parametrize(
    "mutation",
    [(12, "5"), (55, " " * 22), (2, "23"), (80, "000000000000000"), (13, " " * 17), (77, "X "), (40, "\u00e9")],
)
def test_fast_and_slow_paths_agree_on_mutations(mutation: tuple[int, str]) -> None:
    for sec, debit in (("PPD", False), ("WEB", True), ("TEL", True), ("CCD", False)):
        f = build(sec, entries=3, debit=debit)
        line = f.batches[0].entries[1].record.line
        text = rebuild(f, {1: replace(line, *mutation)}).to_string()
        fast, slow = _both(text)
        assert fast == slow, (sec, mutation)


def test_fast_and_slow_paths_agree_on_shared_corpus(shared_dir: Path) -> None:
    root = shared_dir / "payments" / "dev" / "ach"
    if not root.is_dir():
        pytest.skip("shared ACH corpus absent")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".ach", ".txt")]
    assert files
    for path in files:
        fast, slow = _both(path.read_bytes())
        assert fast == slow, path.name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_parser_never_crashes(data: st.DataObject) -> None:
    text = build(entries=2).to_string()
    pos = data.draw(st.integers(0, len(text) - 1))
    junk = data.draw(st.text(min_size=0, max_size=120))
    mutated = text[:pos] + junk + text[pos + data.draw(st.integers(0, 200)) :]
    try:
        ach.parse(mutated)
    except PaymentFormatError:
        pass
    report = ach.validate(mutated)
    assert all(i.location for i in report.errors)


# -- writing IAT, returns and notifications of change -------------------------------------
def _iat_parties(**overrides) -> ach.IATParties:
    values = dict(
        transaction_type="BUS",
        receiver_name="BEK ENTERPRISES",
        originator_name="BEK SOLUTIONS",
        originator_street="15 WEST PLACE STREET",
        originator_city_state="JACOBSTOWN*PA\\",
        originator_country_postal="US*19305\\",
        odfi_name="WELLS FARGO",
        odfi_id_qualifier="01",
        odfi_id=ODFI,
        odfi_country="US",
        rdfi_name="BANK OF CANADA",
        rdfi_id_qualifier="01",
        rdfi_id=RDFI,
        rdfi_country="CA",
        receiver_street="2121 FRONT STREET",
        receiver_city_state="LETTERTOWN*AB\\",
        receiver_country_postal="CA*80014\\",
        payment_information=("INVOICE 42",),
        correspondents=(("BANK OF FRANCE", "02", "BNPAFRPP", "FR"),),
    )
    values.update(overrides)
    return ach.IATParties(**values)


def test_builder_writes_valid_iat() -> None:
    fb = ach.FileBuilder(RDFI, " " + ODFI, "DEST", "ORIG", created=CREATED)
    header = ach.IATHeader("FF", "3", "CA", "USD", "CAD")
    batch = fb.add_iat_batch(header, "1234567890", "TRADEPAYMT", ODFI, effective_date=date(2024, 3, 5))
    batch.add_iat_entry("22", RDFI, "CA ACCOUNT 1", 100_000, _iat_parties())
    f = fb.build()
    report = ach.validate(f.to_string())
    assert report.valid, report.issues
    assert report.message_type == "NACHA IAT"
    entry = f.batches[0].entries[0]
    assert [a.line[1:3] for a in entry.addenda] == ["10", "11", "12", "13", "14", "15", "16", "17", "18"]
    assert entry.record.line[12:16] == "0009"  # NACHA counts every addenda record
    with pytest.raises(PaymentFormatError):
        batch.add_iat_entry("22", RDFI, "X", 1, _iat_parties(transaction_type="XXX"))
    with pytest.raises(PaymentFormatError):
        batch.add_iat_entry("22", RDFI, "X", 1, _iat_parties(payment_information=("A", "B", "C")))


def test_builder_writes_returns_and_nocs() -> None:
    fb = ach.FileBuilder(RDFI, " " + ODFI, "DEST", "ORIG", created=CREATED)
    ret = fb.add_batch("PPD", "ACME", "1234567890", "RETURN", ODFI, effective_date=date(2024, 3, 5))
    ret.add_return(
        "26",
        RDFI,
        "12345",
        2500,
        name="JANE DOE",
        info=ach.ReturnInfo("R01", "231380100000001", RDFI[:8], "INSUFFICIENT FUNDS"),
    )
    cor = fb.add_batch("COR", "ACME", "1234567890", "NOC", ODFI, effective_date=date(2024, 3, 5))
    cor.add_return(
        "21", RDFI, "12345", 0, name="JANE DOE", info=ach.ReturnInfo("C01", "231380100000002", RDFI[:8], "987654321")
    )
    f = fb.build()
    report = ach.validate(f.to_string())
    assert report.valid, report.issues
    r99 = f.batches[0].entries[0].addenda[0]
    assert r99.line[:6] == "799R01" and r99.line[79:94] == f.batches[0].entries[0].record.line[79:94]
    assert f.batches[1].entries[0].addenda[0].line[:6] == "798C01"
    with pytest.raises(PaymentFormatError):
        ret.add_return("22", RDFI, "1", 1, name="X", info=ach.ReturnInfo("R01", "1", "1"))


def test_fast_path_code_classes_match_the_code_tables() -> None:
    import re

    from qenex.payments.ach import codes as C

    def members(pattern: str) -> set[str]:
        return {f"{i:02d}" for i in range(100) if re.fullmatch(pattern, f"{i:02d}")}

    assert members(ach_validator._TC_CREDIT) == C.CREDIT_CODES - C.ADV_CODES
    assert members(ach_validator._TC_DEBIT) == C.DEBIT_CODES - C.ADV_CODES
    assert members(ach_validator._TC_ALL) == C.TRANSACTION_CODES - C.ADV_CODES


def _adv_file(amount: str = "000000050000", control_hash: str | None = None) -> str:
    """An ADV (automated accounting advice) file written from the Appendix Three layouts."""
    header = "101 " + RDFI + " " + ODFI + "2403040930A094101" + "DEST".ljust(23) + "ORIG".ljust(23) + " " * 8
    bh = "5280" + "ACME CORP".ljust(16) + " " * 20 + "1234567890" + "ADV" + "ACCOUNTING" + " " * 6 + "240305"
    bh += "   0" + ODFI[:8] + "0000001"
    entry = (
        "681"
        + RDFI
        + "744-5678-99".ljust(15)
        + amount
        + ODFI
        + "11131"
        + " "
        + "NAME".ljust(22)
        + "  "
        + "0"
        + "01100001"
        + "050"
        + "0001"
    )
    rdfi_hash = control_hash or f"{int(RDFI[:8]):010d}"
    bc = "8280" + "000001" + rdfi_hash + "0" * 20 + f"{int(amount):020d}" + " " * 19 + ODFI[:8] + "0000001"
    fc = "9000001000001" + "00000001" + rdfi_hash + "0" * 20 + f"{int(amount):020d}" + " " * 23
    return "\n".join([header, bh, entry, bc, fc] + ["9" * 94] * 5) + "\n"


def test_adv_layouts() -> None:
    text = _adv_file()
    assert all(len(line) == 94 for line in text.splitlines())
    report = ach.validate(text)
    assert report.valid, report.issues
    f = ach.parse(text)
    assert f.batches[0].entries[0].amount_cents == 50000
    assert type(f.control).__name__ == "ADVFileControl"
    report = ach.validate(_adv_file(control_hash="0000000001"))
    assert {i.location for i in report.errors} == {
        "line 4 adv_batch_control.entry_hash",
        "line 5 adv_file_control.entry_hash",
    }
    wrong_code = _adv_file().replace("681" + RDFI, "622" + RDFI)
    assert "ach_adv_transaction_code" in codes(ach.validate(wrong_code))


def test_iat_addenda_count_and_order() -> None:
    full = ["10", "11", "12", "13", "14", "15", "16", "17", "18"]
    text = _iat_file(full)
    entry = next(line for line in text.splitlines() if line.startswith("6"))
    mandatory_only = text.replace(entry, entry[:12] + "0007" + entry[16:])
    report = ach.validate(mandatory_only)
    assert report.valid and any(i.code == "ach_iat_addenda_count" and i.severity == "warning" for i in report.issues)
    wrong = text.replace(entry, entry[:12] + "0005" + entry[16:])
    assert "ach_iat_addenda_count" in codes(ach.validate(wrong))
    assert "ach_iat_addenda" in codes(ach.validate(_iat_file(full[:7] + ["18", "17"])))
    assert "ach_iat_addenda" in codes(ach.validate(_iat_file(full[:7] + ["17", "17", "17"])))


@pytest.mark.parametrize(
    ("line_index", "column", "value"),
    [
        (3, 84, "0002"),  # addenda sequence number
        (3, 88, "0000009"),  # entry detail sequence number
        (2, 79, "0"),  # indicator says no addenda
        (2, 79, "2"),  # not an indicator value
        (3, 2, "98"),  # an addenda type the fast path leaves to the per-entry path
        (3, 10, "\u00e9"),  # non-ASCII in the payment information
        (3, 1, "6"),  # an addenda turned into an entry
    ],
)
def test_fast_and_slow_paths_agree_with_addenda(line_index: int, column: int, value: str) -> None:
    for sec, debit, addenda in (
        ("PPD", False, ["INVOICE 1234"]),
        ("CCD", False, ["INVOICE 1234"]),
        ("WEB", True, ["INVOICE 1234"]),
        ("CTX", False, ["ISA*00*1", "GS*RA*2", "SE*3*0001"]),
    ):
        text = build(sec, entries=3, debit=debit, addenda=addenda).to_string()
        assert _both(text)[0] == _both(text)[1] and ach.validate(text).valid
        lines = text.splitlines()
        lines[line_index] = replace(lines[line_index], column, value)
        fast, slow = _both("\n".join(lines))
        assert fast == slow, (sec, line_index, column, value)
        assert fast  # every mutation is reported


def test_addenda_batches_take_the_fast_path() -> None:
    checker = ach_validator._Checker(ach.validate("x"), ach.AchOptions())
    for sec, addenda in (("CCD", ["INVOICE 1234"]), ("CTX", ["ISA*00*1", "SE*3*0001"]), ("CTX", [])):
        f = ach.parse(build(sec, entries=3, addenda=addenda).to_string())
        raw = f.batches[0].raw_lines
        assert raw is not None and checker.fast_batch(raw, "220", sec, False, ODFI[:8]) is not None
    ctx = build("CTX", entries=2, addenda=["ISA*00*1", "SE*3*0001"]).to_string().splitlines()
    ctx[2] = replace(ctx[2], 55, "0003")  # declares three addenda, carries two
    assert ("ach_ctx_addenda_count", "line 3 entry_detail.number_of_addenda") in {
        (i.code, i.location) for i in ach.validate("\n".join(ctx)).errors
    }


def test_garbage_reports_are_bounded() -> None:
    from qenex.payments.common import ERRORS_PER_REPORT_MAX

    report = ach.validate(("6" * 94 + "\n") * 5000)
    assert len(report.issues) == ERRORS_PER_REPORT_MAX and not report.valid
    report = ach.validate(("5" + " " * 93 + "\n") * 3000)
    assert len(report.issues) == ERRORS_PER_REPORT_MAX
    assert report.issues[-1].code == "ach_too_many_errors"


# -- IAT returns and notifications of change ---------------------------------------------
IAT_MANDATORY = ["10", "11", "12", "13", "14", "15", "16"]


def _iat_reply(types: list[str], *, noc: bool, indicator: str = "1") -> str:
    """An IAT return or NOC written from the NACHA layouts: a NOC is an IAT batch header with SEC COR
    and IAT indicator IATCOR, a zero-amount entry with transaction code 21 and addenda 98 (Appendix
    Five); a return stays SEC IAT with addenda 99 (Appendix Four). Both keep addenda 10-16, and the
    entry's number of addenda counts every addenda record, the 98/99 included."""
    text = _iat_file([t for t in types if t not in ("98", "99")])
    header, bh, entry, *rest = text.splitlines()
    if noc:
        bh = bh[:4] + "IATCOR".ljust(16) + bh[20:50] + "COR" + bh[53:]
    amount = "0000000000" if noc else "0000100000"
    entry = entry[:1] + "21" + entry[3:12] + f"{len(types):04d}" + entry[16:29] + amount + entry[39:78]
    entry += indicator + text.splitlines()[2][79:]
    trace = entry[79:94]
    original = "091000010000123"
    reply = {
        "98": "798C03" + original + " " * 6 + RDFI[:8] + (RDFI + " 12345").ljust(29) + " " * 15 + trace,
        "99": "799R03" + original + " " * 6 + RDFI[:8] + "NO ACCOUNT".ljust(44) + trace,
    }
    forward = iter(line for line in rest if line.startswith("7"))
    addenda = [reply[t] if t in reply else next(forward) for t in types]
    parsed = ach.parse("\n".join([header, bh, entry, *addenda]), allow_partial_file=True)
    return assemble(header, [(bh, parsed.batches[0].entries)]).to_string()


@pytest.mark.parametrize("extra", [[], ["17"], ["17", "18"]])
@pytest.mark.parametrize("kind", ["98", "99"])
def test_iat_noc_and_return_keep_the_mandatory_addenda(kind: str, extra: list[str]) -> None:
    report = ach.validate(_iat_reply(IAT_MANDATORY + extra + [kind], noc=kind == "98"))
    assert report.valid, report.errors
    assert report.message_type == ("NACHA COR" if kind == "98" else "NACHA IAT")
    assert not report.issues, report.issues


@pytest.mark.parametrize("kind", ["98", "99"])
def test_iat_noc_or_return_without_addenda_10_to_16_is_refused(kind: str) -> None:
    report = ach.validate(_iat_reply([kind], noc=kind == "98"))
    iat_errors = [i for i in report.errors if i.code == "ach_iat_addenda"]
    assert iat_errors and "mandatory addenda 10 to 16" in iat_errors[0].message
    assert iat_errors[0].location.startswith("line 3 ")
    # the 98/99 itself is still checked
    bad_code = _iat_reply([kind], noc=kind == "98").replace(f"7{kind}C03" if kind == "98" else "799R03", f"7{kind}X03")
    assert {"ach_change_code", "ach_return_code"} & codes(ach.validate(bad_code))


def test_iat_noc_rules_that_still_hold() -> None:
    noc = _iat_reply(IAT_MANDATORY + ["98"], noc=True)
    entry = noc.splitlines()[2]
    with_amount = noc.replace(entry, entry[:29] + "0000000001" + entry[39:])
    assert "ach_cor_amount" in codes(ach.validate(with_amount))
    assert "ach_iat_addenda" in codes(ach.validate(_iat_file([])))  # an IAT entry always has addenda
    assert "ach_addenda_indicator" in codes(ach.validate(_iat_reply(IAT_MANDATORY + ["98"], noc=True, indicator="0")))
    in_a_forward_batch = noc.replace("IATCOR", "      ", 1)  # SEC COR without IATCOR: not an IAT batch
    assert not ach.validate(in_a_forward_batch).valid


def _adv_builder() -> ach.FileBuilder:
    fb = ach.FileBuilder(RDFI, " " + ODFI, "DEST", "ORIG", created=CREATED)
    batch = fb.add_adv_batch("ACME CORP", "1234567890", "ACCOUNTING", ODFI, effective_date=date(2024, 3, 5))
    batch.add_adv_entry(
        "81", RDFI, "744-5678-99", 50_000, name="NAME", advice_routing=ODFI, file_identification="11131"
    )
    batch.add_adv_entry("82", RDFI, "744-5678-99", 1_234_567_890_12, name="BIG DEBIT", advice_routing=ODFI)
    return fb


def test_adv_file_is_written_in_the_adv_layouts_and_round_trips() -> None:
    f = _adv_builder().build()
    text = ach.render(f)
    lines = text.splitlines()
    assert all(len(line) == 94 for line in lines) and len(lines) % 10 == 0
    header, entry, big, control, file_control = lines[1], lines[2], lines[3], lines[4], lines[5]
    assert header[1:4] == "280" and header[50:53] == "ADV" and header[78] == "0"  # prepared by an ACH Operator
    # ADV Entry Detail: account 13-27, amount 28-39 (12 digits), advice routing 40-48, file id 49-53,
    # name 55-76, ACH Operator routing 80-87, Julian day 88-90 (4 March 2024 = day 064), sequence 91-94.
    assert entry[12:27] == "744-5678-99".ljust(15) and entry[27:39] == "000000050000"
    assert entry[39:48] == ODFI and entry[48:53] == "11131" and entry[54:76] == "NAME".ljust(22)
    assert entry[79:87] == ODFI[:8] and entry[87:90] == "064" and entry[90:94] == "0001"
    assert big[27:39] == "123456789012" and big[90:94] == "0002"  # beyond the common layout's 10 digits
    # ADV Batch/File Control: 20-digit debit and credit totals.
    assert control[20:40] == f"{123456789012:020d}" and control[40:60] == f"{50000:020d}"
    assert file_control[31:51] == f"{123456789012:020d}" and file_control[51:71] == f"{50000:020d}"
    assert type(f.control).__name__ == "ADVFileControl"
    assert type(f.batches[0].control).__name__ == "ADVBatchControl"
    report = ach.validate(text)
    assert report.valid, report.issues
    again = ach.parse(text)
    assert [e.amount_cents for e in again.batches[0].entries] == [50_000, 123_456_789_012]
    assert ach.render(again) == text


def test_adv_builder_refuses_what_the_layout_cannot_hold() -> None:
    fb = ach.FileBuilder(RDFI, " " + ODFI, "DEST", "ORIG", created=CREATED)
    batch = fb.add_adv_batch("ACME CORP", "1234567890", "ACCOUNTING", ODFI, effective_date=date(2024, 3, 5))
    with pytest.raises(PaymentFormatError) as err:
        batch.add_adv_entry("22", RDFI, "1", 1, name="N", advice_routing=ODFI)
    assert err.value.code == "ach_adv_transaction_code"
    ppd = fb.add_batch("PPD", "ACME", "1234567890", "PAYROLL", ODFI, effective_date=date(2024, 3, 5))
    with pytest.raises(PaymentFormatError) as err:
        ppd.add_adv_entry("81", RDFI, "1", 1, name="N", advice_routing=ODFI)
    assert err.value.code == "ach_sec_code"
    batch.add_adv_entry("81", RDFI, "1", 1, name="N", advice_routing=ODFI)
    ppd.add_entry("22", RDFI, "1", 1, name="N")
    with pytest.raises(PaymentFormatError) as err:  # one file cannot mix ADV and other batches
        fb.build()
    assert err.value.code == "ach_adv_file"
