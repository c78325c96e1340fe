"""What accounts tell the EA gateway: an account's configuration changed, a command for its EA.

`accounts` sits below `trading` (docs/dependencies.md), so its services never import the gateway's outbound code.
They send these Django signals inside the transaction that made the change; `trading` connects its receivers when
the app is ready (trading/apps.py) and records the command and publishes through the outbox, after that
transaction commits. A signal with no receiver raises: a stop command must never vanish without a trace.
"""

from __future__ import annotations

from uuid import UUID

from django.dispatch import Signal

# account=MT5Account, the row as just saved (its new config_version)
account_config_changed = Signal()
# tenant_id, account_id, kind (an EACommand kind), issued_by, reason; the receiver returns the command row
account_command_requested = Signal()

NO_RECEIVER = "nothing receives accounts.events.{name}: is the trading app installed and ready?"


def account_config_announce(*, account) -> None:
    """Have the account's new configuration pushed to its EA after the caller's transaction commits."""
    _send(account_config_changed, "account_config_changed", account=account)


def account_command_request(*, tenant_id: UUID, account_id: UUID, kind: str, issued_by: str, reason: str):
    """Have a command recorded (audited) for the account's EA and published after commit; returns the command row."""
    return _send(
        account_command_requested, "account_command_requested",
        tenant_id=tenant_id, account_id=account_id, kind=kind, issued_by=issued_by, reason=reason,
    )  # fmt: skip


def _send(signal: Signal, name: str, **kwargs):
    responses = signal.send(sender=None, **kwargs)  # `send`, not `send_robust`: a failure rolls the change back
    if not responses:
        raise RuntimeError(NO_RECEIVER.format(name=name))
    return responses[0][1]
