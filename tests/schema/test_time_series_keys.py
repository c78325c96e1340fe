"""The time-series tables' keys and privileges, the same on both paths: every unique index holds id, time and
tenant_id (TimescaleDB's two partitioning columns), and the app roles may not delete or truncate (on TimescaleDB a
table privilege would reach every chunk, where no row security applies; retention deletes, as the owner)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connections

from suho.timeseries import TIME_SERIES, TimeSeriesKeyWithTenant

pytestmark = pytest.mark.django_db(databases=["owner"])


def query(sql: str, params: list | None = None) -> list[tuple]:
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_every_unique_index_of_a_time_series_table_holds_id_time_and_tenant(table):
    rows = query(
        "SELECT i.indisprimary, i.indnullsnotdistinct,"
        "       (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
        "        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)"
        " FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indisunique",
        [table],
    )
    [pk] = [model._meta.pk.column for model in apps.get_models() if model._meta.db_table == table]
    tenant_nullable = table == "mt5_audit_log"  # its system rows have no tenant: a unique key, NULLs equal
    assert rows == [(not tenant_nullable, tenant_nullable, [pk, "time", "tenant_id"])]


@pytest.mark.parametrize("role", [settings.DB_SERVICE_USER, settings.DB_OPERATOR_USER])
@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_the_app_roles_may_read_and_write_a_time_series_table_but_not_delete_or_truncate_it(table, role):
    [(select, insert, delete, truncate)] = query(
        "SELECT has_any_column_privilege(%s, %s, 'SELECT'), has_any_column_privilege(%s, %s, 'INSERT'),"
        "       has_table_privilege(%s, %s, 'DELETE'), has_table_privilege(%s, %s, 'TRUNCATE')",
        [role, table] * 4,
    )
    assert (select, insert, delete, truncate) == (True, True, False, False)


@pytest.mark.parametrize("tenant_nullable", [False, True])
def test_a_table_made_with_the_old_key_gets_the_key_with_tenant_once(tenant_nullable):
    null = "" if tenant_nullable else "NOT NULL"
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE probe_series (id bigint NOT NULL, time timestamptz NOT NULL, tenant_id uuid {null},"
            " PRIMARY KEY (id, time)) PARTITION BY RANGE (time)"
        )
        cursor.execute("CREATE TABLE probe_series_default PARTITION OF probe_series DEFAULT")
    for _ in range(2):
        with connections["owner"].schema_editor(atomic=False) as editor:
            TimeSeriesKeyWithTenant("probe_series").database_forwards("suho", editor, None, None)
    for table in ("probe_series", "probe_series_default"):
        rows = query(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
            " AND contype IN ('p', 'u')",
            [table],
        )
        key = ("u", "UNIQUE NULLS NOT DISTINCT (id, \"time\", tenant_id)") if tenant_nullable else (
            "p", "PRIMARY KEY (id, \"time\", tenant_id)")  # fmt: skip
        assert rows == [key], table
