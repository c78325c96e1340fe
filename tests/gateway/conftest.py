"""Gateway test fixtures: a committed tenant, account and API key, cleaned up as the owner."""

from __future__ import annotations

import uuid

import pytest
from django.db import connections

from accounts.models import MT5Account, Tenant, User
from accounts.services import api_key_create
from suho.tenancy import tenant_context

OWNER_TRUNCATE = (
    "TRUNCATE mt5_broker_quotes, mt5_account_balance_history, mt5_ea_heartbeat, mt5_trade_orders, mt5_trade_events,"
    " mt5_signal_executions, mt5_trading_signals, mt5_ea_commands, mt5_ea_sessions, mt5_api_keys,"
    " mt5_user_accounts, mt5_audit_log, suho_users, suho_tenants CASCADE"
)


@pytest.fixture
def ea_account():
    """A committed tenant, user, account and API key (the socket runs in other threads and connections)."""
    tenant = Tenant.objects.create(name="Alpha", slug=f"alpha-{uuid.uuid4().hex[:6]}")
    user = User.objects.create_user(username=f"u{uuid.uuid4().hex[:8]}", password="x" * 12, tenant=tenant)
    with tenant_context(tenant.id):
        account = MT5Account.objects.create(tenant=tenant, user=user, name="EA")
        _key, secret = api_key_create(account=account)
    yield tenant, account, secret
    for alias in ("default", "operator"):
        connections[alias].close()
    with connections["owner"].cursor() as cursor:
        cursor.execute(OWNER_TRUNCATE)  # TRUNCATE fires no row triggers: the audit log's guard is for DELETE
