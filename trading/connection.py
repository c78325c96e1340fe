"""An EA connection's life: connect (resync from the database), disconnect; online status. The outbound
bookkeeping (SENT marks, ACKs) is batched in `trading.outbound_batch`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.db import models, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import MT5Account
from binproto import RATE_LIMIT_RETRY_AFTER_S
from compliance.services import audit_record
from signals.delivery import signal_message, signals_for_resync
from suho.cache import cache_client
from suho.routers import OPERATOR
from suho.tenancy import tenant_context
from trading.outbound import command_message, commands_for_resync, config_update_message, risk_parameters_message

log = logging.getLogger(__name__)

OFFLINE_AFTER = timedelta(minutes=2)


@dataclass
class Resync:
    messages: list = field(default_factory=list)
    v1_symbol_overrides: dict[int, str] = field(default_factory=dict)


def ea_connected(*, tenant_id: UUID, account_id: UUID, session_id: UUID, ea_version: str = "") -> Resync:
    """Mark the account online, audit the connect, and return what the EA must have: config, risk parameters,
    still-valid signals, pending commands — the database is the source of truth."""
    now = timezone.now()
    with tenant_context(tenant_id):
        account = MT5Account.objects.select_for_update().get(account_id=account_id)
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


def ea_disconnected(*, tenant_id: UUID, account_id: UUID, session_id: UUID, close_code) -> None:
    with tenant_context(tenant_id):
        MT5Account.objects.filter(account_id=account_id).update(connection_status="offline")
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
            MT5Account.objects.select_for_update(skip_locked=True)
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
    except RedisError:
        log.warning("rate-limit hold not recorded (Redis)", extra={"account_id": account_id})


def ea_rate_limit_hold_left_s(*, account_id) -> int:
    """Seconds the account's reconnects are still refused after a 4008 (0: none)."""
    try:
        return max(0, cache_client().ttl(rate_limit_hold_key(account_id)))
    except RedisError:
        return 0


def rate_limit_hold_key(account_id) -> str:
    return f"ea_rate_limited:{account_id}"
