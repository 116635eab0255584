"""`SecurityService`: the framework-agnostic front door the API calls on every request.

It turns an ``Authorization`` header into a `Principal` (API key, access token or operator
session), applies the per-IP and per-principal rate limits, checks scopes, and records
refused credentials and denied permissions in the audit trail. Credential checks that cost
an argon2 verification (token endpoint, operator login) have their own, tighter limit.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from qenex.config import Settings
from qenex.security import apikeys, operators, rbac, sessions, tokens
from qenex.security._common import ConnectionSource, audit, clip
from qenex.security.errors import INVALID_TOKEN, UNAUTHENTICATED, SecurityError
from qenex.security.ratelimit import ApiRateLimits

log = logging.getLogger(__name__)

AUTHORIZATION_CHARS_MAX = 8192
RESOURCE_CHARS_MAX = 200


def _credential_kind(credential: str) -> str:
    if apikeys.looks_like_api_key(credential):
        return "api_key"
    if sessions.looks_like_session(credential):
        return "session"
    return "access_token"


class SecurityService:
    """One per server process. ``connect`` lends a database connection (e.g. ``pool.connection``)."""

    def __init__(self, settings: Settings, connect: ConnectionSource, *, limits: ApiRateLimits | None = None) -> None:
        self.settings = settings
        self._connect = connect
        self.limits = limits or ApiRateLimits.from_settings(settings)
        self.api_keys = apikeys.ApiKeyAuthenticator(connect)
        self.tokens = tokens.TokenVerifier(connect)

    def close(self) -> None:
        self.api_keys.close()
        self.limits.close()

    # -- authentication ----------------------------------------------------------------------

    def authenticate(self, authorization: str | None, *, source_ip: str | None = None,
                     now: datetime | None = None) -> rbac.Principal:
        """The principal behind ``Authorization: Bearer <credential>``; 401, or 429 when over a limit."""
        ip_key = f"ip:{source_ip or 'unknown'}"
        self.limits.screen(ip_key)
        credential = _bearer(authorization)
        kind = _credential_kind(credential)
        try:
            principal = self._verify(kind, credential, now)
        except SecurityError as exc:
            # Over the refusal limit: answer 429 without another audit write (see ApiRateLimits).
            self.limits.auth_failures.check(ip_key)
            self._record_refusal(kind, credential, source_ip)
            raise SecurityError(INVALID_TOKEN, exc.message) from None
        self.limits.admit(ip_key, principal.actor)
        return principal

    def recheck(self, authorization: str | None, *, now: datetime | None = None) -> rbac.Principal:
        """Is a credential already in use still valid? For long-lived connections (the WebSocket
        stream): no rate limit, no audit record, and an operator session is not extended.
        Raises 401 ``invalid_token`` once it is revoked or expired."""
        credential = _bearer(authorization)
        kind = _credential_kind(credential)
        if kind == "session":
            with self._connect() as conn:
                return sessions.check_session(conn, credential, now=now)
        return self._verify(kind, credential, now)

    def _verify(self, kind: str, credential: str, now: datetime | None) -> rbac.Principal:
        if kind == "api_key":
            return self.api_keys.authenticate(credential, now=now)
        if kind == "session":
            with self._connect() as conn:
                return sessions.validate_session(conn, self.settings, credential, now=now)
        return self.tokens.verify(credential, now=now)

    def _record_refusal(self, kind: str, credential: str, source_ip: str | None) -> None:
        # Only the key's public id is recorded, never the credential.
        key_id = credential.split("_", 2)[1] if kind == "api_key" and credential.count("_") >= 2 else None
        if key_id is not None and not key_id.isalnum():  # only a plausible id goes in the record
            key_id = None
        details = {"credential": kind} | ({"key_id": clip(key_id, 20)} if key_id else {})
        with self._connect() as conn, conn.transaction():
            audit(conn, "anonymous", "auth.failed", resource="api", outcome="failure", source_ip=source_ip,
                  details=details)

    # -- authorization -----------------------------------------------------------------------

    def authorize(self, principal: rbac.Principal, scope: str, *, source_ip: str | None = None,
                  resource: str = "") -> None:
        """403 ``forbidden`` unless ``principal`` holds ``scope``; the denial is audited."""
        if principal.has_scope(scope):
            return
        with self._connect() as conn, conn.transaction():
            audit(conn, principal.actor, "permission.denied", resource=clip(resource, RESOURCE_CHARS_MAX) or "",
                  outcome="denied", source_ip=source_ip, details={"scope": scope, "role": principal.role})
        rbac.require_scope(principal, scope)

    # -- credential exchanges ----------------------------------------------------------------

    def issue_token(self, client_id: str, client_secret: str, scope: str | None, *, grant_type: str,
                    source_ip: str | None = None) -> tokens.TokenResponse:
        self.limits.login.check(f"ip:{source_ip or 'unknown'}")
        self.limits.login.check(f"client:{clip(client_id, 64)}")
        with self._connect() as conn:
            return tokens.issue_token(conn, self.settings, client_id, client_secret, scope, grant_type=grant_type,
                                      source_ip=source_ip)

    def login(self, username: str, password: str, totp_code: str | None, *,
              source_ip: str | None = None) -> operators.LoginResult:
        self.limits.login.check(f"ip:{source_ip or 'unknown'}")
        self.limits.login.check(f"user:{clip(username.lower(), 64)}")
        with self._connect() as conn:
            return operators.login(conn, self.settings, username=username, password=password, totp_code=totp_code,
                                   source_ip=source_ip)

    def jwks(self) -> dict[str, Any]:
        with self._connect() as conn:
            return tokens.jwks(conn)

    def logout(self, session_token: str, *, actor: str | None = None, source_ip: str | None = None) -> bool:
        """End a session; the logout is recorded in the audit trail (``auth.logout``)."""
        with self._connect() as conn, conn.transaction():
            ended = sessions.end_session(conn, session_token)
            audit(conn, actor or "anonymous", "auth.logout", resource="session", outcome="success" if ended else
                  "failure", source_ip=source_ip, details={} if ended else {"reason": "no live session"})
        return ended


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise SecurityError(UNAUTHENTICATED, "authentication required: send Authorization: Bearer <credential>")
    if len(authorization) > AUTHORIZATION_CHARS_MAX:
        raise SecurityError(INVALID_TOKEN, "the Authorization header is too long")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise SecurityError(UNAUTHENTICATED, "authentication required: send Authorization: Bearer <credential>")
    return credential
