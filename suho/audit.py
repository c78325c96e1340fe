"""The audit trail's entry point for every app; `compliance`, the top layer, writes the rows (decision 0025).

Everything audits, and `compliance` also reads every app (the risk monitor, reports, GDPR), so no app may import it
(docs/dependencies.md). Apps call `audit_record` here instead; it sends a Django signal that `compliance` connects
when it is ready (compliance/receivers.py), and the receiver appends the row synchronously, inside the caller's
transaction: the row commits or rolls back with the change it records. A call that nothing receives raises, so an
action is never taken without its audit row (e.g. in a process that did not load the compliance app).
"""

from __future__ import annotations

from uuid import UUID

from django.db import models
from django.dispatch import Signal


class Severity(models.TextChoices):
    """An audit row's severity (compliance.models.AuditLog.Severity is this class)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# fields=dict (audit_record's keywords but own_chain), own_chain=bool: the receiver writes one row
audit_requested = Signal()
# fields=dict, as above: the receiver returns the row's INSERT (SQL and parameters) for the caller to send
audit_statement_requested = Signal()

NO_RECEIVER = "nothing receives suho.audit.audit_requested: is the compliance app installed and ready?"


def audit_record(
    *,
    tenant_id: UUID | None,
    event_type: str,
    category: str,
    action: str,
    description: str = "",
    severity: str = Severity.INFO,
    user_id: UUID | None = None,
    account_id: UUID | None = None,
    metadata: dict | None = None,
    ip_address: str | None = None,
    own_chain: bool = False,
) -> None:
    """Append one audit row; the database chains its hash.

    By default in the caller's transaction and tenant context: rows of a tenant must be written under that tenant's
    context (RLS WITH CHECK), platform rows (tenant_id None) only through the operator path. `own_chain=True` opens
    the row's chain itself (the tenant's context, or the operator path in a transaction of its own), for rows
    written outside any request's context, e.g. after a commit.
    """
    fields = dict(
        tenant_id=tenant_id, event_type=event_type, category=category, action=action, description=description,
        severity=severity, user_id=user_id, account_id=account_id, metadata=metadata, ip_address=ip_address,
    )  # fmt: skip
    responses = audit_requested.send(sender=None, fields=fields, own_chain=own_chain)  # errors propagate
    if not responses:
        raise RuntimeError(NO_RECEIVER)


def audit_statement(
    *, tenant_id: UUID | None, event_type: str, category: str, action: str, description: str = "",
    severity: str = Severity.INFO, user_id: UUID | None = None, account_id: UUID | None = None,
    metadata: dict | None = None, ip_address: str | None = None,
) -> tuple[str, list]:  # fmt: skip
    """`audit_record`'s row as a statement (SQL, parameters) that the caller sends with its own in one round trip
    (`suho.sql.statements_in_context`), in its transaction and tenant context: the row commits with the change."""
    fields = dict(
        tenant_id=tenant_id, event_type=event_type, category=category, action=action, description=description,
        severity=severity, user_id=user_id, account_id=account_id, metadata=metadata, ip_address=ip_address,
    )  # fmt: skip
    responses = audit_statement_requested.send(sender=None, fields=fields)
    if not responses:
        raise RuntimeError(NO_RECEIVER)
    return responses[0][1]
