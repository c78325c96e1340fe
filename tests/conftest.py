"""Test set-up: a fresh test database made like production (roles, grants, RLS) and migrated as the owner."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from suho.dbsetup import database_drop, database_setup
from suho.streams import streams_ensure

ALL_DATABASES = ["default", "owner", "operator"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """Replace pytest-django's creation: the service role may not create databases or run migrations."""
    name = "test_" + settings.DATABASES["default"]["NAME"]
    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
        database_setup(
            admin_url=settings.DATABASE_ADMIN_URL,
            database=name,
            owner=settings.DB_OWNER_USER,
            service=settings.DB_SERVICE_USER,
            operator=settings.DB_OPERATOR_USER,
            passwords=settings.DB_ROLE_PASSWORDS,
            timescale=settings.TIMESCALEDB,
            drop_first=True,
        )
        for alias in ALL_DATABASES:
            connections[alias].settings_dict["NAME"] = name
        call_command("migrate", database="owner", verbosity=0, interactive=False)
    streams_ensure()  # as `make run` does: the JetStream streams exist before anything publishes
    yield
    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
        database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=name)
