"""Golden vectors: the hex dumps in docs/protocol.md, each also packed here by hand with explicit struct formats
(independent of binproto's layouts), decoded to the expected message, encoded back byte for byte, and rejected one
byte short, one byte long and at every prefix.

Run as a script to print the docs' hex blocks: .venv/bin/python tests/binproto/test_binproto_golden.py
"""

import re
import struct
import sys
from pathlib import Path
from uuid import UUID

import pytest

import binproto as bp
from binproto import (
    AccountType,
    AckStatus,
    Action,
    AuthMethod,
    AuthStatus,
    CloseCode,
    CloseReason,
    CommandType,
    ConnectionStatus,
    ErrorCode,
    EventAckStatus,
    MarketSession,
    MsgType,
    OrderType,
    QuoteQuality,
    SizingMethod,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
TS = 1_759_667_400_000_000  # 2025-10-05T12:30:00Z in µs
ACCOUNT = UUID("5678aaaa-bbbb-4ccc-8ddd-eeeeffff0001")
SIGNAL = UUID("12340000-1111-4222-8333-444455556666")
SESSION = UUID("0badcafe-0000-4000-8000-000000000001")
COMMAND = UUID("c0ffee00-1234-4567-89ab-cdef01234567")


def header(msg_type: int, count: int = 0, version: int = 2, ts: int = TS) -> bytes:
    return struct.pack("<IHBBQ", 0x53554854, version, msg_type, count, ts)


def s8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<B", len(raw)) + raw


def s16(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw


V1_TICKS = (  # seed §5.2's example packet: EURUSD, GBPUSD, USDJPY from server 1
    bp.PriceTick(1, 1.095, 1.0952, 20, server_id=1),
    bp.PriceTick(2, 1.273, 1.27325, 25, server_id=1),
    bp.PriceTick(3, 149.85, 149.87, 20, server_id=1),
)
V1_RECORDS = (
    # symbol id, bid × 100000, ask × 100000, spread | server id << 16 — by hand: 1.09500 → 109500 = 0x0001abbc
    struct.pack("<IIII", 1, 0x0001ABBC, 0x0001ABD0, 20 | 1 << 16)
    + struct.pack("<IIII", 2, 127300, 127325, 25 | 1 << 16)
    + struct.pack("<IIII", 3, 14985000, 14987000, 20 | 1 << 16)
)
V1_EXACT = header(0x01, 3, version=1, ts=1234567890123456) + V1_RECORDS

GOLDEN: dict[str, tuple[object, bytes]] = {
    "v1_price_stream_exact": (bp.PriceStream(V1_TICKS, 1, 1234567890123456), V1_EXACT),
    "v1_price_stream_padded": (bp.PriceStream(V1_TICKS, 1, 1234567890123456), V1_EXACT + bytes(80)),
    "hello": (
        bp.Hello(ACCOUNT, AuthMethod.API_KEY, 4755, "2.1.0", "sk_live_k3y", (2, 1), timestamp_us=TS),
        header(0x02)
        + ACCOUNT.bytes
        + struct.pack("<BI", 1, 4755)
        + s8("2.1.0")
        + s16("sk_live_k3y")
        + struct.pack("<BHH", 2, 2, 1),
    ),
    "symbol_table": (
        bp.SymbolTable(
            (bp.SymbolEntry(0, 5, "EURUSD.m"), bp.SymbolEntry(1, 2, "XAUUSD+"), bp.SymbolEntry(2, 2, "BTCUSD")),
            timestamp_us=TS,
        ),
        header(0x03)
        + struct.pack("<H", 3)
        + struct.pack("<HB", 0, 5)
        + s8("EURUSD.m")
        + struct.pack("<HB", 1, 2)
        + s8("XAUUSD+")
        + struct.pack("<HB", 2, 2)
        + s8("BTCUSD"),
    ),
    "price_stream": (
        bp.PriceStream(
            (
                bp.PriceTick(0, 1.0951, 1.0953, 20, QuoteQuality.GOOD, True, MarketSession.LONDON),
                bp.PriceTick(2, 67250.5, 67265.0, 1450, QuoteQuality.DELAYED, False, MarketSession.NEW_YORK),
            ),
            timestamp_us=TS,
        ),
        header(0x01)
        + struct.pack("<H", 2)
        + struct.pack("<HddIBBB", 0, 1.0951, 1.0953, 20, 1, 1, 4)
        + struct.pack("<HddIBBB", 2, 67250.5, 67265.0, 1450, 2, 0, 5),
    ),
    "account_profile": (
        bp.AccountProfile(
            51234567,
            AccountType.DEMO,
            500,
            4755,
            "MetaQuotes Ltd.",
            "MetaQuotes-Demo",
            "USD",
            "2.1.0",
            (("risk_mode", "conservative"), ("max_trades", "3")),
            timestamp_us=TS,
        ),
        header(0x04)
        + struct.pack("<QBII", 51234567, 1, 500, 4755)
        + s8("MetaQuotes Ltd.")
        + s8("MetaQuotes-Demo")
        + s8("USD")
        + s8("2.1.0")
        + struct.pack("<B", 2)
        + s8("risk_mode")
        + s8("conservative")
        + s8("max_trades")
        + s8("3"),
    ),
    "account_finance": (
        bp.AccountFinance(10000.0, 10012.5, 109.54, 9902.96, 9140.5, 12.5, 40.25, 1.5, 10150.0, 1, 0, timestamp_us=TS),
        header(0x05) + struct.pack("<9dHH", 10000.0, 10012.5, 109.54, 9902.96, 9140.5, 12.5, 40.25, 1.5, 10150.0, 1, 0),
    ),
    "trade_opened": (
        bp.TradeOpened(
            17,
            123456789,
            OrderType.BUY,
            0.1,
            1.0954,
            1.0932,
            1.0982,
            SIGNAL,
            TS - 87_000,
            -0.7,
            20251005,
            "EURUSD",
            timestamp_us=TS,
        ),
        header(0x06)
        + struct.pack("<QQBdddd", 17, 123456789, 0, 0.1, 1.0954, 1.0932, 1.0982)
        + SIGNAL.bytes
        + struct.pack("<QdQ", TS - 87_000, -0.7, 20251005)
        + s8("EURUSD"),
    ),
    "trade_closed": (
        bp.TradeClosed(
            18,
            123456789,
            OrderType.BUY,
            0.1,
            1.0954,
            1.0982,
            1.0932,
            1.0982,
            SIGNAL,
            TS - 87_000,
            TS + 11_700_000_000,
            28.0,
            -0.7,
            -0.12,
            CloseReason.TAKE_PROFIT,
            "EURUSD",
            timestamp_us=TS,
        ),
        header(0x07)
        + struct.pack("<QQBddddd", 18, 123456789, 0, 0.1, 1.0954, 1.0982, 1.0932, 1.0982)
        + SIGNAL.bytes
        + struct.pack("<QQdddB", TS - 87_000, TS + 11_700_000_000, 28.0, -0.7, -0.12, 1)
        + s8("EURUSD"),
    ),
    "trade_modified": (
        bp.TradeModified(
            19, 123456789, OrderType.BUY, 0.1, 1.0954, 1.0954, 1.0990, None, TS, "EURUSD", timestamp_us=TS
        ),
        header(0x08)
        + struct.pack("<QQBdddd", 19, 123456789, 0, 0.1, 1.0954, 1.0954, 1.0990)
        + bytes(16)
        + struct.pack("<Q", TS)
        + s8("EURUSD"),
    ),
    "heartbeat": (
        bp.Heartbeat(
            ConnectionStatus.ONLINE,
            87,
            11700,
            4755,
            True,
            True,
            2,
            4756,
            "Trade request sending failed",
            timestamp_us=TS,
        ),
        header(0x09) + struct.pack("<BIIIBBII", 1, 87, 11700, 4755, 1, 1, 2, 4756) + s8("Trade request sending failed"),
    ),
    "ack": (
        bp.Ack(MsgType.TRADING_SIGNAL, SIGNAL, 0, AckStatus.REJECTED, 10019, "not enough money", timestamp_us=TS),
        header(0x0A)
        + struct.pack("<B", 0x81)
        + SIGNAL.bytes
        + struct.pack("<IBI", 0, 3, 10019)
        + s8("not enough money"),
    ),
    "token_refresh": (
        bp.TokenRefresh("rt_9f8e7d", timestamp_us=TS),
        header(0x0B) + s16("rt_9f8e7d"),
    ),
    "positions": (
        bp.Positions(
            (
                bp.Position(123456789, OrderType.BUY, 0.1, 1.0954, 1.0932, 1.0982, 12.5, "EURUSD"),
                bp.Position(123456790, OrderType.SELL, 0.05, 2412.3, 2430.0, 2380.0, -3.25, "XAUUSD+"),
            ),
            timestamp_us=TS,
        ),
        header(0x0C)
        + struct.pack("<H", 2)
        + struct.pack("<QBddddd", 123456789, 0, 0.1, 1.0954, 1.0932, 1.0982, 12.5)
        + s8("EURUSD")
        + struct.pack("<QBddddd", 123456790, 1, 0.05, 2412.3, 2430.0, 2380.0, -3.25)
        + s8("XAUUSD+"),
    ),
    "auth_result": (
        bp.AuthResult(AuthStatus.OK, SESSION, TS + 900_000_000, TS, "eyJ.a.b", "rt_9f8e7d", "", timestamp_us=TS),
        header(0x80)
        + struct.pack("<B", 0)
        + SESSION.bytes
        + struct.pack("<QQ", TS + 900_000_000, TS)
        + s16("eyJ.a.b")
        + s16("rt_9f8e7d")
        + s8(""),
    ),
    "trading_signal": (
        bp.TradingSignal(
            SIGNAL,
            Action.BUY,
            1.0953,
            1.0951,
            1.0955,
            1.0932,
            1.0982,
            0.1,
            1.0,
            SizingMethod.FIXED_LOTS,
            0.87,
            TS + 300_000_000,
            0,
            "EURUSD",
            "lstm_v2.3",
            "trend_follow",
            timestamp_us=TS,
        ),
        header(0x81)
        + SIGNAL.bytes
        + struct.pack("<B7dBdQQ", 1, 1.0953, 1.0951, 1.0955, 1.0932, 1.0982, 0.1, 1.0, 1, 0.87, TS + 300_000_000, 0)
        + s8("EURUSD")
        + s8("lstm_v2.3")
        + s8("trend_follow"),
    ),
    "risk_parameters": (
        bp.RiskParameters(
            7,
            1.0,
            500.0,
            10.0,
            False,
            True,
            ("EURUSD", "XAUUSD+"),
            (bp.TradingWindow(0x1F, 0, 1440), bp.TradingWindow(0x40, 1320, 1440)),
            timestamp_us=TS,
        ),
        header(0x82)
        + struct.pack("<IdddBB", 7, 1.0, 500.0, 10.0, 0, 1)
        + struct.pack("<H", 2)
        + s8("EURUSD")
        + s8("XAUUSD+")
        + struct.pack("<B", 2)
        + struct.pack("<BHH", 0x1F, 0, 1440)
        + struct.pack("<BHH", 0x40, 1320, 1440),
    ),
    "config_update": (
        bp.ConfigUpdate(3, 1.5, 2.0, 10, 30, 20251005, "suho", (("atr_period", "14"),), timestamp_us=TS),
        header(0x83)
        + struct.pack("<IddIIQ", 3, 1.5, 2.0, 10, 30, 20251005)
        + s8("suho")
        + struct.pack("<B", 1)
        + s8("atr_period")
        + s8("14"),
    ),
    "command": (
        bp.Command(COMMAND, CommandType.MODIFY_ORDER, 123456789, 1.0945, 1.0990, TS, timestamp_us=TS),
        header(0x84) + COMMAND.bytes + struct.pack("<BQddQ", 4, 123456789, 1.0945, 1.0990, TS),
    ),
    "event_ack": (
        bp.EventAck(MsgType.TRADE_OPENED, 17, 123456789, EventAckStatus.ACCEPTED, timestamp_us=TS),
        header(0x85) + struct.pack("<BQQB", 0x06, 17, 123456789, 1),
    ),
    "error": (
        bp.Error(ErrorCode.NOT_AUTHENTICATED, "send HELLO first", timestamp_us=TS),
        header(0x86) + struct.pack("<H", 4) + s8("send HELLO first"),
    ),
    "session_closing": (
        bp.SessionClosing(CloseCode.REPLACED, 0, "a newer session for this account", timestamp_us=TS),
        header(0x87) + struct.pack("<HI", 4012, 0) + s8("a newer session for this account"),
    ),
}


def hex_dump(raw: bytes) -> str:
    return "\n".join(f"{i:04x}: " + " ".join(f"{b:02x}" for b in raw[i : i + 16]) for i in range(0, len(raw), 16))


def docs_vectors() -> dict[str, bytes]:
    """Every ```hex NAME block in docs/protocol.md → its bytes ("0000:" offsets and "# comments" are ignored)."""
    out = {}
    for name, body in re.findall(r"^```hex (\w+)\n(.*?)^```", DOCS.read_text(encoding="utf-8"), flags=re.M | re.S):
        lines = (re.sub(r"^[0-9a-f]{4}:|#.*$", "", line) for line in body.splitlines())
        out[name] = bytes.fromhex(" ".join(lines))
    return out


def test_every_message_type_and_both_versions_have_a_golden_vector():
    covered = {(type(msg), msg.version) for msg, _ in GOLDEN.values()}
    assert covered == {(cls, 2) for cls in bp.MESSAGE_CLASSES} | {(bp.PriceStream, 1)}


def test_docs_show_exactly_the_golden_vectors():
    assert docs_vectors() == {name: raw for name, (_, raw) in GOLDEN.items()}


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_vector_decodes_to_its_message_and_encodes_back(name):
    msg, raw = GOLDEN[name]
    assert bp.decode(raw) == msg
    assert bp.decode(bytearray(raw)) == msg
    assert bp.decode(memoryview(raw)) == msg
    assert bp.encode(msg, pad=name.endswith("_padded")) == raw
    assert bp.from_json(bp.to_json(msg)) == msg


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_vector_one_byte_short_or_long_is_a_protocol_error(name):
    _, raw = GOLDEN[name]
    with pytest.raises(bp.ProtocolError):
        bp.decode(raw[:-1])
    for extra in (b"\x00", b"\x01"):
        with pytest.raises(bp.ProtocolError):
            bp.decode(raw + extra)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_vector_fed_every_prefix_never_decodes_except_a_legal_v1_frame(name):
    msg, raw = GOLDEN[name]
    for end in range(len(raw)):
        prefix = raw[:end]
        if name == "v1_price_stream_padded" and end == len(V1_EXACT):
            assert bp.decode(prefix) == msg  # the padding is optional: the exact-length frame is the same message
            continue
        with pytest.raises(bp.ProtocolError):
            bp.decode(prefix)


def test_v1_golden_prices_are_the_hand_computed_fixed_point_values():
    assert V1_RECORDS[4:12] == bytes.fromhex("bcab0100 d0ab0100")  # 109500, 109520
    assert bp.decode_price_rows(V1_EXACT) == (
        1234567890123456,
        [
            ("EURUSD", 1.095, 1.0952, 20, 0, True, 0, 1),
            ("GBPUSD", 1.273, 1.27325, 25, 0, True, 0, 1),
            ("USDJPY", 149.85, 149.87, 20, 0, True, 0, 1),
        ],
    )


def test_v1_ingest_records_are_the_wire_values_of_the_exact_and_the_padded_packet():
    records = [(1, 109500, 109520, 20, 1), (2, 127300, 127325, 25, 1), (3, 14985000, 14987000, 20, 1)]
    for raw in (V1_EXACT, V1_EXACT + bytes(80)):
        assert bp.decode_v1_price_records(raw) == (1234567890123456, records)
        assert bp.decode_v1_price_records(bytearray(raw)) == (1234567890123456, records)


@pytest.mark.parametrize("raw", [V1_EXACT, V1_EXACT + bytes(80)], ids=["exact", "padded"])
def test_v1_ingest_records_refuse_every_prefix_and_one_byte_more(raw):
    for end in range(len(raw)):
        if end == len(V1_EXACT):
            continue  # the exact-length frame is valid on its own
        with pytest.raises(bp.ProtocolError):
            bp.decode_v1_price_records(raw[:end])
    with pytest.raises(bp.ProtocolError):
        bp.decode_v1_price_records(raw + b"\x00")


if __name__ == "__main__":
    for vector_name, (_, vector) in GOLDEN.items():
        sys.stdout.write(f"```hex {vector_name}\n{hex_dump(vector)}\n```\n\n")
