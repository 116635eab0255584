"""Payment protocol layer: SWIFT MT, ISO 20022 and SEPA, NACHA ACH, Fedwire FAIM, cards.

Build, parse, validate and convert. Sub-modules are imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SEPAProtocol", "SWIFTProtocol"]


def __getattr__(name: str) -> Any:
    if name == "SWIFTProtocol":
        from qenex.payments.swift import SWIFTProtocol

        return SWIFTProtocol
    if name == "SEPAProtocol":
        from qenex.payments.sepa import SEPAProtocol

        return SEPAProtocol
    raise AttributeError(f"module 'qenex.payments' has no attribute {name!r}")
