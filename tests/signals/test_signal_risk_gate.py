"""The risk gate: each limit refuses with its own reason, the signal is recorded REJECTED and audited, and nothing
is published; position sizing by risk % of equity over the stop-loss distance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from factories import make_balance, make_order

from compliance.models import AuditLog
from signals.services import SignalSpec, signal_create
from signals.services import risk as gate
from signals.services.intake import SIGNAL_NO_FRESH_QUOTE
from suho.routers import operator_path
from tests.accounts.helpers import account_make, tenant_make
from tests.signals.conftest import quote_put


def _spec(**fields) -> SignalSpec:
    return SignalSpec(**{"symbol": "EURUSD", "action": "BUY", "volume": Decimal("0.1"),
                         "entry_price": Decimal("1.0952"), "stop_loss": Decimal("1.0932"),
                         "take_profit": Decimal("1.0982"), **fields})  # fmt: skip


def _hours_excluding_now() -> dict:
    now = datetime.now(UTC)
    return {"trading_hours_start_utc": (now + timedelta(hours=1)).time().replace(microsecond=0),
            "trading_hours_end_utc": (now + timedelta(hours=2)).time().replace(microsecond=0)}  # fmt: skip


def _hours_text(fields: dict) -> dict:
    return {"start": f"{fields['trading_hours_start_utc']:%H:%M}", "end": f"{fields['trading_hours_end_utc']:%H:%M}"}


HOURS = _hours_excluding_now()

# (tenant fields, account fields, set-up after the quote, spec fields, expected reason)
CASES = {
    "tenant_off": ({"trading_enabled": False}, {}, None, {}, gate.RISK_TENANT_TRADING_DISABLED),
    "account_off": ({}, {"trading_enabled": False}, None, {}, gate.RISK_TRADING_DISABLED),
    "emergency_stop": ({}, {"emergency_stop": True}, None, {}, gate.RISK_EMERGENCY_STOP),
    "symbol": ({}, {"allowed_symbols": ["GBPUSD", "XAUUSD"]}, None, {},
               gate.RISK_SYMBOL_NOT_ALLOWED.format(symbol="EURUSD")),
    "hours": ({}, HOURS, None, {}, gate.RISK_OUTSIDE_TRADING_HOURS.format(**_hours_text(HOURS))),
    "position_size": ({}, {"max_position_size": Decimal("0.05")}, None, {},
                      gate.RISK_MAX_POSITION_SIZE.format(volume=Decimal("0.1000"), limit=Decimal("0.0500"))),
    "daily_loss": ({}, {}, lambda a: make_order(a, status="closed", close_time=timezone.now(),
                                                close_price=Decimal("1.08"), profit=Decimal("-600")), {},
                   gate.RISK_DAILY_LOSS.format(limit=Decimal("500.00"), pnl=Decimal("-600.00"))),
    "drawdown": ({}, {}, lambda a: make_balance(a, drawdown=Decimal("25")), {},
                 gate.RISK_DRAWDOWN.format(drawdown="25", limit="20")),
    "spread": ({}, {}, lambda a: quote_put(a, spread=50), {},
               gate.RISK_SPREAD.format(spread=50.0, limit=Decimal("30.0"))),
    "sizing_no_stop": ({}, {"sizing_method": "risk_percent"}, None, {"stop_loss": None},
                       gate.RISK_SIZING_NO_STOP_LOSS),
    "sizing_no_equity": ({}, {"sizing_method": "risk_percent"}, None, {}, gate.RISK_SIZING_NO_EQUITY),
    "sizing_cross": ({}, {"sizing_method": "risk_percent"}, lambda a: (make_balance(a), quote_put(a, symbol="EURGBP")),
                     {"symbol": "EURGBP", "entry_price": None, "stop_loss": Decimal("0.8"), "take_profit": None},
                     gate.RISK_SIZING_NO_PIP_VALUE.format(symbol="EURGBP", currency="USD")),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_limit_refuses_with_its_own_reason_records_audits_and_publishes_nothing(committed, published, case):
    tenant_fields, account_fields, setup, spec_fields, reason = CASES[case]
    if case == "hours":  # the window is an hour from *now*, not from when the module was collected
        account_fields = _hours_excluding_now()
        reason = gate.RISK_OUTSIDE_TRADING_HOURS.format(**_hours_text(account_fields))
    account = account_make(tenant_make(**tenant_fields), **account_fields)
    quote_put(account)
    if setup:
        setup(account)
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(**spec_fields),
                           source="ml", actor="test")  # fmt: skip
    assert (signal.status, signal.status_reason) == ("rejected", reason)
    with operator_path():
        audits = list(
            AuditLog.objects.filter(metadata__signal_id=str(signal.signal_id)).values_list("event_type", "metadata")
        )
    assert [event for event, _ in audits] == ["signal_created", "signal_rejected"]
    assert audits[1][1]["actor"] == "risk_gate"
    assert published.for_account(account.account_id) == []


@pytest.mark.parametrize("age_s", [None, 11])
def test_a_missing_or_stale_broker_quote_refuses_the_signal(account, published, age_s):
    if age_s is not None:
        quote_put(account, at=timezone.now() - timedelta(seconds=age_s))
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert (signal.status, signal.status_reason) == (
        "rejected", SIGNAL_NO_FRESH_QUOTE.format(symbol="EURUSD", max_age_s=10))  # fmt: skip
    assert signal.broker_ask is None
    assert published.for_account(account.account_id) == []


def test_a_signal_inside_every_limit_is_published(account, published):
    quote_put(account)
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert (signal.status, signal.volume) == ("pending", Decimal("0.1000"))
    assert published.for_account(account.account_id) == [f"mt5.signal.{account.account_id}.{signal.signal_id}"]


def test_risk_percent_sizing_uses_equity_and_the_stop_distance(committed):
    account = account_make(tenant_make(), sizing_method="risk_percent", risk_percent=Decimal("1"))
    quote_put(account)
    make_balance(account, equity=Decimal("10000"))
    # 1 % of 10,000 = 100 USD over a 20-pip stop at 10 USD per pip per lot = 0.5 lots
    signal = signal_create(tenant_id=account.tenant_id, account_id=account.account_id, payload=_spec(), source="ml")
    assert (signal.status, signal.volume) == ("pending", Decimal("0.5000"))


def test_pip_value_converts_only_where_the_symbol_holds_the_rate():
    assert gate.pip_value_per_lot(symbol="EURUSD", price=Decimal("1.1"), currency="USD") == Decimal("10")
    assert gate.pip_value_per_lot(symbol="USDJPY", price=Decimal("150"), currency="USD") == Decimal("1000") / 150
    assert gate.pip_value_per_lot(symbol="XAUUSD", price=Decimal("2000"), currency="USD") == Decimal("10")
    assert gate.pip_value_per_lot(symbol="EURGBP", price=Decimal("0.85"), currency="USD") is None


def test_trading_hours_over_midnight():
    from datetime import time

    assert gate.within_hours(time(23, 0), time(22, 0), time(6, 0))
    assert gate.within_hours(time(5, 59), time(22, 0), time(6, 0))
    assert not gate.within_hours(time(6, 0), time(22, 0), time(6, 0))
