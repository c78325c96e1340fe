"""An account's configuration: the EA settings the trader changes, the risk parameters (trader, operators, the risk
monitor). One write for both: lock the row, bump `config_version`, audit old → new, push to the EA after commit."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.events import account_config_announce
from accounts.models import MT5Account, User, allowed_symbols_problem
from accounts.services._common import _tenant_transaction
from suho.audit import Severity as AuditSeverity
from suho.audit import audit_record

EA_SETTING_FIELDS = frozenset({
    "sl_multiplier", "tp_multiplier", "slippage_tolerance_pips", "max_spread_points", "magic_number",
    "comment_prefix", "strategy_parameters",
})  # fmt: skip
EA_SETTING_UNKNOWN = "not an EA setting: {names}"
RISK_PARAMETER_FIELDS = frozenset({
    "trading_enabled", "emergency_stop", "max_position_size", "max_daily_loss", "max_drawdown_percent",
    "min_margin_level", "allowed_symbols", "trading_hours_start_utc", "trading_hours_end_utc", "sizing_method",
    "risk_percent",
})  # fmt: skip
RISK_PARAMETER_UNKNOWN = "not a risk parameter: {names}"
TRADING_FLAGS = frozenset({"trading_enabled", "emergency_stop"})  # a change to these is audited as a warning


@dataclass(frozen=True)
class ConfigSection:
    fields: frozenset[str]
    unknown: str  # the ValueError for a field outside `fields`
    event_type: str
    label: str


CONFIG_SECTIONS = {
    "ea_settings": ConfigSection(EA_SETTING_FIELDS, EA_SETTING_UNKNOWN, "ea_settings_changed", "EA settings"),
    "risk_parameters": ConfigSection(
        RISK_PARAMETER_FIELDS, RISK_PARAMETER_UNKNOWN, "risk_parameters_changed", "Risk parameters"
    ),
}


def account_config_update(*, account: MT5Account, section: str, changes: dict, actor) -> MT5Account:
    """Change one section of an account's configuration (a CONFIG_SECTIONS key): lock the row, bump
    `config_version`, audit old → new, and push the configuration to the EA after commit (accounts.events).
    `actor` is a User or a system name ("risk_monitor").

    Raises ValueError (the section's `unknown` message) for a field outside the section, and ValueError (one of
    accounts.models' ALLOWED_SYMBOL* messages) for allowed symbols the EA protocol cannot carry, before any write.
    A change to the values already set is a no-op: no version bump, no audit row, nothing published.
    """
    spec = CONFIG_SECTIONS[section]
    unknown = sorted(set(changes) - spec.fields)
    if unknown:
        raise ValueError(spec.unknown.format(names=", ".join(unknown)))
    problem = allowed_symbols_problem(changes["allowed_symbols"]) if "allowed_symbols" in changes else None
    if problem:
        raise ValueError(problem)
    actor_name = getattr(actor, "username", None) or str(actor)
    with _tenant_transaction(account.tenant_id):
        locked = MT5Account.objects.select_for_update(no_key=True).get(account_id=account.account_id)
        diff = {k: {"old": getattr(locked, k), "new": v} for k, v in changes.items() if getattr(locked, k) != v}
        if not diff:
            return locked
        for name, change in diff.items():
            setattr(locked, name, change["new"])
        locked.config_version += 1
        locked.save(update_fields=[*diff, "config_version"])
        audit_record(
            tenant_id=locked.tenant_id, event_type=spec.event_type, category="config", action="update",
            description=f"{spec.label} of {locked} changed by {actor_name}: {', '.join(sorted(diff))}",
            user_id=getattr(actor, "pk", None), account_id=locked.account_id,
            severity=AuditSeverity.WARNING if TRADING_FLAGS & set(diff) else AuditSeverity.INFO,
            metadata={"changes": diff, "actor": actor_name, "config_version": locked.config_version},
        )  # fmt: skip
        account_config_announce(account=locked)
    return locked


def account_ea_settings_update(*, account: MT5Account, changes: dict, by: User) -> MT5Account:
    """The trader's EA settings (seed §2.2 item 3), through `account_config_update`."""
    return account_config_update(account=account, section="ea_settings", changes=changes, actor=by)


def account_risk_parameters_update(*, account: MT5Account, changes: dict, actor) -> MT5Account:
    """Risk parameters (the portal, operators, the risk monitor), through `account_config_update`."""
    return account_config_update(account=account, section="risk_parameters", changes=changes, actor=actor)
