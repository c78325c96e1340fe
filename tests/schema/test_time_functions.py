"""`time_bucket()` and `last()` behave as TimescaleDB's on both paths, so the seed's SQL means the same everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db

VALUES = """
(VALUES ('b'::varchar(20), 2.50::numeric(20, 2), TIMESTAMPTZ '2026-03-02 12:03:00+00'),
        ('c', 3.50, TIMESTAMPTZ '2026-03-02 12:04:59+00'),
        ('a', 1.50, TIMESTAMPTZ '2026-03-02 12:01:00+00')) AS t(status, balance, time)
"""


def one(sql: str):
    with connections["default"].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def test_last_takes_the_value_at_the_latest_time_whatever_the_row_order_and_type():
    status, balance, at, kind = one(
        f"SELECT last(status, time), last(balance, time), last(time, time), pg_typeof(last(status, time))::text"
        f" FROM {VALUES}"
    )
    assert (status, balance, at) == ("c", Decimal("3.50"), datetime(2026, 3, 2, 12, 4, 59, tzinfo=UTC))
    # TimescaleDB's last() is polymorphic (varchar in, varchar out); the plain path's resolves to its text overload.
    assert kind in {"text", "character varying"}


def test_time_bucket_floors_to_the_bucket_with_timescaledbs_origin():
    five_minutes, week = one(
        "SELECT time_bucket('5 minutes', TIMESTAMPTZ '2026-03-02 12:04:59+00'),"
        " time_bucket('1 week', TIMESTAMPTZ '2026-03-05 08:00:00+00')"
    )
    assert five_minutes == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert week == datetime(2026, 3, 2, tzinfo=UTC), "weeks start on Monday, as from 2000-01-03"
