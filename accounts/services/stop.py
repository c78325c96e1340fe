"""Stop trading, one service for the trader's emergency stop, the operators' actions (admin) and the risk monitor;
a whole tenant's stop; trading back on after a stop; an operator's close-all.

The flag goes to the EA as risk parameters and the command as a command row (trading records and publishes both
after commit, accounts.events): the EA obeys either, and an offline EA gets both on reconnect.
"""

from __future__ import annotations

from django.db import transaction

from accounts.events import account_command_request
from accounts.models import MT5Account, Tenant, User
from accounts.services._common import _tenant_transaction
from accounts.services.config import account_risk_parameters_update
from suho.audit import Severity as AuditSeverity
from suho.audit import audit_record
from suho.routers import OPERATOR, operator_path

ISSUED_BY_MAX_LENGTH = 100  # EACommand.issued_by


def account_trading_stop(
    *, account: MT5Account, actor, reason: str, emergency: bool = False, close_positions: bool = False
) -> MT5Account:
    """Stop an account's trading: CLOSE_ALL_POSITIONS first if `close_positions`, then the flag off
    (`emergency_stop` on for an emergency, else `trading_enabled` off) and DISABLE_TRADING. One transaction (the
    caller's, if any), each step audited; nothing reaches the EA unless it commits. `actor` is a User or a system
    name ("risk_monitor"). Returns the account as saved."""
    with _tenant_transaction(account.tenant_id):
        if close_positions:
            _command(account=account, kind="close_all", actor=actor, reason=reason)
        changes = {"emergency_stop": True} if emergency else {"trading_enabled": False}
        account = account_risk_parameters_update(account=account, changes=changes, actor=actor)
        _command(account=account, kind="disable_trading", actor=actor, reason=reason)
    return account


def account_trading_start(*, account: MT5Account, actor, reason: str) -> MT5Account:
    """Trading back on after a stop: `trading_enabled` on (an emergency stop stays on: the trader lifts it) and
    ENABLE_TRADING, since the EA also obeys the DISABLE_TRADING it received."""
    with _tenant_transaction(account.tenant_id):
        account = account_risk_parameters_update(account=account, changes={"trading_enabled": True}, actor=actor)
        _command(account=account, kind="enable_trading", actor=actor, reason=reason)
    return account


def account_emergency_stop(*, account: MT5Account, by: User) -> MT5Account:
    """The trader's (or an operator's) emergency stop: `account_trading_stop` with `emergency_stop` on."""
    return account_trading_stop(account=account, actor=by, reason="emergency stop", emergency=True)


def account_trading_disable(*, account: MT5Account, by: User) -> MT5Account:
    """An operator turns trading off: `account_trading_stop`."""
    return account_trading_stop(account=account, actor=by, reason="disabled by an operator")


def account_positions_close_all(*, account: MT5Account, by: User):
    """CLOSE_ALL_POSITIONS to the EA (delivered on reconnect if offline); the command row is the audit's subject."""
    return _command(account=account, kind="close_all", actor=by, reason="closed by an operator")


def tenant_emergency_stop(*, tenant, by: User) -> int:
    """Stop a whole tenant: `trading_enabled` off on the tenant (audited) and an emergency stop on each of its
    active accounts. Returns the accounts stopped."""
    with operator_path(), transaction.atomic(using=OPERATOR):
        Tenant.objects.filter(pk=tenant.pk).update(trading_enabled=False)
        accounts = list(MT5Account.objects.filter(tenant_id=tenant.pk, is_active=True))
        with _tenant_transaction(tenant.pk):
            audit_record(
                tenant_id=tenant.pk, event_type="tenant_emergency_stop", category="config", action="update",
                description=f"Emergency stop for tenant {tenant} by {by.username}", user_id=by.pk,
                severity=AuditSeverity.WARNING, metadata={"accounts": [str(a.account_id) for a in accounts]},
            )  # fmt: skip
        for account in accounts:
            account_emergency_stop(account=account, by=by)
    return len(accounts)


def _command(*, account: MT5Account, kind: str, actor, reason: str):
    return account_command_request(
        tenant_id=account.tenant_id, account_id=account.account_id, kind=kind,
        issued_by=_issued_by(actor), reason=reason[:300],
    )  # fmt: skip


def _issued_by(actor) -> str:
    """`operator:<name>` for staff, `user:<name>` for a trader, a system actor's own name ("risk_monitor")."""
    if isinstance(actor, User):
        return f"{'operator' if actor.is_staff else 'user'}:{actor.username}"[:ISSUED_BY_MAX_LENGTH]
    return str(actor)[:ISSUED_BY_MAX_LENGTH]
