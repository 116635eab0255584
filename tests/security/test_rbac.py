"""Roles cap scopes; auditors never write; customers see only their own owner's objects."""

from __future__ import annotations

import pytest

from qenex.security import rbac
from qenex.security.errors import SecurityError


def principal(role: rbac.Role, scopes: set[str] | None = None, owner_id: str | None = None) -> rbac.Principal:
    held = frozenset(scopes) if scopes is not None else rbac.ROLE_SCOPES[role]
    return rbac.Principal(kind="api_key", id="k1", name="t", role=role, scopes=held, owner_id=owner_id)


def test_role_scope_map_is_sane() -> None:
    assert set(rbac.ROLE_SCOPES) == set(rbac.ROLES)
    assert rbac.ROLE_SCOPES["admin"] == rbac.ALL_SCOPES
    assert rbac.ROLE_SCOPES["auditor"] <= rbac.READ_SCOPES
    for role, scopes in rbac.ROLE_SCOPES.items():
        assert scopes <= rbac.ALL_SCOPES, role
    assert rbac.ADMIN not in rbac.ROLE_SCOPES["operator"]


def test_auditor_reads_but_never_writes_even_with_a_forged_scope() -> None:
    auditor = principal("auditor", {rbac.ACCOUNTS_READ, rbac.AUDIT_READ, rbac.TRANSACTIONS_WRITE, rbac.ADMIN})
    assert auditor.has_scope(rbac.ACCOUNTS_READ)
    assert auditor.has_scope(rbac.AUDIT_READ)
    for write in (rbac.ACCOUNTS_WRITE, rbac.TRANSACTIONS_WRITE, rbac.TRANSACTIONS_MANAGE, rbac.KEYS_MANAGE):
        assert not auditor.has_scope(write)
        with pytest.raises(SecurityError) as info:
            rbac.require_scope(auditor, write)
        assert info.value.http_status == 403 and info.value.code == "forbidden"


def test_admin_scope_implies_everything_only_for_admins() -> None:
    admin = principal("admin", {rbac.ADMIN})
    assert all(admin.has_scope(s) for s in rbac.ALL_SCOPES)
    teller = principal("teller", {rbac.ACCOUNTS_READ, rbac.ADMIN})  # a stored scope the role cannot hold
    assert teller.has_scope(rbac.ACCOUNTS_READ)
    assert not teller.has_scope(rbac.AUDIT_READ)
    assert not teller.has_scope(rbac.KEYS_MANAGE)


def test_credential_scopes_are_checked_against_the_role() -> None:
    assert rbac.normalize_scopes("teller", None) == tuple(sorted(rbac.ROLE_SCOPES["teller"]))
    assert rbac.normalize_scopes("teller", ["accounts:read", " accounts:read "]) == ("accounts:read",)
    with pytest.raises(SecurityError, match="may not hold"):
        rbac.normalize_scopes("auditor", ["transactions:write"])
    with pytest.raises(SecurityError, match="unknown scope"):
        rbac.normalize_scopes("admin", ["accounts:delete"])
    with pytest.raises(SecurityError, match="unknown role"):
        rbac.parse_role("root")


def test_customers_need_an_owner_and_others_must_not_have_one() -> None:
    assert rbac.check_owner("customer", " cust-1 ") == "cust-1"
    with pytest.raises(SecurityError):
        rbac.check_owner("customer", None)
    with pytest.raises(SecurityError):
        rbac.check_owner("teller", "cust-1")
    with pytest.raises(SecurityError):
        rbac.check_owner("customer", "x" * 101)


def test_customer_sees_only_its_own_owner() -> None:
    me = principal("customer", owner_id="cust-1")
    assert rbac.can_see_owner(me, "cust-1")
    assert not rbac.can_see_owner(me, "cust-2")
    assert not rbac.can_see_owner(me, None)
    assert rbac.owner_filter(me) == "cust-1"
    teller = principal("teller")
    assert rbac.can_see_owner(teller, "cust-2")
    assert rbac.owner_filter(teller) is None
    assert me.actor == "key:k1"
