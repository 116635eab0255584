"""Redaction of secrets and card numbers from text and structured values.

Used by the JSON log formatter and by the audit trail, so that no secret, bearer token or
full card number (PAN) ever reaches a log line or an audit record's details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

REDACTED: Final = "[REDACTED]"
VALUE_DEPTH_MAX: Final = 6
TEXT_CHARS_MAX: Final = 8192

# Mapping keys whose value is always a secret (matched case-insensitively anywhere in the key).
_SECRET_KEY_RE: Final = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|authori[sz]ation|cookie|private|credential|"
    r"\bpin\b|^pin$|cvv|cvc|otp|totp|card[_-]?number|^pan$|master[_-]?key|signature",
    re.IGNORECASE,
)
# "Authorization: Bearer abc", "Bearer abc", "Basic abc"
_AUTH_RE: Final = re.compile(r"\b(Bearer|Basic|Digest)\s+[A-Za-z0-9._~+/=\-]{4,}", re.IGNORECASE)
# key=value / "key": "value" pairs whose key looks secret.
_PAIR_RE: Final = re.compile(
    r"""(?P<key>["']?[A-Za-z_\-]*(?:password|passwd|secret|token|api[_-]?key|cvv|otp|master[_-]?key)"""
    r"""[A-Za-z_\-]*["']?\s*[:=]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&}]+)""",
    re.IGNORECASE,
)
# QENEX API keys (qnx_<id>_<secret>) wherever they appear.
_APIKEY_RE: Final = re.compile(r"\bqnx_[A-Za-z0-9_\-]{8,}")
# 13-19 digits, optionally separated by single spaces or dashes: candidate card numbers.
_PAN_RE: Final = re.compile(r"(?<![\d])(?:\d[ \-]?){12,18}\d(?![\d])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return f"[PAN ****{digits[-4:]}]"
    return match.group(0)


def redact_text(text: str) -> str:
    """The text with bearer credentials, API keys, secret key=value pairs and card numbers masked."""
    if len(text) > TEXT_CHARS_MAX:
        text = text[:TEXT_CHARS_MAX] + "...[truncated]"
    text = _AUTH_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _APIKEY_RE.sub(REDACTED, text)
    text = _PAIR_RE.sub(lambda m: m.group("key") + REDACTED, text)
    return _PAN_RE.sub(_mask_pan, text)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.search(key))


def redact_value(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: secrets masked, strings scrubbed, non-JSON types as text.

    Floats become strings (an audit record never holds binary floating point); nesting deeper
    than VALUE_DEPTH_MAX is cut.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return redact_text(value).replace("\x00", "")
    if depth >= VALUE_DEPTH_MAX:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        return {
            str(k)[:200]: (REDACTED if is_secret_key(str(k)) else redact_value(v, depth + 1)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, depth + 1) for v in value]
    return redact_text(str(value)).replace("\x00", "")
