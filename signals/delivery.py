"""Signals on their way to the EA: publication after commit (the wire message is signals.messages'), resync, SENT
marking and acks."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet
from django.utils import timezone

import binproto
from signals import lifecycle
from signals.messages import signal_message
from signals.models import TradingSignal
from suho.models import OutboxMessage
from suho.outbox import outbox_publish_on_commit, outbox_statement
from suho.tenancy import tenant_context


def signal_publish_on_commit(signal: TradingSignal) -> None:
    """After the creating transaction commits: `mt5.signal.{account_id}.{signal_id}`, JSON form of the wire message."""
    outbox_publish_on_commit(**_outbox_message(signal))


def signal_publish_statement(signal: TradingSignal) -> tuple[OutboxMessage, tuple]:
    """`signal_publish_on_commit` as a statement the caller sends with its own (`suho.outbox.outbox_statement`)."""
    return outbox_statement(**_outbox_message(signal))


def _outbox_message(signal: TradingSignal) -> dict:
    return {
        "tenant_id": signal.tenant_id,
        "subject": f"mt5.signal.{signal.account_id}.{signal.signal_id}",
        "payload": binproto.to_json(signal_message(signal)).encode(),
        "msg_id": f"signal:{signal.signal_id}",
    }


def signals_for_resync(*, account_id: UUID, now: datetime | None = None) -> QuerySet[TradingSignal]:
    """Still-valid signals the EA has not acknowledged, oldest first (evaluated under the tenant context)."""
    return TradingSignal.objects.filter(
        account_id=account_id,
        status__in=[lifecycle.PENDING, lifecycle.SENT],
        acked_at__isnull=True,
        is_valid=True,
        valid_until__gt=now or timezone.now(),
    ).order_by("time")


def signals_mark_sent_statement(*, tenant_id: UUID, signal_ids: list[UUID], sent_at: list[datetime]) -> tuple:
    """PENDING → SENT for signals just written to a socket, each with its own time; one conditional update claims
    them, so a signal that expired or moved on meanwhile is left as it is. The UPDATE (SQL, parameters), for the
    outbound batch, which sends it with its other statements in one round trip under the tenant's setting."""
    return (
        """
        UPDATE mt5_trading_signals s SET status = %s, sent_to_ea_at = v.sent_at, updated_at = now()
          FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(signal_id, sent_at)
         WHERE s.signal_id = v.signal_id AND s.tenant_id = %s AND s.status = %s AND s.valid_until > v.sent_at
        """,
        [lifecycle.SENT, signal_ids, sent_at, tenant_id, lifecycle.PENDING],
    )


def signals_ack_received_statement(*, tenant_id: UUID, signal_ids: list[UUID], acked_at: list[datetime]) -> tuple:
    """The EA has these signals (ACK RECEIVED or EXECUTED): `acked_at` once; a PENDING one becomes SENT (the ACK
    overtook its SENT mark). A duplicate ACK changes nothing. The UPDATE (SQL, parameters), for the outbound batch,
    which sends it with its other statements in one round trip under the tenant's setting."""
    return (
        """
        UPDATE mt5_trading_signals s SET
               status = CASE WHEN s.status = %s THEN %s ELSE s.status END,
               sent_to_ea_at = CASE WHEN s.status = %s THEN coalesce(s.sent_to_ea_at, v.acked_at)
                                    ELSE s.sent_to_ea_at END,
               acked_at = v.acked_at, updated_at = now()
          FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(signal_id, acked_at)
         WHERE s.signal_id = v.signal_id AND s.tenant_id = %s AND s.acked_at IS NULL
        """,
        [lifecycle.PENDING, lifecycle.SENT, lifecycle.PENDING, signal_ids, acked_at, tenant_id],
    )


def signal_ack_record(*, tenant_id: UUID, signal_id: UUID, status: binproto.AckStatus, reason: str) -> None:
    """The EA received (acked_at) or refused (SENT → REJECTED with its reason, through the lifecycle service: invalid,
    audited) a signal; one row, locked. The gateway batches the common ACKs through `signals_ack_received_statement`
    and sends refusals here."""
    from signals.services.lifecycle import signal_transition_locked

    now = timezone.now()
    with tenant_context(tenant_id):
        signal = TradingSignal.objects.select_for_update().filter(signal_id=signal_id).first()
        if signal is None:
            return
        if signal.status == lifecycle.PENDING:  # the ack overtook our SENT marking
            signal.status, signal.sent_to_ea_at = lifecycle.SENT, signal.sent_to_ea_at or now
            signal.save(update_fields=["status", "sent_to_ea_at", "updated_at"])
        if signal.acked_at is None:
            signal.acked_at = now
            signal.save(update_fields=["acked_at", "updated_at"])
        if status in (binproto.AckStatus.REJECTED, binproto.AckStatus.FAILED) and lifecycle.transition_allowed(
            signal.status, lifecycle.REJECTED
        ):
            signal_transition_locked(signal=signal, to=lifecycle.REJECTED, reason=f"EA: {reason}", actor="ea")
