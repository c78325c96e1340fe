"""Acceptance (issue 7): an account that lost $523.45 today gets one critical `daily_loss_limit` event, its EA
receives DISABLE_TRADING, its trading flag goes off, operators are notified once; later runs add nothing; the next
UTC day the event resolves."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from factories import make_account, make_order, make_tenant, make_user

import binproto
from accounts.models import MT5Account
from accounts.services import api_key_create
from compliance.models import AuditLog, RiskEvent
from compliance.risk import risk_checks_run
from suho.bus import get_bus
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect
from trading.models import EACommand


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def losing_account(committed):
    """Two orders closed today (UTC) for -$300.00 and -$223.45, one earlier winner yesterday that must not count."""
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant), name="Loser")
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    closed_at = today + (now - today) / 2
    for profit in ("-300.00", "-223.45"):
        make_order(account, time=closed_at - timedelta(minutes=5), status="closed", close_time=closed_at,
                   close_price=Decimal("1.08000"), profit=Decimal(profit))  # fmt: skip
    make_order(account, time=today - timedelta(hours=3), status="closed", close_time=today - timedelta(hours=2),
               close_price=Decimal("1.09000"), profit=Decimal("900.00"))  # fmt: skip
    return account, now


def state(account):
    with tenant_context(account.tenant_id):
        return (
            list(RiskEvent.objects.filter(account_id=account.pk)),
            list(EACommand.objects.filter(account_id=account.pk)),
            MT5Account.objects.get(pk=account.pk),
        )


def test_a_daily_loss_over_the_limit_disables_trading_once_and_resolves_the_next_day(
    losing_account, notify_settings, caplog
):
    account, now = losing_account
    published: list[tuple[str, bytes]] = []
    bus = get_bus()
    for subject in (f"mt5.command.{account.pk}.>", f"mt5.config.{account.pk}.risk_params"):
        bus.subscribe(subject, lambda s, d: published.append((s, d))).result(timeout=5)

    assert risk_checks_run(now=now)["opened"] == 1

    events, commands, fresh = state(account)
    assert [(e.event_type, e.severity, e.status, e.action_taken) for e in events] == [
        ("daily_loss_limit", "critical", "open", "disable_trading")
    ]
    assert (events[0].threshold_value, events[0].current_value) == (Decimal(-500), Decimal("-523.45"))
    assert events[0].message == "Daily loss limit exceeded: -$523.45"
    assert events[0].notified_at is not None
    assert [(c.kind, c.status, c.issued_by) for c in commands] == [("disable_trading", "pending", "risk_monitor")]
    assert fresh.trading_enabled is False
    assert fresh.config_version == account.config_version + 1

    assert wait_for(lambda: {s for s, _ in published} >= {
        f"mt5.command.{account.pk}.disable_trading", f"mt5.config.{account.pk}.risk_params"})  # fmt: skip
    command = json.loads(next(d for s, d in published if s.endswith(".disable_trading")))
    assert command["command_id"] == str(commands[0].command_id)
    assert json.loads(next(d for s, d in published if s.endswith(".risk_params")))["trading_enabled"] is False

    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert "daily_loss_limit" in mail.outbox[0].subject
    assert wait_for(lambda: len(notify_settings) == 1)
    assert notify_settings[0]["event_type"] == "daily_loss_limit"
    assert "not queued" not in caplog.text  # it went through the Celery task
    assert Decimal(notify_settings[0]["current"]) == Decimal("-523.45")

    # Later runs the same day: nothing new anywhere. (Between `now` and midnight, however close to it `now` is.)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
    assert risk_checks_run(now=now + (midnight - now) / 3)["opened"] == 0
    assert risk_checks_run(now=now + (midnight - now) * 2 / 3)["opened"] == 0
    events, commands, _ = state(account)
    assert (len(events), len(commands), len(mail.outbox)) == (1, 1, 1)
    get_bus().flush()  # notifications run synchronously after commit; publishes are flushed to the server
    assert len(notify_settings) == 1
    assert sum(s.endswith(".disable_trading") for s, _ in published) == 1

    # The next UTC day the loss no longer counts: the event resolves, audited; trading stays off for an operator.
    assert risk_checks_run(now=midnight + timedelta(minutes=1))["resolved"] == 1
    events, _, fresh = state(account)
    assert [(e.status, e.resolved_at) for e in events] == [("resolved", midnight + timedelta(minutes=1))]
    assert fresh.trading_enabled is False
    with tenant_context(account.tenant_id):
        kinds = list(AuditLog.objects.filter(account_id=account.pk, event_category__in=["risk", "config", "command"])
                     .order_by("chain_seq").values_list("event_type", flat=True))  # fmt: skip
    assert kinds == [
        "risk_daily_loss_limit",
        "risk_parameters_changed",
        "command_disable_trading",
        "risk_daily_loss_limit_resolved",
    ]


def test_a_loss_within_the_limit_opens_nothing(committed, notify_settings):
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant), max_daily_loss=Decimal("600"))
    now = timezone.now()
    make_order(account, time=now - timedelta(seconds=2), status="closed", close_time=now,
               close_price=Decimal("1.08"), profit=Decimal("-523.45"))  # fmt: skip
    assert risk_checks_run(now=now) == {"opened": 0, "resolved": 0, "failed_tenants": 0}
    events, commands, fresh = state(account)
    assert (events, commands, fresh.trading_enabled, mail.outbox) == ([], [], True, [])


def test_a_failing_webhook_is_logged_and_the_event_still_recorded(committed, settings, caplog):
    settings.RISK_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"
    settings.RISK_WEBHOOK_TIMEOUT_S = 1
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    now = timezone.now()
    make_order(account, time=now - timedelta(seconds=2), status="closed", close_time=now,
               close_price=Decimal("1.08"), profit=Decimal("-501"))  # fmt: skip
    assert risk_checks_run(now=now)["opened"] == 1
    assert "operator webhook failed" in caplog.text
    events, commands, _ = state(account)
    assert len(events) == 1 and len(commands) == 1


def _connected_ea_fixture():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant), name="Live EA")
    with tenant_context(tenant.id):
        _key, secret = api_key_create(account=account)
    return account, secret


def _lose_today(account):
    now = timezone.now()
    for profit in ("-300.00", "-223.45"):
        make_order(account, time=now - timedelta(seconds=2), status="closed", close_time=now,
                   close_price=Decimal("1.08"), profit=Decimal(profit))  # fmt: skip


async def test_a_connected_ea_receives_disable_trading_and_its_new_risk_parameters(committed):
    account, secret = await database_sync_to_async(_connected_ea_fixture)()
    communicator, result = await connect(account, secret)
    assert result.status == binproto.AuthStatus.OK
    await database_sync_to_async(_lose_today)(account)

    totals = await database_sync_to_async(risk_checks_run)()

    assert totals["opened"] == 1
    received = {}
    deadline = time.monotonic() + 15  # generous: the shared NATS and database may be busy
    while not {"command", "risk"} <= received.keys() and time.monotonic() < deadline:
        frame = await communicator.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        message = binproto.decode(frame["bytes"])
        if isinstance(message, binproto.Command):
            received["command"] = message
        elif isinstance(message, binproto.RiskParameters):
            received["risk"] = message
    assert received["command"].command == binproto.CommandType.DISABLE_TRADING
    assert received["risk"].trading_enabled is False
    await communicator.disconnect()


def test_an_operator_restores_trading_with_enable_trading_sent_and_audited(losing_account):
    account, now = losing_account
    risk_checks_run(now=now)
    out = io.StringIO()
    call_command("trading_enable", "--account", str(account.pk), "--actor", "ops-alice", stdout=out)
    _, commands, fresh = state(account)
    assert fresh.trading_enabled is True
    assert [c.kind for c in sorted(commands, key=lambda c: c.created_at)] == ["disable_trading", "enable_trading"]
    with tenant_context(account.tenant_id):
        change = AuditLog.objects.filter(event_type="risk_parameters_changed").order_by("-chain_seq").first()
    assert change.metadata["changes"] == {"trading_enabled": {"old": False, "new": True}}
    assert change.metadata["actor"] == "ops-alice"
