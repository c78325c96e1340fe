"""The apps audit through `suho.audit` (plumbing) and never import compliance; compliance's receiver writes the row
inside the caller's transaction (decision 0025). Without the receiver an audited action fails instead of going
unrecorded."""

from __future__ import annotations

import pytest
from django.db import transaction
from factories import make_account, make_tenant, make_user

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from compliance import receivers
from compliance.models import AuditLog
from suho import audit
from suho.routers import SERVICE, operator_path
from suho.tenancy import tenant_context


def _event_types(tenant_id) -> list[str]:
    with tenant_context(tenant_id):
        return list(
            AuditLog.objects.filter(tenant_id=tenant_id).order_by("chain_seq").values_list("event_type", flat=True)
        )


@pytest.mark.django_db
def test_a_row_commits_and_rolls_back_with_the_callers_transaction():
    tenant = make_tenant()
    with tenant_context(tenant.id):
        audit.audit_record(tenant_id=tenant.id, event_type="kept", category="test", action="create")
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            audit.audit_record(tenant_id=tenant.id, event_type="rolled_back", category="test", action="create")
            1 / 0  # noqa: B018  (the caller's change fails after its audit row)
    assert _event_types(tenant.id) == ["kept"]


def test_a_row_in_its_own_chain_goes_to_the_tenant_or_the_platform(committed):
    """Each row commits in its own chain (`committed`: in one wrapping test transaction the platform row's
    connection would wait on the tenant row's, e.g. for the TimescaleDB chunk that insert created)."""
    tenant = make_tenant()
    audit.audit_record(
        own_chain=True, tenant_id=tenant.id, event_type="tenant_row", category="test", action="create",
        severity=audit.Severity.WARNING,
    )  # fmt: skip
    audit.audit_record(
        own_chain=True, tenant_id=None, event_type="platform_row_port_test", category="test", action="create"
    )
    assert _event_types(tenant.id) == ["tenant_row"]
    with operator_path():
        assert AuditLog.objects.filter(tenant_id=None, event_type="platform_row_port_test").count() == 1


@pytest.mark.django_db
def test_an_audited_action_nothing_records_fails_and_changes_nothing():
    """A key revocation in a process without compliance's receiver: refused, the key stays active."""
    tenant = make_tenant()
    user = make_user(tenant)
    account = make_account(tenant, user)
    key, _ = api_key_create(account=account, created_by=user, label="ea")
    assert audit.audit_requested.disconnect(dispatch_uid="compliance_audit_requested")
    try:
        with pytest.raises(RuntimeError, match="compliance app"):
            api_key_revoke(api_key=key, by=user)
    finally:
        audit.audit_requested.connect(receivers.audit_requested_write, dispatch_uid="compliance_audit_requested")
    with tenant_context(tenant.id):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert "api_key_revoked" not in _event_types(tenant.id)


@pytest.mark.django_db
def test_every_field_is_written_as_given_and_the_chain_holds():
    from datetime import UTC, datetime
    from decimal import Decimal
    from uuid import uuid4

    from compliance.audit import audit_chain_verify

    tenant = make_tenant()
    user, account_id, at = make_user(tenant), uuid4(), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with tenant_context(tenant.id):
        audit.audit_record(
            tenant_id=tenant.id, event_type="all_fields", category="test", action="update", description="described",
            severity=audit.Severity.CRITICAL, user_id=user.pk, account_id=account_id, ip_address="2001:db8::1",
            metadata={"at": at, "id": account_id, "amount": Decimal("1.50"), "nested": {"n": [1, None]}},
        )  # fmt: skip
        audit.audit_record(tenant_id=tenant.id, event_type="bare", category="test", action="create")
        rows = list(AuditLog.objects.filter(tenant_id=tenant.id).order_by("chain_seq"))

    row, bare = rows
    assert (row.event_type, row.event_category, row.action, row.event_description, row.severity) == (
        "all_fields", "test", "update", "described", "critical"
    )  # fmt: skip
    assert (row.user_id, row.account_id, row.ip_address) == (user.pk, account_id, "2001:db8::1")
    assert row.metadata == {"at": "2026-01-02T03:04:05Z", "id": str(account_id), "amount": "1.50",
                            "nested": {"n": [1, None]}}  # fmt: skip
    assert (bare.metadata, bare.ip_address, bare.user_id, bare.event_description) == ({}, None, None, "")
    assert (row.chain_seq, bare.chain_seq) == (1, 2) and bare.prev_hash == row.row_hash != ""
    with tenant_context(tenant.id):
        assert audit_chain_verify(chain=tenant.id, using=SERVICE).ok


def test_a_refused_row_marks_the_callers_transaction_for_rollback_even_if_the_error_is_caught(committed):
    """As the ORM's save did: a caller that catches the error cannot commit what its audit row should record."""
    from django.db import DatabaseError, connections

    tenant, other = make_tenant(), make_tenant()
    with tenant_context(tenant.id):
        with pytest.raises(DatabaseError):  # row security: another tenant's row under this tenant's context
            audit.audit_record(tenant_id=other.id, event_type="refused", category="test", action="create")
        assert connections[SERVICE].needs_rollback  # the block rolls back on the way out instead of committing
