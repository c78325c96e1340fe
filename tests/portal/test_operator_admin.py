"""Operator admin: every model's list renders for staff (operator path, every tenant), and the
actions — disable trading, close all, emergency stop per account and per tenant — go through audited services."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.models import MT5Account, Tenant, User
from compliance.models import AuditLog
from suho.routers import operator_path
from tests.factories import make_balance, make_order, make_quote, make_risk_event, make_signal, staff_login
from trading.models import EACommand


@pytest.fixture
def operator(committed):
    with operator_path():
        user = User.objects.create_superuser(username="operator", email="op@suho.example", password="x" * 12)
    client = Client()
    staff_login(client, user)
    return client


def _op(query):
    with operator_path():
        return list(query)


def test_every_registered_model_lists_and_searches_for_staff(operator, account):
    make_order(account)
    make_balance(account)
    make_quote(account)
    make_signal(account)
    make_risk_event(account)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert operator.get(url).status_code == 200, url
        assert operator.get(url, {"q": "x"}).status_code == 200, url


def _action(client, model: str, action: str, pk) -> None:
    url = reverse(f"admin:{model}_changelist")
    response = client.post(url, {"action": action, "_selected_action": [str(pk)]})
    assert response.status_code == 302


def test_disable_trading_and_close_all_are_commands_and_audited(operator, account):
    _action(operator, "accounts_mt5account", "disable_trading", account.pk)
    _action(operator, "accounts_mt5account", "close_all_positions", account.pk)
    assert _op(MT5Account.objects.filter(pk=account.pk))[0].trading_enabled is False
    kinds = _op(EACommand.objects.filter(account_id=account.pk).order_by("created_at").values_list("kind", flat=True))
    assert kinds == ["disable_trading", "close_all"]
    events = set(_op(AuditLog.objects.filter(account_id=account.pk).values_list("event_type", flat=True)))
    assert {"risk_parameters_changed", "command_disable_trading", "command_close_all"} <= events


def test_tenant_emergency_stop_stops_every_account(operator, account, trader):
    from accounts.services import mt5_account_create

    second = mt5_account_create(user=trader, name="Second")
    _action(operator, "accounts_tenant", "emergency_stop", trader.tenant_id)
    assert _op(Tenant.objects.filter(pk=trader.tenant_id))[0].trading_enabled is False
    stopped = _op(MT5Account.objects.filter(tenant_id=trader.tenant_id).values_list("emergency_stop", flat=True))
    assert stopped == [True, True]
    assert len(_op(EACommand.objects.filter(account_id__in=[account.pk, second.pk], kind="disable_trading"))) == 2
    assert _op(AuditLog.objects.filter(tenant_id=trader.tenant_id, event_type="tenant_emergency_stop"))
