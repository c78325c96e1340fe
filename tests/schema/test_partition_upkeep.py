"""Plain-PostgreSQL partitions: created ahead, expired ones dropped, and none readable by name by the service role."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import ProgrammingError, connections, transaction
from factories import (
    make_account,
    make_audit,
    make_balance,
    make_heartbeat,
    make_order,
    make_quote,
    make_tenant,
    make_user,
)

from suho.schedules import BEAT_SCHEDULE
from suho.tasks import partitions_upkeep as partitions_upkeep_task
from suho.tenancy import tenant_context
from suho.timeseries import (
    TIME_SERIES,
    _create_partition,
    _next_period,
    _partition_name,
    _period_start,
    partitions_upkeep,
    timescale_enabled,
)

OWNER = "owner"


@pytest.fixture(scope="module", autouse=True)
def plain_path(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        if timescale_enabled(connections[OWNER]):
            pytest.skip("TimescaleDB path: chunks and retention are TimescaleDB's (see test_timescaledb_path)")


def settle_foreign_keys() -> None:
    """Run the deferred foreign-key checks of the rows written so far, as their commit would: upkeep alters the
    default partition, which PostgreSQL refuses while checks on it are pending in the same transaction."""
    connections[OWNER].check_constraints()


@pytest.fixture
def account():
    tenant = make_tenant(using=OWNER)
    return make_account(tenant, make_user(tenant, using=OWNER), using=OWNER)


def write_row(table: str, account, at: datetime) -> None:
    """One row of `table` at `at`, written as the owner under the tenant's context."""
    maker = {
        "mt5_broker_quotes": make_quote,
        "mt5_account_balance_history": make_balance,
        "mt5_ea_heartbeat": make_heartbeat,
        "mt5_trade_orders": make_order,
    }.get(table)
    if maker is None:
        make_audit(account.tenant, using=OWNER, time=at, account_id=account.pk)
    else:
        maker(account, using=OWNER, time=at)


def times_in(table: str, account) -> list[datetime]:
    with tenant_context(account.tenant_id, using=OWNER), connections[OWNER].cursor() as cursor:
        cursor.execute(f'SELECT time FROM "{table}" WHERE account_id = %s ORDER BY time', [account.pk])
        return [row[0] for row in cursor.fetchall()]


def partitions_of(table: str, using: str = OWNER) -> set[str]:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [table])
        return {row[0] for row in cursor.fetchall()}


def db_now(using: str = OWNER) -> datetime:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def horizon(table: str, now: datetime) -> datetime:
    with connections[OWNER].cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz - %s::interval", [now, TIME_SERIES[table].retention])
        return cursor.fetchone()[0]


@pytest.mark.django_db(databases=[OWNER])
@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_rows_past_the_tables_retention_disappear_and_younger_rows_stay(table, account):
    series, now = TIME_SERIES[table], db_now()
    limit = horizon(table, now)
    old_start = _period_start(series, limit - timedelta(days=40))
    with connections[OWNER].cursor() as cursor:
        old_partition = _create_partition(cursor, series, old_start, _next_period(series, old_start))
    expired = [datetime.combine(old_start, datetime.min.time(), now.tzinfo) + timedelta(hours=1),  # old partition
               limit - timedelta(days=1)]  # default partition  # fmt: skip
    kept = [limit + timedelta(days=1), now]
    for at in expired + kept:
        write_row(table, account, at)
    settle_foreign_keys()

    changes = partitions_upkeep(now=now)

    assert old_partition in changes[table] and old_partition not in partitions_of(table)
    assert times_in(table, account) == kept


@pytest.mark.django_db(databases=[OWNER])
def test_partitions_are_kept_ready_ahead_of_time():
    now = db_now() + timedelta(days=40)
    partitions_upkeep(now=now)
    for table, series in TIME_SERIES.items():
        start = _period_start(series, now)
        for _ in range(series.ahead + 1):
            assert _partition_name(series, start) in partitions_of(table)
            start = _next_period(series, start)


@pytest.mark.django_db(databases=[OWNER])
@pytest.mark.parametrize("table", ["mt5_ea_heartbeat", "mt5_audit_log"])
def test_rows_that_arrived_ahead_of_their_partition_move_into_it_when_it_is_created(table, account):
    series = TIME_SERIES[table]
    early = db_now() + timedelta(days=120)
    write_row(table, account, early)
    settle_foreign_keys()
    assert partition_holding(table, account, early) == f"{table}_default"

    partitions_upkeep(now=early)

    assert partition_holding(table, account, early) == _partition_name(series, _period_start(series, early))


def partition_holding(table: str, account, at: datetime) -> str:
    with tenant_context(account.tenant_id, using=OWNER), connections[OWNER].cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{table}" WHERE time = %s', [at])
        (name,) = cursor.fetchone()
        return name


@pytest.mark.django_db
def test_a_partition_named_directly_gives_the_service_role_nothing():
    other = make_tenant()
    other_account = make_account(other, make_user(other))
    now = db_now("default")
    for table in TIME_SERIES:
        write_row_as_service(table, other_account, now)
    me = make_tenant()

    for table in TIME_SERIES:
        partitions = partitions_of(table, using="default")
        assert f"{table}_default" in partitions and len(partitions) > 1
        for partition in partitions:
            with tenant_context(me.id):
                with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
                    with connections["default"].cursor() as cursor:
                        cursor.execute(f'SELECT * FROM "{partition}"')


def write_row_as_service(table: str, account, at: datetime) -> None:
    if table == "mt5_audit_log":
        make_audit(account.tenant, time=at)
    else:
        {"mt5_broker_quotes": make_quote, "mt5_account_balance_history": make_balance,
         "mt5_ea_heartbeat": make_heartbeat, "mt5_trade_orders": make_order}[table](account, time=at)  # fmt: skip


@pytest.mark.django_db(databases=[OWNER])
def test_the_hourly_task_runs_partition_upkeep_and_retention():
    assert BEAT_SCHEDULE["partitions-upkeep"]["task"] == partitions_upkeep_task.name
    result = partitions_upkeep_task.apply().get()
    assert set(result) == {"partitions", "retention"}
    assert set(result["partitions"]) == set(TIME_SERIES)
