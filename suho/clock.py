"""Time as the wire carries it: integer microseconds since the Unix epoch (binproto's `*_us` fields), and the
conversions to and from aware datetimes (in integer arithmetic: exact at any date). One owner, so every app
converts the same way; binproto and eaclient keep their own (they import no server package).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def sql_us_to_timestamptz(column: str) -> str:
    """SQL for a bigint column of microseconds as a timestamptz, for the batched inserts: exact below 2^53 µs (year
    2255), and ~10 % cheaper per row in the ticks' INSERT than `to_timestamp(t / 1e6)`, which divides in numeric."""
    return f"(timestamptz 'epoch' + {column} * interval '1 microsecond')"


def now_us() -> int:
    return time.time_ns() // 1000


def datetime_to_us(moment: datetime | None) -> int:
    """An aware datetime in microseconds; None is 0, binproto's "not set"."""
    return (moment - EPOCH) // ONE_US if moment is not None else 0


def us_to_datetime(value_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=value_us)


def us_to_iso(value_us: int) -> str:
    """`us_to_datetime(value_us).isoformat()`, character for character, at a third of its cost: a hot path (the
    gateway's latest quotes, about a thousand per batch) formats each whole second once."""
    second, micro = divmod(value_us, 1_000_000)
    return f"{_iso_second(second)}.{micro:06d}+00:00" if micro else f"{_iso_second(second)}+00:00"


@lru_cache(maxsize=256)  # a batch's ticks span a few seconds
def _iso_second(second: int) -> str:
    return (EPOCH + timedelta(seconds=second)).isoformat()[: -len("+00:00")]


def ms_to_datetime(value_ms: int | float) -> datetime:
    """Feeds that count milliseconds (Polygon)."""
    return EPOCH + timedelta(milliseconds=value_ms)
