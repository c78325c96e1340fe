"""What the server sends an EA besides signals: risk parameters, settings and commands (seed §2.2 items 2–4).

Each is written to the database first (the source of truth), then published after commit on
`mt5.config.{account_id}.{risk_params|settings}` / `mt5.command.{account_id}.{kind}`; the gateway resyncs an EA
that was offline from the database. The wire messages are built from the rows in signals.messages, with the signal's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

import binproto
from accounts.models import MT5Account
from signals.messages import COMMAND_TYPES, command_message, config_update_message, risk_parameters_message
from suho.audit import audit_record
from suho.outbox import outbox_publish_on_commit
from suho.tenancy import tenant_context
from trading.models import EACommand

COMMAND_TTL = timedelta(hours=1)


def account_config_publish_on_commit(account: MT5Account) -> None:
    """Push both halves of the account's configuration to its EA once the change commits."""
    for kind, message in (("risk_params", risk_parameters_message(account)),
                          ("settings", config_update_message(account))):  # fmt: skip
        outbox_publish_on_commit(
            tenant_id=account.tenant_id,
            subject=f"mt5.config.{account.account_id}.{kind}",
            payload=binproto.to_json(message).encode(),
            msg_id=f"config:{account.account_id}:{kind}:{account.config_version}",
        )


def command_issue(
    *, tenant_id: UUID, account_id: UUID, kind: str, issued_by: str, reason: str = "",
    ticket: int | None = None, stop_loss=None, take_profit=None, ttl: timedelta = COMMAND_TTL,
) -> EACommand:  # fmt: skip
    """Record a command for an EA, audit it, and publish it after commit (delivered on reconnect if offline)."""
    if kind not in COMMAND_TYPES:
        raise ValueError(f"unknown command {kind!r}")
    with tenant_context(tenant_id):
        command = EACommand.objects.create(
            tenant_id=tenant_id, account_id=account_id, kind=kind, ticket=ticket, stop_loss=stop_loss,
            take_profit=take_profit, reason=reason, issued_by=issued_by, valid_until=timezone.now() + ttl,
        )  # fmt: skip
        audit_record(
            tenant_id=tenant_id, event_type=f"command_{kind}", category="command", action="issue",
            description=f"{kind} issued by {issued_by}: {reason}", account_id=account_id,
            metadata={"command_id": str(command.command_id), "ticket": ticket},
        )  # fmt: skip
        outbox_publish_on_commit(
            tenant_id=tenant_id,
            subject=f"mt5.command.{account_id}.{kind}",
            payload=binproto.to_json(command_message(command)).encode(),
            msg_id=f"command:{command.command_id}",
        )
    return command


def commands_for_resync(*, account_id: UUID, now: datetime | None = None) -> QuerySet[EACommand]:
    """Commands the EA has not done yet and may still do, oldest first (evaluated under the tenant context)."""
    return EACommand.objects.filter(
        account_id=account_id,
        status__in=[EACommand.Status.PENDING, EACommand.Status.SENT],
        valid_until__gt=now or timezone.now(),
    ).order_by("created_at")


def command_ack_outcome(status: binproto.AckStatus) -> str:
    return {
        binproto.AckStatus.RECEIVED: EACommand.Status.SENT,
        binproto.AckStatus.EXECUTED: EACommand.Status.EXECUTED,
    }.get(status, EACommand.Status.FAILED)


def commands_ack_statement(*, tenant_id: UUID, acks: list[tuple[UUID, binproto.AckStatus, str, datetime]]) -> tuple:
    """The EA's ACKs for commands, one (command_id, status, reason, acked_at) per command: RECEIVED → sent,
    EXECUTED → executed, anything else → failed; an executed command stays executed (a late or repeated ACK
    changes nothing). The UPDATE (SQL, parameters), for the outbound batch, which sends it with its other
    statements in one round trip under the tenant's setting."""
    return (
        """
        UPDATE mt5_ea_commands c SET status = v.status, acked_at = v.acked_at, reason = v.reason
          FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[])
               AS v(command_id, status, reason, acked_at)
         WHERE c.command_id = v.command_id AND c.tenant_id = %s AND c.status <> %s
        """,
        [
            [command_id for command_id, *_ in acks],
            [str(command_ack_outcome(status)) for _id, status, _r, _at in acks],
            [reason[:300] for _id, _s, reason, _at in acks],
            [acked_at for *_, acked_at in acks],
            tenant_id,
            EACommand.Status.EXECUTED.value,
        ],
    )


# --- What accounts announce (accounts.events; connected in trading/apps.py) --------------------------------------


def account_config_changed_receive(sender, *, account: MT5Account, **kwargs) -> None:
    account_config_publish_on_commit(account)


def account_command_requested_receive(
    sender, *, tenant_id: UUID, account_id: UUID, kind: str, issued_by: str, reason: str, **kwargs
) -> EACommand:  # fmt: skip
    return command_issue(tenant_id=tenant_id, account_id=account_id, kind=kind, issued_by=issued_by, reason=reason)
