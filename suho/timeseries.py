"""Time-series tables on two paths with one schema (ARCHITECTURE §6), and row-level security for tenant tables.

- TimescaleDB present: hypertables (`create_hypertable` with `by_range`, `add_dimension` with `by_hash` on
  `tenant_id`, `add_retention_policy`), exactly per Timescale 2.x, and chunks created ahead by `partitions_upkeep()`.
- Plain PostgreSQL: native range partitions by time, created ahead and dropped past retention by
  `partitions_upkeep()`; rows outside every partition land in a default partition, so no write is ever refused.
Every partition gets RLS enabled, forced and the tenant policy, and the service/operator roles no privilege on it:
a partition named directly is not protected by its parent's policy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.db.migrations.operations import CreateModel
from django.db.migrations.operations.base import Operation

from suho.routers import OWNER

TENANT_PREDICATE = "tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid"
POLICY_NAME = "tenant_isolation"
AUDIT_UPKEEP_SETTING = "suho.audit_upkeep"  # read by the audit log's append-only trigger (compliance 0002)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeSeries:
    table: str
    chunk_interval: str  # TimescaleDB chunk_time_interval (seed §3.3)
    partition_step: str  # plain path: "day" or "month" (30-minute partitions would be thousands of tables)
    retention: str  # seed §3.1, an interval: TimescaleDB's drop_after, the plain path's horizon
    ahead: int  # partitions kept ready ahead of now


TIME_SERIES = {
    ts.table: ts
    for ts in (
        TimeSeries("mt5_broker_quotes", "30 minutes", "day", "90 days", 3),
        TimeSeries("mt5_account_balance_history", "1 hour", "day", "2 years", 3),
        TimeSeries("mt5_ea_heartbeat", "1 hour", "day", "30 days", 3),
        TimeSeries("mt5_trade_orders", "1 day", "month", "7 years", 2),
        TimeSeries("mt5_audit_log", "1 day", "month", "7 years", 2),
    )
}


def timescale_enabled(connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cursor.fetchone() is not None


def rls_statements(table: str) -> list[str]:
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"',
        f'CREATE POLICY {POLICY_NAME} ON "{table}" USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})',
    ]


class TableOperation(Operation):
    """A schema operation on one existing table that Django's model state does not see (SQL the ORM cannot say)."""

    reversible = True

    def __init__(self, table: str):
        self.table = table

    def deconstruct(self):
        return (self.__class__.__name__, [self.table], {})

    def state_forwards(self, app_label, state):
        pass


class EnableRowSecurity(TableOperation):
    """Turn on and force row-level security on a tenant-owned table, with the tenant policy."""

    reduces_to_sql = True

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        for statement in rls_statements(self.table):
            schema_editor.execute(statement)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute(f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{self.table}"')
        schema_editor.execute(f'ALTER TABLE "{self.table}" NO FORCE ROW LEVEL SECURITY')
        schema_editor.execute(f'ALTER TABLE "{self.table}" DISABLE ROW LEVEL SECURITY')

    def describe(self):
        return f"Enable row-level security on {self.table}"


def _key_sql(table: str, columns: tuple[str, ...], tenant_nullable: bool) -> str:
    """The table's key: its id, time and tenant columns (each partitioning column must be in every unique index).

    A primary key cannot hold a nullable column, so where `tenant_id` may be NULL (the audit log's system rows) the
    key is a unique constraint treating NULLs as equal, which holds the same rows apart.
    """
    names = ", ".join(f'"{column}"' for column in columns)
    if tenant_nullable:
        return f'CONSTRAINT "{table}_key" UNIQUE NULLS NOT DISTINCT ({names})'
    return f'CONSTRAINT "{table}_pkey" PRIMARY KEY ({names})'


def hypertable_grants(execute, table: str, columns: list[str]) -> None:
    """The app roles' privileges on a hypertable, as column privileges only.

    TimescaleDB copies a hypertable's table privileges to every chunk it creates, and a chunk has no row security:
    a chunk named directly would show every tenant's rows. Column privileges are not copied, while a query, an
    insert (creating a new chunk) or an update through the hypertable needs only the hypertable's. There is no
    column DELETE: nor is DELETE granted on the plain path's time-series tables (retention deletes, as the owner).
    """
    roles = f'"{settings.DB_SERVICE_USER}", "{settings.DB_OPERATOR_USER}"'
    names = ", ".join(f'"{column}"' for column in columns)
    execute(f'REVOKE ALL ON "{table}" FROM {roles}')
    execute(f'GRANT SELECT ({names}), INSERT ({names}), UPDATE ({names}) ON "{table}" TO {roles}')


class CreateTimeSeriesModel(CreateModel):
    """CreateModel for a time-series table: key (pk, time, tenant_id); a hypertable or a partitioned table.

    Django keeps seeing the single-column primary key (admin and ORM look-ups by id keep working); the database
    key includes the time column, because both TimescaleDB and native partitioning require it, and `tenant_id`,
    TimescaleDB's hash dimension (the same key on the plain path: one schema on both).
    """

    def __init__(self, name, fields, *, time_column="time", **kwargs):
        self.time_column = time_column
        super().__init__(name, fields, **kwargs)

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        kwargs["time_column"] = self.time_column
        return name, args, kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        table = model._meta.db_table
        series = TIME_SERIES[table]
        tenant = model._meta.get_field("tenant")
        timescale = timescale_enabled(schema_editor.connection)
        create_sql, params = schema_editor.table_sql(model)
        create_sql = create_sql.replace(" PRIMARY KEY", "", 1)
        key = _key_sql(table, (model._meta.pk.column, self.time_column, tenant.column), tenant.null)
        create_sql = create_sql[: create_sql.rindex(")")] + f", {key})"
        if not timescale:
            create_sql += f' PARTITION BY RANGE ("{self.time_column}")'
        schema_editor.execute(create_sql, params or None)
        schema_editor.deferred_sql.extend(schema_editor._model_indexes_sql(model))
        if timescale:
            schema_editor.execute(
                "SELECT create_hypertable(%s, by_range(%s, INTERVAL %s), create_default_indexes => false)",
                [table, self.time_column, series.chunk_interval],
            )
            schema_editor.execute("SELECT add_dimension(%s, by_hash(%s, 4))", [table, tenant.column])
            schema_editor.execute(
                "SELECT add_retention_policy(%s, drop_after => INTERVAL %s)", [table, series.retention]
            )
            hypertable_grants(schema_editor.execute, table, [field.column for field in model._meta.local_fields])
        else:
            roles = f'"{settings.DB_SERVICE_USER}", "{settings.DB_OPERATOR_USER}"'
            schema_editor.execute(f'REVOKE DELETE, TRUNCATE ON "{table}" FROM {roles}')
        for statement in rls_statements(table):
            schema_editor.execute(statement)
        with schema_editor.connection.cursor() as cursor:
            if timescale:
                _ensure_chunks(cursor, series, datetime.now(UTC))
            else:
                _ensure_partitions(cursor, series, datetime.now(UTC))

    def describe(self):
        return f"Create time-series model {self.name}"


class TimeSeriesKeyWithTenant(TableOperation):
    """Give a time-series table created with the key (id, time) the key (id, time, tenant_id), and take DELETE from
    the app roles; a no-op where the table already has it (created so, as every TimescaleDB path is)."""

    reduces_to_sql = False

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'tenant_id'",
                [self.table],
            )
            tenant_nullable = cursor.fetchone()[0]
            cursor.execute(
                "SELECT conname, (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
                "                 WHERE attrelid = conrelid AND attnum = ANY (conkey))"
                " FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
                [self.table],
            )
            keys = cursor.fetchall()
        if any("tenant_id" in columns for _, columns in keys):
            return
        [(name, columns)] = keys  # the (pk, time) key CreateTimeSeriesModel made
        schema_editor.execute(f'ALTER TABLE "{self.table}" DROP CONSTRAINT "{name}"')
        key = _key_sql(self.table, (*columns, "tenant_id"), tenant_nullable)
        schema_editor.execute(f'ALTER TABLE "{self.table}" ADD {key}')
        roles = f'"{settings.DB_SERVICE_USER}", "{settings.DB_OPERATOR_USER}"'
        schema_editor.execute(f'REVOKE DELETE, TRUNCATE ON "{self.table}" FROM {roles}')

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass  # the wider key holds every row the narrower one did: kept

    def describe(self):
        return f"Key (id, time, tenant_id) on {self.table}"


# --- TimescaleDB chunks ahead ---------------------------------------------------------------------------------

CHUNKS_AHEAD = timedelta(hours=3)  # three hourly upkeep runs: one that cannot take its locks is not a gap
CHUNK_LOCK_TIMEOUT = "5s"  # how long upkeep may queue writers of mt5_user_accounts behind its wait (below)
HASH_CLOSED_MAX = 2**31 - 1  # TimescaleDB's hash dimension: [0, 2^31 - 1) split evenly, the ends open
HASH_OPEN = (-(2**63), 2**63 - 1)


def _ensure_chunks(cursor, series: TimeSeries, now: datetime, intervals: int | None = None) -> list[str]:
    """Create the chunks from now's to `CHUNKS_AHEAD` (at least `series.ahead` intervals) ahead, every hash slice;
    `intervals` chunks of time from now's instead, if given.

    Left to TimescaleDB, the first insert past a chunk boundary creates the chunk in the writer's transaction, and
    cloning the chunk's foreign key to mt5_user_accounts takes SHARE ROW EXCLUSIVE on that table while the writer
    holds the hypertable's chunk lock. A HELLO's claim or a heartbeat flush that updated an account row and then
    inserts into the same hypertable closes the cycle: "deadlock detected", at every boundary, under load. Made
    here instead, by upkeep that holds nothing else, a chunk only ever waits (`CHUNK_LOCK_TIMEOUT`) and is ready
    before the first row. `_timescaledb_functions.create_chunk` is TimescaleDB's documented chunk API.
    """
    cursor.execute(
        "SELECT extract(epoch FROM time_interval)::bigint, num_partitions FROM timescaledb_information.dimensions"
        " WHERE hypertable_schema = 'public' AND hypertable_name = %s ORDER BY dimension_number",
        [series.table],
    )
    (interval_s, _), (_, partitions) = cursor.fetchall()
    first = int(now.timestamp()) // interval_s * interval_s  # slices align to the Unix epoch
    if intervals is None:
        intervals = max(series.ahead, -(-int(CHUNKS_AHEAD.total_seconds()) // interval_s)) + 1
    step = HASH_CLOSED_MAX // partitions
    hash_starts = [HASH_OPEN[0], *(step * index for index in range(1, partitions))]
    hash_ends = [*hash_starts[1:], HASH_OPEN[1]]
    created = []
    for start in range(first, first + intervals * interval_s, interval_s):
        time_slice = [datetime.fromtimestamp(moment, UTC).isoformat() for moment in (start, start + interval_s)]
        for hash_slice in zip(hash_starts, hash_ends, strict=True):
            cursor.execute(
                "SELECT table_name, created FROM _timescaledb_functions.create_chunk(%s::regclass, %s::jsonb)",
                [series.table, json.dumps({"time": time_slice, "tenant_id": list(hash_slice)})],
            )
            name, made = cursor.fetchone()
            if made:
                created.append(name)
    return created


def chunks_ahead_now(apps, schema_editor) -> None:
    """Migration step (suho 0005): a database made before chunks were made ahead gets them at `migrate`, not an hour
    later at beat's first upkeep run."""
    if timescale_enabled(schema_editor.connection):
        _chunks_upkeep(schema_editor.connection, datetime.now(UTC))


def current_chunks_ensure(now: datetime | None = None) -> dict[str, list[str]]:
    """The chunks holding now, every hypertable (a TRUNCATE drops them all: the test suite's clean-ups): the writes
    that follow create none inside their own transactions. Upkeep's whole horizon ahead would cost each clean-up
    several times as many chunks to create, and then to drop again."""
    return _chunks_upkeep(connections[OWNER], now or datetime.now(UTC), intervals=1)


def _chunks_upkeep(connection, now: datetime, intervals: int | None = None) -> dict[str, list[str]]:
    """Chunks ahead (or `intervals` of them from now's) for every hypertable, one transaction each (a savepoint in a
    migration's); one whose locks are not free within the timeout is left to the next run (and, past
    `CHUNKS_AHEAD`, to the writers)."""
    changes: dict[str, list[str]] = {}
    for series in TIME_SERIES.values():
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [CHUNK_LOCK_TIMEOUT])
                changes[series.table] = _ensure_chunks(cursor, series, now, intervals)
        except OperationalError as exc:
            log.warning("chunks ahead of %s not made this run: %s", series.table, exc)
    return changes


# --- plain-PostgreSQL partitions --------------------------------------------------------------------------------


def _period_start(series: TimeSeries, moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day if series.partition_step == "day" else day.replace(day=1)


def _next_period(series: TimeSeries, start: date) -> date:
    if series.partition_step == "day":
        return start + timedelta(days=1)
    return date(start.year + (start.month == 12), start.month % 12 + 1, 1)


def _partition_name(series: TimeSeries, start: date) -> str:
    suffix = start.strftime("%Y%m%d" if series.partition_step == "day" else "%Y%m")
    return f"{series.table}_p{suffix}"


def _protect_partition(cursor, partition: str) -> None:
    for statement in rls_statements(partition):
        cursor.execute(statement)
    roles = ", ".join(f'"{role}"' for role in (settings.DB_SERVICE_USER, settings.DB_OPERATOR_USER))
    cursor.execute(f'REVOKE ALL ON "{partition}" FROM {roles}')


def _create_partition(cursor, series: TimeSeries, start: date, end: date) -> str:
    """One period's partition.

    Rows that arrived ahead of it (a clock running fast) wait in the default partition, and PostgreSQL refuses a
    partition whose range such rows fall in: they are set aside, the partition is created and they go into it as
    they were, with its triggers off (they ran for these rows once). Not through ATTACH PARTITION: its foreign-key
    validation runs under row security forced on the owner, and would not find the rows' accounts.
    """
    name = _partition_name(series, start)
    bounds = [f"{start.isoformat()} 00:00:00+00", f"{end.isoformat()} 00:00:00+00"]
    default = f"{series.table}_default"
    cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{default}" WHERE time >= %s AND time < %s)', bounds)
    early = cursor.fetchone()[0]
    if early:
        cursor.execute(f'CREATE TEMPORARY TABLE suho_early_rows (LIKE "{series.table}") ON COMMIT DROP')
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{default}" WHERE time >= %s AND time < %s RETURNING *)'
            " INSERT INTO suho_early_rows SELECT * FROM moved",
            bounds,
        )
    cursor.execute(f'CREATE TABLE "{name}" PARTITION OF "{series.table}" FOR VALUES FROM (%s) TO (%s)', bounds)
    if early:
        cursor.execute(f'ALTER TABLE "{name}" DISABLE TRIGGER USER')
        cursor.execute(f'INSERT INTO "{name}" SELECT * FROM suho_early_rows')
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # check the rows' foreign keys now: no ALTER TABLE
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # may follow while checks on the table are pending
        cursor.execute(f'ALTER TABLE "{name}" ENABLE TRIGGER USER')
        cursor.execute("DROP TABLE suho_early_rows")
    _protect_partition(cursor, name)
    return name


def _ensure_partitions(cursor, series: TimeSeries, now: datetime) -> list[str]:
    created = []
    default = f"{series.table}_default"
    cursor.execute("SELECT to_regclass(%s)", [default])
    if cursor.fetchone()[0] is None:
        cursor.execute(f'CREATE TABLE "{default}" PARTITION OF "{series.table}" DEFAULT')
        _protect_partition(cursor, default)
        created.append(default)
    start = _period_start(series, now)
    for _ in range(series.ahead + 1):
        end = _next_period(series, start)
        cursor.execute("SELECT to_regclass(%s)", [_partition_name(series, start)])
        if cursor.fetchone()[0] is None:
            created.append(_create_partition(cursor, series, start, end))
        start = end
    return created


def _drop_expired(cursor, series: TimeSeries, now: datetime) -> list[str]:
    """Drop whole partitions past retention and delete expired rows from the default partition."""
    cursor.execute("SELECT %s::timestamptz - %s::interval", [now, series.retention])
    horizon = cursor.fetchone()[0]
    cursor.execute(
        """
        SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
        FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid
        WHERE pg_inherits.inhparent = %s::regclass
        """,
        [series.table],
    )
    dropped = []
    for name, bound in cursor.fetchall():
        if bound == "DEFAULT":
            continue
        upper = bound.split("TO ('", 1)[1].split("'", 1)[0]
        cursor.execute("SELECT %s::timestamptz <= %s", [upper, horizon])
        if cursor.fetchone()[0]:
            cursor.execute(f'DROP TABLE "{name}"')
            dropped.append(name)
    cursor.execute(f'DELETE FROM "{series.table}_default" WHERE time < %s', [horizon])
    return dropped


def partitions_upkeep(now: datetime | None = None) -> dict[str, list[str]]:
    """Create partitions ahead and enforce retention (plain path); on TimescaleDB, create chunks ahead (its own
    retention jobs drop them).

    Runs as the owner, one transaction per table. Row security is forced on the owner too, and upkeep is
    cross-tenant, so the default partition is read without its policy for the span of that transaction (DDL is
    transactional: no other session ever sees it unforced). `suho.audit_upkeep` lets this transaction, and only
    the owner's, delete from the append-only audit log: expired rows, and rows moving into a new partition.
    """
    connection = connections[OWNER]
    now = now or datetime.now(UTC)
    if timescale_enabled(connection):
        return _chunks_upkeep(connection, now)
    changes: dict[str, list[str]] = {}
    for series in TIME_SERIES.values():
        with transaction.atomic(using=OWNER), connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [series.table])
            if cursor.fetchone()[0] is None:
                continue
            cursor.execute("SELECT set_config(%s, 'on', true)", [AUDIT_UPKEEP_SETTING])
            default = f"{series.table}_default"
            cursor.execute("SELECT to_regclass(%s)", [default])
            if cursor.fetchone()[0] is not None:
                cursor.execute(f'ALTER TABLE "{default}" NO FORCE ROW LEVEL SECURITY')
            changes[series.table] = _ensure_partitions(cursor, series, now) + _drop_expired(cursor, series, now)
            cursor.execute(f'ALTER TABLE "{default}" FORCE ROW LEVEL SECURITY')
            cursor.execute("SELECT set_config(%s, '', true)", [AUDIT_UPKEEP_SETTING])  # also when nested
    return changes
