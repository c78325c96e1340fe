"""A trade event finds its order in the one partition (TimescaleDB: chunk) that holds it: the ticket's first
journaled event says when the order was made (trading.ingest._order_locked). Unbounded, the lookup and the update
planned and probed every partition of the order table's 7 years, 70-110 ms per event with a year of 1-day chunks
on TimescaleDB; the events still apply exactly as before."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone
from factories import make_account, make_order, make_tenant, make_user

import binproto
from suho.routers import SERVICE
from suho.tenancy import tenant_context
from tests.gateway.ea_client import trade_opened
from trading.ingest import trade_event_record
from trading.models import TradeOrder

pytestmark = pytest.mark.django_db(databases=["default", "owner", "operator"])

# Scans of each partition or chunk of mt5_trade_orders so far in the current transaction (pg_stat_xact_*: this
# backend's; the test's own transaction holds the set-up's reads too, hence the difference around each event).
ORDER_PART_SCANS = """
SELECT s.relid::regclass::text, coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0)
FROM pg_stat_xact_user_tables s
WHERE s.relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'mt5_trade_orders'::regclass)
"""


def modified(ticket: int, seq: int) -> binproto.TradeModified:
    now_us = time.time_ns() // 1000
    return binproto.TradeModified(
        event_seq=seq, ticket=ticket, order_type=binproto.OrderType.BUY, volume=0.1, price=1.0954, stop_loss=1.0944,
        take_profit=1.0990, signal_id=None, modify_time_us=now_us, symbol="EURUSD", timestamp_us=now_us,
    )  # fmt: skip


def closed(ticket: int, seq: int, open_time_us: int) -> binproto.TradeClosed:
    now_us = time.time_ns() // 1000
    return binproto.TradeClosed(
        event_seq=seq, ticket=ticket, order_type=binproto.OrderType.BUY, volume=0.1, open_price=1.0954,
        close_price=1.0990, stop_loss=1.0944, take_profit=1.0990, signal_id=None, open_time_us=open_time_us,
        close_time_us=now_us, profit=36.0, commission=-0.7, swap=0.0, close_reason=binproto.CloseReason.TAKE_PROFIT,
        symbol="EURUSD", timestamp_us=now_us,
    )  # fmt: skip


@pytest.fixture
def account():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    make_order(account, ticket=1, time=timezone.now() - timedelta(days=40))  # an order in an older partition or chunk
    return account


def record(account, event) -> list[str]:
    """Apply `event` and return the order table's partitions its transaction scanned."""
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        cursor.execute(ORDER_PART_SCANS)
        before = dict(cursor.fetchall())
        trade_event_record(tenant_id=account.tenant_id, account_id=account.pk, session_id=None, event=event)
        cursor.execute(ORDER_PART_SCANS)
        return sorted(part for part, scans in cursor.fetchall() if scans > before.get(part, 0))


def order(account, ticket: int) -> TradeOrder:
    with tenant_context(account.tenant_id):
        return TradeOrder.objects.get(account_id=account.pk, ticket=ticket)


def test_a_modify_and_a_close_read_only_their_orders_partition(account):
    opened = trade_opened(ticket=7001, seq=1)
    assert record(account, opened) == []  # the ticket's first event: no order to look for
    assert len(record(account, modified(ticket=7001, seq=2))) == 1
    assert order(account, 7001).stop_loss == Decimal("1.09440000")
    assert len(record(account, closed(ticket=7001, seq=3, open_time_us=opened.open_time_us))) == 1
    after = order(account, 7001)
    assert (after.status, after.profit, after.close_reason) == ("closed", Decimal("36.00"), "take_profit")


def test_a_close_before_its_open_makes_the_order_and_the_late_open_finds_it(account):
    open_time_us = time.time_ns() // 1000 - 60_000_000
    assert record(account, closed(ticket=7002, seq=2, open_time_us=open_time_us)) == []
    late_open = trade_opened(ticket=7002, seq=1)
    assert len(record(account, late_open)) == 1  # found at the first event's (the close's) open time, not its own
    with tenant_context(account.tenant_id):
        assert TradeOrder.objects.filter(account_id=account.pk, ticket=7002).count() == 1
    assert order(account, 7002).status == "closed"
