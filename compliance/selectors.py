"""Reads for compliance: the risk monitor's per-tenant measurements (seed §8.3, §10.2), an account's risk events.

Each runs through the service role under the caller's tenant context (row-level security keeps it to one tenant).
Times are passed in, never `now()`/`CURRENT_DATE`, so a run for another moment (a test's "tomorrow") reads right.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from compliance.models import ComplianceReport, RiskEvent, UserConsent
from suho.sql import fetch_dicts
from trading.models import TradeOrder

# Realised P&L of the UTC day: closed orders' profit net of commission and swap, with each account's limit.
DAILY_PNL = """
SELECT o.account_id, a.max_daily_loss, SUM(o.profit + o.commission + o.swap) AS daily_pnl
FROM mt5_trade_orders o JOIN mt5_user_accounts a ON a.account_id = o.account_id
WHERE o.status = 'closed' AND o.close_time >= %(start)s AND o.close_time < %(end)s AND a.is_active
GROUP BY o.account_id, a.max_daily_loss
"""

# The latest balance snapshot of each account seen since `since`, with the peak balance (the EA's own max_balance
# or the running maximum over the window, whichever is higher) and the account's limits.
BALANCE_LATEST = """
SELECT DISTINCT ON (b.account_id)
    b.account_id, b.time, b.balance, b.equity, b.margin, b.margin_level,
    greatest(b.max_balance, (SELECT max(h.balance) FROM mt5_account_balance_history h
                             WHERE h.account_id = b.account_id AND h.time >= %(since)s)) AS peak_balance,
    a.max_drawdown_percent, a.min_margin_level
FROM mt5_account_balance_history b JOIN mt5_user_accounts a ON a.account_id = b.account_id
WHERE b.time >= %(since)s AND b.time <= %(now)s AND a.is_active
ORDER BY b.account_id, b.time DESC
"""

SLOW_EXECUTIONS = """
SELECT account_id, max(execution_latency_ms) AS worst_latency_ms, count(*) AS slow
FROM mt5_signal_executions
WHERE time >= %(since)s AND time <= %(now)s AND execution_latency_ms > %(limit_ms)s
GROUP BY account_id
"""

DEVIATING_QUOTES = """
SELECT account_id, max(abs(deviation_percent)) AS worst_deviation_percent
FROM mt5_broker_quotes
WHERE time >= %(since)s AND time <= %(now)s AND abs(deviation_percent) > %(limit)s
GROUP BY account_id
"""

# Accounts that have connected before and are now offline or silent (no heartbeat within the window).
SILENT_ACCOUNTS = """
SELECT account_id, last_heartbeat_at, connection_status
FROM mt5_user_accounts
WHERE is_active AND last_connected_at IS NOT NULL
  AND (connection_status <> 'online' OR last_heartbeat_at IS NULL OR last_heartbeat_at < %(silent_before)s)
"""


def daily_pnl(*, start: datetime, end: datetime) -> list[dict]:
    """Each active account with closed orders in [start, end): `daily_pnl` (net) and its `max_daily_loss`."""
    return fetch_dicts(TradeOrder, DAILY_PNL, {"start": start, "end": end})


def balances_latest(*, since: datetime, now: datetime) -> list[dict]:
    return fetch_dicts(TradeOrder, BALANCE_LATEST, {"since": since, "now": now})


def executions_slow(*, since: datetime, now: datetime, limit_ms: int) -> list[dict]:
    return fetch_dicts(TradeOrder, SLOW_EXECUTIONS, {"since": since, "now": now, "limit_ms": limit_ms})


def quotes_deviating(*, since: datetime, now: datetime, limit: Decimal) -> list[dict]:
    return fetch_dicts(TradeOrder, DEVIATING_QUOTES, {"since": since, "now": now, "limit": limit})


def accounts_silent(*, silent_before: datetime) -> list[dict]:
    return fetch_dicts(TradeOrder, SILENT_ACCOUNTS, {"silent_before": silent_before})


def compliance_report_get(*, report_id) -> ComplianceReport | None:
    """A report of the current tenant context (row-level security hides every other tenant's: None)."""
    return ComplianceReport.objects.filter(id=report_id).first()


def consents_of_user(*, user, history_limit: int = 50) -> tuple[set[str], list[UserConsent]]:
    """The purposes the user consents to now, and their latest consent changes (newest first)."""
    active = set(UserConsent.objects.filter(user=user, granted=True).values_list("purpose", flat=True))
    return active, list(UserConsent.objects.filter(user=user).order_by("-time")[:history_limit])


def risk_events(*, account_id) -> QuerySet[RiskEvent]:
    """The account's risk events, newest first (the caller's tenant context)."""
    return RiskEvent.objects.filter(account_id=account_id).order_by("-time")


def account_risk_events(*, account_id, limit: int = 50) -> list[RiskEvent]:
    return list(risk_events(account_id=account_id)[:limit])
