"""The test suite's clean-ups truncate tables; on TimescaleDB that drops a hypertable's chunks (decision 0028)."""

from __future__ import annotations

from functools import cache

from django.db import connections

from suho.timeseries import current_chunks_ensure, timescale_enabled


@cache
def _timescale() -> bool:
    """The test database is one kind for the whole run."""
    return timescale_enabled(connections["owner"])


def current_chunks_again() -> None:
    """After a TRUNCATE: on TimescaleDB, make the chunks holding now again, as upkeep keeps them (and those ahead) in a
    deployment, which never truncates. A writer that had to create one inside a transaction holding an account row
    could deadlock. Only now's (a whole horizon per clean-up slowed the suite by half): a test that crosses a
    chunk boundary (30 minutes at the shortest) has its writer make the next, a rare deadlock that
    `retried_on_deadlock` takes."""
    if _timescale():
        current_chunks_ensure()


def old_partitions_create(cursor, table: str, count: int) -> list[str]:
    """`count` partitions of a plain-path time series, back to back from well before now, in the owner's `cursor`
    (its transaction: roll it back to drop them). For tests that read a plan: an old partition in it means a read
    that names no time."""
    from datetime import date, timedelta

    from suho.timeseries import TIME_SERIES, _create_partition, _next_period

    series = TIME_SERIES[table]
    cursor.execute(f'ALTER TABLE "{table}_default" NO FORCE ROW LEVEL SECURITY')  # early rows move out of it
    start, made = date.today() - timedelta(days=count + 10), []
    for _ in range(count):
        end = _next_period(series, start)
        made.append(_create_partition(cursor, series, start, end))
        start = end
    return made
