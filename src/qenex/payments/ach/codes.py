"""NACHA code tables: transaction codes, service class codes, SEC codes, return and change codes.

Sources: NACHA Operating Rules, Appendix Three (record formats) and Appendix Four/Five (return
entries, notifications of change). Tables are data, kept apart from the reader and validator.
"""

from __future__ import annotations

from typing import Final

# Service class codes (batch header / batch control field 2-4).
SCC_MIXED: Final = "200"
SCC_CREDITS: Final = "220"
SCC_DEBITS: Final = "225"
SCC_ADV: Final = "280"
SERVICE_CLASS_CODES: Final = frozenset({SCC_MIXED, SCC_CREDITS, SCC_DEBITS, SCC_ADV})

# Transaction codes: checking 2x, savings 3x, general ledger 4x, loan 5x, ADV 8x.
CREDIT_CODES: Final = frozenset(
    {
        "21",
        "22",
        "23",
        "24",
        "31",
        "32",
        "33",
        "34",
        "41",
        "42",
        "43",
        "44",
        "51",
        "52",
        "53",
        "54",
        "81",
        "83",
        "85",
        "87",
    }
)
DEBIT_CODES: Final = frozenset(
    {"26", "27", "28", "29", "36", "37", "38", "39", "46", "47", "48", "49", "55", "56", "82", "84", "86", "88"}
)
TRANSACTION_CODES: Final = CREDIT_CODES | DEBIT_CODES
# Prenotifications and zero-dollar entries carry a zero amount.
ZERO_AMOUNT_CODES: Final = frozenset(
    {"23", "24", "28", "29", "33", "34", "38", "39", "43", "44", "48", "49", "53", "54"}
)
# Automated return / NOC codes ("x1" credit, "x6" debit): the only codes a COR entry may use.
RETURN_NOC_CODES: Final = frozenset({"21", "26", "31", "36", "41", "46", "51", "56"})
ADV_CODES: Final = frozenset({"81", "82", "83", "84", "85", "86", "87", "88"})

# Standard Entry Class codes the issue names, each with its own rules in the validator.
SEC_NAMED: Final = ("PPD", "CCD", "WEB", "TEL", "CTX", "IAT", "COR", "RCK", "BOC", "POP", "ARC", "ADV")
# Other SEC codes found in production files (card, truncation, government and acknowledgement
# entries); they get the generic record rules.
SEC_OTHER: Final = ("ACK", "ATX", "CIE", "DNE", "ENR", "MTE", "POS", "SHR", "TRC", "TRX", "XCK")
SEC_CODES: Final = frozenset(SEC_NAMED + SEC_OTHER)
DEBIT_ONLY_SEC: Final = frozenset({"ARC", "BOC", "POP", "RCK", "TEL", "XCK", "TRC", "TRX", "MTE", "POS", "SHR"})
CREDIT_ONLY_SEC: Final = frozenset({"CIE", "ACK", "ATX"})
# Check-conversion amount ceilings, in cents (NACHA Rules, Subsection 2.5).
SEC_AMOUNT_MAX_CENTS: Final = {"ARC": 2_500_000, "BOC": 2_500_000, "POP": 2_500_000, "RCK": 250_000}
# SEC codes whose entries may carry at most one addenda 05 (CTX allows 9,999; IAT uses 10-18).
SINGLE_ADDENDA05_SEC: Final = frozenset({"PPD", "CCD", "WEB", "CIE", "ACK", "DNE", "ENR"})
# SEC codes whose entries carry no addenda 05 at all (only returns and NOCs).
NO_ADDENDA05_SEC: Final = frozenset({"ARC", "BOC", "POP", "RCK", "TEL", "XCK"})
# SEC codes that carry addenda 02 (card-point-of-sale) instead of 05.
ADDENDA02_SEC: Final = frozenset({"MTE", "POS", "SHR"})
CTX_ADDENDA_MAX: Final = 9999
IAT_ADDENDA17_MAX: Final = 2
IAT_ADDENDA18_MAX: Final = 5

# IAT addenda 10 transaction type codes.
IAT_TRANSACTION_TYPES: Final = frozenset(
    {
        "ANN",
        "BUS",
        "DEP",
        "LOA",
        "MIS",
        "MOR",
        "PEN",
        "RLS",
        "REM",
        "SAL",
        "TAX",
        "TEL",
        "WEB",
        "ARC",
        "BOC",
        "POP",
        "RCK",
    }
)

# Return reason codes (Appendix Four): R01-R53 (R54+ unassigned), dishonored R61-R70,
# contested R71-R77, IAT R80-R85.
RETURN_CODES: Final = frozenset(
    [f"R{n:02d}" for n in range(1, 54)] + [f"R{n:02d}" for n in range(61, 78)] + [f"R{n:02d}" for n in range(80, 86)]
)
# Change codes (Appendix Five): C01-C14 corrections, C61-C69 refused notifications of change.
CHANGE_CODES: Final = frozenset([f"C{n:02d}" for n in range(1, 15)] + [f"C{n:02d}" for n in range(61, 70)])

# Same Day ACH: per-entry ceiling ($1,000,000 since March 2022); IAT is not eligible.
SAME_DAY_ENTRY_AMOUNT_MAX_CENTS: Final = 100_000_000
SAME_DAY_INELIGIBLE_SEC: Final = frozenset({"IAT"})


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits."""
    return text.isascii() and text.isdigit()


def is_credit(transaction_code: str) -> bool:
    return transaction_code in CREDIT_CODES


def routing_check_digit(first8: str) -> int:
    """ABA check digit: weights 3,7,1 repeated over the first 8 digits, then 10 - sum mod 10."""
    d = [ord(c) - 48 for c in first8]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])
    return (10 - total % 10) % 10


def routing_valid(routing9: str) -> bool:
    """True for a nine-digit ABA routing number whose ninth digit is its check digit."""
    return len(routing9) == 9 and is_digits(routing9) and routing_check_digit(routing9[:8]) == ord(routing9[8]) - 48
