"""Seed §7.2 through the database triggers alone: a trade order with a signal id executes the signal; its close
closes the execution with profit and pips. No service code runs here: the ORM and raw SQL only write orders."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone
from factories import make_account, make_order, make_quote, make_signal, make_tenant, make_user

from signals.models import SignalExecution, TradingSignal
from suho.tenancy import tenant_context

pytestmark = pytest.mark.django_db

INSERT_ORDER = """
INSERT INTO mt5_trade_orders (order_id, time, tenant_id, account_id, ticket, signal_id, symbol, order_type, volume,
                              open_price, status, close_time, close_price, profit, commission, swap, close_reason,
                              comment, updated_at)
VALUES (%(order_id)s, %(time)s, %(tenant_id)s, %(account_id)s, %(ticket)s, %(signal_id)s, %(symbol)s, %(order_type)s,
        %(volume)s, %(open_price)s, %(status)s, %(close_time)s, %(close_price)s, %(profit)s, 0, 0, %(close_reason)s,
        '', now())
"""
CLOSE_ORDER = """
UPDATE mt5_trade_orders SET status = 'closed', close_price = %s, profit = %s, close_time = %s, close_reason = %s
WHERE ticket = %s
"""


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def sent_signal(account, *, sent_at, **fields):
    signal = make_signal(account, **fields)
    with tenant_context(account.tenant_id):
        TradingSignal.objects.filter(pk=signal.pk).update(status="sent", sent_to_ea_at=sent_at)
    return signal


def execution_and_signal(account, signal):
    with tenant_context(account.tenant_id):
        return SignalExecution.objects.get(signal_id=signal.pk), TradingSignal.objects.get(pk=signal.pk)


def test_an_order_with_a_signal_id_creates_the_execution_and_marks_the_signal_executed(account):
    sent_at = timezone.now() - timedelta(seconds=5)
    signal = sent_signal(account, sent_at=sent_at, entry_price=Decimal("1.08500"))
    make_quote(account, time=sent_at, bid=Decimal("1.08510"), ask=Decimal("1.08528"), spread=Decimal("18"))
    filled_at = sent_at + timedelta(milliseconds=250)

    order = make_order(account, signal=signal, time=filled_at, open_price=Decimal("1.08520"), ticket=123456789)

    execution, signal = execution_and_signal(account, signal)
    assert (execution.order_id, execution.ticket, execution.time) == (order.order_id, 123456789, filled_at)
    assert execution.signal_entry_price == Decimal("1.08500")
    assert execution.actual_entry_price == Decimal("1.08520")
    assert execution.price_difference == Decimal("0.00020")
    assert execution.slippage_pips == Decimal("2.00")
    assert execution.execution_latency_ms == 250
    assert execution.spread_at_execution == Decimal("18")
    assert (execution.trade_closed, execution.feedback_status) == (False, "pending")
    assert (signal.status, signal.executed_at) == ("executed", filled_at)


def test_closing_the_order_records_profit_and_pips_and_closes_the_signal(account):
    signal = sent_signal(account, sent_at=timezone.now(), entry_price=Decimal("1.08500"))
    make_order(account, signal=signal, open_price=Decimal("1.08520"), ticket=123456789)
    closed_at = timezone.now() + timedelta(minutes=30)

    with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(CLOSE_ORDER, [Decimal("1.08800"), Decimal("28.00"), closed_at, "take_profit", 123456789])

    execution, signal = execution_and_signal(account, signal)
    assert execution.trade_closed is True
    assert (execution.profit, execution.profit_pips) == (Decimal("28.00"), Decimal("28.00"))
    assert (execution.close_price, execution.close_reason, execution.closed_at) == (
        Decimal("1.08800"),
        "take_profit",
        closed_at,
    )
    assert (signal.status, signal.closed_at) == ("closed", closed_at)


def test_an_order_inserted_already_closed_executes_and_closes_its_signal_at_once(account):
    opened_at = timezone.now() - timedelta(hours=2)
    signal = sent_signal(account, sent_at=opened_at - timedelta(seconds=1), entry_price=Decimal("1.08500"))
    row = {"order_id": uuid.uuid4(), "time": opened_at, "tenant_id": account.tenant_id, "account_id": account.pk,
           "ticket": 555, "signal_id": signal.pk, "symbol": "EURUSD", "order_type": "BUY", "volume": Decimal("0.1"),
           "open_price": Decimal("1.08500"), "status": "closed", "close_time": opened_at + timedelta(hours=1),
           "close_price": Decimal("1.08450"), "profit": Decimal("-5.00"), "close_reason": "stop_loss"}  # fmt: skip

    with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(INSERT_ORDER, row)

    execution, signal = execution_and_signal(account, signal)
    assert (execution.execution_latency_ms, execution.slippage_pips) == (1000, Decimal("0.00"))
    assert execution.trade_closed is True
    assert (execution.profit, execution.profit_pips) == (Decimal("-5.00"), Decimal("-5.00"))
    assert (signal.status, signal.executed_at, signal.closed_at) == ("closed", opened_at, row["close_time"])


def test_a_sell_on_a_jpy_pair_counts_pips_of_001_against_the_seller(account):
    signal = sent_signal(
        account, sent_at=timezone.now(), symbol="USDJPY", action="SELL", entry_price=Decimal("150.000")
    )
    make_order(account, signal=signal, symbol="USDJPY", order_type="SELL", open_price=Decimal("149.980"), ticket=77)

    execution, _ = execution_and_signal(account, signal)
    assert execution.slippage_pips == Decimal("2.00"), "a sell filled 2 pips lower is 2 pips of adverse slippage"

    with tenant_context(account.tenant_id), connections["default"].cursor() as cursor:
        cursor.execute(CLOSE_ORDER, [Decimal("149.500"), Decimal("32.10"), timezone.now(), "take_profit", 77])
    execution, _ = execution_and_signal(account, signal)
    assert execution.profit_pips == Decimal("48.00")


def test_an_order_for_a_signal_still_pending_moves_it_through_sent_to_executed(account):
    signal = make_signal(account)
    filled_at = timezone.now()
    make_order(account, signal=signal, time=filled_at)

    execution, signal = execution_and_signal(account, signal)
    assert (signal.status, signal.executed_at) == ("executed", filled_at)
    assert execution.execution_latency_ms is None, "never marked sent: the latency is unknown, not zero"


def test_an_order_without_a_signal_creates_no_execution(account):
    make_order(account)
    with tenant_context(account.tenant_id):
        assert not SignalExecution.objects.exists()


def test_a_second_order_for_the_same_signal_keeps_the_first_execution(account):
    signal = sent_signal(account, sent_at=timezone.now())
    first = make_order(account, signal=signal, ticket=1)
    make_order(account, signal=signal, ticket=2)

    with tenant_context(account.tenant_id):
        assert list(SignalExecution.objects.values_list("order_id", flat=True)) == [first.order_id]
