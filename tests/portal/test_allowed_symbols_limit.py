"""allowed_symbols is limited where it is typed (portal form, admin, the service behind both) to what RISK_PARAMETERS
can carry (binproto.MAX_SYMBOLS names): a longer list would never reach the EA (issue 15, finding 8)."""

from __future__ import annotations

import html
import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ALLOWED_SYMBOLS_TOO_MANY, MT5Account, User
from accounts.services import account_risk_parameters_update
from binproto import MAX_SYMBOLS
from suho.routers import operator_path
from tests.factories import staff_login

RISK_FORM = {"trading_enabled": "on", "max_position_size": "2", "max_daily_loss": "300", "max_drawdown_percent": "15",
             "min_margin_level": "120", "sizing_method": "fixed_lots", "risk_percent": "1"}  # fmt: skip
TOO_MANY = ALLOWED_SYMBOLS_TOO_MANY.format(limit=MAX_SYMBOLS, count=MAX_SYMBOLS + 1)


def symbols(count: int) -> list[str]:
    return [f"SYM{i}" for i in range(count)]


def saved(account) -> MT5Account:
    with operator_path():
        return MT5Account.objects.get(pk=account.pk)


def test_the_portal_form_refuses_more_symbols_than_the_protocol_carries_and_changes_nothing(account, client_of):
    client = client_of(account.user)
    url = f"/portal/accounts/{account.account_id}/risk/"
    refused = client.post(url, {**RISK_FORM, "allowed_symbols": ", ".join(symbols(MAX_SYMBOLS + 1))})
    assert refused.status_code == 200 and html.escape(TOO_MANY) in refused.content.decode()
    after = saved(account)
    assert (after.config_version, after.allowed_symbols) == (account.config_version, account.allowed_symbols)
    assert client.post(url, {**RISK_FORM, "allowed_symbols": ", ".join(symbols(MAX_SYMBOLS))}).status_code == 302
    assert saved(account).allowed_symbols == symbols(MAX_SYMBOLS)


def test_the_admin_change_form_refuses_them_too(account):
    with operator_path():
        operator = User.objects.create_superuser(username="operator", email="op@suho.example", password="x" * 12)
    client = staff_login(Client(), operator)
    url = reverse("admin:accounts_mt5account_change", args=[account.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form.fields[name].prepare_value(form[name].value()) for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items() if value is not False}
    refused = client.post(url, {**data, "allowed_symbols": json.dumps(symbols(MAX_SYMBOLS + 1))})
    assert refused.status_code == 200 and html.escape(TOO_MANY) in refused.content.decode()
    assert saved(account).allowed_symbols == account.allowed_symbols
    assert client.post(url, {**data, "allowed_symbols": json.dumps(["EURUSD"])}).status_code == 302
    assert saved(account).allowed_symbols == ["EURUSD"]


def test_the_service_refuses_them_before_changing_anything(account):
    with pytest.raises(ValueError, match="protocol's limit"):
        account_risk_parameters_update(account=account, changes={"allowed_symbols": symbols(2000)}, actor="test")
    after = saved(account)
    assert (after.config_version, after.allowed_symbols) == (account.config_version, account.allowed_symbols)
