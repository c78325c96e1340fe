"""Retention of the tables that are not partitioned (seed §3.1): signals 90 days, executions and risk events 2 years,
compliance reports 10 years — older rows go, younger ones stay, foreign keys hold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from factories import (
    make_account,
    make_compliance_report,
    make_order,
    make_risk_event,
    make_rollup,
    make_signal,
    make_tenant,
    make_user,
)

from compliance.models import ComplianceReport, RiskEvent
from signals.models import SignalExecution, TradingSignal
from suho.retention import retention_upkeep
from suho.tenancy import tenant_context
from trading.models import BalanceRollup, TradeOrder

OWNER = "owner"
DAY = timedelta(days=1)

pytestmark = pytest.mark.django_db(databases=[OWNER])


@pytest.fixture
def now():
    with connections[OWNER].cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def new_account():
    tenant = make_tenant(using=OWNER)
    return make_account(tenant, make_user(tenant, using=OWNER), using=OWNER)


def executed_signal(account, at):
    """A signal with its order: the trigger writes the execution at the order's time."""
    signal = make_signal(account, using=OWNER, time=at)
    make_order(account, using=OWNER, signal=signal, time=at + timedelta(seconds=1), open_price=Decimal("1.085"))
    return signal


def remaining(account, model, field: str = "pk"):
    with tenant_context(account.tenant_id, using=OWNER):
        return set(model.objects.using(OWNER).values_list(field, flat=True))


def test_signals_without_an_execution_go_after_90_days(now):
    account = new_account()
    make_signal(account, using=OWNER, time=now - 91 * DAY)
    young = make_signal(account, using=OWNER, time=now - 89 * DAY)

    counts = retention_upkeep(now=now)

    assert remaining(account, TradingSignal) == {young.pk}
    assert counts["mt5_trading_signals"] == 1


def test_an_executed_signal_stays_as_long_as_its_execution_then_both_go_and_the_order_forgets_it(now):
    account = new_account()
    kept = executed_signal(account, now - 400 * DAY)
    executed_signal(account, now - 3 * 365 * DAY)  # execution past 2 years: both go

    counts = retention_upkeep(now=now)

    assert remaining(account, TradingSignal) == {kept.pk}
    assert remaining(account, SignalExecution, "signal_id") == {kept.pk}
    assert remaining(account, TradeOrder, "signal_id") == {kept.pk, None}, "orders stay 7 years, unlinked"
    assert counts["mt5_signal_executions"] == counts["mt5_trade_orders.signal_id"] == counts["mt5_trading_signals"] == 1


def test_risk_events_go_after_2_years_and_compliance_reports_after_10(now):
    account = new_account()
    make_risk_event(account, using=OWNER, time=now - 732 * DAY)  # '2 years': 730 or 731 days
    young_event = make_risk_event(account, using=OWNER, time=now - 729 * DAY)
    make_compliance_report(account.tenant, using=OWNER, time=now - 3654 * DAY)  # 3652 or 3653
    young_report = make_compliance_report(account.tenant, using=OWNER, time=now - 3650 * DAY)
    make_rollup(account, using=OWNER, bucket=now - 732 * DAY)
    young_bucket = make_rollup(account, using=OWNER, bucket=now - 729 * DAY)

    retention_upkeep(now=now)

    assert remaining(account, RiskEvent) == {young_event.pk}
    assert remaining(account, ComplianceReport) == {young_report.pk}
    assert remaining(account, BalanceRollup) == {young_bucket.pk}


def test_every_tenant_is_covered(now):
    accounts = [new_account() for _ in range(3)]
    for account in accounts:
        make_signal(account, using=OWNER, time=now - 100 * DAY)

    assert retention_upkeep(now=now)["mt5_trading_signals"] == 3
    assert all(remaining(account, TradingSignal) == set() for account in accounts)


def test_the_deletions_keep_every_foreign_key_valid(now):
    account = new_account()
    executed_signal(account, now - 3 * 365 * DAY)
    make_signal(account, using=OWNER, time=now - 100 * DAY)
    retention_upkeep(now=now)
    connections[OWNER].check_constraints()  # what commit would check
