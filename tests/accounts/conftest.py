"""Fixtures for the accounts tests: committed rows on every alias (the service, operator and owner roles are separate
connections, and authentication reads through one and writes through another), removed by the owner afterwards."""

from __future__ import annotations

import pytest

from accounts.models import MT5Account, Tenant
from accounts.services import api_key_create
from tests.accounts.helpers import account_make, remote_addr_make, tenant_make


@pytest.fixture
def tenant(committed) -> Tenant:
    return tenant_make()


@pytest.fixture
def account(tenant) -> MT5Account:
    return account_make(tenant)


@pytest.fixture
def issued(account):
    """(ApiKey, plaintext key) for `account`."""
    return api_key_create(account=account, label="test")


@pytest.fixture
def remote_addr() -> str:
    return remote_addr_make()
