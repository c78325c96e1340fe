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
from suho.routers import operator_path
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
