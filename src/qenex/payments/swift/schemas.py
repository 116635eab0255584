"""Message structures: the order, presence and repetition of block-4 fields per MT.

From the SWIFT Standards MT release (Category 1, 2 and 9 message reference guides).
An item lists the tags it accepts (number + option letter), its minimum and maximum
occurrences; a group repeats a run of items (an MT940 statement line is 61 then 86).
The matcher is greedy and linear: MT structures are built so that the next tag always
tells which item it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final


@dataclass(frozen=True, slots=True)
class Item:
    tags: tuple[str, ...]
    min: int = 0
    max: int = 1  # 0 = unbounded
    name: str = ""  # the standard's name for error messages ("50a Ordering Customer")


@dataclass(frozen=True, slots=True)
class Group:
    items: tuple[Item | Group, ...]
    min: int = 0
    max: int = 0
    name: str = ""


Node = Item | Group


def opt(number: str, letters: str, min: int = 0, max: int = 1, name: str = "") -> Item:
    """Item for field `number` with the given option letters ("-" means the letterless option)."""
    tags = tuple(number + ("" if letter == "-" else letter) for letter in letters) if letters else (number,)
    return Item(tags, min, max, name or f"{number}{'a' if letters else ''}")


def m(number: str, letters: str = "", name: str = "") -> Item:
    return opt(number, letters, 1, 1, name)


def o(number: str, letters: str = "", name: str = "") -> Item:
    return opt(number, letters, 0, 1, name)


def rep(number: str, letters: str = "", min: int = 0, name: str = "") -> Item:
    return opt(number, letters, min, 0, name)


MT103: Final = (
    m("20", name="20 Sender's Reference"),
    rep("13C", name="13C Time Indication"),
    m("23B", name="23B Bank Operation Code"),
    rep("23E", name="23E Instruction Code"),
    o("26T"),
    m("32A", name="32A Value Date/Currency/Interbank Settled Amount"),
    o("33B"),
    o("36"),
    m("50", "AFK", name="50a Ordering Customer"),
    o("51", "A"),
    o("52", "AD"),
    o("53", "ABD"),
    o("54", "ABD"),
    o("55", "ABD"),
    o("56", "ACD"),
    o("57", "ABCD"),
    m("59", "-AF", name="59a Beneficiary Customer"),
    o("70"),
    m("71A", name="71A Details of Charges"),
    rep("71F"),
    o("71G"),
    o("72"),
    o("77B"),
    o("77T"),
)

# MT103 STP (validation flag STP): fewer options, so that it can be processed without manual repair.
MT103_STP: Final = (
    m("20", name="20 Sender's Reference"),
    rep("13C"),
    m("23B", name="23B Bank Operation Code"),
    rep("23E"),
    o("26T"),
    m("32A", name="32A Value Date/Currency/Interbank Settled Amount"),
    o("33B"),
    o("36"),
    m("50", "AFK", name="50a Ordering Customer"),
    o("52", "A"),
    o("53", "AB"),
    o("54", "A"),
    o("55", "A"),
    o("56", "A"),
    o("57", "A"),
    m("59", "-AF", name="59a Beneficiary Customer"),
    o("70"),
    m("71A", name="71A Details of Charges"),
    rep("71F"),
    o("71G"),
    o("72"),
    o("77B"),
)

_MT202_A: Final = (
    m("20", name="20 Transaction Reference Number"),
    m("21", name="21 Related Reference"),
    rep("13C"),
    m("32A", name="32A Value Date, Currency Code, Amount"),
    o("52", "AD"),
    o("53", "ABD"),
    o("54", "ABD"),
    o("56", "AD"),
    o("57", "ABD"),
    m("58", "AD", name="58a Beneficiary Institution"),
    o("72"),
)
MT202: Final = _MT202_A
MT202COV: Final = _MT202_A + (
    m("50", "AFK", name="50a Ordering Customer (sequence B)"),
    o("52", "AD"),
    o("56", "ACD"),
    o("57", "ABCD"),
    m("59", "-AF", name="59a Beneficiary Customer (sequence B)"),
    o("70"),
    o("72"),
    o("33B"),
)

MT900: Final = (
    m("20", name="20 Transaction Reference Number"),
    m("21", name="21 Related Reference"),
    m("25", "-P", name="25a Account Identification"),
    o("13D"),
    m("32A", name="32A Value Date, Currency Code, Amount"),
    o("52", "AD"),
    o("72"),
)
MT910: Final = (
    m("20", name="20 Transaction Reference Number"),
    m("21", name="21 Related Reference"),
    m("25", "-P", name="25a Account Identification"),
    o("13D"),
    m("32A", name="32A Value Date, Currency Code, Amount"),
    o("50", "AFK"),
    o("52", "AD"),
    o("56", "AD"),
    o("72"),
)

STATEMENT_LINE: Final = Group((m("61", name="61 Statement Line"), o("86")), 0, 0, "statement line")
MT940: Final = (
    m("20", name="20 Transaction Reference Number"),
    o("21"),
    m("25", "-P", name="25a Account Identification"),
    m("28C", name="28C Statement Number/Sequence Number"),
    m("60", "FM", name="60a Opening Balance"),
    STATEMENT_LINE,
    m("62", "FM", name="62a Closing Balance (Booked Funds)"),
    o("64"),
    rep("65"),
    o("86"),
)
MT942: Final = (
    m("20", name="20 Transaction Reference Number"),
    o("21"),
    m("25", "-P", name="25a Account Identification"),
    m("28C", name="28C Statement Number/Sequence Number"),
    Item(("34F",), 1, 2, "34F Floor Limit Indicator"),
    m("13D", name="13D Date/Time Indication"),
    STATEMENT_LINE,
    o("90D"),
    o("90C"),
    o("86"),
)
MT950: Final = (
    m("20", name="20 Transaction Reference Number"),
    m("25", name="25 Account Identification"),
    m("28C", name="28C Statement Number/Sequence Number"),
    m("60", "FM", name="60a Opening Balance"),
    rep("61"),
    m("62", "FM", name="62a Closing Balance (Booked Funds)"),
    o("64"),
)

# Structures by message type key ("103", "103STP", "202", "202COV", ...).
STRUCTURES: Final[dict[str, tuple[Node, ...]]] = {
    "103": MT103,
    "103STP": MT103_STP,
    "202": MT202,
    "202COV": MT202COV,
    "900": MT900,
    "910": MT910,
    "940": MT940,
    "942": MT942,
    "950": MT950,
}


def all_tags(nodes: tuple[Node, ...]) -> frozenset[str]:
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, Item):
            out.update(node.tags)
        else:
            out |= all_tags(node.items)
    return frozenset(out)


@lru_cache(maxsize=64)
def tag_order(kind: str) -> dict[str, int]:
    """Each tag's position in the structure of `kind`, by its first occurrence (canonical order)."""
    order: dict[str, int] = {}

    def walk(nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            if isinstance(node, Item):
                for tag in node.tags:
                    order.setdefault(tag, len(order))
            else:
                walk(node.items)

    walk(STRUCTURES[kind])
    return order


def misplaced(kind: str, tags: list[str]) -> int | None:
    """When the fields are all known to `kind` and would match its structure in the canonical
    order, the index of the first field that comes too early or too late; else None (the
    problem is a missing, repeated or foreign field, not the order)."""
    order = tag_order(kind)
    if any(tag not in order for tag in tags):
        return None
    ordered = sorted(tags, key=lambda tag: order[tag])
    if ordered == tags:
        return None
    consumed, missing = match(kind, ordered)
    if consumed < len(ordered) or missing:
        return None
    for i in range(1, len(tags)):
        if order[tags[i]] < order[tags[i - 1]]:
            return i
    return None


def match(kind: str, tags: list[str]) -> tuple[int, tuple[str, ...]]:
    """Greedy match of `tags` against the structure of `kind` ("103", "202COV", ...).
    Returns (tags consumed, missing item names)."""
    if len(tags) <= MATCH_CACHE_TAGS_MAX:
        return _match_cached(kind, tuple(tags))
    missing: list[str] = []
    pos = _match_seq(STRUCTURES[kind], tags, 0, missing)
    return pos, tuple(missing)


# Real traffic repeats a few field layouts per type: remember the verdict for short layouts.
MATCH_CACHE_TAGS_MAX: Final = 64
MATCH_CACHE_ENTRIES_MAX: Final = 4096


@lru_cache(maxsize=MATCH_CACHE_ENTRIES_MAX)
def _match_cached(kind: str, tags: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    missing: list[str] = []
    pos = _match_seq(STRUCTURES[kind], list(tags), 0, missing)
    return pos, tuple(missing)


def _match_seq(nodes: tuple[Node, ...], tags: list[str], pos: int, missing: list[str]) -> int:
    for node in nodes:
        count = 0
        while (node.max == 0 or count < node.max) and pos < len(tags):
            if isinstance(node, Item):
                if tags[pos] not in node.tags:
                    break
                pos += 1
            else:
                if tags[pos] not in _first_tags(node):
                    break
                pos = _match_seq(node.items, tags, pos, missing)
            count += 1
        if count < node.min:
            missing.append(node.name or "/".join(node.tags if isinstance(node, Item) else ()))
    return pos


def _first_tags(group: Group) -> tuple[str, ...]:
    first = group.items[0]
    return first.tags if isinstance(first, Item) else _first_tags(first)
