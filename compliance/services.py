"""Writes for compliance: the audit trail every money- or security-relevant action goes through."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.utils import timezone

from compliance.models import AuditLog

# Written out (no ORM): every audited action appends one, a signal POST among them (the ORM's create was ~7 % of
# its CPU, issue 21). The trigger suho_audit_chain fills chain_seq, prev_hash and row_hash.
AUDIT_ROW_INSERT = f"""
INSERT INTO {AuditLog._meta.db_table} (time, tenant_id, user_id, account_id, event_type, event_category, action,
                                       event_description, severity, metadata, ip_address, prev_hash, row_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::inet, '', '')
"""


def audit_row_append(*, fields: dict) -> None:
    """Append one audit row of `suho.audit.audit_record`'s fields, in the current transaction and tenant context
    (compliance.receivers chooses them), through the role the router picks for AuditLog (the operator's inside
    `operator_path()`). Everyone, compliance included, audits through suho.audit."""
    alias = router.db_for_write(AuditLog)
    # as the ORM's save: a failed insert marks the caller's transaction for rollback, even if the caller catches it
    with transaction.mark_for_rollback_on_error(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(*audit_row_statement(fields=fields))


def audit_row_statement(*, fields: dict) -> tuple[str, list]:
    """The INSERT that `audit_row_append` runs, for a caller that sends it with its own statements in one round
    trip (`suho.audit.audit_statement`)."""
    params = [
        timezone.now(), fields["tenant_id"], fields["user_id"], fields["account_id"], fields["event_type"],
        fields["category"], fields["action"], fields["description"] or "", fields["severity"],
        json.dumps(fields["metadata"] or {}, cls=DjangoJSONEncoder),  # datetimes, UUIDs, Decimals
        fields["ip_address"] or None,
    ]  # fmt: skip
    return AUDIT_ROW_INSERT, params
