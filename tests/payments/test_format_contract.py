"""Every payments format offers parse, validate and writer functions (`render` and `to_*`), and
what a writer produces parses back to the same message (the issue: "parse(...), validate(...)
and to_* functions for every format")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from qenex.payments import ach, cards, fedwire, iso20022, swift

FIXTURES = Path(__file__).parent / "fixtures" / "cli"


def _card() -> cards.CardMessage:
    body = "4" + "0" * 14
    pan = body + str(cards.luhn_check_digit(body))
    return cards.authorization_request(
        pan=pan,
        amount="12.34",
        currency="USD",
        stan=7,
        terminal_id="TERM0001",
        merchant_id="MERCHANT000001",
        when=datetime(2024, 3, 4, 9, 30, 15),
        expiry="12/29",
    )


CASES = {
    "swift": (swift, lambda: swift.parse((FIXTURES / "mt103.fin").read_bytes()), ("to_string",)),
    "iso20022": (iso20022, lambda: iso20022.parse((FIXTURES / "pacs008.xml").read_bytes()), ("to_xml",)),
    "ach": (ach, lambda: ach.parse((FIXTURES / "ppd.ach").read_bytes()), ("to_string", "to_bytes")),
    "fedwire": (fedwire, lambda: fedwire.parse((FIXTURES / "fedwire_ctr.txt").read_bytes()), ("to_string",)),
    "cards": (cards, _card, ("to_bytes", "to_hex")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_format_writes_what_it_parses(name):
    module, make, writers = CASES[name]
    msg = make()
    assert module.validate(msg).valid, [str(i) for i in module.validate(msg).issues]
    rendered = module.render(msg)
    for writer in writers:
        out = getattr(module, writer)(msg)
        assert writer in module.__all__
        if isinstance(out, bytes) and isinstance(rendered, str):
            assert out == rendered.encode("ascii")
        elif writer != "to_hex":
            assert out == rendered
        again = module.parse(out)
        assert module.render(again) == rendered
        assert module.validate(out).valid
