"""Writes for compliance: the audit trail every money- or security-relevant action goes through."""

from __future__ import annotations

import json
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from compliance.models import AuditLog
from suho.tenancy import tenant_context


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


# --- Risk parameters ----------------------------------------------------------------------------------------------

RISK_PARAMETER_FIELDS = frozenset({
    "trading_enabled", "emergency_stop", "max_position_size", "max_daily_loss", "max_drawdown_percent",
    "min_margin_level", "allowed_symbols", "trading_hours_start_utc", "trading_hours_end_utc", "sizing_method",
    "risk_percent",
})  # fmt: skip
RISK_PARAMETER_UNKNOWN = "not a risk parameter: {names}"


def account_risk_parameters_update(*, account, changes: dict, actor) -> object:
    """Change an MT5 account's risk parameters: lock the row, bump `config_version`, audit old → new, and push the
    new parameters to the EA after commit. `actor` is a User or a system name ("risk_monitor").

    Raises ValueError (RISK_PARAMETER_UNKNOWN) for a field that is not a risk parameter, and ValueError (one of
    accounts.models' ALLOWED_SYMBOL* messages) for allowed symbols the EA protocol cannot carry, before changing
    anything.
    A change to the values already set is a no-op: no version bump, no audit row, nothing published.
    """
    from accounts.models import MT5Account, allowed_symbols_problem
    from trading.outbound import account_config_publish_on_commit

    unknown = sorted(set(changes) - RISK_PARAMETER_FIELDS)
    if unknown:
        raise ValueError(RISK_PARAMETER_UNKNOWN.format(names=", ".join(unknown)))
    problem = allowed_symbols_problem(changes["allowed_symbols"]) if "allowed_symbols" in changes else None
    if problem:
        raise ValueError(problem)
    user_id = getattr(actor, "pk", None)
    actor_name = getattr(actor, "username", None) or str(actor)
    with tenant_context(account.tenant_id):
        locked = MT5Account.objects.select_for_update(no_key=True).get(account_id=account.account_id)
        diff = {
            name: {"old": getattr(locked, name), "new": value}
            for name, value in changes.items()
            if getattr(locked, name) != value
        }
        if not diff:
            return locked
        for name, change in diff.items():
            setattr(locked, name, change["new"])
        locked.config_version += 1
        locked.save(update_fields=[*diff, "config_version"])
        audit_record(
            tenant_id=locked.tenant_id, event_type="risk_parameters_changed", category="config", action="update",
            description=f"Risk parameters of {locked} changed by {actor_name}: {', '.join(sorted(diff))}",
            user_id=user_id, account_id=locked.account_id,
            severity=AuditLog.Severity.WARNING if "trading_enabled" in diff or "emergency_stop" in diff else "info",
            metadata={"changes": diff, "actor": actor_name, "config_version": locked.config_version},
        )  # fmt: skip
        account_config_publish_on_commit(locked)
    return locked
