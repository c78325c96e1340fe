"""Writes for compliance: the audit trail every money- or security-relevant action goes through."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from compliance.models import AuditLog


def audit_row_append(*, fields: dict) -> AuditLog:
    """Append one audit row of `suho.audit.audit_record`'s fields, in the current transaction and tenant context
    (compliance.receivers chooses them). Everyone, compliance included, audits through suho.audit."""
    return AuditLog.objects.create(
        time=timezone.now(),
        tenant_id=fields["tenant_id"],
        user_id=fields["user_id"],
        account_id=fields["account_id"],
        event_type=fields["event_type"],
        event_category=fields["category"],
        action=fields["action"],
        event_description=fields["description"],
        severity=fields["severity"],
        metadata=json.loads(json.dumps(fields["metadata"] or {}, cls=DjangoJSONEncoder)),  # datetimes, UUIDs, Decimals
        ip_address=fields["ip_address"],
    )
