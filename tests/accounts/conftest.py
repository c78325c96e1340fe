"""Fixtures for the accounts tests: committed rows on every alias (the service, operator and owner roles are separate
connections, and authentication reads through one and writes through another), removed by the owner afterwards."""

from __future__ import annotations

import pytest
from django.db import connections

from accounts.models import MT5Account, Tenant
from accounts.services import api_key_create
from tests.accounts.helpers import account_make, remote_addr_make, tenant_make


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Database access without a wrapping test transaction; every identity and tenant row is truncated afterwards.

    pytest-django's transactional flush runs as each alias's role, and the service role may not TRUNCATE.
    """
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            for connection in connections.all():
                if connection.in_atomic_block:
                    connection.rollback()  # a failed test may leave one open
            with connections["owner"].cursor() as cursor:
                cursor.execute("TRUNCATE suho_tenants, suho_users, mt5_audit_log CASCADE")


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
