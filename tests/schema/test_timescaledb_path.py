"""The TimescaleDB path (ARCHITECTURE §6): each time-series table a hypertable with the seed's chunk interval, 4 hash
partitions on tenant_id and a retention job; no continuous aggregate, no compression (row security forbids both);
no chunk readable by name by the service role. Runs only where the test database has the extension."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import ProgrammingError, connections, transaction
from factories import make_account, make_heartbeat, make_tenant, make_user

from suho.dbsetup import TIMESCALE_INTERNAL_SCHEMAS
from suho.tenancy import tenant_context
from suho.timeseries import TIME_SERIES, timescale_enabled

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


@pytest.fixture(scope="module", autouse=True)
def timescale_path(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        if not timescale_enabled(connections["owner"]):
            pytest.skip("the test database has no TimescaleDB: the plain-PostgreSQL path is what runs here")


def query(sql: str, params: list | None = None) -> list[tuple]:
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_every_time_series_table_is_a_hypertable_and_nothing_else_is():
    rows = query(
        "SELECT hypertable_name, num_dimensions, compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'public' ORDER BY 1"
    )
    assert rows == [(table, 2, False) for table in sorted(TIME_SERIES)]


@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_a_hypertable_has_the_seeds_chunk_interval_and_4_hash_partitions_on_tenant(table):
    rows = query(
        "SELECT dimension_type, column_name, time_interval = %s::interval, num_partitions"
        " FROM timescaledb_information.dimensions"
        " WHERE hypertable_schema = 'public' AND hypertable_name = %s ORDER BY dimension_number",
        [TIME_SERIES[table].chunk_interval, table],
    )
    assert rows == [("Time", "time", True, None), ("Space", "tenant_id", None, 4)]


@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_a_hypertable_has_one_retention_job_with_the_seeds_retention(table):
    rows = query(
        "SELECT (config->>'drop_after')::interval = %s::interval, scheduled FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_schema = 'public' AND hypertable_name = %s",
        [TIME_SERIES[table].retention, table],
    )
    assert rows == [(True, True)]


def test_there_is_no_continuous_aggregate_and_no_compression_job():
    assert query("SELECT count(*) FROM timescaledb_information.continuous_aggregates") == [(0,)]
    assert query("SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name LIKE '%%compression%%'") == [(0,)]


def test_the_service_role_has_no_usage_on_timescaledbs_internal_schemas():
    for schema in TIMESCALE_INTERNAL_SCHEMAS:
        if query("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]):
            assert query("SELECT has_schema_privilege(%s, %s, 'USAGE')", [settings.DB_SERVICE_USER, schema]) == [
                (False,)
            ], schema


def test_a_chunk_named_directly_is_not_readable_by_the_service_role_while_the_hypertable_is():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    make_heartbeat(account, latency_ms=12)
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'mt5_ea_heartbeat'::regclass"
        )
        chunks = [row[0] for row in cursor.fetchall()]
    assert chunks, "writing through the hypertable created a chunk"
    for chunk in chunks:
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute(f"SELECT * FROM {chunk}")
    with tenant_context(tenant.id), connections["default"].cursor() as cursor:
        cursor.execute("SELECT latency_ms FROM mt5_ea_heartbeat")
        assert cursor.fetchall() == [(12,)]
