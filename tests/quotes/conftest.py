"""Fixtures for the quotes tests: committed rows (feeds write from other threads), removed by the owner afterwards."""

from __future__ import annotations

import pytest
from django.db import connections


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Database access without a wrapping test transaction; tenants, their rows and reference quotes truncated after."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            for connection in connections.all():
                if connection.in_atomic_block:
                    connection.rollback()
            with connections["owner"].cursor() as cursor:
                cursor.execute("TRUNCATE suho_tenants, suho_users, mt5_audit_log, mt5_reference_quotes CASCADE")
