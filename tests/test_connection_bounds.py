"""A server process holds a bounded number of PostgreSQL connections (issue 15, finding 2): a login flood queues for
them, or is told 503 `database_busy`, instead of exhausting the server's slots and answering 500.

Counted where the finding was made: the TCP connections a real daphne process holds to PostgreSQL (psutil), while
32 clients post bad logins and after 150 signal POSTs. The bound is the one docs/operations.md gives for
`max_connections`: `settings.DB_CONNECTIONS_PER_PROCESS`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import psutil
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from signals.services import ml_engine_key_create
from suho.errors import DATABASE_BUSY
from tests.accounts.helpers import account_make, tenant_make
from tests.gateway.ea_client import server_env
from tests.servers import daphne_serving
from tests.signals.conftest import quote_put, reference_put, seed_json

FLOOD_CLIENTS = 32
FLOOD_S = 4.0  # the finding's flood ran 15 s; the connections piled up within the first seconds
SIGNAL_POSTS = 150
LOGIN = "/api/token/"


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """(port, psutil.Process) of a daphne serving the test database with the default pool settings."""
    with daphne_serving(server_env(), tmp_path_factory.mktemp("daphne-bounds") / "daphne.log") as port:
        listening = [c for c in psutil.net_connections(kind="tcp") if c.laddr.port == port and c.status == "LISTEN"]
        yield port, psutil.Process(listening[0].pid)


def pg_connections(process: psutil.Process) -> int:
    """PostgreSQL connections the process holds open, in use or idle."""
    pg_port = int(settings.DATABASES["default"]["PORT"])
    return sum(1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == pg_port)


def _post(conn: http.client.HTTPConnection, path: str, body: dict, headers: dict | None = None) -> int:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    response.read()
    return response.status


def _bad_logins(port: int, deadline: float, statuses: Counter, lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while time.monotonic() < deadline:
            try:
                status = _post(conn, LOGIN, {"username": "nobody", "password": "wrong-password"})
            except (OSError, http.client.HTTPException) as exc:  # counted, so the assertion shows it
                status = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                statuses[status] += 1
    finally:
        conn.close()


def test_a_login_flood_gets_no_500_and_the_server_stays_within_its_connection_bound(server):
    port, process = server
    statuses: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + FLOOD_S
    clients = [
        threading.Thread(target=_bad_logins, args=(port, deadline, statuses, lock)) for _ in range(FLOOD_CLIENTS)
    ]
    for client in clients:
        client.start()
    most = 0
    while any(client.is_alive() for client in clients):
        most = max(most, pg_connections(process))
        time.sleep(0.02)
    for client in clients:
        client.join()
    most = max(most, pg_connections(process))

    assert statuses and set(statuses) <= {401, 429, 503}, statuses
    assert most <= settings.DB_CONNECTIONS_PER_PROCESS, f"held {most} connections; answers {statuses}"


def test_sequential_signal_posts_leave_no_more_than_the_pools_connections(server, committed):
    port, process = server
    tenant = tenant_make()
    account = account_make(tenant)
    key = ml_engine_key_create(tenant_id=tenant.id, label="bounds")[1]
    reference_put()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    statuses: Counter = Counter()
    try:
        for _ in range(SIGNAL_POSTS):
            quote_put(account)  # fresh, so each signal is adjusted and recorded, not refused for a stale quote
            statuses[
                _post(conn, "/api/signals/", seed_json(account.account_id), {"Authorization": f"Bearer {key}"})
            ] += 1
    finally:
        conn.close()
    assert statuses == Counter({201: SIGNAL_POSTS})
    assert pg_connections(process) <= settings.DB_CONNECTIONS_PER_PROCESS


@pytest.fixture
def one_busy_connection(committed):
    """The operator pool shrunk to one connection with a short wait, and that connection taken: the next request
    that needs the operator role waits DB_POOL_TIMEOUT_S's stand-in and gets PoolTimeout."""
    operator = connections["operator"]
    operator.close()
    operator.close_pool()
    options = operator.settings_dict["OPTIONS"]
    saved = options["pool"]
    options["pool"] = {**saved, "min_size": 0, "max_size": 1, "timeout": 0.2}
    operator.pool.open()
    held = operator.pool.getconn()
    try:
        yield
    finally:
        operator.pool.putconn(held)
        operator.close_pool()
        options["pool"] = saved


def test_an_exhausted_pool_answers_503_database_busy_with_retry_after(one_busy_connection):
    response = Client().post(LOGIN, {"username": "nobody", "password": "wrong-password"}, "application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == DATABASE_BUSY
