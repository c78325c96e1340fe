"""Fixtures for the learning-loop tests: committed rows (the loop reads every tenant through the operator role),
removed by the owner afterwards."""

from __future__ import annotations

import pytest
from django.db import connections
from factories import make_account, make_tenant, make_user

from signals import learning

TRUNCATE = "TRUNCATE suho_tenants, suho_users, mt5_audit_log, mt5_reference_quotes, suho_model_versions CASCADE"


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        learning._loaded.clear()
        try:
            yield
        finally:
            for connection in connections.all():
                if connection.in_atomic_block:
                    connection.rollback()
            with connections["owner"].cursor() as cursor:
                cursor.execute(TRUNCATE)
            learning._loaded.clear()


@pytest.fixture
def account(committed):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))
