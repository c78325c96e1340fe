"""Fixtures for the portal tests: committed rows on every alias (requests read through the service role, sign-up
writes identity through the operator role), truncated by the owner afterwards."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import Client

from accounts.models import MT5Account, User
from accounts.services import mt5_account_create, tenant_signup

PASSWORD = "correct horse battery staple"


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            for connection in connections.all():
                if connection.in_atomic_block:
                    connection.rollback()
            with connections["owner"].cursor() as cursor:
                cursor.execute("TRUNCATE suho_tenants, suho_users, mt5_audit_log, django_session CASCADE")


def trader_make(name: str) -> User:
    return tenant_signup(name=name, username=name.lower(), email=f"{name.lower()}@example.com", password=PASSWORD)


@pytest.fixture
def trader(committed) -> User:
    return trader_make("Alice")


@pytest.fixture
def account(trader) -> MT5Account:
    return mt5_account_create(user=trader, name="Main demo", broker="ICMarkets", server="ICMarkets-Demo")


@pytest.fixture
def client_of():
    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
