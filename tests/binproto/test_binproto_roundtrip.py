"""Property tests: every message of every type and version survives bytes and JSON unchanged, and the ingest fast
path returns exactly the typed decode's ticks."""

import pytest
from binproto_strategies import message, v1_price_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import binproto as bp

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("cls", bp.MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_every_v2_message_roundtrips_through_bytes_and_json(cls):
    @SETTINGS
    @given(message(cls))
    def check(msg):
        raw = bp.encode(msg)
        assert bp.decode(raw) == msg
        assert bp.decode_header(raw) == (2, cls.TYPE, 0, msg.timestamp_us)
        assert bp.from_json(bp.to_json(msg)) == msg
        assert bp.from_dict(bp.to_dict(msg)) == msg

    check()


@SETTINGS
@given(v1_price_stream(max_ticks=8), st.booleans())
def test_v1_price_stream_roundtrips_exact_and_zero_padded(msg, pad):
    raw = bp.encode(msg, pad=pad)
    assert len(raw) == (bp.V1_PACKET_SIZE if pad else 16 + 16 * len(msg.ticks))
    assert bp.decode(raw) == msg
    assert bp.from_json(bp.to_json(msg)) == msg


@SETTINGS
@given(v1_price_stream(max_ticks=40))
def test_v1_exact_length_frames_may_carry_more_than_eight_records(msg):
    assert bp.decode(bp.encode(msg)) == msg


@SETTINGS
@given(v1_price_stream(max_ticks=8), st.booleans())
def test_v1_price_rows_are_the_typed_ticks_with_symbol_names(msg, pad):
    names = {tick.symbol: f"S{tick.symbol}" for tick in msg.ticks[::2]}  # every other id is unknown: no row
    timestamp_us, rows = bp.decode_price_rows(bp.encode(msg, pad=pad), names)
    assert timestamp_us == msg.timestamp_us
    assert rows == [(names[t.symbol], *t[1:]) for t in msg.ticks if t.symbol in names]
    assert all(len(row) == len(bp.ROW_FIELDS) for row in rows)


@SETTINGS
@given(v1_price_stream(max_ticks=8), st.booleans())
def test_v1_ingest_records_scale_back_to_the_typed_ticks(msg, pad):
    timestamp_us, records = bp.decode_v1_price_records(bp.encode(msg, pad=pad))
    assert timestamp_us == msg.timestamp_us
    assert [
        (sid, bid / bp.V1_PRICE_SCALE, ask / bp.V1_PRICE_SCALE, spread, server)
        for sid, bid, ask, spread, server in records
    ] == [(t.symbol, t.bid, t.ask, t.spread_points, t.server_id) for t in msg.ticks]
    assert all(len(record) == len(bp.V1_RECORD_FIELDS) for record in records)


@SETTINGS
@given(message(bp.PriceStream))
def test_v2_price_rows_are_the_typed_ticks_with_symbol_names(msg):
    names = {tick.symbol: f"SYM{tick.symbol}.m" for tick in msg.ticks}
    timestamp_us, rows = bp.decode_price_rows(bp.encode(msg), names)
    assert timestamp_us == msg.timestamp_us
    assert rows == [(names[t.symbol], *t[1:]) for t in msg.ticks]
    assert all(type(row[4]) is int and type(row[5]) is bool and type(row[6]) is int for row in rows)
