"""Raw SQL for selectors and hot paths: the seed's analytic queries run as written, through the role the router
picks; statements run under a tenant's context in one round trip; ORM reads compiled once and filled in per call."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache, wraps
from uuid import UUID

from django.db import OperationalError, connections, models, router
from django.db.models.sql.subqueries import InsertQuery
from psycopg import _queries as psycopg_queries
from psycopg.pq import ExecStatus

from suho.routers import SERVICE
from suho.tenancy import TENANT_SETTING, tenant_context

DEADLOCK_ATTEMPTS = 3
DEADLOCK_DETECTED = "40P01"
TUPLES_OK = ExecStatus.TUPLES_OK

log = logging.getLogger(__name__)


# psycopg converts a query's `%s` placeholders on the client (Django binds parameters there, which allows several
# statements in one query string) and keeps the converted form of a query of at most 50 parameters; one with more is
# parsed again on every call. A signal's write (its row, audit row and outbox row in one round trip) has 57: its
# parse was ~4 % of a signal POST's CPU (issue 21). The limit is raised only as far as our statements need: psycopg's
# cache is one LRU of 128 entries per process, and a query whose parameter count varies (an IN list) takes an entry
# per count, so a wider limit would let IN lists of more values push busy statements out.
STATEMENT_CACHE_MAX_PARAMS = 64


def psycopg_statement_cache_widen() -> None:
    """Let psycopg keep the converted form of queries of up to STATEMENT_CACHE_MAX_PARAMS parameters. Its limit is a
    module constant with no public setting: a psycopg that renames it fails here at start, not silently."""
    if not isinstance(getattr(psycopg_queries, "MAX_CACHED_STATEMENT_PARAMS", None), int):
        raise RuntimeError("psycopg._queries.MAX_CACHED_STATEMENT_PARAMS is gone: see suho.sql")
    psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(psycopg_queries.MAX_CACHED_STATEMENT_PARAMS,
                                                      STATEMENT_CACHE_MAX_PARAMS)  # fmt: skip


def retried_on_deadlock(func):
    """Run `func`, a transaction of its own on the service role, again when PostgreSQL picks it as a deadlock's
    victim (SQLSTATE 40P01, at most `DEADLOCK_ATTEMPTS` runs in all). The server rolled the whole transaction back,
    so the run that succeeds is the only one that counts: nothing is doubled. Called inside a transaction (a
    caller's, a test's), the error is the caller's: its transaction is the one aborted."""

    @wraps(func)
    def call(*args, **kwargs):
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if (getattr(exc.__cause__, "sqlstate", None) != DEADLOCK_DETECTED or attempt == DEADLOCK_ATTEMPTS
                        or connections[SERVICE].in_atomic_block):  # fmt: skip
                    raise
                log.warning("%s was a deadlock's victim; running it again", func.__qualname__)

    return call


def fetch_dicts(model, sql: str, params: dict | list | None = None) -> list[dict]:
    """Rows as dicts, read through `model`'s alias: the service role under the caller's tenant context, or the
    operator role inside `operator_path()` (every tenant's rows, for cross-tenant jobs)."""
    with connections[router.db_for_read(model)].cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@retried_on_deadlock
def tenant_round_trip(tenant_id: UUID, sql: str, params: dict | list) -> list[list[tuple]]:
    """Run `sql` (one or more statements; `params` named or positional) under the tenant's context, as one
    transaction in one database round trip: a query string of several statements is one implicit transaction in
    PostgreSQL, so the transaction-scoped tenant setting that row-level security reads covers each statement and is
    gone after. Django's psycopg cursor binds parameters on the client, which allows several statements. Returns
    the rows of each statement after the setting. Inside a transaction (a test's) the statements join it, under
    `tenant_context`."""
    if connections[SERVICE].in_atomic_block:
        with tenant_context(str(UUID(str(tenant_id)))), connections[SERVICE].cursor() as cursor:
            return results_of(cursor, sql, params)
    with connections[SERVICE].cursor() as cursor:
        return results_of(cursor, *tenant_statement(tenant_id, sql, params))[1:]


def tenant_statement(tenant_id: UUID, sql: str, params: dict | list) -> tuple[str, dict | list]:
    """`sql` after a statement that sets the tenant's context for the rest of its transaction (its first result:
    one row), with the parameters of both."""
    tenant = str(UUID(str(tenant_id)))  # refuses anything that is not a UUID before it reaches SQL
    if isinstance(params, dict):
        return (
            "SELECT set_config(%(tenant_setting)s, %(tenant_id)s, true);\n" + sql,
            {**params, "tenant_setting": TENANT_SETTING, "tenant_id": tenant},
        )
    return "SELECT set_config(%s, %s, true);\n" + sql, [TENANT_SETTING, tenant, *params]


def tenant_statements(tenant_id: UUID, statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """`statements_in_context` as one transaction of its own under the tenant's context (`tenant_round_trip`): one
    round trip, committed when it returns (inside a transaction, a test's, part of it). The rows of each statement."""
    return tenant_round_trip(tenant_id, *_joined(statements))


def results_of(cursor, sql: str, params: dict | list | None = None) -> list[list[tuple]]:
    """Each statement's rows; none for one that returns no rows (an INSERT without RETURNING). Without `params`,
    psycopg sends `sql` as it is (a `%` is no placeholder)."""
    cursor.execute(sql, params)
    results = [_rows(cursor)]
    while cursor.nextset():
        results.append(_rows(cursor))
    return results


def results_of_bound(cursor, statements: list[tuple[str, dict | list | None]]) -> list[list[tuple]]:
    """Several statements, each with its own parameters (named or positional; None for none), in one round trip:
    each bound by psycopg's `mogrify` (which keeps the parsed form of each SQL text, so a statement sent again and
    again is parsed once per process), then joined into one query string sent without parameters. Each statement's
    rows. What the query string is (one transaction, or several with BEGIN and COMMIT among the statements) is the
    caller's."""
    return results_of(cursor, ";\n".join(cursor.mogrify(sql, params) for sql, params in statements))


def _rows(cursor) -> list[tuple]:
    """The statement's rows, or none when it returns no rows (psycopg's test, read off the result: its
    `description` would build an object per column only to be compared with None, a fifth of a HELLO's CPU)."""
    result = cursor.cursor.pgresult
    return cursor.fetchall() if result is not None and (result.nfields or result.status == TUPLES_OK) else []


@dataclass(frozen=True)
class CompiledRead:
    """A queryset's SQL compiled once: `slots` are the positions of stand-in values in `params`."""

    model: type[models.Model]
    sql: str
    params: tuple
    slots: tuple[tuple[int, object], ...]
    names: list[str]
    converters: dict

    def statement(self, values: dict) -> tuple[str, list]:
        """The SQL and its parameters, each slot's stand-in replaced by its value in `values`."""
        params = list(self.params)
        for index, stand_in in self.slots:
            params[index] = values[stand_in]
        return self.sql, params

    def instances(self, rows: list[tuple]) -> list[models.Model]:
        """The statement's rows as what iterating the queryset would give."""
        if self.converters:  # as Django's SQLCompiler.apply_converters does
            connection = connections[SERVICE]
            rows = [_converted(list(row), self.converters, connection) for row in rows]
        return [self.model.from_db(SERVICE, self.names, row) for row in rows]


def compiled_read(queryset: models.QuerySet, stand_ins: tuple) -> CompiledRead:
    """`queryset` (a plain model queryset on the service role) compiled, each parameter equal to one of `stand_ins`
    left as a slot that `CompiledRead.statement` (and so `tenant_reads`) fills per call. Raises if one of them is
    not among the parameters: the read would run with the stand-in itself (a 1970 `now` would resend expired
    signals)."""
    compiler = queryset.query.get_compiler(using=SERVICE)
    sql, params = compiler.as_sql()
    slots = tuple((index, value) for index, value in enumerate(params) if any(value == s for s in stand_ins))
    missing = [stand_in for stand_in in stand_ins if not any(value == stand_in for _index, value in slots)]
    if missing:
        raise ValueError(f"{queryset.model.__name__} read: no parameter to fill for {missing}")
    columns = [column for column, _sql, _alias in compiler.select[: compiler.col_count]]
    names = [column.target.attname for column in columns]
    return CompiledRead(queryset.model, sql, tuple(params), slots, names, compiler.get_converters(columns))


def tenant_reads(tenant_id: UUID, reads: tuple[CompiledRead, ...], values: dict) -> list[list[models.Model]]:
    """Run compiled reads under the tenant's context in one round trip (`tenant_round_trip`), each slot's stand-in
    replaced by its value in `values`; each list of instances is what iterating the queryset would give."""
    results = tenant_round_trip(tenant_id, *reads_statement(reads, values))
    return [read.instances(rows) for read, rows in zip(reads, results, strict=True)]


def reads_statement(reads: tuple[CompiledRead, ...], values: dict) -> tuple[str, list]:
    """The reads as one query string, each slot's stand-in replaced by its value in `values`."""
    return _joined([read.statement(values) for read in reads])


def statements_in_context(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Several statements, each with its positional parameters (`CompiledRead.statement` gives one), sent as one
    query string: one round trip, in the caller's transaction and tenant context. The rows of each statement."""
    with connections[SERVICE].cursor() as cursor:
        return results_of(cursor, *_joined(statements))


def insert_statement(instance: models.Model) -> tuple[str, list]:
    """The INSERT that `instance.save()` would send for a new row (each field's `pre_save` applied, `auto_now` among
    them), for `statements_in_context`; the instance is then what a create would return. Only for a model whose
    primary key is set before the insert (nothing to read back) and which no save signal is connected to.

    The SQL is the same for every row of a model whose values are plain (no expression, no field with its own
    placeholder), so it is compiled once per model and only the values are prepared per call, as Django's compiler
    prepares them: 75–81 µs per call against 137–143 µs compiled (issue 21). Anything else compiles in full."""
    model = type(instance)
    sql = _insert_sql(model)
    params = None if sql is None else _insert_values(instance)
    if params is None:
        sql, params = _insert_compiled(model, instance)
    instance._state.adding, instance._state.db = False, SERVICE
    return sql, params


def _insert_values(instance: models.Model) -> list | None:
    """The row's values for `_insert_sql`, as Django's compiler prepares them; None when one is SQL (an expression),
    which only the full compile writes. An expression set on the instance is seen before any `pre_save` runs, so the
    compile runs each once; one that a `pre_save` itself returns (no field here does) would have run twice."""
    fields = type(instance)._meta.local_concrete_fields
    if any(hasattr(getattr(instance, field.attname), "resolve_expression") for field in fields):
        return None
    connection, params = connections[SERVICE], []
    for field in fields:
        value = field.pre_save(instance, True)
        if hasattr(value, "resolve_expression"):
            return None
        params.append(field.get_db_prep_save(value, connection=connection))
    return None if any(hasattr(param, "as_sql") for param in params) else params


def _insert_compiled(model: type[models.Model], instance: models.Model) -> tuple[str, list]:
    query = InsertQuery(model)
    query.insert_values(model._meta.local_concrete_fields, [instance])
    ((sql, params),) = query.get_compiler(using=SERVICE).as_sql()
    return sql, list(params)


@cache
def _insert_sql(model: type[models.Model]) -> str | None:
    """The model's one-row INSERT as Django writes it for plain values, one `%s` per column; None if a column is
    written otherwise (a field with its own placeholder, a database default), and then every row compiles."""
    fields = model._meta.local_concrete_fields
    if any(getattr(field, "get_placeholder", None) for field in fields):
        return None
    query = InsertQuery(model)
    query.insert_values(fields, [model()])
    ((sql, params),) = query.get_compiler(using=SERVICE).as_sql()
    return sql if len(params) == len(fields) == sql.count("%s") else None


def _joined(statements: list[tuple[str, list]]) -> tuple[str, list]:
    """One query string of several statements, with their positional parameters in order."""
    return ";\n".join(sql for sql, _params in statements), [value for _sql, own in statements for value in own]


def _converted(row: list, converters: dict, connection) -> list:
    for position, (functions, expression) in converters.items():
        value = row[position]
        for function in functions:
            value = function(value, expression, connection)
        row[position] = value
    return row
