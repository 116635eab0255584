"""The one error base every layer shares: a stable machine code plus a plain message.

It sits below every layer, like `qenex.config`, so the edges (CLI, API) can render any
domain rejection the same way without knowing which layer raised it.
"""

from __future__ import annotations

from typing import Any


class QenexError(Exception):
    """A rejection with a stable ``code`` (snake_case) and a plain, secret-free ``message``."""

    code: str = "error"
    # HTTP status the API maps this error to; a user's mistake is always 4xx.
    http_status: int = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out
