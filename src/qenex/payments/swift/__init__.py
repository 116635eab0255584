"""SWIFT MT: parse, build, validate and render FIN messages (MT103, MT103 STP, MT202, MT202 COV,
MT900, MT910, MT940, MT950), with a byte-faithful round trip.

    msg = parse(data)                  # Message, or MessageBatch for RJE/ACK batches
    report = validate(data_or_msg)     # ValidationReport; never raises for bad input
    text = render(msg)                 # == the parsed input, byte for byte
    SWIFTProtocol().create_mt103(...)  # builders return validated Message objects

Other message types (MT199, MT942, ...) are parsed and checked for structure, character set
and headers; their type-specific network rules are not checked (a warning says so).
"""

from __future__ import annotations

from qenex.payments.swift.build import (
    MTBuildError,
    StatementEntry,
    SWIFTProtocol,
    assemble,
    create_mt103,
    create_mt202,
    create_mt202cov,
    create_mt900,
    create_mt910,
    create_mt940,
    create_mt950,
    new_uetr,
)
from qenex.payments.swift.describe import describe
from qenex.payments.swift.model import Block, Field, Message, MessageBatch
from qenex.payments.swift.validate import RELAXATIONS, parse, validate

__all__ = [
    "Block",
    "Field",
    "MTBuildError",
    "Message",
    "MessageBatch",
    "RELAXATIONS",
    "SWIFTProtocol",
    "StatementEntry",
    "assemble",
    "create_mt103",
    "create_mt202",
    "create_mt202cov",
    "create_mt900",
    "create_mt910",
    "create_mt940",
    "create_mt950",
    "describe",
    "new_uetr",
    "parse",
    "render",
    "to_string",
    "validate",
]


def render(msg: Message | MessageBatch) -> str:
    """The FIN text of a message (or batch): for a parsed message, exactly the input."""
    return msg.to_string()


to_string = render
