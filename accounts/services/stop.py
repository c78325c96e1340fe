"""Stop trading: the trader's emergency stop, the operators' actions (admin), a whole tenant's stop."""

from __future__ import annotations

from django.db import transaction

from accounts.models import MT5Account, User
from accounts.services._common import _tenant_transaction
from compliance.models import AuditLog
from compliance.services import audit_record
from suho.routers import OPERATOR, operator_path


def account_emergency_stop(*, account: MT5Account, by: User) -> MT5Account:
    """Stop trading now: `emergency_stop` on (risk parameters pushed with trading off) and a DISABLE_TRADING
    command, delivered on reconnect if the EA is offline. Both audited by the services they go through."""
    from compliance.services import account_risk_parameters_update
    from trading.outbound import command_issue

    with _tenant_transaction(account.tenant_id):
        account = account_risk_parameters_update(account=account, changes={"emergency_stop": True}, actor=by)
        command_issue(
            tenant_id=account.tenant_id, account_id=account.account_id, kind="disable_trading",
            issued_by=f"user:{by.username}", reason="emergency stop",
        )  # fmt: skip
    return account


def account_trading_disable(*, account: MT5Account, by: User) -> MT5Account:
    """Trading off (risk parameters pushed) and DISABLE_TRADING sent to the EA."""
    from compliance.services import account_risk_parameters_update
    from trading.outbound import command_issue

    with _tenant_transaction(account.tenant_id):
        account = account_risk_parameters_update(account=account, changes={"trading_enabled": False}, actor=by)
        command_issue(
            tenant_id=account.tenant_id, account_id=account.account_id, kind="disable_trading",
            issued_by=f"operator:{by.username}", reason="disabled by an operator",
        )  # fmt: skip
    return account


def account_positions_close_all(*, account: MT5Account, by: User):
    """CLOSE_ALL_POSITIONS to the EA (delivered on reconnect if offline); the command row is the audit's subject."""
    from trading.outbound import command_issue

    return command_issue(
        tenant_id=account.tenant_id, account_id=account.account_id, kind="close_all",
        issued_by=f"operator:{by.username}", reason="closed by an operator",
    )  # fmt: skip


def tenant_emergency_stop(*, tenant, by: User) -> int:
    """Stop a whole tenant: `trading_enabled` off on the tenant (audited) and an emergency stop on each of its
    active accounts. Returns the accounts stopped."""
    from accounts.models import Tenant

    with operator_path(), transaction.atomic(using=OPERATOR):
        Tenant.objects.filter(pk=tenant.pk).update(trading_enabled=False)
        accounts = list(MT5Account.objects.filter(tenant_id=tenant.pk, is_active=True))
        with _tenant_transaction(tenant.pk):
            audit_record(
                tenant_id=tenant.pk, event_type="tenant_emergency_stop", category="config", action="update",
                description=f"Emergency stop for tenant {tenant} by {by.username}", user_id=by.pk,
                severity=AuditLog.Severity.WARNING, metadata={"accounts": [str(a.account_id) for a in accounts]},
            )  # fmt: skip
        for account in accounts:
            account_emergency_stop(account=account, by=by)
    return len(accounts)
