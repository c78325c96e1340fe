"""Audit rows for events announced by Django (portal/admin log-in, log-out and failed log-in, admin changes) and by
the apps below compliance, which write their audit rows through `suho.audit` (decision 0025).

A row of a user with a tenant goes into that tenant's chain; a staff user without a tenant, or a failed log-in
for an unknown name, into the platform chain (tenant NULL), which only the operator path may write. Metadata
carries ids, never the submitted user name or password (an unknown name is kept only as a truncated SHA-256).
"""

from __future__ import annotations

import hashlib
import ipaddress

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from compliance.models import AuditLog
from compliance.services import audit_row_append, audit_row_statement
from suho.audit import audit_record, audit_requested, audit_statement_requested
from suho.routers import OPERATOR, operator_path
from suho.tenancy import tenant_context

ADMIN_ACTIONS = {1: "create", 2: "update", 3: "delete"}


def _ip(request) -> str | None:
    value = (getattr(request, "META", None) or {}).get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


@receiver(audit_requested, dispatch_uid="compliance_audit_requested")
def audit_requested_write(sender, *, fields: dict, own_chain: bool, **kwargs) -> None:
    """`suho.audit.audit_record`'s row: in the caller's transaction and context, or in its own chain, the tenant's
    (its context) or the platform's (operator path)."""
    if not own_chain:
        audit_row_append(fields=fields)
    elif fields["tenant_id"] is None:
        with operator_path(), transaction.atomic(using=OPERATOR):
            audit_row_append(fields=fields)
    else:
        with tenant_context(fields["tenant_id"]):
            audit_row_append(fields=fields)


@receiver(audit_statement_requested, dispatch_uid="compliance_audit_statement")
def audit_statement_build(sender, *, fields: dict, **kwargs) -> tuple[str, list]:
    """`suho.audit.audit_statement`'s row, as the statement its caller sends in its own transaction and context."""
    return audit_row_statement(fields=fields)


@receiver(user_logged_in, dispatch_uid="compliance_audit_login")
def audit_login(sender, request, user, **kwargs):
    audit_record(
        own_chain=True,
        tenant_id=user.tenant_id, event_type="user_logged_in", category="auth", action="login",
        description="User logged in", user_id=user.pk, ip_address=_ip(request),
        metadata={"staff": user.is_staff},
    )  # fmt: skip


@receiver(user_logged_out, dispatch_uid="compliance_audit_logout")
def audit_logout(sender, request, user, **kwargs):
    if user is None:  # the session had no authenticated user
        return
    audit_record(
        own_chain=True,
        tenant_id=user.tenant_id, event_type="user_logged_out", category="auth", action="logout",
        description="User logged out", user_id=user.pk, ip_address=_ip(request),
    )  # fmt: skip


@receiver(user_login_failed, dispatch_uid="compliance_audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    User = get_user_model()
    name = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    user = User.objects.filter(**{User.USERNAME_FIELD: name}).only("id", "tenant_id").first() if name else None
    metadata = {"known_user": user is not None}
    if user is None and name:
        metadata["username_sha256"] = hashlib.sha256(name.encode()).hexdigest()[:16]
    audit_record(
        own_chain=True,
        tenant_id=user.tenant_id if user else None, event_type="user_login_failed", category="auth", action="refuse",
        description="Log-in failed", severity=AuditLog.Severity.WARNING, user_id=user.pk if user else None,
        ip_address=_ip(request), metadata=metadata,
    )  # fmt: skip


@receiver(post_save, sender=LogEntry, dispatch_uid="compliance_audit_admin_action")
def audit_admin_action(sender, instance: LogEntry, created: bool, **kwargs):
    """Every change made through the Django admin (operators), in the changed row's tenant chain when it has one."""
    if not created:
        return
    try:
        tenant_id = getattr(instance.get_edited_object(), "tenant_id", None)
    except Exception:  # deleted rows no longer exist  # noqa: BLE001
        tenant_id = None
    model = f"{instance.content_type.app_label}.{instance.content_type.model}" if instance.content_type else ""
    action = ADMIN_ACTIONS.get(instance.action_flag, "change")
    with operator_path(), transaction.atomic(using=OPERATOR):
        audit_record(
            tenant_id=tenant_id, event_type=f"admin_{action}", category="admin", action=action,
            description=f"Admin {action} of {model} {instance.object_id}", user_id=instance.user_id,
            metadata={"model": model, "object_id": instance.object_id, "change": instance.get_change_message()},
        )  # fmt: skip
