"""Test set-up: a fresh test database made like production (roles, grants, RLS) and migrated as the owner."""

from __future__ import annotations

import os
import time

import hypothesis  # noqa: F401  imported here, at a shallow stack: see below
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections
from django.test import TransactionTestCase
from psycopg.errors import DeadlockDetected
from redis.exceptions import RedisError

from suho.dbsetup import database_drop, database_names, database_setup
from suho.streams import streams_ensure
from tests.chunks import current_chunks_again
from tests.servers import SERVER_LOGS

# hypothesis's pytest plugin imports hypothesis lazily at session end when no test did; under pytest's assertion
# rewriting that import runs deep in the stack and CPython 3.11.7 aborts it ("AST constructor recursion depth
# mismatch"), failing a run of only tests/gateway after every test passed.

ALL_DATABASES = ["default", "owner", "operator"]
# Every tenant table refers to suho_tenants, so CASCADE empties them all; the rest are the tables without a tenant.
TRUNCATED_TABLES = (
    "suho_tenants",
    "suho_users",
    "mt5_audit_log",
    "suho_audit_chain_heads",  # the chains start again with the log (compliance 0005)
    "mt5_reference_quotes",
    "suho_model_versions",
    "django_session",
    "mt5_broker_quotes",
    "suho_beat_task_runs",
)  # fmt: skip  (ticks: no foreign key to cascade along)
OWNER_TRUNCATE = f"TRUNCATE {', '.join(TRUNCATED_TABLES)} CASCADE"


FLUSH_TRIES = 5


def _deadlocked(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, DeadlockDetected):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown_through_deadlocks(self):
    """A `transaction=True` test's flush, tried again when PostgreSQL picks it as a deadlock's victim: a live server's
    disconnect bookkeeping (session end, audit) can still be committing after the test saw its close, and TRUNCATE's
    table locks meet that transaction's row locks in the other order. The test itself has passed or failed by then;
    only the clean-up is repeated (it is idempotent), never the test."""
    for attempt in range(1, FLUSH_TRIES + 1):
        try:
            _fixture_teardown(self)
            break
        except Exception as exc:
            if attempt == FLUSH_TRIES or not _deadlocked(exc):
                raise
            time.sleep(0.2 * attempt)
    if "owner" in self.databases:  # only the owner may TRUNCATE a hypertable (and so drop its chunks)
        current_chunks_again()


TransactionTestCase._fixture_teardown = _fixture_teardown_through_deadlocks


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, alive
    return True


def _stale_test_databases_drop(prefix: str) -> None:
    """Drop the databases of runs that were killed before their teardown (their pid is in the name and gone),
    and the databases those runs made beside theirs (`<name>_<pid>_demo`: tests/portal/test_demo_browser.py)."""
    for database in database_names(admin_url=settings.DATABASE_ADMIN_URL, prefix=prefix):
        pid = database.removeprefix(prefix).split("_")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=database)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """Replace pytest-django's creation: the service role may not create databases or run migrations.

    The database is test_<name>_<pid>: two runs against one server (CI beside a developer's run on a shared
    TimescaleDB) must never drop, migrate or truncate each other's database."""
    prefix = f"test_{settings.DATABASES['default']['NAME']}_"
    name = f"{prefix}{os.getpid()}"
    with django_db_blocker.unblock():
        _stale_test_databases_drop(prefix)
        for connection in connections.all():
            connection.close()
            connection.close_pool()  # a pool made before now would keep connecting to the database it was made for
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
            connection.close_pool()  # its idle connections would keep the database from being dropped
        database_drop(admin_url=settings.DATABASE_ADMIN_URL, database=name)


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Database access without a wrapping test transaction (servers, threads and other connections must see the
    rows); everything is truncated by the owner afterwards. pytest-django's own flush would run as each alias's
    role, and the service role may not TRUNCATE; TRUNCATE fires no row triggers, so the audit log's guard allows it."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            for connection in connections.all():
                if connection.in_atomic_block:
                    connection.rollback()  # a failed test may leave one open
            with connections["owner"].cursor() as cursor:
                cursor.execute(OWNER_TRUNCATE)
            current_chunks_again()


@pytest.fixture(autouse=True)
def auth_throttle_reset():
    """Every test starts with no failed log-ins on record (accounts/throttle.py keeps them in Redis for 15 minutes):
    tests reuse user names and the test client's 127.0.0.1, and one test's failures must not block the next."""
    from accounts import throttle

    throttle._local_store.delete_many(list(throttle._local_store._values))
    try:
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match="*auth_throttle:*", count=1000))
        if keys:
            client.delete(*keys)
    except RedisError:
        pass  # a test that stops Redis has its own counters in the process
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that fails while servers run shows the end of each server's log: an exception inside a server
    (answered INTERNAL_ERROR on the wire) is otherwise invisible in CI's output."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for port, log_path in list(SERVER_LOGS.items()):
            tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else "(no log)"
            report.sections.append((f"server on port {port}: end of its log", tail))
