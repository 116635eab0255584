"""Security rejections. Each has a stable ``code`` and an HTTP status; none carries a secret."""

from __future__ import annotations

from typing import Any, Final

from qenex.errors import QenexError

UNAUTHENTICATED: Final = "unauthenticated"
INVALID_CREDENTIALS: Final = "invalid_credentials"
MFA_REQUIRED: Final = "mfa_required"
ACCOUNT_LOCKED: Final = "account_locked"
FORBIDDEN: Final = "forbidden"
RATE_LIMITED: Final = "rate_limited"
INVALID_CLIENT: Final = "invalid_client"  # RFC 6749 section 5.2
INVALID_SCOPE: Final = "invalid_scope"  # RFC 6749 section 5.2
INVALID_GRANT: Final = "unsupported_grant_type"  # RFC 6749 section 5.2
INVALID_TOKEN: Final = "invalid_token"  # noqa: S105 - an error code (RFC 6750 section 3.1), not a secret
KEY_NOT_FOUND: Final = "key_not_found"
OPERATOR_NOT_FOUND: Final = "operator_not_found"
INVALID_SECURITY_REQUEST: Final = "invalid_security_request"
SECURITY_NOT_CONFIGURED: Final = "security_not_configured"

_HTTP_STATUS: dict[str, int] = {
    UNAUTHENTICATED: 401,
    INVALID_CREDENTIALS: 401,
    MFA_REQUIRED: 401,
    ACCOUNT_LOCKED: 403,
    FORBIDDEN: 403,
    RATE_LIMITED: 429,
    INVALID_CLIENT: 401,
    INVALID_SCOPE: 400,
    INVALID_GRANT: 400,
    INVALID_TOKEN: 401,
    KEY_NOT_FOUND: 404,
    OPERATOR_NOT_FOUND: 404,
    INVALID_SECURITY_REQUEST: 400,
    SECURITY_NOT_CONFIGURED: 500,
}


class SecurityError(QenexError):
    """A security rejection. ``headers`` are HTTP headers the response must carry
    (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""

    code = INVALID_SECURITY_REQUEST

    def __init__(
        self,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.http_status = _HTTP_STATUS.get(code, 400)
        self.headers = dict(headers or {})
        if self.http_status == 401 and "WWW-Authenticate" not in self.headers:
            self.headers["WWW-Authenticate"] = 'Bearer realm="qenex"'

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.code, self.message), {"headers": self.headers, "details": self.details})


def bad_request(message: str) -> SecurityError:
    return SecurityError(INVALID_SECURITY_REQUEST, message)
