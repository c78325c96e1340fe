"""Today's realised profit, which the risk gate reads on every signal POST, is kept per account and UTC day by the
trigger `trade_order_daily_pnl` as orders are written (trading 0007, decision 0029): whatever happens to an order,
the kept figures are what summing the order table says, and the gate's read plans no part of the order table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone
from factories import make_order

from signals.selectors import account_loss_figures, account_loss_figures_statement
from suho.routers import SERVICE
from suho.tenancy import tenant_context
from tests.accounts.helpers import account_make, tenant_make
from tests.signals.test_loss_figures_partitions import _planned_tables
from trading.models import AccountDailyPnl, TradeOrder

SUMMED_FROM_ORDERS = """
SELECT (close_time AT TIME ZONE 'UTC')::date, sum(profit), count(*)
  FROM mt5_trade_orders
 WHERE account_id = %s AND status = 'closed' AND close_time IS NOT NULL AND profit IS NOT NULL
 GROUP BY 1
"""


def kept(account) -> dict:
    with tenant_context(account.tenant_id):
        rows = AccountDailyPnl.objects.filter(account=account, closed_trades__gt=0)
        return {row.day: (row.realized, row.closed_trades) for row in rows}


def summed(account) -> dict:
    with tenant_context(account.tenant_id), connections[SERVICE].cursor() as cursor:
        cursor.execute(SUMMED_FROM_ORDERS, [account.account_id])
        return {day: (total, count) for day, total, count in cursor.fetchall()}


def change(order: TradeOrder, **fields) -> None:
    with tenant_context(order.tenant_id):
        TradeOrder.objects.filter(pk=order.pk).update(**fields)


def test_the_kept_figures_follow_every_change_to_an_order(committed):
    tenant = tenant_make()
    account, other = account_make(tenant), account_make(tenant)
    now = timezone.now()
    today, yesterday = now.astimezone(UTC).date(), (now - timedelta(days=1)).astimezone(UTC).date()

    def check(expected: dict) -> None:
        assert kept(account) == summed(account) == expected

    first = make_order(account)
    check({})  # open: nothing realised
    change(first, status="closed", close_time=now, close_price=Decimal("1.09"), profit=Decimal("-120.50"))
    check({today: (Decimal("-120.50"), 1)})
    second = make_order(account, status="closed", close_time=now, close_price=Decimal("1.07"), profit=Decimal("40"))
    check({today: (Decimal("-80.50"), 2)})
    change(first, profit=Decimal("-100.25"))  # the broker's figure corrected
    check({today: (Decimal("-60.25"), 2)})
    change(second, close_time=now - timedelta(days=1))
    check({today: (Decimal("-100.25"), 1), yesterday: (Decimal("40.00"), 1)})
    change(first, comment="annotated")  # nothing realised changes
    check({today: (Decimal("-100.25"), 1), yesterday: (Decimal("40.00"), 1)})
    change(first, status="open", close_time=None, close_price=None, profit=None)
    check({yesterday: (Decimal("40.00"), 1)})
    make_order(account, status="closed", close_time=now, close_price=Decimal("1.08"))  # no profit reported
    check({yesterday: (Decimal("40.00"), 1)})
    make_order(other, status="closed", close_time=now, close_price=Decimal("1.08"), profit=Decimal("-999"))
    check({yesterday: (Decimal("40.00"), 1)})
    assert kept(other) == summed(other) == {today: (Decimal("-999.00"), 1)}


@pytest.mark.parametrize(
    "step",
    [
        ("closed", dict(status="closed", close_time="now", close_price=Decimal("1.09"), profit=Decimal("-10"))),
        ("corrected", dict(profit=Decimal("-12.34"))),
        ("moved", dict(close_time="yesterday")),
        ("reopened", dict(status="open", close_time=None, close_price=None, profit=None)),
    ],
    ids=lambda step: step[0],
)
def test_after_each_kind_of_change_the_kept_figures_equal_the_orders_sums(committed, step):
    tenant = tenant_make()
    account = account_make(tenant)
    moments = {"now": timezone.now(), "yesterday": timezone.now() - timedelta(days=1)}
    order = make_order(account, status="closed", close_time=moments["now"], close_price=Decimal("1.1"),
                       profit=Decimal("5"))  # fmt: skip
    make_order(account, status="closed", close_time=moments["now"], close_price=Decimal("1.1"), profit=Decimal("7"))
    _name, fields = step
    change(order, **{key: moments.get(value, value) if isinstance(value, str) else value
                      for key, value in fields.items()})  # fmt: skip
    assert kept(account) == summed(account)
    assert kept(account)  # the other order's close is always there


def test_the_day_is_the_utc_day_of_the_close(committed):
    tenant = tenant_make()
    account = account_make(tenant)
    late = datetime.now(UTC).replace(hour=23, minute=30) - timedelta(days=2)
    with transaction.atomic(), connections[SERVICE].cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Pacific/Auckland'")  # a day ahead of UTC at that hour
        make_order(account, status="closed", close_time=late, close_price=Decimal("1.1"), profit=Decimal("3"))
    assert kept(account) == {late.date(): (Decimal("3.00"), 1)}


def _tables_and_parents(cursor, plan: dict) -> set[str]:
    """The relations in a plan, with the tables they are partitions (TimescaleDB: chunks) of."""
    tables = _planned_tables(plan)
    cursor.execute(
        "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid::regclass::text = ANY(%s)", [list(tables)]
    )
    return tables | {row[0] for row in cursor.fetchall()}


def test_the_gate_reads_todays_figure_and_no_part_of_the_order_table(committed):
    """Fails with the gate's read before trading 0007: every partition or chunk of mt5_trade_orders was planned."""
    tenant = tenant_make()
    account = account_make(tenant)
    make_order(
        account,
        status="closed",
        close_time=timezone.now() - timedelta(days=1),
        close_price=Decimal("1.1"),
        profit=Decimal("-700"),
    )  # fmt: skip  (yesterday's: not today's loss)
    with tenant_context(account.tenant_id):
        assert account_loss_figures(account=account)[0] is None
    make_order(account, status="closed", close_time=timezone.now(), close_price=Decimal("1.1"), profit=Decimal("-60"))
    with tenant_context(account.tenant_id), connections[SERVICE].cursor() as cursor:
        assert account_loss_figures(account=account)[0] == Decimal("-60.00")
        sql, params = account_loss_figures_statement(account_id=account.account_id)
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        raw = cursor.fetchone()[0]
        planned = _tables_and_parents(cursor, (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    assert "mt5_account_daily_pnl" in planned and "mt5_trade_orders" not in planned, sorted(planned)
