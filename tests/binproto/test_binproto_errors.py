"""Every way a frame can be wrong is one ProtocolError with a precise reason (the constants in binproto.errors)."""

import dataclasses
import math
import struct

import pytest
from test_binproto_golden import GOLDEN, TS, V1_EXACT, header, s8

import binproto as bp
from binproto import errors as E

SIGNAL, SIGNAL_RAW = GOLDEN["trading_signal"]
PRICES_RAW = GOLDEN["price_stream"][1]


def reason(raw, **kw) -> str:
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode(raw, **kw)
    return str(info.value)


def test_short_frame_is_rejected_before_anything_else():
    assert reason(b"THUS") == E.ERR_SHORT_HEADER.format(size=4)


def test_frame_over_the_size_limit_is_rejected():
    raw = header(0x0B) + bytes(bp.MAX_FRAME_SIZE)
    assert reason(raw) == E.ERR_TOO_LARGE.format(size=len(raw), limit=bp.MAX_FRAME_SIZE)


def test_wrong_magic_is_rejected():
    assert reason(b"SUHO" + SIGNAL_RAW[4:]) == E.ERR_BAD_MAGIC.format(magic=0x4F485553)


def test_unknown_version_is_rejected():
    assert reason(header(0x81, version=3) + SIGNAL_RAW[16:]) == E.ERR_BAD_VERSION.format(version=3)


def test_unknown_type_is_rejected_in_both_versions():
    assert reason(header(0x42)) == E.ERR_BAD_TYPE.format(msg_type=0x42, version=2)
    assert reason(header(0x81, count=0, version=1)) == E.ERR_BAD_TYPE.format(msg_type=0x81, version=1)


def test_v2_data_count_must_be_zero():
    assert reason(header(0x81, count=1) + SIGNAL_RAW[16:]) == E.ERR_DATA_COUNT.format(version=2, count=1)


def test_v1_length_must_match_the_record_count():
    raw = V1_EXACT[:16] + V1_EXACT[16:48]  # header says 3 records, 2 present
    assert reason(raw) == E.ERR_V1_LENGTH.format(count=3, exact=64, padded=144, size=48)


def test_v1_padding_must_be_zero_bytes():
    raw = V1_EXACT + bytes(79) + b"\x01"
    assert reason(raw) == E.ERR_V1_PADDING.format(count=3)
    with pytest.raises(bp.ProtocolError, match="padding"):
        bp.decode_price_rows(raw)


def test_v1_with_more_than_eight_records_cannot_be_padded():
    raw = struct.pack("<IHBBQ", bp.MAGIC, 1, 1, 9, 0) + bytes(128)
    assert reason(raw) == E.ERR_V1_LENGTH.format(count=9, exact=160, padded=144, size=144)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.5, 2e15])
def test_non_finite_negative_or_absurd_prices_are_rejected(bad):
    raw = SIGNAL_RAW[:33] + struct.pack("<d", bad) + SIGNAL_RAW[41:]
    assert reason(raw) == E.ERR_RANGE.format(what="TradingSignal.entry_price", value=bad, lo=0.0, hi=1e15)


@pytest.mark.parametrize("bad", [math.nan, -1.0])
def test_a_bad_price_in_a_price_stream_names_its_record(bad):
    raw = PRICES_RAW[: 18 + 25 + 10] + struct.pack("<d", bad) + PRICES_RAW[18 + 25 + 18 :]
    expected = E.ERR_RANGE.format(what="PriceStream.ticks[1].ask", value=bad, lo=0.0, hi=1e15)
    assert reason(raw) == expected
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_price_rows(raw, {0: "EURUSD.m", 2: "BTCUSD"})
    assert str(info.value) == expected


def test_unknown_enum_value_is_rejected():
    raw = SIGNAL_RAW[:32] + b"\x09" + SIGNAL_RAW[33:]
    assert reason(raw) == E.ERR_ENUM.format(what="TradingSignal.action", value=9, enum="Action")


def test_flag_must_be_zero_or_one():
    raw = PRICES_RAW[: 18 + 23] + b"\x02" + PRICES_RAW[18 + 24 :]
    assert reason(raw) == E.ERR_ENUM.format(what="PriceStream.ticks[0].tradeable", value=2, enum="bool")


def test_ack_must_name_a_server_message_type():
    _, raw = GOLDEN["ack"]
    assert reason(raw[:16] + b"\x06" + raw[17:]) == E.ERR_ENUM.format(what="Ack.acked_type", value=6, enum="MsgType")


def test_non_utf8_symbol_is_rejected():
    raw = SIGNAL_RAW[:114] + s8("EURUSD")[:1] + b"EUR\xffSD" + SIGNAL_RAW[121:]
    assert reason(raw) == E.ERR_TEXT_UTF8.format(what="TradingSignal.symbol")


def test_nul_in_a_string_is_rejected():
    raw = SIGNAL_RAW[:114] + b"\x06EUR\x00SD" + SIGNAL_RAW[121:]
    assert reason(raw) == E.ERR_TEXT_NUL.format(what="TradingSignal.symbol")


def test_truncated_string_is_rejected():
    raw = SIGNAL_RAW[:114] + b"\x06EUR"
    assert reason(raw) == E.ERR_TRUNCATED.format(what="TradingSignal.symbol", need=6, offset=115, size=118)


def test_string_over_its_limit_is_rejected():
    raw = SIGNAL_RAW[:114] + s8("X" * 33) + SIGNAL_RAW[121:]
    assert reason(raw) == E.ERR_TEXT_LENGTH.format(what="TradingSignal.symbol", size=33, lo=1, hi=32)


def test_empty_symbol_is_rejected():
    raw = SIGNAL_RAW[:114] + b"\x00" + SIGNAL_RAW[121:]
    assert reason(raw) == E.ERR_TEXT_LENGTH.format(what="TradingSignal.symbol", size=0, lo=1, hi=32)


def test_list_count_over_its_limit_is_rejected():
    raw = header(0x01) + struct.pack("<H", 1025)
    assert reason(raw) == E.ERR_COUNT.format(what="PriceStream.ticks", count=1025, limit=1024)


def test_list_count_beyond_the_frame_is_rejected():
    raw = header(0x01) + struct.pack("<H", 3) + PRICES_RAW[18:]
    assert reason(raw) == E.ERR_TRUNCATED.format(what="PriceStream.ticks (3 items)", need=75, offset=18, size=68)


def test_duplicate_parameter_keys_are_rejected():
    raw = header(0x83) + GOLDEN["config_update"][1][16:57] + b"\x02" + s8("a") + s8("1") + s8("a") + s8("2")
    assert reason(raw) == E.ERR_DUPLICATE.format(what="ConfigUpdate.params", key="a")


def test_trailing_bytes_are_rejected():
    assert reason(SIGNAL_RAW + b"\x00\x00") == E.ERR_TRAILING.format(size=146, extra=2, name="TradingSignal")


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError):
        bp.decode("SUHO")


def test_v2_price_rows_need_the_connections_symbol_table():
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_price_rows(PRICES_RAW)
    assert str(info.value) == E.ERR_NO_SYMBOL_TABLE
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_price_rows(PRICES_RAW, {0: "EURUSD.m"})
    assert str(info.value) == E.ERR_UNKNOWN_SYMBOL.format(what="PriceStream.ticks[1].symbol", index=2)


def test_v1_ingest_records_refuse_other_versions_types_and_bad_padding():
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_v1_price_records(PRICES_RAW)
    assert str(info.value) == E.ERR_NOT_V1.format(version=2)
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_v1_price_records(SIGNAL_RAW)
    assert str(info.value) == E.ERR_NOT_PRICE_STREAM.format(name="TRADING_SIGNAL")
    padded = bytearray(V1_EXACT + bytes(80))
    padded[-1] = 1
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_v1_price_records(bytes(padded))
    assert str(info.value) == E.ERR_V1_PADDING.format(count=3)
    with pytest.raises(TypeError):
        bp.decode_v1_price_records("SUHO")


def test_price_rows_refuse_other_message_types():
    with pytest.raises(bp.ProtocolError) as info:
        bp.decode_price_rows(SIGNAL_RAW, {})
    assert str(info.value) == E.ERR_NOT_PRICE_STREAM.format(name="TRADING_SIGNAL")


def test_v1_records_with_unknown_symbol_ids_yield_no_rows_but_stay_in_the_typed_decode():
    raw = (
        struct.pack("<IHBBQ", bp.MAGIC, 1, 1, 2, 7)
        + struct.pack("<IIII", 255, 1, 2, 0)
        + struct.pack("<IIII", 1, 3, 4, 0)
    )
    assert bp.decode_price_rows(raw) == (7, [("EURUSD", 3e-5, 4e-5, 0, 0, True, 0, 0)])
    assert [t.symbol for t in bp.decode(raw).ticks] == [bp.V1_UNKNOWN_SYMBOL_ID, 1]


def test_v1_symbol_ids_can_be_renumbered_per_account():
    _, rows = bp.decode_price_rows(V1_EXACT, {1: "EURUSD.m", 2: "GBPUSD.m", 3: "USDJPY.m"})
    assert [row[0] for row in rows] == ["EURUSD.m", "GBPUSD.m", "USDJPY.m"]


# --- encode refuses what decode would refuse --------------------------------------------------------------------
def encode_reason(msg, **kw) -> str:
    with pytest.raises(bp.ProtocolError) as info:
        bp.encode(msg, **kw)
    return str(info.value)


def test_encode_refuses_a_nan_price():
    msg = dataclasses.replace(SIGNAL, stop_loss=math.nan)
    assert encode_reason(msg) == E.ERR_RANGE.format(what="TradingSignal.stop_loss", value=math.nan, lo=0.0, hi=1e15)


def test_encode_refuses_prices_that_overflow_v1():
    msg = bp.PriceStream((bp.PriceTick(1, 42949.68, 42949.7, 10),), 1, TS)
    assert encode_reason(msg) == E.ERR_V1_PRICE.format(what="PriceStream.ticks[0].bid", value=42949.68)


def test_encode_refuses_what_v1_cannot_carry():
    msg = bp.PriceStream((bp.PriceTick(1, 1.1, 1.2, 10, bp.QuoteQuality.GOOD),), 1, TS)
    assert encode_reason(msg) == E.ERR_V1_FIELD.format(
        what="PriceStream.ticks[0].quote_quality", value=bp.QuoteQuality.GOOD, default=bp.QuoteQuality.UNKNOWN
    )
    assert encode_reason(bp.Error(bp.ErrorCode.RATE_LIMITED, "slow down", version=1)) == E.ERR_V1_ONLY_PRICES.format(
        name="Error"
    )


def test_encode_refuses_a_server_id_in_version_2():
    msg = bp.PriceStream((bp.PriceTick(1, 1.1, 1.2, 10, server_id=4),), 2, TS)
    assert encode_reason(msg) == E.ERR_V2_SERVER_ID.format(what="PriceStream.ticks[0].server_id", value=4)


def test_encode_refuses_strings_over_their_limit_and_lists_over_theirs():
    assert encode_reason(dataclasses.replace(SIGNAL, symbol="")) == E.ERR_TEXT_LENGTH.format(
        what="TradingSignal.symbol", size=0, lo=1, hi=32
    )
    msg = bp.Hello(GOLDEN["hello"][0].account_id, bp.AuthMethod.API_KEY, 1, "v", "k", tuple(range(9)))
    assert encode_reason(msg) == E.ERR_COUNT.format(what="Hello.protocol_versions", count=9, limit=8)


def test_every_message_at_its_size_limits_fits_in_one_frame():
    from binproto.codec import LAYOUT_BY_CLASS, item_layout
    from binproto.messages import Fixed, Items, Pairs, Text

    def largest(layout) -> int:
        size = layout.fixed.size
        for spec in layout.fields[layout.n_fixed :]:
            kind = spec.kind
            if isinstance(kind, Text):
                size += struct.calcsize(kind.prefix) + kind.max_bytes
            elif isinstance(kind, Pairs):
                size += 1 + kind.max_items * (1 + 64 + 1 + 255)
            else:
                assert isinstance(kind, Items)
                item = item_layout(kind.item)
                size += struct.calcsize(kind.count) + kind.max_items * largest(item)
        return size

    for cls, layout in LAYOUT_BY_CLASS.items():
        assert all(isinstance(spec.kind, Fixed) for spec in layout.fields[: layout.n_fixed])
        assert bp.HEADER_SIZE + largest(layout) <= bp.MAX_FRAME_SIZE, cls.__name__


# --- timestamps -------------------------------------------------------------------------------------------------
NOW = 1_759_667_400_000_000


def test_a_plausible_timestamp_is_kept_and_trusted():
    assert bp.resolve_timestamp(NOW - 1_500_000, NOW) == (NOW - 1_500_000, True)
    assert bp.resolve_timestamp(NOW + bp.MAX_FUTURE_SKEW_US, NOW) == (NOW + bp.MAX_FUTURE_SKEW_US, True)
    assert bp.resolve_timestamp(NOW - bp.MAX_PAST_SKEW_US, NOW) == (NOW - bp.MAX_PAST_SKEW_US, True)


def test_get_tick_count_milliseconds_since_boot_are_replaced_by_the_receive_time():
    three_days_of_uptime_ms = 3 * 86_400_000
    assert bp.resolve_timestamp(three_days_of_uptime_ms, NOW) == (NOW, False)
    assert bp.resolve_timestamp(three_days_of_uptime_ms * 1000, NOW) == (NOW, False)


def test_timestamps_too_far_ahead_or_behind_are_not_trusted():
    assert bp.resolve_timestamp(NOW + bp.MAX_FUTURE_SKEW_US + 1, NOW) == (NOW, False)
    assert bp.resolve_timestamp(NOW - bp.MAX_PAST_SKEW_US - 1, NOW) == (NOW, False)
    assert bp.resolve_timestamp(NOW, NOW, max_future_us=0, max_past_us=0) == (NOW, True)


# --- JSON form --------------------------------------------------------------------------------------------------
def json_reason(text) -> str:
    with pytest.raises(bp.ProtocolError) as info:
        bp.from_json(text)
    return str(info.value)


def test_json_form_is_flat_with_type_version_and_integer_timestamp():
    doc = bp.to_dict(SIGNAL)
    assert doc["type"] == "trading_signal" and doc["version"] == 2 and doc["timestamp"] == TS
    assert doc["signal_id"] == "12340000-1111-4222-8333-444455556666"
    assert doc["action"] == "buy" and doc["sizing_method"] == "fixed_lots"


def test_json_enums_are_case_insensitive_on_input():
    doc = bp.to_dict(SIGNAL)
    assert bp.from_dict({**doc, "action": "BUY"}) == SIGNAL


def test_json_rejects_nan_unknown_and_missing_fields():
    doc = bp.to_dict(SIGNAL)
    assert json_reason('{"type": "trading_signal", "x": NaN}') == E.ERR_JSON_SYNTAX.format(reason="NaN is not a number")
    assert json_reason("[1]") == E.ERR_JSON_OBJECT.format(kind="list")
    assert json_reason('{"type": "nope"}') == E.ERR_JSON_TYPE_NAME.format(type="nope")
    extra = {**doc, "colour": "red"}
    with pytest.raises(bp.ProtocolError) as info:
        bp.from_dict(extra)
    assert str(info.value) == E.ERR_JSON_UNKNOWN.format(name="TradingSignal", fields=["colour"])
    del doc["symbol"]
    with pytest.raises(bp.ProtocolError) as info:
        bp.from_dict(doc)
    assert str(info.value) == E.ERR_JSON_MISSING.format(name="TradingSignal", fields=["symbol"])


def test_json_rejects_negative_prices_and_bad_uuids():
    doc = bp.to_dict(SIGNAL)
    with pytest.raises(bp.ProtocolError, match="entry_price"):
        bp.from_dict({**doc, "entry_price": -1})
    with pytest.raises(bp.ProtocolError, match="signal_id"):
        bp.from_dict({**doc, "signal_id": "not-a-uuid"})


def test_json_rejects_a_server_id_in_version_2():
    msg, _ = GOLDEN["price_stream"]
    doc = bp.to_dict(msg)
    doc["ticks"][0]["server_id"] = 3
    with pytest.raises(bp.ProtocolError) as info:
        bp.from_dict(doc)
    assert str(info.value) == E.ERR_V2_SERVER_ID.format(what="PriceStream.ticks[0].server_id", value=3)


def code(raw, decoder=bp.decode) -> bp.ErrorCode:
    with pytest.raises(bp.ProtocolError) as info:
        decoder(raw)
    return info.value.code


def test_each_error_carries_the_error_code_the_server_answers_with():
    """docs/protocol.md §9: the code an EA sees depends on what was wrong, not only "malformed"."""
    assert code(header(0x81, version=3) + SIGNAL_RAW[16:]) == bp.ErrorCode.UNSUPPORTED_VERSION
    assert code(header(0x7F) + SIGNAL_RAW[16:]) == bp.ErrorCode.UNKNOWN_TYPE
    assert code(header(0x0B) + bytes(bp.MAX_FRAME_SIZE)) == bp.ErrorCode.TOO_LARGE
    assert code(b"SUHO" + SIGNAL_RAW[4:]) == bp.ErrorCode.MALFORMED_FRAME
    assert code(PRICES_RAW, lambda raw: bp.decode_price_rows(raw, {0: "EURUSD"})) == bp.ErrorCode.UNKNOWN_SYMBOL
    assert code('{"type":"no_such","version":2,"timestamp":0}', bp.from_json) == bp.ErrorCode.UNKNOWN_TYPE
    assert code('{"type":"heartbeat","version":3,"timestamp":0}', bp.from_json) == bp.ErrorCode.UNSUPPORTED_VERSION


def test_json_of_a_v2_tick_has_no_server_id_which_only_v1_carries():
    v2 = bp.decode(PRICES_RAW)
    assert all("server_id" not in tick for tick in bp.to_dict(v2)["ticks"])
    assert bp.from_json(bp.to_json(v2)) == v2
    v1 = bp.decode(V1_EXACT)
    assert [tick["server_id"] for tick in bp.to_dict(v1)["ticks"]] == [1, 1, 1]
