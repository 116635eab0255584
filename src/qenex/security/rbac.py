"""Roles, scopes and the authenticated `Principal`, with the object-level rule for customers.

A role caps what a credential can ever do: a credential's scopes are a subset of its role's
scopes, checked when it is created and again on every check (so an auditor can never write,
whatever was stored). ``admin`` is both a role and a scope that implies every other scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from qenex.security.errors import FORBIDDEN, SecurityError, bad_request

Role = Literal["admin", "operator", "teller", "auditor", "customer"]
PrincipalKind = Literal["api_key", "oauth_client", "operator"]

ROLES: Final[tuple[Role, ...]] = ("admin", "operator", "teller", "auditor", "customer")

ACCOUNTS_READ: Final = "accounts:read"
ACCOUNTS_WRITE: Final = "accounts:write"
TRANSACTIONS_READ: Final = "transactions:read"
TRANSACTIONS_WRITE: Final = "transactions:write"
TRANSACTIONS_MANAGE: Final = "transactions:manage"  # post / void / reverse
AUDIT_READ: Final = "audit:read"
KEYS_MANAGE: Final = "keys:manage"
ADMIN: Final = "admin"

ALL_SCOPES: Final = frozenset(
    {ACCOUNTS_READ, ACCOUNTS_WRITE, TRANSACTIONS_READ, TRANSACTIONS_WRITE, TRANSACTIONS_MANAGE, AUDIT_READ,
     KEYS_MANAGE, ADMIN}
)
READ_SCOPES: Final = frozenset({ACCOUNTS_READ, TRANSACTIONS_READ, AUDIT_READ})

_TELLER: Final = frozenset({ACCOUNTS_READ, ACCOUNTS_WRITE, TRANSACTIONS_READ, TRANSACTIONS_WRITE})
ROLE_SCOPES: Final[dict[str, frozenset[str]]] = {
    "admin": ALL_SCOPES,
    "operator": _TELLER | {TRANSACTIONS_MANAGE, AUDIT_READ},
    "teller": _TELLER,
    "auditor": READ_SCOPES,
    "customer": frozenset({ACCOUNTS_READ, TRANSACTIONS_READ, TRANSACTIONS_WRITE}),
}
# Roles that may never change anything, whatever scopes a credential carries.
READ_ONLY_ROLES: Final = frozenset({"auditor"})

_ACTOR_PREFIX: Final[dict[str, str]] = {"api_key": "key", "oauth_client": "client", "operator": "operator"}

SCOPES_PER_CREDENTIAL_MAX = 32
OWNER_ID_CHARS_MAX = 100


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``owner_id`` is set for customers: they only ever see that owner's objects.
    ``expires_at`` is when the credential stops being valid (None: no fixed end), so a
    long-lived connection (the WebSocket stream) can end at that moment."""

    kind: PrincipalKind
    id: str
    name: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    owner_id: str | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        """The audit trail's name for this principal: ``key:<id>``, ``client:<id>`` or ``operator:<id>``.

        (Not ``api_key:...``: the audit redaction filter masks whatever follows a secret-looking word.)
        """
        return f"{_ACTOR_PREFIX[self.kind]}:{self.id}"

    def has_scope(self, scope: str) -> bool:
        if scope not in ROLE_SCOPES[self.role] and ADMIN not in ROLE_SCOPES[self.role]:
            return False
        if self.role in READ_ONLY_ROLES and scope not in READ_SCOPES:
            return False
        return scope in self.scopes or ADMIN in self.scopes


def parse_role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise bad_request(f"unknown role {value[:40]!r}; expected one of {', '.join(ROLES)}")


def normalize_scopes(role: Role, scopes: Iterable[str] | None) -> tuple[str, ...]:
    """The scopes to store for a new credential of ``role``: the role's own when none are given.

    Rejects unknown scopes and any scope the role may not hold (an auditor asking for a write scope).
    """
    allowed = ROLE_SCOPES[role]
    if scopes is None:
        return tuple(sorted(allowed))
    wanted = {s.strip() for s in scopes if s.strip()}
    if not wanted:
        return tuple(sorted(allowed))
    if len(wanted) > SCOPES_PER_CREDENTIAL_MAX:
        raise bad_request(f"at most {SCOPES_PER_CREDENTIAL_MAX} scopes per credential")
    unknown = sorted(wanted - ALL_SCOPES)
    if unknown:
        raise bad_request(f"unknown scope {unknown[0][:40]!r}; known scopes: {', '.join(sorted(ALL_SCOPES))}")
    beyond = sorted(wanted - allowed)
    if beyond:
        raise bad_request(f"role {role!r} may not hold scope {beyond[0]!r}")
    return tuple(sorted(wanted))


def check_owner(role: Role, owner_id: str | None) -> str | None:
    """Customers must name the owner they act for; other roles are not tied to one."""
    if owner_id is not None:
        owner_id = owner_id.strip()
        if not owner_id or len(owner_id) > OWNER_ID_CHARS_MAX:
            raise bad_request(f"owner id must have 1 to {OWNER_ID_CHARS_MAX} characters")
    if role == "customer" and owner_id is None:
        raise bad_request("a customer credential needs an owner id")
    if role != "customer" and owner_id is not None:
        raise bad_request("only customer credentials are tied to an owner id")
    return owner_id


def require_scope(principal: Principal, scope: str) -> None:
    """Raise 403 ``forbidden`` unless the principal holds ``scope``."""
    if not principal.has_scope(scope):
        raise SecurityError(FORBIDDEN, f"this credential lacks the {scope!r} permission")


def can_see_owner(principal: Principal, owner_id: str | None) -> bool:
    """Object-level rule: a customer sees only objects of its own owner; staff roles see all.

    The API answers 404 (not 403) when this is False, so a customer cannot probe for others' ids.
    """
    if principal.role != "customer":
        return True
    return owner_id is not None and principal.owner_id is not None and owner_id == principal.owner_id


def owner_filter(principal: Principal) -> str | None:
    """The owner id a listing must be restricted to, or None when the principal may list everything."""
    return principal.owner_id if principal.role == "customer" else None
