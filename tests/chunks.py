"""The test suite's clean-ups truncate tables; on TimescaleDB that drops a hypertable's chunks (decision 0028)."""

from __future__ import annotations

from django.db import connections

from suho.timeseries import current_chunks_ensure, timescale_enabled

_timescale: list[bool] = []


def current_chunks_again() -> None:
    """After a TRUNCATE: on TimescaleDB, make the chunks holding now again, as upkeep keeps them (and those ahead) in a
    deployment, which never truncates. A writer that had to create one inside a transaction holding an account row
    could deadlock. Only now's (a whole horizon per clean-up slowed the suite by half): a test that crosses a
    chunk boundary (30 minutes at the shortest) has its writer make the next, a rare deadlock that
    `retried_on_deadlock` takes."""
    if not _timescale:
        _timescale.append(timescale_enabled(connections["owner"]))
    if _timescale[0]:
        current_chunks_ensure()
