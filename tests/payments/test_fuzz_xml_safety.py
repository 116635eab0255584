"""Hostile XML against the ISO 20022 reader: XXE (file and network), entity expansion
("billion laughs", quadratic blow-up), external DTDs, parameter entities and XInclude, in
UTF-8 and UTF-16. Each must be refused (or at least never resolved), quickly, without
leaking the target's content and without opening a network connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from test_fuzz_parsers import bounded, module_or_skip

from qenex.payments.common import PaymentFormatError, ValidationReport

SECRET = "QNX-SECRET-7f3c1d9e"
NS = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"


@pytest.fixture()
def secret_url(tmp_path) -> str:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path.as_uri()


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    """A local TCP port that records whether anything connected to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        sock.settimeout(0.3)
        yield sock


def _no_connection(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


def _doc(body: str, doctype: str = "") -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<Document xmlns="{NS}">{body}</Document>'


def hostile_documents(secret_url: str, port: int) -> dict[str, str]:
    lol = '<!ENTITY lol "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    big = "A" * 50_000
    return {
        "xxe_file": _doc("<x>&xxe;</x>", f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "{secret_url}">]>'),
        "xxe_network": _doc("<x>&xxe;</x>", f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>'),
        "external_dtd": _doc("<x/>", f'<!DOCTYPE Document SYSTEM "http://127.0.0.1:{port}/evil.dtd">'),
        "parameter_entity": _doc(
            "<x/>", f'<!DOCTYPE Document [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>'
        ),
        "billion_laughs": _doc("<x>&lol9;</x>", f"<!DOCTYPE Document [{lol}]>"),
        "quadratic_blowup": _doc("<x>" + "&a;" * 20_000 + "</x>", f'<!DOCTYPE Document [<!ENTITY a "{big}">]>'),
        "xinclude": _doc(
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret_url}" parse="text"/>'
        ),
    }


CASES = [
    "xxe_file", "xxe_network", "external_dtd", "parameter_entity", "billion_laughs", "quadratic_blowup", "xinclude"
]


def _encode(text: str, encoding: str) -> bytes:
    return text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"').encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("case", CASES)
def test_hostile_xml_is_refused_without_leak_or_network(case, encoding, secret_url, listener):
    iso = module_or_skip("iso20022")
    data = _encode(hostile_documents(secret_url, listener.getsockname()[1])[case], encoding)

    try:
        message = bounded(lambda: iso.parse(data))
    except PaymentFormatError as exc:
        assert SECRET not in str(exc)
    else:
        assert SECRET not in iso.render(message), f"{case} ({encoding}) leaked the file"
        # Only XInclude may parse (it is inert unless processed); a DOCTYPE must be refused, or the
        # entity reference survives unresolved and the rendered document is no longer well-formed.
        assert case == "xinclude", f"{case} ({encoding}) was accepted by parse()"

    report = bounded(lambda: iso.validate(data))
    assert isinstance(report, ValidationReport)
    assert not report.valid, f"{case} ({encoding}) validated"
    assert all(SECRET not in str(issue) for issue in report.issues)
    assert _no_connection(listener), f"{case} ({encoding}) opened a network connection"
