"""Signals on their way to the EA: the wire message, publication after commit, resync, SENT marking and acks."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.utils import timezone

import binproto
from signals import lifecycle
from signals.models import TradingSignal
from suho.outbox import outbox_publish_on_commit
from suho.tenancy import tenant_context

ACTIONS = {"BUY": binproto.Action.BUY, "SELL": binproto.Action.SELL, "CLOSE": binproto.Action.CLOSE}


def _us(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1_000_000) if moment else 0


def _f(value) -> float:
    return float(value) if value is not None else 0.0


def signal_message(signal: TradingSignal) -> binproto.TradingSignal:
    return binproto.TradingSignal(
        signal_id=signal.signal_id,
        action=ACTIONS[signal.action],
        entry_price=_f(signal.entry_price),
        entry_min=_f(signal.entry_price_min),
        entry_max=_f(signal.entry_price_max),
        stop_loss=_f(signal.stop_loss),
        take_profit=_f(signal.take_profit),
        volume=float(signal.volume),
        risk_percent=_f(signal.risk_percent),
        sizing_method=binproto.SizingMethod[signal.sizing_method.upper()],
        confidence=_f(signal.confidence_score),
        valid_until_us=_us(signal.valid_until),
        ticket=int(signal.metadata.get("ticket", 0)) if signal.action == "CLOSE" else 0,
        symbol=signal.symbol,
        model_version=signal.model_version,
        strategy_name=signal.strategy_name,
        timestamp_us=_us(timezone.now()),
    )


def signal_publish_on_commit(signal: TradingSignal) -> None:
    """After the creating transaction commits: `mt5.signal.{account_id}.{signal_id}`, JSON form of the wire message."""
    outbox_publish_on_commit(
        tenant_id=signal.tenant_id,
        subject=f"mt5.signal.{signal.account_id}.{signal.signal_id}",
        payload=binproto.to_json(signal_message(signal)).encode(),
        msg_id=f"signal:{signal.signal_id}",
    )


def signals_for_resync(*, account_id: UUID) -> list[TradingSignal]:
    """Still-valid signals the EA has not acknowledged, oldest first (caller holds the tenant context)."""
    return list(
        TradingSignal.objects.filter(
            account_id=account_id,
            status__in=[lifecycle.PENDING, lifecycle.SENT],
            acked_at__isnull=True,
            is_valid=True,
            valid_until__gt=timezone.now(),
        ).order_by("time")
    )


def signals_mark_sent(*, tenant_id: UUID, signal_ids: list[UUID], sent_at: datetime) -> int:
    """PENDING → SENT for signals just written to a socket (claimed with one conditional update)."""
    with tenant_context(tenant_id):
        return TradingSignal.objects.filter(
            signal_id__in=signal_ids, status=lifecycle.PENDING, valid_until__gt=sent_at
        ).update(status=lifecycle.SENT, sent_to_ea_at=sent_at)


def signal_ack_record(*, tenant_id: UUID, signal_id: UUID, status: binproto.AckStatus, reason: str) -> None:
    """The EA received (acked_at) or refused (SENT → REJECTED with its reason) a signal."""
    from compliance.services import audit_record

    now = timezone.now()
    with tenant_context(tenant_id):
        signal = TradingSignal.objects.select_for_update().filter(signal_id=signal_id).first()
        if signal is None:
            return
        if signal.status == lifecycle.PENDING:  # the ack overtook our SENT marking
            signal.status, signal.sent_to_ea_at = lifecycle.SENT, signal.sent_to_ea_at or now
            signal.save(update_fields=["status", "sent_to_ea_at", "updated_at"])
        signal.acked_at = signal.acked_at or now
        fields = ["acked_at", "updated_at"]
        if status in (binproto.AckStatus.REJECTED, binproto.AckStatus.FAILED) and lifecycle.transition_allowed(
            signal.status, lifecycle.REJECTED
        ):
            signal.status, signal.status_reason = lifecycle.REJECTED, f"EA: {reason}"[:300]
            fields += ["status", "status_reason"]
            audit_record(
                tenant_id=tenant_id, event_type="signal_rejected", category="signal", action="reject",
                description=f"EA rejected signal {signal_id}: {reason}", account_id=signal.account_id,
                metadata={"signal_id": str(signal_id), "reason": reason},
            )  # fmt: skip
        signal.save(update_fields=fields)
