"""Reads for signals: the execution feedback the ML engine retrains on (seed §7.3), and the account figures the risk
gate checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from binproto import MAX_PAST_SKEW_US
from signals.models import SignalExecution
from suho.cache import balance_key, cache_get
from suho.sql import fetch_dicts

# Seed §7.3, with the window as a parameter (the seed's is 7 days).
FEEDBACK_ROWS = """
SELECT
    s.signal_id,
    s.model_version,
    s.strategy_name,
    s.confidence_score,
    s.polygon_ask,

    e.actual_entry_price,
    e.price_difference AS execution_slippage,
    e.execution_latency_ms,

    e.profit,
    e.profit_pips,

    CASE
        WHEN e.profit > 0 THEN 'WIN'
        WHEN e.profit < 0 THEN 'LOSS'
        ELSE 'BREAKEVEN'
    END AS trade_result,

    e.market_volatility,
    e.spread_at_execution

FROM mt5_trading_signals s
JOIN mt5_signal_executions e ON s.signal_id = e.signal_id
WHERE e.trade_closed = true
  AND e.feedback_status = 'pending'
  AND s.time >= NOW() - %(days)s * INTERVAL '1 day'
ORDER BY s.time DESC;
"""


def feedback_rows(*, days: int = 7) -> list[dict]:
    """Closed executions not yet used for training, newest signal first, with the seed's WIN/LOSS/BREAKEVEN label.

    Runs in the caller's tenant context, or inside `operator_path()` for the platform-wide feedback export.
    """
    return fetch_dicts(SignalExecution, FEEDBACK_ROWS, {"days": days})


# Every closed execution of the caller's tenant (any feedback status: an export marks rows, it never hides them), in
# one stable order, (signal time, signal id), read a page at a time after a keyset position.
FEEDBACK_PAGE = """
SELECT
    s.signal_id, s.time AS signal_time, s.account_id, s.symbol, s.action,
    s.model_version, s.strategy_name, s.confidence_score, s.polygon_ask,
    s.price_deviation, s.deviation_pips,
    e.execution_id, e.actual_entry_price, e.price_difference AS execution_slippage, e.slippage_pips,
    e.execution_latency_ms, e.profit, e.profit_pips,
    CASE WHEN e.profit > 0 THEN 'WIN' WHEN e.profit < 0 THEN 'LOSS' ELSE 'BREAKEVEN' END AS trade_result,
    e.market_volatility, e.spread_at_execution, e.closed_at, e.feedback_status, e.exported_at
FROM mt5_trading_signals s
JOIN mt5_signal_executions e ON s.signal_id = e.signal_id
WHERE e.trade_closed = true
  AND s.time >= %(start)s AND s.time < %(end)s
  AND (%(strategy)s::text IS NULL OR s.strategy_name = %(strategy)s::text)
  AND (%(after_time)s::timestamptz IS NULL OR (s.time, s.signal_id) > (%(after_time)s::timestamptz, %(after_id)s::uuid))
ORDER BY s.time, s.signal_id
LIMIT %(limit)s
"""


def feedback_page(*, start, end, strategy: str | None = None, after: tuple | None = None, limit: int) -> list[dict]:
    """Up to `limit` closed executions with signal time in [start, end), optionally of one `strategy_name`, that
    come after the keyset position `after` = (signal_time, signal_id) in (signal time, signal id) order.

    Runs in the caller's tenant context (row-level security: only that tenant's rows). Whether a row was exported
    does not matter. A trade that closes later joins its signal's place in the order: re-read a range to see it.
    """
    after_time, after_id = after or (None, None)
    params = {"start": start, "end": end, "strategy": strategy, "after_time": after_time, "after_id": after_id,
              "limit": limit}  # fmt: skip
    return fetch_dicts(SignalExecution, FEEDBACK_PAGE, params)


def signals_list(*, status: str | None = None, account_id=None, symbol: str | None = None):
    """The tenant's signals, newest first, optionally filtered (a lazy queryset: evaluate it in the tenant's
    context, or inside `operator_path()` for every tenant)."""
    from signals.models import TradingSignal

    signals = TradingSignal.objects.order_by("-time", "signal_id")
    if status:
        signals = signals.filter(status=status)
    if account_id:
        signals = signals.filter(account_id=account_id)
    if symbol:
        signals = signals.filter(symbol=symbol)
    return signals


def signal_get(*, signal_id):
    """One signal by id, or None (another tenant's id is invisible under row-level security)."""
    from signals.models import TradingSignal

    return TradingSignal.objects.filter(signal_id=signal_id).first()


def account_signals(*, account_id, limit: int = 50) -> list:
    """The account's newest signals with their execution, for its portal page."""
    from signals.models import TradingSignal

    return list(
        TradingSignal.objects.filter(account_id=account_id).select_related("execution").order_by("-time")[:limit]
    )


def executions(*, account_id=None):
    """The tenant's signal executions, newest first, optionally of one account (a lazy queryset)."""
    rows = SignalExecution.objects.order_by("-time")
    return rows.filter(account_id=account_id) if account_id is not None else rows


# --- The risk gate's reads of the account's own figures (signals.services.risk) ---------------------------------
# The rows are the gateway's (balance snapshots, trade orders), read here as SQL through the caller's tenant context,
# so the gate, a layer below the gateway, imports none of it (docs/dependencies.md). Seed §8.3's daily loss: only
# today's closes count (UTC), as in trading.selectors.daily_loss_breaches; they are summed as they are written, into
# today's row of mt5_account_daily_pnl (trading 0007, decision 0029): the order table is chunked by open time, so
# summing its closes of today planned and probed every partition of its 7 years (with a year of 1-day chunks on
# TimescaleDB, ~60 ms per signal POST).
# The newest balance snapshot (its drawdown; its equity for risk-% sizing) is looked for within
# BALANCE_SNAPSHOT_LOOKBACK first, the bound sent as a literal (Django's psycopg cursor binds parameters on the
# client), so PostgreSQL plans only the partitions it covers (TimescaleDB: chunks). Unbounded, the planner expands
# every partition of the table's two years of retention on every signal POST: 53 ms of planning and 7 ms of
# execution with 700 daily partitions, against 0.4 ms on a new database (issue 21). The window is the clock skew the
# gateway still trusts in an EA's timestamps (a day behind: binproto.MAX_PAST_SKEW_US) and an hour, so an EA that is
# connected, and reports its finance every 30 s or so, has a snapshot in it. Without one (an EA offline for a day or
# more: a broadcast reaches such accounts too), the newest snapshot is looked for from BALANCE_SNAPSHOT_LOOKBACK before
# the EA was last heard from (`_older_snapshot_since`), and only then without a bound; not at all if no EA ever
# connected for the account: snapshots come only from EA sessions.
BALANCE_SNAPSHOT_LOOKBACK = timedelta(microseconds=MAX_PAST_SKEW_US) + timedelta(hours=1)
ACCOUNT_LOSS_FIGURES = """
SELECT (SELECT realized FROM mt5_account_daily_pnl
         WHERE account_id = %s AND day = (now() AT TIME ZONE 'UTC')::date AND closed_trades > 0) AS daily_pnl,
       snapshot.drawdown, snapshot.time IS NOT NULL AS snapshot_found
  FROM (SELECT 1) AS one
  LEFT JOIN LATERAL (SELECT drawdown, time FROM mt5_account_balance_history
                      WHERE account_id = %s AND time >= %s ORDER BY time DESC LIMIT 1) AS snapshot ON true
"""
ACCOUNT_DRAWDOWN_SINCE = """
SELECT drawdown FROM mt5_account_balance_history
 WHERE account_id = %(account_id)s AND time >= %(since)s ORDER BY time DESC LIMIT 1
"""
ACCOUNT_DRAWDOWN_LATEST = """
SELECT drawdown FROM mt5_account_balance_history WHERE account_id = %(account_id)s ORDER BY time DESC LIMIT 1
"""
ACCOUNT_EQUITY_SINCE = """
SELECT equity FROM mt5_account_balance_history
 WHERE account_id = %(account_id)s AND time >= %(since)s ORDER BY time DESC LIMIT 1
"""
ACCOUNT_EQUITY_LATEST = """
SELECT equity FROM mt5_account_balance_history WHERE account_id = %(account_id)s ORDER BY time DESC LIMIT 1
"""


def account_equity_latest(*, account) -> Decimal | None:
    """The account's latest equity: the gateway's cached balance (≤ 30 s old), else the newest snapshot; None if
    the EA has reported none."""
    cached = cache_get(balance_key(account.account_id))
    if cached is not None:
        return Decimal(str(cached["equity"]))
    values = {"account_id": account.account_id, "since": timezone.now() - BALANCE_SNAPSHOT_LOOKBACK}
    rows = fetch_dicts(SignalExecution, ACCOUNT_EQUITY_SINCE, values)
    if not rows:
        rows = _older_snapshot(account, ACCOUNT_EQUITY_SINCE, ACCOUNT_EQUITY_LATEST)
    return Decimal(str(float(rows[0]["equity"]))) if rows else None


def _older_snapshot_since(account) -> datetime | None:
    """Where to look for the newest balance snapshot of an account that has none in the last
    BALANCE_SNAPSHOT_LOOKBACK: from that long before its EA was last heard from, since snapshots come only from EA
    sessions (so the newest is there unless the EA stopped reporting its finance). None: no EA ever connected."""
    if account.last_connected_at is None:
        return None
    heard = max(moment for moment in (account.last_heartbeat_at, account.last_connected_at) if moment is not None)
    return min(heard, timezone.now()) - BALANCE_SNAPSHOT_LOOKBACK


def older_snapshot_bounds(account) -> list[datetime | None]:
    """The lower time bounds to look for the newest snapshot within, in turn, once the last BALANCE_SNAPSHOT_LOOKBACK
    had none: `_older_snapshot_since` (only that window's partitions or chunks are planned) when it reaches further
    back, then None: anywhere (an EA that stopped reporting its finance). None at all: no EA ever connected."""
    since = _older_snapshot_since(account)
    if since is None:
        return []
    return ([since] if since < timezone.now() - BALANCE_SNAPSHOT_LOOKBACK else []) + [None]


def _older_snapshot(account, since_sql: str, latest_sql: str) -> list[dict]:
    """The newest snapshot before the usual window (`older_snapshot_bounds`), else none."""
    for since in older_snapshot_bounds(account):
        values = {"account_id": account.account_id, "since": since}
        if rows := fetch_dicts(SignalExecution, latest_sql if since is None else since_sql, values):
            return rows
    return []


def account_loss_figures(*, account) -> tuple[Decimal | None, Decimal | None]:
    """The account's realised profit of today's closed trades (None if none closed today) and the EA's own drawdown
    (percent from its max balance) on its newest balance snapshot (None without one): one round trip, two for an
    account whose EA has connected but sent no snapshot in the last BALANCE_SNAPSHOT_LOOKBACK."""
    row = fetch_dicts(SignalExecution, *account_loss_figures_statement(account_id=account.account_id))[0]
    return account_loss_figures_from((row["daily_pnl"], row["drawdown"], row["snapshot_found"]), account=account)


def account_loss_figures_statement(*, account_id) -> tuple[str, list]:
    """`account_loss_figures`' SQL and parameters, for a caller that sends it with other statements in one round
    trip (suho.sql.statements_in_context); hand its one row to `account_loss_figures_from`."""
    return ACCOUNT_LOSS_FIGURES, [account_id, account_id, timezone.now() - BALANCE_SNAPSHOT_LOOKBACK]


def account_loss_figures_from(row: tuple, *, account) -> tuple[Decimal | None, Decimal | None]:
    """(daily_pnl, drawdown) from the statement's row. Without a snapshot in the window, the newest one is read (in
    the caller's tenant context), unless no EA has ever connected for the account (BALANCE_SNAPSHOT_LOOKBACK): a
    signal to a new account still takes one round trip for its figures."""
    daily_pnl, drawdown, snapshot_found = row
    if not snapshot_found:
        rows = _older_snapshot(account, ACCOUNT_DRAWDOWN_SINCE, ACCOUNT_DRAWDOWN_LATEST)
        drawdown = rows[0]["drawdown"] if rows else None
    return daily_pnl, drawdown
