"""The seed's four analytic queries (§6.4, §7.3, §8.3, §10.2), copied verbatim, run unchanged on our schema (plain
PostgreSQL: only `last()` and `time_bucket()` provided) and return the expected rows for a dataset built here; the
selectors that carry them return the same rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from factories import make_account, make_heartbeat, make_order, make_quote, make_signal, make_tenant, make_user

from quotes.selectors import deviation_by_symbol
from signals.models import SignalExecution
from signals.selectors import feedback_rows
from suho.routers import operator_path
from suho.tenancy import tenant_context
from trading.selectors import connectivity_problems, daily_loss_breaches

pytestmark = pytest.mark.django_db

SEED_6_4_DEVIATION = """
SELECT
    symbol,
    AVG(price_deviation) AS avg_deviation_pips,
    STDDEV(price_deviation) AS stddev_deviation,
    MAX(ABS(price_deviation)) AS max_deviation,
    COUNT(*) AS sample_count
FROM mt5_broker_quotes
WHERE time >= NOW() - INTERVAL '24 hours'
  AND polygon_mid_price IS NOT NULL
GROUP BY symbol
ORDER BY avg_deviation_pips DESC;
"""

SEED_7_3_FEEDBACK = """
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
  AND s.time >= NOW() - INTERVAL '7 days'
ORDER BY s.time DESC;
"""

SEED_8_3_DAILY_LOSS = """
SELECT
    account_id,
    SUM(profit) FILTER (WHERE DATE(close_time) = CURRENT_DATE) AS daily_pnl
FROM mt5_trade_orders
WHERE status = 'closed'
GROUP BY account_id
HAVING SUM(profit) < -500;  -- Max daily loss: $500
"""

SEED_10_2_CONNECTIVITY = """
-- Check EA connectivity (last 5 minutes)
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


def run(sql: str) -> list[dict]:
    with connections["default"].cursor() as cursor:
        cursor.execute(sql)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def db_now():
    """The transaction's NOW(): a test is one transaction, so every query below sees this instant."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def new_account(**fields):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant), **fields)


@pytest.fixture
def account():
    return new_account()


@pytest.fixture
def other_tenants_account():
    """Rows of another tenant that must never show up in the first tenant's analytics."""
    return new_account()


# --- §6.4 deviation analytics ---------------------------------------------------------------------------------


def test_deviation_analytics_averages_each_symbols_deviation_over_the_last_24_hours(account, other_tenants_account):
    now = db_now()
    quotes = [  # symbol, deviation, polygon mid known, hours ago
        ("EURUSD", "0.00010", True, 1), ("EURUSD", "0.00030", True, 2),
        ("GBPUSD", "-0.00050", True, 1), ("GBPUSD", "0.00010", True, 2), ("GBPUSD", "0.00010", True, 3),
        ("USDJPY", "0.0015", True, 1), ("USDJPY", "0.0015", True, 23),
        ("EURUSD", "0.00900", False, 1),  # no reference price: not a deviation sample
        ("EURUSD", "0.00900", True, 25),  # outside the window
    ]  # fmt: skip
    for symbol, deviation, referenced, hours in quotes:
        make_quote(account, symbol=symbol, time=now - timedelta(hours=hours), price_deviation=Decimal(deviation),
                   polygon_mid_price=Decimal("1.1") if referenced else None)  # fmt: skip
    make_quote(other_tenants_account, symbol="XAUUSD", time=now, price_deviation=Decimal(1), polygon_mid_price=1)

    with tenant_context(account.tenant_id):
        rows = run(SEED_6_4_DEVIATION)
        assert deviation_by_symbol(hours=24) == rows

    assert [(r["symbol"], r["avg_deviation_pips"], r["max_deviation"], r["sample_count"]) for r in rows] == [
        ("USDJPY", Decimal("0.0015"), Decimal("0.0015"), 2),
        ("EURUSD", Decimal("0.0002"), Decimal("0.0003"), 2),
        ("GBPUSD", Decimal("-0.0001"), Decimal("0.0005"), 3),
    ]
    assert [round(r["stddev_deviation"], 8) for r in rows] == [0, Decimal("0.00014142"), Decimal("0.00034641")]


# --- §7.3 feedback loop ---------------------------------------------------------------------------------------


def closed_trade(account, *, days_ago: float, profit: str, now, close: bool = True, **signal_fields):
    """A signal, its order and (optionally) the close: the triggers fill in the execution."""
    at = now - timedelta(days=days_ago)
    signal = make_signal(account, time=at, model_version="m-7", strategy_name="breakout",
                         confidence_score=Decimal("0.8100"), polygon_ask=Decimal("1.08510"),
                         entry_price=Decimal("1.08500"), **signal_fields)  # fmt: skip
    order = make_order(account, signal=signal, time=at + timedelta(seconds=1), open_price=Decimal("1.08520"))
    if close:
        with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
            cursor.execute(
                "UPDATE mt5_trade_orders SET status = 'closed', close_price = open_price + %s * 0.0001,"
                " profit = %s, close_time = %s WHERE order_id = %s",
                [Decimal(profit), Decimal(profit), at + timedelta(hours=1), order.order_id],
            )
    return signal


def test_feedback_query_returns_closed_pending_executions_of_the_last_7_days_with_a_result(
    account, other_tenants_account
):
    now = db_now()
    win = closed_trade(account, days_ago=1, profit="28.00", now=now)
    loss = closed_trade(account, days_ago=2, profit="-15.50", now=now)
    even = closed_trade(account, days_ago=3, profit="0", now=now)
    closed_trade(account, days_ago=1.5, profit="10", now=now, close=False)  # still open
    closed_trade(account, days_ago=8, profit="10", now=now)  # too old
    trained = closed_trade(account, days_ago=2.5, profit="5", now=now)
    closed_trade(other_tenants_account, days_ago=1, profit="99", now=now)
    with tenant_context(account.tenant_id):
        SignalExecution.objects.filter(signal_id=trained.pk).update(feedback_status="included_in_training")

    with tenant_context(account.tenant_id):
        rows = run(SEED_7_3_FEEDBACK)
        assert feedback_rows(days=7) == rows

    assert [(r["signal_id"], r["trade_result"], r["profit"], r["profit_pips"]) for r in rows] == [
        (win.pk, "WIN", Decimal("28.00"), Decimal("28.00")),
        (loss.pk, "LOSS", Decimal("-15.50"), Decimal("-15.50")),
        (even.pk, "BREAKEVEN", Decimal("0.00"), Decimal("0.00")),
    ]
    first = rows[0]
    assert (first["model_version"], first["strategy_name"], first["confidence_score"]) == (
        "m-7",
        "breakout",
        Decimal("0.8100"),
    )
    assert (first["polygon_ask"], first["actual_entry_price"]) == (Decimal("1.08510"), Decimal("1.08520"))
    assert (first["execution_slippage"], first["execution_latency_ms"]) == (Decimal("0.00020"), None)


# --- §8.3 daily loss ------------------------------------------------------------------------------------------


def close_order(account, *, profit: str, close_time, status: str = "closed"):
    make_order(account, status=status, close_time=close_time, close_price=Decimal("1.08"), profit=Decimal(profit))


def today_start():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT CURRENT_DATE::timestamptz")
        return cursor.fetchone()[0]


def test_daily_loss_check_finds_the_accounts_that_lost_more_than_500_today(account):
    midnight = today_start()
    breaching, within = account, make_account(account.tenant, make_user(account.tenant))
    close_order(breaching, profit="-300.00", close_time=midnight + timedelta(minutes=5))
    close_order(breaching, profit="-223.45", close_time=midnight + timedelta(minutes=6))
    close_order(within, profit="-499.99", close_time=midnight + timedelta(minutes=5))
    make_order(breaching, profit=Decimal("-1000"))  # open: floating loss is not a realised daily loss

    with tenant_context(account.tenant_id):
        rows = run(SEED_8_3_DAILY_LOSS)
        assert daily_loss_breaches(limit=500) == rows

    assert rows == [{"account_id": breaching.pk, "daily_pnl": Decimal("-523.45")}]


def test_daily_loss_counts_only_todays_closes_where_the_seeds_query_counts_every_day(account):
    midnight = today_start()
    lost_yesterday, won_yesterday = account, make_account(account.tenant, make_user(account.tenant))
    close_order(lost_yesterday, profit="-900.00", close_time=midnight - timedelta(hours=2))
    close_order(won_yesterday, profit="800.00", close_time=midnight - timedelta(hours=2))
    close_order(won_yesterday, profit="-600.00", close_time=midnight + timedelta(minutes=1))

    with tenant_context(account.tenant_id):
        seed_rows = run(SEED_8_3_DAILY_LOSS)
        rows = daily_loss_breaches(limit=500)

    assert seed_rows == [{"account_id": lost_yesterday.pk, "daily_pnl": None}], "the seed's HAVING sums all days"
    assert rows == [{"account_id": won_yesterday.pk, "daily_pnl": Decimal("-600.00")}]


@pytest.mark.django_db(databases=["default", "operator"])
def test_daily_loss_check_on_the_operator_path_covers_every_tenant():
    midnight = today_start()
    accounts = []
    for _ in range(2):
        tenant = make_tenant(using="operator")
        account = make_account(tenant, make_user(tenant, using="operator"), using="operator")
        make_order(account, using="operator", status="closed", close_time=midnight + timedelta(minutes=1),
                   close_price=Decimal("1.08"), profit=Decimal("-750"))  # fmt: skip
        accounts.append(account)

    assert daily_loss_breaches() == [], "the service role without a tenant context sees nothing"
    with operator_path():
        rows = daily_loss_breaches()
    assert sorted(row["account_id"] for row in rows) == sorted(a.pk for a in accounts)


# --- §10.2 connectivity ---------------------------------------------------------------------------------------


def test_connectivity_check_reports_eas_whose_last_heartbeat_is_late_or_not_online(account, other_tenants_account):
    now = db_now()
    tenant, user = account.tenant, account.user
    healthy, late, degraded, gone = (account, *(make_account(tenant, user) for _ in range(3)))
    make_heartbeat(healthy, time=now - timedelta(seconds=200), status="degraded")
    make_heartbeat(healthy, time=now - timedelta(seconds=30))  # the latest one counts: online
    make_heartbeat(late, time=now - timedelta(seconds=180))
    make_heartbeat(degraded, time=now - timedelta(seconds=60), status="online")
    make_heartbeat(degraded, time=now - timedelta(seconds=10), status="degraded")
    make_heartbeat(gone, time=now - timedelta(minutes=10))  # outside the seed's 5-minute window
    make_heartbeat(other_tenants_account, time=now - timedelta(seconds=170))

    with tenant_context(account.tenant_id):
        rows = run(SEED_10_2_CONNECTIVITY)
        assert connectivity_problems() == rows

    by_account = {row["account_id"]: row for row in rows}
    assert set(by_account) == {late.pk, degraded.pk}
    assert (by_account[late.pk]["status"], by_account[late.pk]["seconds_since_last_heartbeat"]) == ("online", 180)
    assert by_account[degraded.pk]["status"] == "degraded"
    assert by_account[degraded.pk]["last_heartbeat"] == now - timedelta(seconds=10)
    assert by_account[degraded.pk]["user_id"] == user.pk
