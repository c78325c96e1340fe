"""The test suite's clean-ups truncate tables; on TimescaleDB that drops a hypertable's chunks (decision 0028)."""

from __future__ import annotations

from django.db import connections

from suho.timeseries import partitions_upkeep, timescale_enabled

_timescale: list[bool] = []


def chunks_ahead_again() -> None:
    """After a TRUNCATE: on TimescaleDB, make the chunks ahead again, as upkeep keeps them in a deployment (which never
    truncates). A writer that had to create one inside a transaction holding an account row could deadlock."""
    if not _timescale:
        _timescale.append(timescale_enabled(connections["owner"]))
    if _timescale[0]:
        partitions_upkeep()
