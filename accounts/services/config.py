"""EA settings the trader changes in the portal, pushed to the EA after commit."""

from __future__ import annotations

from accounts.models import MT5Account, User
from accounts.services._common import _tenant_transaction
from compliance.services import audit_record

EA_SETTING_FIELDS = frozenset({
    "sl_multiplier", "tp_multiplier", "slippage_tolerance_pips", "max_spread_points", "magic_number",
    "comment_prefix", "strategy_parameters",
})  # fmt: skip
EA_SETTING_UNKNOWN = "not an EA setting: {names}"


def account_ea_settings_update(*, account: MT5Account, changes: dict, by: User) -> MT5Account:
    """Change the EA settings (seed §2.2 item 3): lock the row, bump `config_version`, audit old → new, push the
    configuration to the EA after commit. No change, no bump. ValueError (EA_SETTING_UNKNOWN) before any write."""
    from trading.outbound import account_config_publish_on_commit

    unknown = sorted(set(changes) - EA_SETTING_FIELDS)
    if unknown:
        raise ValueError(EA_SETTING_UNKNOWN.format(names=", ".join(unknown)))
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
            tenant_id=locked.tenant_id, event_type="ea_settings_changed", category="config", action="update",
            description=f"EA settings of {locked} changed: {', '.join(sorted(diff))}", user_id=by.pk,
            account_id=locked.account_id, metadata={"changes": diff, "config_version": locked.config_version},
        )  # fmt: skip
        account_config_publish_on_commit(locked)
    return locked
