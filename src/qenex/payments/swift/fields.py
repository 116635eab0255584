"""SWIFT field formats: the standard's notation compiled to bounded regular expressions.

The notation is the one of the SWIFT User Handbook ("Standards MT General Information"):
``n`` digits, ``a`` upper-case letters, ``c`` upper-case alphanumerics, ``h`` hex digits,
``x`` the X character set, ``z`` the Z set, ``d`` a decimal amount with a mandatory comma,
``e`` a space; ``16x`` is up to 16, ``3!a`` exactly 3, ``4*35x`` up to 4 lines of up to 35,
``[...]`` an optional part and a line break is written ``\\n``. Every quantifier is bounded,
so matching costs at most a small constant per character (no catastrophic backtracking).
Values are matched with line breaks normalised to ``\\n``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

# The X character set (SWIFT "Standards MT General Information", character sets):
# a-z A-Z 0-9 / - ? : ( ) . , ' + space, plus CrLf between lines.
X_CHARS: Final = "A-Za-z0-9/\\-?:().,'+ "
# The Z set adds = ! " % & * < > ; { @ # _ to X.
Z_CHARS: Final = X_CHARS + '=!"%&*<>;{@#_'
_X_LINE = re.compile(f"[{X_CHARS}]*")
_CLASS: Final = {
    "n": "[0-9]",
    "a": "[A-Z]",
    "c": "[A-Z0-9]",
    "h": "[0-9A-F]",
    "x": f"[{X_CHARS}]",
    "y": "[A-Z0-9.,\\-()/='+:?!\"%&*<>; ]",
    "z": f"[{Z_CHARS}\\n]",  # z text such as 77T (9000z) counts its line breaks as characters
    "e": " ",
}
_TOKEN = re.compile(r"(\d+)(?:\*(\d+))?(!)?([nachxyzde])")


def _decimal(width: int) -> str:
    # Digits with one mandatory decimal comma, at most `width` characters in all.
    return f"(?=[0-9,]{{2,{width}}}(?![0-9,]))[0-9]+,[0-9]*"


def _token(count: int, lines: int | None, exact: bool, kind: str) -> str:
    if kind == "d":
        return _decimal(count)
    cls = _CLASS[kind]
    if lines is not None:  # "4*35x": lines x up to `lines` characters
        one = f"{cls}{{1,{lines}}}"
        return f"{one}(?:\\n{one}){{0,{count - 1}}}"
    return f"{cls}{{{count}}}" if exact else f"{cls}{{1,{count}}}"


_OPTIONAL_LINE = re.compile(r"((?:\[[^\]]*\])+)\\n")


def compile_notation(notation: str) -> str:
    """The regular expression (unanchored) for a SWIFT format notation such as ``[/34x]\\n4*35x``.

    A first line made only of optional parts (``[/1!a][/34x]\\n``) is optional as a whole,
    line break included, as the standard means it; when present it starts with a slash.
    """
    head = _OPTIONAL_LINE.match(notation)
    if head:
        inner = _compile_plain(head.group(1))
        return f"(?:(?=/){inner}\\n)?" + _compile_plain(notation[head.end() :])
    return _compile_plain(notation)


def _compile_plain(notation: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(notation):
        ch = notation[i]
        m = _TOKEN.match(notation, i)
        if m:
            count, lines, bang, kind = m.groups()
            out.append(_token(int(count), int(lines) if lines else None, bool(bang), kind))
            i = m.end()
        elif ch == "[":
            out.append("(?:")
            i += 1
        elif ch == "]":
            out.append(")?")
            i += 1
        elif notation.startswith("\\n", i):
            out.append("\\n")
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def pattern(notation: str) -> re.Pattern[str]:
    """The compiled, fully anchored pattern of a notation (cached: compiled once per process)."""
    return re.compile(f"(?:{compile_notation(notation)})\\Z")


BIC_FORMAT: Final = "4!a2!a2!c[3!c]"
PARTY_ID: Final = "[/1!a][/34x]"
NAME_ADDRESS: Final = "4*35x"

# Field formats common to the payment and statement MTs. Keyed by tag (number + option).
FORMATS: Final[dict[str, str]] = {
    "13C": "/8c/4!n1!x4!n",
    "13D": "6!n4!n1!x4!n",
    "20": "16x",
    "21": "16x",
    "23B": "4!c",
    "23E": "4!c[/30x]",
    "25": "35x",
    "25P": "35x\\n" + BIC_FORMAT,
    "26T": "3!c",
    "28C": "5n[/5n]",
    "32A": "6!n3!a15d",
    "32B": "3!a15d",
    "33B": "3!a15d",
    "34F": "3!a[1!a]15d",
    "36": "12d",
    "50A": "[/34x]\\n" + BIC_FORMAT,
    "50F": "35x\\n4*35x",
    "50K": "[/34x]\\n4*35x",
    "51A": PARTY_ID + "\\n" + BIC_FORMAT,
    "52A": PARTY_ID + "\\n" + BIC_FORMAT,
    "52D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "53A": PARTY_ID + "\\n" + BIC_FORMAT,
    "53B": "[/1!a][/34x]\\n[35x]",
    "53D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "54A": PARTY_ID + "\\n" + BIC_FORMAT,
    "54B": "[/1!a][/34x]\\n[35x]",
    "54D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "55A": PARTY_ID + "\\n" + BIC_FORMAT,
    "55B": "[/1!a][/34x]\\n[35x]",
    "55D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "56A": PARTY_ID + "\\n" + BIC_FORMAT,
    "56C": "/34x",
    "56D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "57A": PARTY_ID + "\\n" + BIC_FORMAT,
    "57B": "[/1!a][/34x]\\n[35x]",
    "57C": "/34x",
    "57D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "58A": PARTY_ID + "\\n" + BIC_FORMAT,
    "58D": PARTY_ID + "\\n" + NAME_ADDRESS,
    "59": "[/34x]\\n4*35x",
    "59A": "[/34x]\\n" + BIC_FORMAT,
    "59F": "[/34x]\\n4*35x",
    "60F": "1!a6!n3!a15d",
    "60M": "1!a6!n3!a15d",
    "61": "6!n[4!n]2a[1!a]15d1!a3!c16x[//16x][\\n34x]",
    "62F": "1!a6!n3!a15d",
    "62M": "1!a6!n3!a15d",
    "64": "1!a6!n3!a15d",
    "65": "1!a6!n3!a15d",
    "70": "4*35x",
    "71A": "3!a",
    "71F": "3!a15d",
    "71G": "3!a15d",
    "72": "6*35x",
    "77B": "3*35x",
    "77T": "9000z",
    "86": "6*65x",
    "90C": "5n3!a15d",
    "90D": "5n3!a15d",
}

# Parties whose option A carries a BIC on its last line (used to check the BIC itself).
BIC_OPTIONS: Final = frozenset(t for t, f in FORMATS.items() if f.endswith(BIC_FORMAT))

_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\Z")


def is_x_text(value: str) -> bool:
    """True if every line uses only the X character set."""
    return all(_X_LINE.fullmatch(line) for line in value.split("\n"))


# Every known tag's compiled pattern, built once at import (the hot path is a dict lookup).
PATTERNS: Final[dict[str, re.Pattern[str]]] = {tag: pattern(notation) for tag, notation in FORMATS.items()}


def matches(tag: str, value: str) -> bool | None:
    """Whether `value` (line breaks normalised to LF) matches the format of `tag`; None if unknown."""
    compiled = PATTERNS.get(tag)
    if compiled is None:
        return None
    return compiled.match(value) is not None


def bic_shape_ok(code: str) -> bool:
    return _BIC.match(code) is not None


_ROLE_TAG = re.compile(r"(\d\d)([A-Z]?)\Z")


def split_tag(tag: str) -> tuple[str, str]:
    """("32", "A") for "32A"; ("NS", "") for a non-standard tag."""
    m = _ROLE_TAG.match(tag)
    return (m.group(1), m.group(2)) if m else (tag, "")


@lru_cache(maxsize=4096)
def bic_problem(bic: str) -> str | None:
    """None if `bic` is a well-formed BIC with a known country (ISO 3166 via schwifty); else why not."""
    if not bic_shape_ok(bic):
        return f"{bic!r} is not a BIC (4!a2!a2!c[3!c])"
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(bic)
    except SchwiftyException as exc:
        return f"{bic!r} is not a valid BIC: {exc}"
    return None
