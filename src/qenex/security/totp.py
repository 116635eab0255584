"""Time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits, 30 s steps) via pyotp.

A code is accepted for the current step and one step either side (clock drift), and only for
a step later than the last accepted one, so an observed code cannot be replayed.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

TOTP_DIGITS = 6
TOTP_PERIOD_S = 30
TOTP_WINDOW_STEPS = 1
TOTP_SECRET_BASE32_CHARS = 32  # 160 bits, RFC 4226's recommended secret length
ISSUER = "QENEX"


def new_secret() -> str:
    return pyotp.random_base32(TOTP_SECRET_BASE32_CHARS)


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans (it contains the secret: show once)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).provisioning_uri(
        name=username, issuer_name=ISSUER
    )


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).at(when)


def matching_step(secret: str, code: str, when: datetime, after_step: int) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and newer than ``after_step``."""
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S)
    current = totp.timecode(when)
    found = None
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        # Compare every candidate (no early exit) so timing does not reveal which step matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and step > after_step:
            found = step
    return found
