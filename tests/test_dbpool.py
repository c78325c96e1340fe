"""suho/dbpool.py: a pooled connection is lent without asking the server only when it came back moments ago and
the server has not written to it since; otherwise the pool asks, and a dead one is never lent."""

from __future__ import annotations

import os
import resource
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from psycopg_pool import ConnectionPool

from suho import dbpool
from suho.dbsetup import database_url


@pytest.fixture
def one_connection_pool(committed):
    """The service pool shrunk to one connection, so the connection handed back is the next one lent."""
    service = connections["default"]
    service.close()
    service.close_pool()
    options = service.settings_dict["OPTIONS"]
    saved = options["pool"]
    options["pool"] = {**saved, "min_size": 0, "max_size": 1}
    try:
        yield service
    finally:
        service.close()
        service.close_pool()
        options["pool"] = saved


@pytest.fixture
def server_asked(monkeypatch) -> list:
    """Each time the pool asks the server whether a connection is alive (psycopg_pool's own check)."""
    asked = []
    ask = ConnectionPool.check_connection

    def counted(connection):
        asked.append(connection)
        ask(connection)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    return asked


def backend_pid(service) -> int:
    """The server process of the connection the pool lends now; the connection goes back afterwards."""
    try:
        with service.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        service.close()


def test_a_connection_back_moments_ago_is_lent_without_asking_the_server(one_connection_pool, server_asked):
    first = backend_pid(one_connection_pool)
    asked_before = len(server_asked)  # a new connection has never come back: the pool asks once
    assert backend_pid(one_connection_pool) == first
    assert backend_pid(one_connection_pool) == first
    assert len(server_asked) == asked_before


def test_a_connection_idle_for_longer_is_asked(one_connection_pool, server_asked, monkeypatch):
    first = backend_pid(one_connection_pool)
    monkeypatch.setattr(dbpool, "FRESH_S", 0.0)
    asked_before = len(server_asked)
    assert backend_pid(one_connection_pool) == first
    assert len(server_asked) == asked_before + 1


def test_a_connection_whose_server_process_ended_while_it_was_idle_is_never_lent(one_connection_pool, server_asked):
    first = backend_pid(one_connection_pool)
    with psycopg.connect(database_url(settings.DATABASE_ADMIN_URL, "postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [first]).fetchone()[0]:
            assert time.monotonic() < deadline, "the server process did not end"
            time.sleep(0.05)
    asked_before = len(server_asked)
    second = backend_pid(one_connection_pool)  # the work succeeds, on a new connection
    assert second != first
    assert len(server_asked) > asked_before  # the server had written to the idle one, so the pool asked


@pytest.fixture
def descriptors_above_1023():
    """This process holds over a thousand more open files, so the next connection's descriptor is above 1023 (a
    gateway with thousands of sockets opens its later database connections there)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-file limit ({hard}) leaves no room for a descriptor above 1023")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connection_with_a_high_descriptor_back_moments_ago_is_lent_without_asking(
    one_connection_pool, server_asked, descriptors_above_1023
):
    first = backend_pid(one_connection_pool)
    with one_connection_pool.cursor() as cursor:
        assert cursor.connection.fileno() > 1023  # select() would refuse it
    one_connection_pool.close()
    asked_before = len(server_asked)
    assert backend_pid(one_connection_pool) == first
    assert len(server_asked) == asked_before
