"""Signal lifecycle writes (seed §7.1): one transition function, used by cancel, expiry and the risk gate.

The allowed moves are `signals.lifecycle.TRANSITIONS` (the one table; the database trigger is generated from it).
Zulip's split: `signal_check_transition` refuses an illegal move with a clear error, `signal_transition` locks the
row, checks again on the locked row, changes it and audits who or what caused the move.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from rest_framework.status import HTTP_409_CONFLICT

from signals import lifecycle
from signals.models import TradingSignal
from suho.api_errors import ApiError
from suho.audit import audit_record
from suho.routers import OPERATOR, SERVICE, on_operator_path, operator_path
from suho.tenancy import tenant_context

SIGNAL_ILLEGAL_TRANSITION = lifecycle.ILLEGAL_TRANSITION  # "signal cannot move from {old} to {new}"
SIGNAL_NOT_FOUND = "No signal {signal_id} here."
EXPIRY_REASON = "valid_until passed before execution"
EXPIRE_BATCH = 1000

_TIMESTAMPS = {lifecycle.SENT: "sent_to_ea_at", lifecycle.EXECUTED: "executed_at", lifecycle.CLOSED: "closed_at"}


class SignalTransitionError(ApiError):
    code = "illegal_transition"
    http_status = HTTP_409_CONFLICT


def signal_check_transition(*, signal: TradingSignal, to: str) -> None:
    """Raises SignalTransitionError(SIGNAL_ILLEGAL_TRANSITION) unless (signal.status, to) is in TRANSITIONS."""
    if not lifecycle.transition_allowed(signal.status, to):
        raise SignalTransitionError(SIGNAL_ILLEGAL_TRANSITION.format(old=signal.status, new=to))


def signal_transition(
    *, signal: TradingSignal, to: str, reason: str, actor: str, user_id: UUID | None = None
) -> TradingSignal:
    """Move `signal` to `to`; returns the updated row. Takes `select_for_update` on the signal row in its tenant's
    context (the operator role's when called on the operator path), so two movers cannot both pass the check."""
    signal_check_transition(signal=signal, to=to)
    with tenant_context(signal.tenant_id, using=OPERATOR if on_operator_path() else SERVICE):
        locked = TradingSignal.objects.select_for_update().get(pk=signal.pk)
        signal_check_transition(signal=locked, to=to)
        signal_transition_locked(signal=locked, to=to, reason=reason, actor=actor, user_id=user_id)
    return locked


def signal_cancel(*, signal: TradingSignal, actor: str, reason: str = "", user_id: UUID | None = None):
    """PENDING → CANCELLED (an operator or the producer withdrew it); anything else raises SignalTransitionError."""
    return signal_transition(
        signal=signal, to=lifecycle.CANCELLED, reason=reason or f"cancelled by {actor}", actor=actor, user_id=user_id
    )


def signals_expire_stale(*, now: datetime | None = None) -> int:
    """PENDING or SENT signals whose `valid_until` has passed → EXPIRED, across tenants; returns how many.

    A cross-tenant job (Celery beat, every 15 s): it runs as the operator role and skips rows another transaction
    holds (they are expired on the next run). Each move is audited in its own tenant's chain.
    """
    now = now or timezone.now()
    with operator_path(), transaction.atomic(using=OPERATOR):
        stale = list(
            TradingSignal.objects.select_for_update(skip_locked=True)
            .filter(status__in=[lifecycle.PENDING, lifecycle.SENT], valid_until__lte=now)
            .order_by("valid_until")[:EXPIRE_BATCH]
        )
        for signal in stale:
            signal_transition_locked(signal=signal, to=lifecycle.EXPIRED, reason=EXPIRY_REASON, actor="expiry")
    return len(stale)


def signal_transition_locked(
    *, signal: TradingSignal, to: str, reason: str, actor: str, user_id: UUID | None = None
) -> None:
    """The one place a signal's status changes: status, reason, `is_valid` (off in every final state but CLOSED),
    the state's timestamp, and the audit row. For a caller that already holds the row `select_for_update` in its
    tenant's context and has checked `lifecycle.transition_allowed` (the EA's refusals, applied in a batch)."""
    old, now = signal.status, timezone.now()
    signal.status, signal.status_reason = to, reason[:300]
    fields = ["status", "status_reason", "updated_at"]
    if to in lifecycle.FINAL and to != lifecycle.CLOSED:
        signal.is_valid = False
        fields.append("is_valid")
    if to in _TIMESTAMPS and getattr(signal, _TIMESTAMPS[to]) is None:
        setattr(signal, _TIMESTAMPS[to], now)
        fields.append(_TIMESTAMPS[to])
    signal.save(update_fields=fields)
    audit_record(
        tenant_id=signal.tenant_id, event_type=f"signal_{to}", category="signal", action=to,
        description=f"signal {signal.signal_id} {old} → {to} by {actor}: {reason}"[:1000],
        severity="warning" if to == lifecycle.REJECTED else "info", user_id=user_id, account_id=signal.account_id,
        metadata={"signal_id": str(signal.signal_id), "old_status": old, "new_status": to, "reason": reason,
                  "actor": actor},
    )  # fmt: skip
