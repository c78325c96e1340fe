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
