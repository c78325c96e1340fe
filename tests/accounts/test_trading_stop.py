"""`account_trading_stop`, the one "stop trading" for the trader, the operators and the risk monitor: the flag off
(pushed as risk parameters), DISABLE_TRADING (after CLOSE_ALL_POSITIONS if asked), each audited, published after
commit through the gateway's receivers (accounts announces, trading records and publishes: accounts.events)."""

from __future__ import annotations

import pytest
from factories import make_account, make_tenant, make_user

from accounts import events
from accounts.models import MT5Account
from accounts.services import account_emergency_stop, account_trading_start, account_trading_stop
from compliance.models import AuditLog
from suho.tenancy import tenant_context
from trading import outbound
from trading.models import EACommand

pytestmark = pytest.mark.django_db

REASON = "max_drawdown: 12.00% > 10.00%"


@pytest.fixture
def account():
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))


def _commands_and_events(account) -> tuple[list, list]:
    with tenant_context(account.tenant_id):
        commands = EACommand.objects.filter(account_id=account.pk).order_by("created_at")
        events_ = AuditLog.objects.filter(account_id=account.pk).order_by("chain_seq")
        return list(commands.values_list("kind", "issued_by", "reason")), list(
            events_.values_list("event_type", flat=True)
        )


def test_the_risk_monitors_stop_closes_positions_first_then_turns_trading_off(
    account, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        stopped = account_trading_stop(account=account, actor="risk_monitor", reason=REASON, close_positions=True)
    assert (stopped.trading_enabled, stopped.emergency_stop) == (False, False)
    commands, audited = _commands_and_events(account)
    assert commands == [("close_all", "risk_monitor", REASON), ("disable_trading", "risk_monitor", REASON)]
    assert audited == ["command_close_all", "risk_parameters_changed", "command_disable_trading"]
    assert len(callbacks) == 4  # close-all, risk_params and settings, disable-trading: all after commit


def test_the_traders_emergency_stop_is_the_same_stop_with_emergency_stop_on(account):
    trader = make_user(account.tenant)
    stopped = account_emergency_stop(account=account, by=trader)
    assert (stopped.trading_enabled, stopped.emergency_stop) == (True, True)
    commands, _ = _commands_and_events(account)
    assert commands == [("disable_trading", f"user:{trader.username}", "emergency stop")]


def test_trading_back_on_sends_enable_trading_and_leaves_an_emergency_stop_to_the_trader(account):
    account_trading_stop(account=account, actor="risk_monitor", reason=REASON, emergency=True)
    started = account_trading_start(account=account, actor="ops", reason="restored")
    assert (started.trading_enabled, started.emergency_stop) == (True, True)
    commands, _ = _commands_and_events(account)
    assert [kind for kind, *_ in commands] == ["disable_trading", "enable_trading"]


def test_a_stop_no_gateway_receives_raises_and_changes_nothing(account):
    """A command must never vanish: without trading's receiver the stop fails, and its flag change rolls back."""
    assert events.account_command_requested.disconnect(dispatch_uid="trading")
    try:
        with pytest.raises(RuntimeError, match="account_command_requested"):
            account_trading_stop(account=account, actor="risk_monitor", reason=REASON)
    finally:
        events.account_command_requested.connect(outbound.account_command_requested_receive, dispatch_uid="trading")
    with tenant_context(account.tenant_id):
        fresh = MT5Account.objects.get(pk=account.pk)
    assert (fresh.trading_enabled, fresh.config_version) == (True, account.config_version)
    assert _commands_and_events(account) == ([], [])
