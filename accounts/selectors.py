"""Reads for accounts: what the EA gateway asks about sessions while a connection lives."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from accounts.models import EASession
from suho.tenancy import tenant_context


def ea_session_active(*, session_id: UUID, tenant_id: UUID) -> bool:
    """Whether the session may go on: not ended, its key not revoked, its account and tenant enabled.

    The gateway polls this (every ~30 s) for each live connection, so revoking a key ends its sockets within a
    minute although the access token itself stays valid until it expires.
    """
    with tenant_context(tenant_id):
        return EASession.objects.filter(
            session_id=session_id,
            ended_at__isnull=True,
            api_key__revoked_at__isnull=True,
            account__is_active=True,
            tenant__is_active=True,
        ).exists()


def ea_sessions_active(*, tenant_id: UUID, session_ids: list[UUID]) -> set[UUID]:
    """Which of one tenant's sessions may go on (ea_session_active's rule, one query for all of them): the gateway
    checks every live connection of a process this way every ~30 s, one query per tenant instead of one per EA."""
    with tenant_context(tenant_id):
        return set(
            EASession.objects.filter(
                session_id__in=session_ids,
                ended_at__isnull=True,
                api_key__revoked_at__isnull=True,
                account__is_active=True,
                tenant__is_active=True,
            ).values_list("session_id", flat=True)
        )


def ea_sessions_replaced(*, tenant_id: UUID, session_ids: list[UUID]) -> set[UUID]:
    """Which of one tenant's sessions were ended by a newer session of their account (closed with 4012, not 4003)."""
    with tenant_context(tenant_id):
        return set(
            EASession.objects.filter(session_id__in=session_ids, end_reason=EASession.END_REPLACED).values_list(
                "session_id", flat=True
            )
        )


# --- Portal reads (each runs in the signed-in user's tenant context: another tenant's rows are invisible) --------


def portal_accounts():
    from accounts.models import MT5Account

    return MT5Account.objects.order_by("created_at")


def portal_account_statuses() -> list[dict]:
    """What the portal's live status shows for each account of the tenant: online, last refusal, last EA error."""
    from trading.connection import ea_is_online

    return [
        {"account_id": str(a.account_id), "online": ea_is_online(a),
         "last_heartbeat_at": a.last_heartbeat_at.isoformat() if a.last_heartbeat_at else None,
         "last_refusal_reason": a.last_refusal_reason,
         "last_refusal_at": a.last_refusal_at.isoformat() if a.last_refusal_at else None,
         "last_ea_error": a.last_ea_error}
        for a in portal_accounts()
    ]  # fmt: skip


ROLLUP_BUCKET = timedelta(minutes=5)  # mt5_balance_5min's
CHART_RAW_ROWS_MAX = 2000  # raw snapshots after the rollup: minutes of them normally; more when beat has stopped


def balance_series(*, account_id, since) -> dict:
    """Balance and equity since `since` for the chart, as columns (epoch seconds): the 5-minute rollup
    (`mt5_balance_5min`), then the raw snapshots newer than its last bucket, so the chart follows the EA's stream
    instead of waiting up to ten minutes for the next refresh (at most the newest CHART_RAW_ROWS_MAX of them)."""
    from trading.models import BalanceRollup, BalanceSnapshot

    rollup = list(
        BalanceRollup.objects.filter(account_id=account_id, bucket__gte=since)
        .order_by("bucket")
        .values_list("bucket", "balance", "equity")
    )
    raw_since = rollup[-1][0] + ROLLUP_BUCKET if rollup else since
    raw = BalanceSnapshot.objects.filter(account_id=account_id, time__gte=raw_since).order_by("-time")
    points = rollup + list(reversed(raw.values_list("time", "balance", "equity")[:CHART_RAW_ROWS_MAX]))
    return {
        "t": [int(moment.timestamp()) for moment, _, _ in points],
        "balance": [float(v) for _, v, _ in points],
        "equity": [float(v) for _, _, v in points],
    }


def trades_history(*, account_id, symbol: str = "", status: str = "", since=None, until=None):
    from trading.models import TradeOrder

    trades = TradeOrder.objects.filter(account_id=account_id).order_by("-time")
    if symbol:
        trades = trades.filter(symbol=symbol.upper())
    if status:
        trades = trades.filter(status=status)
    if since:
        trades = trades.filter(time__gte=since)
    if until:
        trades = trades.filter(time__lt=until)
    return trades


def account_signals(*, account_id, limit: int = 50) -> list:
    from signals.models import TradingSignal

    return list(
        TradingSignal.objects.filter(account_id=account_id).select_related("execution").order_by("-time")[:limit]
    )


def account_risk_events(*, account_id, limit: int = 50) -> list:
    from compliance.models import RiskEvent

    return list(RiskEvent.objects.filter(account_id=account_id).order_by("-time")[:limit])


def account_api_keys(*, account_id) -> list:
    from accounts.models import ApiKey

    return list(ApiKey.objects.filter(account_id=account_id).order_by("-created_at"))
