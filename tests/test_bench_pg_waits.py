"""bench.stack.PostgresWaits: what the storm bench reports PostgreSQL's backends were doing, sampled from
pg_stat_activity on the real database: a backend waiting for another's advisory lock is seen as such, an idle one as
idle, and the sampling process's own connections are left out."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connections

from bench import reconnect
from bench.stack import PostgresWaits, wait_label
from tests.servers import owner_conninfo

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
ADVISORY = "waiting for an advisory lock (a tenant's audit chain, decision 0004)"
IDLE = "idle: waiting for the server's next statement"


def test_a_backend_waiting_for_an_advisory_lock_and_an_idle_one_are_told_apart():
    connections["owner"].ensure_connection()  # this process's own: left out
    holder = psycopg.connect(owner_conninfo(), autocommit=True)
    waiter = psycopg.connect(owner_conninfo(), autocommit=True)
    idle = psycopg.connect(owner_conninfo(), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(4242)")
    blocked = threading.Thread(target=lambda: waiter.execute("SELECT pg_advisory_lock(4242)"))
    blocked.start()
    try:
        with PostgresWaits(interval_s=0.01, conninfo=owner_conninfo()) as waits:
            time.sleep(0.3)
    finally:
        holder.execute("SELECT pg_advisory_unlock(4242)")
        blocked.join(5)
        for connection in (holder, waiter, idle):
            connection.close()
    result = waits.result()
    assert result["rounds"] >= 5
    assert result["shares"][ADVISORY] > 0.2  # the waiter, one backend of the three, nearly every round
    assert result["shares"][IDLE] > 0.5  # the holder and the idle one
    assert result["backends"] == pytest.approx(3, abs=0.5), "this process's own connection and the sampler's left out"


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
