"""suho/clock.py, the one owner of wire time (microseconds since the epoch): conversions both ways are exact and
agree with each other, and "not set" is 0 as binproto has it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.db import connection

from suho.clock import datetime_to_us, ms_to_datetime, now_us, sql_us_to_timestamptz, us_to_datetime, us_to_iso


def test_a_datetime_survives_the_wire_to_the_microsecond():
    moment = datetime(2026, 12, 3, 13, 14, 15, 999_999, tzinfo=UTC)
    assert datetime_to_us(moment) == 1_796_303_655_999_999
    assert us_to_datetime(datetime_to_us(moment)) == moment
    assert datetime_to_us(None) == 0


def test_milliseconds_and_now_are_on_the_same_scale():
    assert ms_to_datetime(1_796_303_655_123) == datetime(2026, 12, 3, 13, 14, 15, 123_000, tzinfo=UTC)
    before = time.time_ns() // 1000
    assert before <= now_us() <= time.time_ns() // 1000


def test_the_fast_iso_text_is_isoformat_character_for_character():
    """us_to_iso formats each whole second once (the gateway's latest quotes): it must still say what isoformat says,
    whole seconds (no fraction) and times before the epoch included."""
    values = [0, 1, 999_999, 1_000_000, -1, -1_000_000, 1_796_303_655_999_999, 1_796_303_655_000_000,
              1_796_303_655_000_001, 253_402_300_799_999_999]  # fmt: skip
    values += [1_764_900_000_000_000 + step * 7_919_993 for step in range(2_000)]
    assert [us_to_iso(value) for value in values] == [us_to_datetime(value).isoformat() for value in values]


@pytest.mark.django_db
def test_the_batched_inserts_sql_conversion_is_exact_to_the_microsecond():
    """The ingest statements turn wire microseconds into timestamptz in SQL (sql_us_to_timestamptz, float arithmetic
    under the hood): every value a tick can carry lands on the same microsecond as us_to_datetime, whatever the
    session's time zone."""
    values = [0, 1, 999_999, 1_000_001, 1_796_303_655_999_999, 1_796_303_655_000_001, 2**53 - 1 - (2**53 - 1) % 10]
    values += [1_764_900_000_000_000 + step * 7_919_993 for step in range(2_000)]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Kathmandu'")
        cursor.execute(
            f"SELECT {sql_us_to_timestamptz('v')} AT TIME ZONE 'UTC' FROM unnest(%s::bigint[]) "
            "WITH ORDINALITY AS u(v, n) ORDER BY n",
            [values],
        )  # at UTC: Django reads timestamps as UTC
        stored = [row[0] for row in cursor.fetchall()]
    assert stored == [us_to_datetime(value).replace(tzinfo=None) for value in values]
