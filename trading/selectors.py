"""Reads for trading: the risk monitor's daily-loss check (seed §8.3), EA connectivity (seed §10.2), and the latest
figures of an account (balance, positions, quotes) the portal shows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from suho.sql import fetch_dicts
from trading.models import Heartbeat, TradeOrder

# Seed §8.3, corrected: the seed's HAVING sums every closed trade ever (`HAVING SUM(profit) < -500`), so an account
# that lost yesterday would breach today and one that gained yesterday could lose more than the limit today unseen.
# Here only today's closes count, and only they are read.
DAILY_LOSS_BREACHES = """
SELECT
    account_id,
    SUM(profit) FILTER (WHERE DATE(close_time) = CURRENT_DATE) AS daily_pnl
FROM mt5_trade_orders
WHERE status = 'closed'
  AND close_time >= CURRENT_DATE
GROUP BY account_id
HAVING SUM(profit) FILTER (WHERE DATE(close_time) = CURRENT_DATE) < -(%(limit)s);
"""

# Seed §10.2, verbatim. It looks at the last 5 minutes only: an EA silent for longer drops out of the result, so the
# connectivity monitor pairs it with `mt5_user_accounts.last_heartbeat_at` for EAs gone quiet.
CONNECTIVITY_PROBLEMS = """
SELECT
    account_id,
    user_id,
    LAST(status, time) AS status,
    LAST(time, time) AS last_heartbeat,
    EXTRACT(EPOCH FROM (NOW() - LAST(time, time))) AS seconds_since_last_heartbeat
FROM mt5_ea_heartbeat
WHERE time >= NOW() - INTERVAL '5 minutes'
GROUP BY account_id, user_id
HAVING LAST(status, time) != 'online'
   OR EXTRACT(EPOCH FROM (NOW() - LAST(time, time))) > 120;
"""


def daily_loss_breaches(*, limit: Decimal | int = 500) -> list[dict]:
    """Accounts whose closed trades today (UTC, the connection's time zone) lost more than `limit`.

    A cross-tenant job: the risk monitor runs it inside `operator_path()`; in a tenant's context it checks that
    tenant's accounts only.
    """
    return fetch_dicts(TradeOrder, DAILY_LOSS_BREACHES, {"limit": Decimal(limit)})


def connectivity_problems() -> list[dict]:
    """EAs seen in the last 5 minutes whose latest heartbeat is not `online` or is more than 120 s old.

    A cross-tenant job (every minute, inside `operator_path()`); in a tenant's context it checks that tenant only.
    """
    return fetch_dicts(Heartbeat, CONNECTIVITY_PROBLEMS)


def balance_latest(*, account_id) -> dict | None:
    """The account's latest balance/equity: the cache (≤ 30 s old) or the newest database row, looked for as the
    risk gate does (signals.selectors): in the last BALANCE_SNAPSHOT_LOOKBACK, then around the last time the EA was
    heard from, then anywhere, so an offline account's page does not plan two years of partitions on every refresh."""
    from accounts.models import MT5Account
    from signals.selectors import BALANCE_SNAPSHOT_LOOKBACK, older_snapshot_bounds
    from suho.cache import balance_key, cache_get
    from trading.models import BalanceSnapshot

    cached = cache_get(balance_key(account_id))
    if cached is not None:
        return {**cached, "source": "cache"}
    rows = BalanceSnapshot.objects.filter(account_id=account_id).order_by("-time")
    fields = ("balance", "equity", "margin_level", "floating_pnl", "time")
    row = rows.filter(time__gte=timezone.now() - BALANCE_SNAPSHOT_LOOKBACK).values(*fields).first()
    account = MT5Account.objects.filter(pk=account_id).first() if row is None else None
    for since in older_snapshot_bounds(account) if account is not None else []:
        row = (rows if since is None else rows.filter(time__gte=since)).values(*fields).first()
        if row is not None:
            break
    if row is None:
        return None
    return {"balance": float(row["balance"]), "equity": float(row["equity"]),
            "margin_level": float(row["margin_level"]) if row["margin_level"] is not None else None,
            "floating_pnl": float(row["floating_pnl"]), "timestamp": row["time"].isoformat(),
            "source": "database"}  # fmt: skip


def positions_open(*, account_id) -> dict:
    """Open positions as {"positions": [...], "source": "cache" | "database"}, read through the cache (10 s TTL).

    The cache holds the EA's last POSITIONS snapshot (the EA sends one on connect and on change, so it is usually
    older than the TTL) or, after a miss, the open orders loaded here from the database: the server's own record of
    what is open, kept by trade events. A miss fills the key with SET NX, so the reads that follow within the TTL hit
    and a snapshot the EA sent meanwhile is never overwritten. Database rows carry no live profit ("profit": None).
    Runs in the caller's tenant context; an account that context cannot see is not cached (its empty answer means
    "not yours", not "no positions").
    """
    from accounts.models import MT5Account
    from suho.cache import POSITIONS_TTL_S, cache_fill, cache_get, positions_key
    from trading.models import TradeOrder

    key = positions_key(account_id)
    cached = cache_get(key)
    if cached is not None:
        return {"positions": cached, "source": "cache"}
    positions = [
        {"ticket": o.ticket, "symbol": o.symbol, "type": o.order_type, "volume": float(o.volume),
         "open_price": float(o.open_price), "sl": float(o.stop_loss or 0), "tp": float(o.take_profit or 0),
         "profit": None}
        for o in TradeOrder.objects.filter(account_id=account_id, status=TradeOrder.Status.OPEN).order_by("time")
    ]  # fmt: skip
    if positions or MT5Account.objects.filter(pk=account_id).exists():
        cache_fill(key, POSITIONS_TTL_S, positions)
    return {"positions": positions, "source": "database"}


LIVE_QUOTE_SYMBOLS_WINDOW = timedelta(minutes=2)  # the symbols the account page lists: quoted this recently


def account_live(*, account_id) -> dict | None:
    """What the account page shows and refreshes over `/ws/portal/` without a reload: EA status, balance and equity,
    open positions and the latest broker quote per symbol quoted in the last LIVE_QUOTE_SYMBOLS_WINDOW, each read
    through the cache (balance_latest, positions_open, quote_latest). Runs in the caller's tenant context: an
    account it cannot see is None. JSON-ready."""

    from accounts.models import MT5Account
    from accounts.selectors import ea_is_online
    from quotes.models import BrokerQuote
    from quotes.selectors import quote_latest

    account = MT5Account.objects.filter(pk=account_id).first()
    if account is None:
        return None
    since = timezone.now() - LIVE_QUOTE_SYMBOLS_WINDOW
    recent = BrokerQuote.objects.filter(account_id=account_id, time__gte=since)
    symbols = sorted(set(recent.values_list("symbol", flat=True)))
    quotes = [{"symbol": s, **q} for s in symbols if (q := quote_latest(account_id=account_id, symbol=s, since=since))]
    return {
        "account_id": str(account.account_id), "online": ea_is_online(account),
        "last_heartbeat_at": account.last_heartbeat_at.isoformat() if account.last_heartbeat_at else None,
        "balance": balance_latest(account_id=account_id),
        "positions": positions_open(account_id=account_id)["positions"],
        "quotes": quotes,
    }  # fmt: skip


# --- The portal's and the REST API's reads of the gateway's rows (in the signed-in user's tenant context) --------

CHART_RAW_ROWS_MAX = 2000  # raw snapshots after the rollup: minutes of them normally; more when beat has stopped


def balance_series(*, account_id, since) -> dict:
    """Balance and equity since `since` for the chart, as columns (epoch seconds): the 5-minute rollup
    (`mt5_balance_5min`), then the raw snapshots newer than its last bucket, so the chart follows the EA's stream
    instead of waiting up to ten minutes for the next refresh (at most the newest CHART_RAW_ROWS_MAX of them)."""
    from trading.models import BalanceRollup, BalanceSnapshot
    from trading.services import ROLLUP_BUCKET

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


def balances(*, account_id, start, end):
    """The account's raw balance snapshots in [start, end), oldest first."""
    from trading.models import BalanceSnapshot

    return BalanceSnapshot.objects.filter(account_id=account_id, time__gte=start, time__lt=end).order_by("time")


def balance_buckets(*, account_id, start, end):
    """The account's 5-minute balance rollup (`mt5_balance_5min`) in [start, end), oldest first."""
    from trading.models import BalanceRollup

    return BalanceRollup.objects.filter(account_id=account_id, bucket__gte=start, bucket__lt=end).order_by("bucket")


def trades_history(*, account_id, symbol: str = "", status: str = "", since=None, until=None):
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
