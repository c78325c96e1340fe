"""Writes for compliance: the audit trail every money- or security-relevant action goes through."""

from __future__ import annotations

import json
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from compliance.models import AuditLog


def audit_record(
    *,
    tenant_id: UUID | None,
    event_type: str,
    category: str,
    action: str,
    description: str = "",
    severity: str = AuditLog.Severity.INFO,
    user_id: UUID | None = None,
    account_id: UUID | None = None,
    metadata: dict | None = None,
    ip_address: str | None = None,
) -> AuditLog:
    """Append one audit row; the database chains its hash. Call it inside the caller's transaction.

    Rows of a tenant must be written under that tenant's context (RLS WITH CHECK); platform rows
    (tenant_id None) only through the operator path.
    """
    return AuditLog.objects.create(
        time=timezone.now(),
        tenant_id=tenant_id,
        user_id=user_id,
        account_id=account_id,
        event_type=event_type,
        event_category=category,
        action=action,
        event_description=description,
        severity=severity,
        metadata=json.loads(json.dumps(metadata or {}, cls=DjangoJSONEncoder)),  # datetimes, UUIDs, Decimals
        ip_address=ip_address,
    )
