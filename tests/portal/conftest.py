"""Fixtures for the portal tests: committed rows on every alias (requests read through the service role, sign-up
writes identity through the operator role), truncated by the owner afterwards."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import MT5Account, User
from accounts.services import mt5_account_create, tenant_signup

PASSWORD = "correct horse battery staple"


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
