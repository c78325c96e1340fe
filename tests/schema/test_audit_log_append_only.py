"""mt5_audit_log is append-only for every role and hash-chained per tenant (seed §8.1: immutable audit trail)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connections, transaction
from factories import make_audit, make_tenant

from suho.tenancy import tenant_context

ROLES = ["default", "operator", "owner"]  # service role, operator role (BYPASSRLS), the tables' owner


@pytest.mark.django_db(databases=ROLES)
@pytest.mark.parametrize("alias", ROLES)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE mt5_audit_log SET event_description = 'rewritten' WHERE id = %s",
        "DELETE FROM mt5_audit_log WHERE id = %s",
    ],
)
def test_an_audit_row_can_be_neither_changed_nor_removed(alias, statement):
    tenant = make_tenant(using=alias)
    row = make_audit(tenant, using=alias, event_description="original")

    with tenant_context(tenant.id, using=alias):
        with pytest.raises(DatabaseError, match=r"permission denied|append-only"), transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute(statement, [row.pk])
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT event_description FROM mt5_audit_log WHERE id = %s", [row.pk])
            assert cursor.fetchall() == [("original",)]


@pytest.mark.django_db(databases=ROLES)
@pytest.mark.parametrize("alias", ["default", "operator"])
def test_the_application_roles_cannot_truncate_the_audit_log(alias):
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("TRUNCATE mt5_audit_log")


@pytest.mark.django_db
def test_each_tenants_rows_form_a_hash_chain():
    a, b = make_tenant(), make_tenant()
    for n in range(3):
        make_audit(a, event_description=f"a{n}")
        make_audit(b, event_description=f"b{n}")

    for tenant in (a, b):
        with tenant_context(tenant.id), connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT chain_seq, prev_hash, row_hash, row_hash = suho_audit_hash(prev_hash, l)"
                " FROM mt5_audit_log AS l ORDER BY chain_seq"
            )
            chain = cursor.fetchall()
        assert [seq for seq, _, _, _ in chain] == [1, 2, 3]
        assert [prev for _, prev, _, _ in chain] == ["", chain[0][2], chain[1][2]]
        assert all(len(row_hash) == 64 and recomputed for _, _, row_hash, recomputed in chain)
    assert chain[0][2] != "", "hashes are filled in"


@pytest.mark.django_db
def test_a_chain_value_written_by_the_caller_is_replaced_by_the_trigger():
    tenant = make_tenant()
    make_audit(tenant)
    row = make_audit(tenant, chain_seq=99, prev_hash="forged", row_hash="forged")
    with tenant_context(tenant.id), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT chain_seq, prev_hash <> 'forged', row_hash <> 'forged' FROM mt5_audit_log WHERE id = %s", [row.pk]
        )
        assert cursor.fetchone() == (2, True, True)


@pytest.mark.django_db
def test_the_upkeep_setting_opens_nothing_to_the_service_role():
    tenant = make_tenant()
    row = make_audit(tenant)
    with tenant_context(tenant.id), connections["default"].cursor() as cursor:
        cursor.execute("SELECT set_config('suho.audit_upkeep', 'on', true)")
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            with connections["default"].cursor() as inner:
                inner.execute("DELETE FROM mt5_audit_log WHERE id = %s", [row.pk])


@pytest.mark.django_db(databases=["owner"])
def test_the_owner_may_delete_only_with_the_upkeep_setting_on():
    tenant = make_tenant(using="owner")
    row = make_audit(tenant, using="owner")
    with tenant_context(tenant.id, using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("SELECT set_config('suho.audit_upkeep', 'on', true)")
        cursor.execute("DELETE FROM mt5_audit_log WHERE id = %s", [row.pk])
        assert cursor.rowcount == 1
