"""The other risk checks (seed §8.3, §10.2): drawdown, margin level, trade latency, price deviation, EA silence —
each opens one event with its rule's action and resolves when its condition clears."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from factories import make_account, make_balance, make_heartbeat, make_quote, make_signal, make_tenant, make_user

from accounts.models import MT5Account
from compliance.models import RiskEvent
from compliance.risk import risk_alerts_run, risk_checks_run
from signals.models import SignalExecution
from suho.tenancy import tenant_context
from trading.models import EACommand


@pytest.fixture
def account(committed):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def events(account):
    with tenant_context(account.tenant_id):
        return list(
            RiskEvent.objects.filter(account_id=account.pk).order_by("time").values_list("event_type", "status")
        )


def commands(account):
    with tenant_context(account.tenant_id):
        return list(
            EACommand.objects.filter(account_id=account.pk).order_by("created_at").values_list("kind", flat=True)
        )


def test_a_drawdown_past_the_limit_closes_all_positions_then_disables_trading(account):
    now = timezone.now()
    make_balance(account, time=now - timedelta(hours=3), balance=Decimal("10000"), equity=Decimal("10000"))
    make_balance(account, time=now - timedelta(minutes=1), balance=Decimal("9000"), equity=Decimal("7500"))
    assert risk_checks_run(now=now)["opened"] == 1
    assert events(account) == [("max_drawdown", "open")]
    assert commands(account) == ["close_all", "disable_trading"]
    with tenant_context(account.tenant_id):
        event = RiskEvent.objects.get()
        assert MT5Account.objects.get(pk=account.pk).trading_enabled is False
    assert (event.current_value, event.threshold_value, event.action_taken) == (
        Decimal("25.00"), Decimal("20.00"), "close_all,disable_trading")  # fmt: skip


def test_a_low_margin_level_opens_an_event_that_resolves_when_margin_recovers(account):
    now = timezone.now()
    make_balance(account, time=now - timedelta(minutes=2), margin=Decimal("1000"), margin_level=Decimal("120"))
    assert risk_checks_run(now=now)["opened"] == 1
    assert events(account) == [("margin_level", "open")]
    make_balance(account, time=now - timedelta(minutes=1), margin=Decimal("1000"), margin_level=Decimal("300"))
    assert risk_checks_run(now=now)["resolved"] == 1
    assert events(account) == [("margin_level", "resolved")]


def test_no_margin_in_use_is_not_a_margin_call(account):
    make_balance(account, margin=Decimal("0"), margin_level=Decimal("0"))
    assert risk_checks_run()["opened"] == 0


def test_a_slow_execution_raises_a_latency_warning_without_action_until_it_ages_out(account):
    now = timezone.now()
    signal = make_signal(account)
    with tenant_context(account.tenant_id):
        SignalExecution.objects.create(tenant_id=account.tenant_id, account=account, signal=signal,
                                       time=now - timedelta(seconds=30), execution_latency_ms=800)  # fmt: skip
    assert risk_alerts_run(now=now)["opened"] == 1
    with tenant_context(account.tenant_id):
        event = RiskEvent.objects.get()
    assert (event.event_type, event.severity, event.action_taken, event.current_value) == (
        "trade_latency", "warning", "notify", Decimal(800))  # fmt: skip
    assert commands(account) == []
    assert risk_alerts_run(now=now + timedelta(minutes=10))["resolved"] == 1


def test_a_broker_quote_off_the_reference_by_more_than_0_05_percent_is_a_deviation_event(account):
    now = timezone.now()
    make_quote(account, time=now - timedelta(seconds=20), deviation_percent=Decimal("0.03"))
    assert risk_alerts_run(now=now)["opened"] == 0
    make_quote(account, time=now - timedelta(seconds=10), deviation_percent=Decimal("-0.08"))
    assert risk_alerts_run(now=now)["opened"] == 1
    assert events(account) == [("price_deviation", "open")]


def test_an_ea_silent_for_two_minutes_opens_a_connectivity_event_until_it_is_heard_again(account):
    now = timezone.now()
    with tenant_context(account.tenant_id):
        MT5Account.objects.filter(pk=account.pk).update(
            connection_status="online", last_connected_at=now - timedelta(hours=1),
            last_heartbeat_at=now - timedelta(minutes=3),
        )  # fmt: skip
    never_connected = make_account(account.tenant, account.user)
    assert risk_alerts_run(now=now)["opened"] == 1
    assert events(account) == [("ea_connectivity", "open")]
    assert events(never_connected) == []
    with tenant_context(account.tenant_id):
        MT5Account.objects.filter(pk=account.pk).update(last_heartbeat_at=now)
    assert risk_alerts_run(now=now)["resolved"] == 1


def test_an_ea_that_reports_a_status_other_than_online_is_a_connectivity_event(account):
    now = timezone.now()
    with tenant_context(account.tenant_id):
        MT5Account.objects.filter(pk=account.pk).update(
            connection_status="online", last_connected_at=now - timedelta(hours=1), last_heartbeat_at=now
        )
    make_heartbeat(account, time=now - timedelta(seconds=5), status="reconnecting")
    assert risk_alerts_run()["opened"] == 1
    with tenant_context(account.tenant_id):
        assert RiskEvent.objects.get().message == "EA reports 'reconnecting'"
