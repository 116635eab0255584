"""Format detection: cheap signatures, robust to BOMs, whitespace and line ends."""

from __future__ import annotations

import gzip

import pytest

from qenex.payments.common import PaymentFormatError
from qenex.payments.detect import DETECT_PREFIX_BYTES, detect_format, gunzip_bounded, read_payload, strip_bom

NACHA_HEADER = "101 076401251 0764012510807291511A094101achdestname            companyname                    "
NACHA_BATCH = "5225companyname                         origid    PPDCHECKPAYMT000002080730   1076401250000001"

MT103 = "{1:F01BANKBEBBAXXX0000000000}{2:I103BANKDEFFXXXXN}{4:\r\n:20:REF\r\n:23B:CRED\r\n-}"


def test_record_lengths_of_fixtures():
    assert len(NACHA_HEADER) == 94 and len(NACHA_BATCH) == 94


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (MT103, "mt"),
        ("\ufeff" + MT103, "mt"),
        ("\r\n\t  " + MT103, "mt"),
        (":20:STARTUMS\n:25:12345678/1020304050\n:28C:0\n", "mt"),  # block-4-only statement export
        ("ABNANL2A\n940\nABNANL2A\n:20:ABN AMRO BANK NV\n:25:517852257\n", "mt"),  # bank header lines
        (":61:1811261126CR30,00N062NONREF\n", "mt"),
        (":NS:\n", "mt"),
        ('<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"/>',
         "iso20022"),
        ("<Document/>", "iso20022"),
        ("<!-- comment -->\n<AppHdr/>", "iso20022"),
        ("  \n<BusMsg><AppHdr/></BusMsg>", "iso20022"),
        ("{1500}30User ReqT \n{1510}1000\n", "fedwire"),
        ("{1500}30User ReqT {1510}1000", "fedwire"),
        (NACHA_HEADER + "\r\n" + NACHA_BATCH + "\r\n", "ach"),
        (NACHA_HEADER + NACHA_BATCH, "ach"),  # no line breaks at all
        (NACHA_BATCH + "\n", "ach"),  # partial file: batch first, 94-char records
        ("", None),
        ("   \n\t", None),
        ("1\n2\n3\n", None),
        ('{"id": "x", "fileHeader": {}}', None),  # a JSON document is not a payment format
        ("go test fuzz v1\nstring(\"1000\")", None),
        ("{\\rtf1\\ansi", None),
        ("-e.[tests]\n", None),
    ],
)
def test_detect_format(data, expected):
    assert detect_format(data) == expected
    assert detect_format(data.encode("utf-8")) == expected


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_encodings(encoding):
    xml = '<?xml version="1.0"?><Document/>'
    assert detect_format(xml.encode(encoding)) == "iso20022"
    assert detect_format(MT103.encode(encoding)) == "mt"


def test_detection_reads_only_a_bounded_prefix():
    # A huge NACHA-looking file costs no more than its prefix; garbage after it is not read.
    data = (NACHA_HEADER + "\n").encode() + b"\xff" * (10 * DETECT_PREFIX_BYTES)
    assert detect_format(data) == "ach"
    assert detect_format(b"\x00" * 100_000) is None


def test_binary_noise_never_raises():
    for blob in (bytes(range(256)), b"\xfe\xff\x00", b"\xff\xfe<", b"\xef\xbb\xbf", b"{1", b"{1234"):
        detect_format(blob)


def test_gzip_is_unwrapped_and_bounded():
    body = (NACHA_HEADER + "\n").encode() * 10
    assert read_payload(gzip.compress(body)) == body
    with pytest.raises(PaymentFormatError) as err:
        gunzip_bounded(gzip.compress(b"0" * 10_000), limit_bytes=1000)  # a gzip bomb in miniature
    assert err.value.code == "payment_too_large"
    with pytest.raises(PaymentFormatError) as err:
        read_payload(b"\x1f\x8b\x08\x00garbage")
    assert err.value.code == "payment_bad_container"
    with pytest.raises(PaymentFormatError):
        read_payload(b"x" * 11, limit_bytes=10)


def test_strip_bom():
    assert strip_bom(b"\xef\xbb\xbf{1:") == b"{1:"
    assert strip_bom(b"{1:") == b"{1:"
