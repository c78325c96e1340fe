"""The TimescaleDB path (ARCHITECTURE §6): each time-series table a hypertable with the seed's chunk interval, 4 hash
partitions on tenant_id and a retention job; no continuous aggregate, no compression (row security forbids both).
Chunks carry no row security, so the app roles hold no privilege on any chunk: a chunk named directly is refused,
while everything through the hypertable works, creating new chunks included (decision 0014). Runs only where the
test database has the extension (CI's TimescaleDB pass)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import ProgrammingError, connections, transaction
from django.utils import timezone
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

from suho.tenancy import tenant_context
from suho.timeseries import TIME_SERIES, current_chunks_ensure, partitions_upkeep, timescale_enabled

pytestmark = pytest.mark.django_db(databases=["default", "owner", "operator"])
APP_ALIASES = ["default", "operator"]  # the service and operator roles


@pytest.fixture(scope="module", autouse=True)
def timescale_path(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        if not timescale_enabled(connections["owner"]):
            pytest.skip("the test database has no TimescaleDB: the plain-PostgreSQL path is what runs here")


def query(sql: str, params: list | None = None, *, using: str = "owner") -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def chunks(table: str, *, using: str = "default") -> list[str]:
    """The table's chunks, as seen by `using`'s transaction (a chunk made in an open one is not visible elsewhere)."""
    return [row[0] for row in query("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
                                    [table], using=using)]  # fmt: skip


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


def test_time_bucket_and_last_are_timescaledbs_own():
    rows = query(
        "SELECT p.proname, n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'"
        " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'"
        " WHERE p.proname IN ('time_bucket', 'last') GROUP BY 1, 2 ORDER BY 1"
    )
    assert rows == [("last", "public"), ("time_bucket", "public")]
    assert query("SELECT count(*) FROM pg_proc WHERE proname IN ('time_bucket', 'last')"
                 " AND pronamespace = 'public'::regnamespace AND NOT EXISTS"
                 " (SELECT 1 FROM pg_depend d WHERE d.objid = pg_proc.oid AND d.deptype = 'e')") == [(0,)]  # fmt: skip


def test_the_app_roles_hold_no_privilege_on_any_chunk():
    make_heartbeat(make_account(tenant := make_tenant(), make_user(tenant)))
    rows = query(
        "SELECT c.oid::regclass::text, r.rolname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " CROSS JOIN pg_roles r WHERE i.inhparent::regclass::text = ANY (%s) AND r.rolname IN (%s, %s)"
        "   AND (has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
        "        OR has_any_column_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))",
        [list(TIME_SERIES), settings.DB_SERVICE_USER, settings.DB_OPERATOR_USER],
        using="default",
    )
    assert chunks("mt5_ea_heartbeat"), "writing through the hypertable created a chunk"
    assert rows == []


@pytest.mark.parametrize("alias", APP_ALIASES)
def test_a_chunk_named_directly_is_refused_to_the_app_roles_while_the_hypertable_serves_them(alias):
    tenant = make_tenant(using=alias)
    account = make_account(tenant, make_user(tenant, using=alias), using=alias)
    before = set(chunks("mt5_ea_heartbeat", using=alias))
    make_heartbeat(account, latency_ms=12, time=timezone.now() + timedelta(days=900), using=alias)
    [chunk] = set(chunks("mt5_ea_heartbeat", using=alias)) - before
    for statement in (f"SELECT * FROM {chunk}", f"INSERT INTO {chunk} SELECT * FROM {chunk}",
                      f"UPDATE {chunk} SET latency_ms = 0", f"DELETE FROM {chunk}"):  # fmt: skip
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic(using=alias):
            query(statement, using=alias)
    with tenant_context(tenant.id, using=alias):
        assert query("SELECT latency_ms FROM mt5_ea_heartbeat", using=alias) == [(12,)]


def test_the_service_role_inserts_into_a_far_future_chunk_and_reads_it_back_in_its_tenant_only():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    before = set(chunks("mt5_account_balance_history"))
    far = timezone.now() + timedelta(days=400)
    make_balance(account, time=far)
    assert len(set(chunks("mt5_account_balance_history")) - before) == 1, "a new chunk, created by the service role"
    with tenant_context(tenant.id):
        assert query("SELECT time FROM mt5_account_balance_history", using="default") == [(far,)]
    other = make_tenant()
    with tenant_context(other.id):
        assert query("SELECT count(*) FROM mt5_account_balance_history", using="default") == [(0,)]


def test_with_no_tenant_context_every_time_series_table_reads_nothing():
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    for make in (make_balance, make_heartbeat, make_order, make_quote):
        make(account)
    make_audit(tenant)
    with tenant_context(tenant.id):
        counts = {table: query(f'SELECT count(*) FROM "{table}"', using="default")[0][0] for table in TIME_SERIES}
    assert all(counts.values()), counts
    with transaction.atomic():
        counts = {table: query(f'SELECT count(*) FROM "{table}"', using="default")[0][0] for table in TIME_SERIES}
    assert counts == dict.fromkeys(TIME_SERIES, 0)


def write_row(table: str, account, at: datetime, *, using: str) -> None:
    maker = {"mt5_broker_quotes": make_quote, "mt5_account_balance_history": make_balance,
             "mt5_ea_heartbeat": make_heartbeat, "mt5_trade_orders": make_order}.get(table)  # fmt: skip
    if maker is None:
        make_audit(account.tenant, using=using, time=at, account_id=account.pk)
    else:
        maker(account, using=using, time=at)


def accounts_in_every_hash_slice(*, using: str) -> list:
    """One account per hash slice of tenant_id (4), so a write lands in each slice's chunk."""
    accounts = {}
    while len(accounts) < 4:
        tenant = make_tenant(using=using)
        [(value,)] = query("SELECT _timescaledb_functions.get_partition_hash(%s::uuid)", [tenant.id], using=using)
        accounts.setdefault(min(value // ((2**31 - 1) // 4), 3), make_account(tenant, make_user(tenant, using=using),
                                                                              using=using))  # fmt: skip
    return list(accounts.values())


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
@pytest.mark.parametrize("table", sorted(TIME_SERIES))
def test_after_upkeep_the_chunks_of_the_next_two_hours_exist_so_no_writer_creates_one(table):
    """A writer that creates a chunk clones its foreign key to mt5_user_accounts inside its own transaction, and
    deadlocked against a HELLO's claim (tests/gateway/test_scale_out.py): upkeep (beat's hourly run, and the
    migration) makes them ahead. Run here first, committed: the suite's clean-ups truncate them away."""
    partitions_upkeep()
    accounts = accounts_in_every_hash_slice(using="default")
    before = set(chunks(table))
    now = timezone.now()
    for at in (now, now + timedelta(hours=1), now + timedelta(hours=2)):
        for account in accounts:
            write_row(table, account, at, using="default")
    assert set(chunks(table)) == before


def test_upkeep_makes_the_chunks_ahead_of_its_now_once_and_writers_then_find_them():
    later = timezone.now() + timedelta(days=30)
    made = partitions_upkeep(now=later)
    assert sorted(made) == sorted(TIME_SERIES)
    assert all(made.values()), made
    accounts = accounts_in_every_hash_slice(using="owner")
    for table in TIME_SERIES:
        before = set(chunks(table, using="owner"))
        for account in accounts:
            write_row(table, account, later + timedelta(hours=1), using="owner")
        assert set(chunks(table, using="owner")) == before, table
    assert partitions_upkeep(now=later) == {table: [] for table in TIME_SERIES}
    for account in accounts:  # past what upkeep made: TimescaleDB makes these itself, on its own grid
        write_row("mt5_ea_heartbeat", account, later + timedelta(days=10), using="owner")
    time_slices, hash_slices = slices_of("mt5_ea_heartbeat")
    assert len(hash_slices) == 4, hash_slices
    assert {(start - min(time_slices)[0]) % (end - start) for start, end in time_slices} == {0}


def slices_of(table: str) -> tuple[set, set]:
    """The distinct (start, end) of the table's chunks in time and in the tenant hash, from TimescaleDB's catalog."""
    rows = query(
        "SELECT d.column_name, s.range_start, s.range_end FROM _timescaledb_catalog.dimension_slice s"
        " JOIN _timescaledb_catalog.dimension d ON d.id = s.dimension_id"
        " JOIN _timescaledb_catalog.hypertable h ON h.id = d.hypertable_id WHERE h.table_name = %s",
        [table],
    )
    return ({(start, end) for column, start, end in rows if column == "time"},
            {(start, end) for column, start, end in rows if column == "tenant_id"})  # fmt: skip


@pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])
def test_after_a_truncate_the_suites_clean_up_makes_the_chunks_holding_now_in_every_hash_slice():
    """tests/chunks.py: a TRUNCATE drops every chunk; a test's writes at now then create none (only now's are made,
    each clean-up would otherwise create and drop upkeep's whole horizon)."""
    with connections["owner"].cursor() as cursor:
        cursor.execute("TRUNCATE mt5_ea_heartbeat")
    assert chunks("mt5_ea_heartbeat") == []
    now = timezone.now()
    made = current_chunks_ensure(now)
    assert sorted(made) == sorted(TIME_SERIES)
    assert len(made["mt5_ea_heartbeat"]) == 4, "one interval of time, 4 hash slices"
    before = set(chunks("mt5_ea_heartbeat"))
    for account in accounts_in_every_hash_slice(using="default"):
        write_row("mt5_ea_heartbeat", account, now, using="default")
    assert set(chunks("mt5_ea_heartbeat")) == before
