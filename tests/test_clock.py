"""suho/clock.py, the one owner of wire time (microseconds since the epoch): conversions both ways are exact and
agree with each other, and "not set" is 0 as binproto has it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from suho.clock import datetime_to_us, ms_to_datetime, now_us, us_to_datetime


def test_a_datetime_survives_the_wire_to_the_microsecond():
    moment = datetime(2026, 12, 3, 13, 14, 15, 999_999, tzinfo=UTC)
    assert datetime_to_us(moment) == 1_796_303_655_999_999
    assert us_to_datetime(datetime_to_us(moment)) == moment
    assert datetime_to_us(None) == 0


def test_milliseconds_and_now_are_on_the_same_scale():
    assert ms_to_datetime(1_796_303_655_123) == datetime(2026, 12, 3, 13, 14, 15, 123_000, tzinfo=UTC)
    before = time.time_ns() // 1000
    assert before <= now_us() <= time.time_ns() // 1000
