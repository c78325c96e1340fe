"""bench.stack.PostgresWaits: what the storm bench reports PostgreSQL's backends were doing, sampled from
pg_stat_activity on a real server: a backend waiting for another's advisory lock is seen as such, an idle one as
idle, and the connections it is told to leave out (by default this process's Django ones) and its own are left out."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from psycopg import sql

from bench import reconnect
from bench.stack import PostgresWaits, wait_label
from suho.dbsetup import database_drop, database_url
from tests.servers import owner_conninfo

ADVISORY = "waiting for an advisory lock (a tenant's audit chain, decision 0004)"
IDLE = "idle: waiting for the server's next statement"


@pytest.fixture
def scratch_database(django_db_setup):
    """A database of the test's own, so that no other backend shows (the test database has the pool's idle
    connections and other tests' servers'); named like the test database's side ones, so a killed run's is dropped."""
    name = f"{connections['default'].settings_dict['NAME']}_pgwaits"  # test_<name>_<pid>_pgwaits
    database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=name)
    with psycopg.connect(database_url(settings.DATABASE_ADMIN_URL, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=name)


def test_a_backend_waiting_for_an_advisory_lock_and_an_idle_one_are_told_apart(scratch_database):
    url = database_url(settings.DATABASE_ADMIN_URL, scratch_database)
    holder, waiter, idle, left_out = (psycopg.connect(url, autocommit=True) for _ in range(4))
    holder.execute("SELECT pg_advisory_lock(4242)")
    blocked = threading.Thread(target=lambda: waiter.execute("SELECT pg_advisory_lock(4242)"))
    blocked.start()
    try:
        with PostgresWaits(interval_s=0.01, conninfo=url, leave_out=[left_out.info.backend_pid]) as waits:
            time.sleep(0.3)
    finally:
        holder.execute("SELECT pg_advisory_unlock(4242)")
        blocked.join(5)
        for connection in (holder, waiter, idle, left_out):
            connection.close()
    result = waits.result()
    assert result["rounds"] >= 5
    assert result["shares"][ADVISORY] > 0.2  # the waiter, one backend of the three, nearly every round
    assert result["shares"][IDLE] > 0.5  # the holder and the idle one
    assert result["backends"] == pytest.approx(3, abs=0.5), "holder, waiter, idle: not the left-out one or the sampler"


@pytest.mark.django_db(databases=["default", "owner"])
def test_by_default_this_processs_django_connections_are_left_out():
    connections["owner"].ensure_connection()
    with PostgresWaits(interval_s=0.01, conninfo=owner_conninfo()) as waits:
        pass
    assert connections["owner"].connection.info.backend_pid in waits.leave_out


@pytest.mark.parametrize(
    ("row", "label"),
    [
        (("active", None, None), "running a statement"),
        (("active", "Lock", "advisory"), ADVISORY),
        (("active", "Lock", "transactionid"), "waiting for a row or table lock"),
        (("active", "LWLock", "WALWrite"), "committing: waiting for the WAL flush"),
        (("idle", "Client", "ClientRead"), IDLE),
        (("active", "LWLock", "BufferContent"), "active: LWLock BufferContent"),
    ],
)
def test_each_state_and_wait_gets_its_label(row, label):
    assert wait_label(*row) == label


def test_the_storm_report_says_what_postgresql_was_doing():
    waits = {"interval_s": 0.02, "rounds": 500, "backends": 10.4,
             "shares": {IDLE: 0.81, ADVISORY: 0.15, "running a statement": 0.04}}  # fmt: skip
    result = {"eas": 5_000, "resynced": 5_000, "all_resynced_s": 20.0, "resync_p50_s": 1.0, "resync_p99_s": 2.0,
              "hellos_per_s": 250.0, "server_cpu_s": 9.0, "refused": 0, "refusals": [], "connect_failures": 0,
              "load_processes": 4, "pg_waits": waits}  # fmt: skip
    text = reconnect.markdown(result)
    assert (f"(pg_stat_activity every 20 ms during the storm, 10.4 on average) were: {IDLE} 81%; {ADVISORY} 15%; "
            "running a statement 4%.") in text  # fmt: skip
