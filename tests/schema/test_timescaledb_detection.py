"""`db_setup` decides "TimescaleDB or not" from what the server can do, not from the package alone: installed but not
in `shared_preload_libraries`, `auto` takes the plain path with a notice and `on` refuses, naming the setting, before
anything is created. The not-preloaded server is CI's (settings.TIMESCALEDB_NOT_PRELOADED_URL)."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest
from django.conf import settings

from suho.dbsetup import (
    TIMESCALEDB_AUTO_PLAIN,
    TIMESCALEDB_MISSING,
    TIMESCALEDB_NOT_PRELOADED,
    database_drop,
    database_setup,
)


def setup(admin_url: str, database: str, timescale: str) -> bool:
    return database_setup(
        admin_url=admin_url, database=database, owner=settings.DB_OWNER_USER, service=settings.DB_SERVICE_USER,
        operator=settings.DB_OPERATOR_USER, passwords=settings.DB_ROLE_PASSWORDS, timescale=timescale,
    )  # fmt: skip


def admin(admin_url: str, sql: str, params: list | None = None) -> list[tuple]:
    url = admin_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def extensions(admin_url: str, database: str) -> list[str]:
    url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()]


@pytest.fixture
def database():
    """A database name of its own, dropped from whichever server a test made it on."""
    name = f"suho_detect_{uuid.uuid4().hex[:8]}"
    made_on = []
    yield name, made_on
    for url in made_on:
        database_drop(admin_url=url, database=name)


@pytest.fixture
def not_preloaded():
    url = settings.TIMESCALEDB_NOT_PRELOADED_URL
    if not url:
        pytest.skip("no server with timescaledb installed but not preloaded (SUHO_TEST_TIMESCALEDB_NOT_PRELOADED_URL)")
    assert admin(url, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'") == [(1,)]
    assert "timescaledb" not in admin(url, "SELECT current_setting('shared_preload_libraries')")[0][0]
    return url


def test_installed_but_not_preloaded_auto_takes_the_plain_path_with_a_one_line_notice(not_preloaded, database, caplog):
    name, made_on = database
    made_on.append(not_preloaded)
    with caplog.at_level(logging.WARNING, logger="suho.dbsetup"):
        assert setup(not_preloaded, name, "auto") is False
    assert [record.getMessage() for record in caplog.records if record.name == "suho.dbsetup"] == [
        TIMESCALEDB_AUTO_PLAIN
    ]
    assert "\n" not in TIMESCALEDB_AUTO_PLAIN
    assert "timescaledb" not in extensions(not_preloaded, name)


def test_installed_but_not_preloaded_on_refuses_naming_shared_preload_libraries_and_creates_nothing(
    not_preloaded, database
):
    name, made_on = database
    made_on.append(not_preloaded)
    with pytest.raises(RuntimeError) as refused:
        setup(not_preloaded, name, "on")
    assert str(refused.value) == TIMESCALEDB_NOT_PRELOADED
    assert "shared_preload_libraries" in TIMESCALEDB_NOT_PRELOADED
    assert admin(not_preloaded, "SELECT count(*) FROM pg_database WHERE datname = %s", [name]) == [(0,)]


def test_without_the_package_on_refuses_and_auto_takes_the_plain_path_silently(database, caplog):
    name, made_on = database
    url = settings.DATABASE_ADMIN_URL
    if admin(url, "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'") != [(0,)]:
        pytest.skip("this server has the timescaledb package")
    with pytest.raises(RuntimeError, match=TIMESCALEDB_MISSING):
        setup(url, name, "on")
    assert admin(url, "SELECT count(*) FROM pg_database WHERE datname = %s", [name]) == [(0,)]
    made_on.append(url)
    with caplog.at_level(logging.WARNING, logger="suho.dbsetup"):
        assert setup(url, name, "auto") is False
    assert not [record for record in caplog.records if record.name == "suho.dbsetup"]


def test_off_never_installs_timescaledb_even_where_the_server_preloads_it(database):
    name, made_on = database
    url = settings.DATABASE_ADMIN_URL
    made_on.append(url)
    assert setup(url, name, "off") is False
    assert "timescaledb" not in extensions(url, name)
