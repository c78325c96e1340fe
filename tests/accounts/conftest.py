"""Fixtures for the accounts tests: committed rows on every alias (the service, operator and owner roles are separate
connections, and authentication reads through one and writes through another), removed by the owner afterwards."""

from __future__ import annotations

import itertools
import random

import pytest
from django.db import connections

from accounts.models import MT5Account, Tenant, User
from accounts.services import api_key_create
from suho.routers import operator_path

_serial = itertools.count(1)


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


def tenant_make(**fields) -> Tenant:
    n = next(_serial)
    with operator_path():
        return Tenant.objects.create(**{"name": f"Tenant {n}", "slug": f"tenant-{n}", **fields})


def account_make(tenant: Tenant, **fields) -> MT5Account:
    n = next(_serial)
    with operator_path():
        user = User.objects.create_user(username=f"trader{n}", email=f"trader{n}@example.com", tenant=tenant)
        return MT5Account.objects.create(tenant=tenant, user=user, name=f"EA {n}", account_number=70000 + n, **fields)


def remote_addr_make() -> str:
    """A fresh client address per test: the per-IP failure counters live in Redis across tests."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


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
