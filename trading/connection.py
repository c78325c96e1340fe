"""An EA connection's life: the claim of the account's one live session, connect (resync from the database),
disconnect; online status. The outbound bookkeeping (SENT marks, ACKs) is batched in `trading.outbound_batch`.

One live session per account, across processes (decision 0017): `ea_session_claim` bumps the account row's
`live_session_epoch` under its row lock; a session's frames count only while its epoch is the row's
(`ea_session_is_live`, taken FOR SHARE first in the transaction that applies them, so a claim waits for them and
they never follow it). Lock order: the account row before any other lock (the audit chain's, a ticket's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.db import connections, models, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import EASession, MT5Account
from binproto import RATE_LIMIT_RETRY_AFTER_S
from compliance.services import audit_record
from signals.delivery import signal_message, signals_for_resync
from suho.cache import cache_client, redis_unavailable
from suho.routers import OPERATOR, SERVICE
from suho.tenancy import tenant_context
from trading.outbound import command_message, commands_for_resync, config_update_message, risk_parameters_message

OFFLINE_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class SessionClaim:
    epoch: int  # the new session's: its frames count while the account row still holds it
    previous_session_id: UUID | None
    previous_node: str  # the process that held the previous session ("" if none): it is asked to close it


def ea_session_claim(*, tenant_id: UUID, account_id: UUID, session_id: UUID, node: str) -> SessionClaim:
    """Make `session_id` (served by process `node`) the account's one live session: bump the epoch, record the
    session and node, end the previous session in the database (so its tokens no longer refresh and the session
    watch closes it even if the takeover request is lost) and audit that. Locks the account row first."""
    with tenant_context(tenant_id):
        account = MT5Account.objects.select_for_update(no_key=True).only(
            "live_session_epoch", "live_session_id", "live_session_node"
        ).get(account_id=account_id)  # fmt: skip
        previous = SessionClaim(account.live_session_epoch, account.live_session_id, account.live_session_node)
        account.live_session_epoch += 1
        account.live_session_id, account.live_session_node = session_id, node[:100]
        account.save(update_fields=["live_session_epoch", "live_session_id", "live_session_node"])
        if previous.previous_session_id not in (None, session_id):
            EASession.objects.filter(session_id=previous.previous_session_id, ended_at__isnull=True).update(
                ended_at=timezone.now(), end_reason=EASession.END_REPLACED
            )
            audit_record(
                tenant_id=tenant_id, event_type="ea_session_replaced", category="connection", action="replace",
                description=f"EA session {previous.previous_session_id} replaced by {session_id}",
                account_id=account_id,
                metadata={"session_id": str(session_id), "previous_session_id": str(previous.previous_session_id),
                          "node": node, "previous_node": previous.previous_node, "epoch": account.live_session_epoch},
            )  # fmt: skip
    return SessionClaim(account.live_session_epoch, previous.previous_session_id, previous.previous_node)


def ea_session_is_live(*, account_id: UUID, epoch: int) -> bool:
    """Inside the caller's transaction (tenant context set): does the session of `epoch` still hold the account?
    Takes the account row FOR SHARE, so it must come before the transaction's other locks; a concurrent claim
    waits until the caller commits."""
    with connections[SERVICE].cursor() as cursor:
        cursor.execute(
            "SELECT live_session_epoch = %s FROM mt5_user_accounts WHERE account_id = %s FOR SHARE",
            [epoch, account_id],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@dataclass
class Resync:
    messages: list = field(default_factory=list)
    v1_symbol_overrides: dict[int, str] = field(default_factory=dict)


def ea_connected(*, tenant_id: UUID, account_id: UUID, session_id: UUID, ea_version: str = "") -> Resync:
    """Mark the account online, audit the connect, and return what the EA must have: config, risk parameters,
    still-valid signals, pending commands — the database is the source of truth."""
    now = timezone.now()
    with tenant_context(tenant_id):
        account = MT5Account.objects.select_for_update(no_key=True).get(account_id=account_id)
        account.connection_status, account.last_connected_at = "online", now
        account.last_heartbeat_at = account.last_heartbeat_at or now
        account.save(update_fields=["connection_status", "last_connected_at", "last_heartbeat_at"])
        audit_record(
            tenant_id=tenant_id, event_type="ea_connected", category="connection", action="connect",
            description=f"EA connected (session {session_id}, EA {ea_version or 'unknown'})", account_id=account_id,
            metadata={"session_id": str(session_id), "ea_version": ea_version},
        )  # fmt: skip
        messages = _outbound_pending(account)
        overrides = {int(k): str(v) for k, v in account.symbol_id_overrides.items() if str(k).isdigit()}
    return Resync(messages, overrides)


def _outbound_pending(account: MT5Account) -> list:
    messages = [risk_parameters_message(account), config_update_message(account)]
    messages += [signal_message(signal) for signal in signals_for_resync(account_id=account.account_id)]
    messages += [command_message(command) for command in commands_for_resync(account_id=account.account_id)]
    return messages


def outbound_pending(*, tenant_id: UUID, account_id: UUID) -> list:
    """What a connected EA must have from the database (after NATS reconnects: live messages may have been missed);
    the EA de-duplicates by id."""
    with tenant_context(tenant_id):
        return _outbound_pending(MT5Account.objects.get(account_id=account_id))


def ea_disconnected(
    *, tenant_id: UUID, account_id: UUID, session_id: UUID, close_code, epoch: int | None = None
) -> None:
    """Audit the disconnect; the account goes offline only if this was its live session (`epoch`): a replaced
    session closing after its successor connected leaves the account online."""
    with tenant_context(tenant_id):
        accounts = MT5Account.objects.filter(account_id=account_id)
        if epoch is not None:
            accounts = accounts.filter(live_session_epoch=epoch)
        accounts.update(connection_status="offline")
        audit_record(
            tenant_id=tenant_id, event_type="ea_disconnected", category="connection", action="disconnect",
            description=f"EA disconnected (code {close_code})", account_id=account_id,
            metadata={"session_id": str(session_id), "close_code": close_code},
        )  # fmt: skip


def ea_is_online(account: MT5Account) -> bool:
    """Online while heartbeats arrive: connected and heard from within the last two minutes."""
    return (
        account.connection_status == "online"
        and account.last_heartbeat_at is not None
        and timezone.now() - account.last_heartbeat_at < OFFLINE_AFTER
    )


def accounts_mark_silent_offline(*, now=None) -> int:
    """Every minute (Celery beat): an account whose EA has sent no heartbeat for two minutes is offline.

    Cross-tenant, so it runs through the operator path; each change is audited in its tenant's chain.
    """
    from suho.routers import operator_path

    now = now or timezone.now()
    with operator_path(), transaction.atomic(using=OPERATOR):
        silent = list(
            MT5Account.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(connection_status="online")
            .filter(models.Q(last_heartbeat_at__lt=now - OFFLINE_AFTER) | models.Q(last_heartbeat_at__isnull=True))
        )
        for account in silent:
            account.connection_status = "offline"
            account.save(update_fields=["connection_status"])
            audit_record(
                tenant_id=account.tenant_id, event_type="ea_offline", category="connection", action="timeout",
                description="No heartbeat for 2 minutes", severity="warning", account_id=account.account_id,
                metadata={"last_heartbeat_at": account.last_heartbeat_at},
            )  # fmt: skip
    return len(silent)


def ea_rate_limit_hold(*, account_id: UUID) -> None:
    """The account's EA was closed with 4008: its reconnects are refused for RATE_LIMIT_RETRY_AFTER_S (every
    process sees it). A Redis failure only loses the hold; it is a brake, not a record."""
    try:
        cache_client().set(rate_limit_hold_key(account_id), "1", ex=RATE_LIMIT_RETRY_AFTER_S)
    except RedisError as exc:
        redis_unavailable(exc)


def ea_rate_limit_hold_left_s(*, account_id) -> int:
    """Seconds the account's reconnects are still refused after a 4008 (0: none)."""
    try:
        return max(0, cache_client().ttl(rate_limit_hold_key(account_id)))
    except RedisError as exc:
        redis_unavailable(exc)
        return 0


def rate_limit_hold_key(account_id) -> str:
    return f"ea_rate_limited:{account_id}"
