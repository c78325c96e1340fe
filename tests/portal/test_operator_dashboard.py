"""The operator dashboard is the admin index (issue 20): with known data in two tenants, each figure on the page an
operator sees after logging in with password and TOTP code equals an independent SQL count, and the admin list it
links to holds exactly that many rows; an overdue scheduled task is flagged, a fresh one is not."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.models import MT5Account, User
from accounts.totp import totp_code
from signals.models import TradingSignal
from suho.models import BeatTaskRun, OutboxMessage
from suho.routers import OPERATOR, operator_path
from tests.factories import make_account, make_quote, make_risk_event, make_signal, make_tenant, make_user

PASSWORD = "operator passphrase 1"
FIGURE = re.compile(r'<a data-figure="([\w-]+)" href="([^"]+)">(\d+)</a>')


@pytest.fixture
def operator(committed) -> Client:
    """Logged in through the admin's own form, with the current TOTP code."""
    with operator_path():
        User.objects.create_user(username="opdash", password=PASSWORD, is_staff=True, is_superuser=True)
    call_command("operator_totp_enable", "--username", "opdash", stdout=io.StringIO())
    with operator_path():
        secret = User.objects.get(username="opdash").totp_secret
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "opdash", "password": PASSWORD,
                                                          "otp_code": totp_code(secret)})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == "/admin/"
    return client


def _account(tenant, *, status: str, heard_ago: timedelta | None, **fields) -> MT5Account:
    account = make_account(tenant, make_user(tenant), **fields)
    heard = timezone.now() - heard_ago if heard_ago is not None else None
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(connection_status=status, last_heartbeat_at=heard)
    return account


def _known_data(now):
    first, second = make_tenant(), make_tenant()
    a_online = _account(first, status="online", heard_ago=timedelta(seconds=20))
    a_silent = _account(first, status="online", heard_ago=timedelta(minutes=9), name="Quiet EA")
    _account(first, status="offline", heard_ago=timedelta(hours=3))
    _account(first, status="online", heard_ago=timedelta(seconds=5), is_active=False)  # a disabled account
    b_online = _account(second, status="online", heard_ago=timedelta(seconds=50))
    b_offline = _account(second, status="offline", heard_ago=None)
    for account, ago in ((a_online, 5), (a_online, 15), (b_online, 30), (b_online, 200)):
        make_quote(account, time=now - timedelta(seconds=ago))
    for account, status in ((a_online, "pending"), (a_online, "pending"), (a_silent, "rejected"),
                            (b_online, "executed"), (b_offline, "cancelled")):  # fmt: skip
        make_signal(account, status=status, time=now - timedelta(seconds=30))
    make_signal(b_online, status="pending", time=now - timedelta(days=2), valid_until=now - timedelta(days=2))
    make_risk_event(a_online, severity="warning")
    make_risk_event(a_silent, severity="warning")
    make_risk_event(b_online, severity="critical")
    make_risk_event(b_online, severity="critical", status="resolved")
    with operator_path():
        for n, (published, parked) in enumerate([(None, None), (None, None), (None, now), (now, None)]):
            OutboxMessage.objects.create(tenant_id=second.id, subject="mt5.test", payload=b"{}", msg_id=f"t{n}",
                                         published_at=published, parked_at=parked)  # fmt: skip
        BeatTaskRun.objects.create(task="suho.tasks.outbox_drain_task", started_at=now - timedelta(minutes=10),
                                   finished_at=now - timedelta(minutes=10), state="SUCCESS")  # fmt: skip
        BeatTaskRun.objects.create(task="signals.tasks.signals_expire_stale_task", started_at=now, state="STARTED")


def _sql(query: str) -> dict:
    """Independent counts, straight SQL as the operator role (every tenant): {key: count}."""
    with connections[OPERATOR].cursor() as cursor:
        cursor.execute(query)
        return {str(key): count for key, count in cursor.fetchall()}


def _clear_of_midnight(margin: timedelta = timedelta(minutes=1)) -> None:
    """Wait until `margin` away from midnight UTC: "signals today" must count the same day when the data is
    made and when the page and the SQL read it."""
    now = timezone.now()
    into_day = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    if into_day < margin:
        time.sleep((margin - into_day).total_seconds())
    elif into_day > timedelta(days=1) - margin:
        time.sleep((timedelta(days=1) - into_day + margin).total_seconds())


def test_every_figure_matches_sql_and_its_admin_list_across_two_tenants(operator):
    _clear_of_midnight()
    now = timezone.now()
    _known_data(now)

    response = operator.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    figures = {name: (href.replace("&amp;", "&"), int(count)) for name, href, count in FIGURE.findall(html)}

    accounts = _sql("""
        SELECT CASE WHEN connection_status = 'offline' THEN 'offline'
                    WHEN last_heartbeat_at >= now() - interval '2 minutes' THEN 'online' ELSE 'silent' END, count(*)
        FROM mt5_user_accounts WHERE is_active GROUP BY 1""")
    ticks = _sql("SELECT 'ticks', count(*) FROM mt5_broker_quotes WHERE time >= now() - interval '1 minute'")
    signals = _sql("""SELECT status, count(*) FROM mt5_trading_signals
                      WHERE time >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' GROUP BY status""")
    risks = _sql("SELECT severity, count(*) FROM mt5_risk_events WHERE status = 'open' GROUP BY severity")
    outbox = _sql("""SELECT CASE WHEN parked_at IS NULL THEN 'pending' ELSE 'parked' END, count(*) FROM suho_outbox
                     WHERE published_at IS NULL GROUP BY 1""")
    assert accounts == {"online": 2, "silent": 1, "offline": 2} and ticks == {"ticks": 3}, "the known data"
    assert signals == {"pending": 2, "rejected": 1, "executed": 1, "cancelled": 1}
    assert risks == {"warning": 2, "critical": 1} and outbox == {"pending": 2, "parked": 1}

    expected = {
        **{f"eas-{state}": n for state, n in accounts.items()},
        **ticks,
        **{f"signals-{status}": signals.get(status, 0) for status in TradingSignal.Status.values},
        **{f"risk-{severity}": n for severity, n in risks.items()},
        **{f"outbox-{state}": n for state, n in outbox.items()},
    }  # fmt: skip
    shown = {name: count for name, (_, count) in figures.items()}
    assert {name: shown.get(name) for name in expected} == expected
    for name, (href, count) in figures.items():
        listed = operator.get(href)
        assert listed.status_code == 200, (name, href)
        assert listed.context_data["cl"].result_count == count, (name, href)

    assert "Quiet EA" in html, "the silent EA is named"
    beat = dict(re.findall(r'<tr class="beat-task" data-task="([\w-]+)">(.*?)</tr>', html, re.S))
    assert "overdue" in beat["outbox-drain"] and "overdue" not in beat["signals-expire-stale"]
    assert "no run recorded" in beat["model-retrain"] and "overdue" not in beat["model-retrain"]
    assert 'id="warn-beat"' in html and 'id="warn-parked"' in html
    assert dict(re.findall(r'<td data-health="(\w+)">([^<]+)</td>', html)) == {
        "database": "ok",
        "redis": "ok",
        "nats": "ok",
    }
    assert 'id="warn-health"' not in html
    assert "/admin/accounts/mt5account/" in html, "the list of models is still on the index"


def test_the_actions_are_on_the_lists_the_figures_open(operator):
    _clear_of_midnight()
    now = timezone.now()
    _known_data(now)
    figures = dict((name, href.replace("&amp;", "&"))
                   for name, href, _ in FIGURE.findall(operator.get("/admin/").content.decode()))  # fmt: skip
    for figure, action in (("eas-silent", "disable_trading"), ("eas-silent", "close_all_positions"),
                           ("signals-pending", "cancel"), ("outbox-parked", "requeue")):  # fmt: skip
        assert f'value="{action}"' in operator.get(figures[figure]).content.decode(), (figure, action)


def test_the_dashboard_is_for_staff_with_the_second_factor_only(committed):
    tenant = make_tenant()
    trader = make_user(tenant)
    client = Client()
    client.force_login(trader)
    for path in ("/admin/", "/admin/dashboard/"):
        response = client.get(path, follow=True)
        assert response.redirect_chain[-1][0].startswith("/admin/login/"), path
    with operator_path():
        staff = User.objects.create_user(username="nocode", password=PASSWORD, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)  # a staff session made without the code is signed out
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
