"""The EA connection's protocol state (trading/session.py) driven directly: no socket, no database, no clock.

Each test feeds frames or events with an explicit time and checks the actions the session returns against
docs/protocol.md (sections 6, 8 and 9). The end-to-end behaviour is in test_ea_session.py, test_ea_bad_input.py
and test_v1_ingest.py.
"""

from __future__ import annotations

import gc
import struct
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import binproto
from binproto import AuthMethod, AuthStatus, CloseCode, ConnState, ErrorCode
from quotes.ingest import TickRow
from trading.session import (
    ERROR_WINDOW_S,
    MAX_ERRORS,
    TICK_PRICE_OUT_OF_RANGE,
    Authenticate,
    Batch,
    Close,
    GatewaySession,
    MarkSignalSent,
    RecordAck,
    RecordRefusal,
    RecordTradeEvent,
    RefreshToken,
    Send,
)

NOW_US = 1_759_667_400_000_000  # 2025-10-05T12:30:00Z, the protocol document's example time
SECOND_US = 1_000_000
ACCOUNT_ID = uuid.UUID("0badcafe-0000-4000-8000-0000000000aa")
CLAIMS = SimpleNamespace(
    tenant_id=uuid.UUID("0badcafe-0000-4000-8000-0000000000bb"), account_id=ACCOUNT_ID,
    session_id=uuid.UUID("0badcafe-0000-4000-8000-0000000000cc"), expires_at=datetime(2025, 10, 5, 12, 45, tzinfo=UTC),
)  # fmt: skip
TOKENS = SimpleNamespace(access="eyJ.a.b", refresh="rt_9f8e7d")
GARBAGE = b"\x00" * 20  # no magic: MALFORMED_FRAME


def hello(*, timestamp_us: int = NOW_US, versions: tuple[int, ...] = (2,)) -> bytes:
    return binproto.encode(
        binproto.Hello(account_id=ACCOUNT_ID, auth_method=AuthMethod.API_KEY, ea_version="1.0", mt5_build=4000,
                       access_token="k", protocol_versions=versions, timestamp_us=timestamp_us)
    )  # fmt: skip


def heartbeat() -> bytes:
    return binproto.encode(
        binproto.Heartbeat(connection_status=binproto.ConnectionStatus.ONLINE, latency_ms=5, uptime_s=60,
                           mt5_build=4000, terminal_connected=True, trade_allowed=True, error_count=0,
                           last_error_code=0, last_error_message="", timestamp_us=NOW_US)
    )  # fmt: skip


def command(command_id: uuid.UUID | None = None) -> binproto.Command:
    return binproto.Command(command_id=command_id or uuid.uuid4(), command=binproto.CommandType.RECONNECT, ticket=0,
                            stop_loss=0.0, take_profit=0.0, issued_us=NOW_US)  # fmt: skip


def authenticated(**limits) -> GatewaySession:
    session = GatewaySession(**limits)
    assert session.receive_bytes(hello(), now_us=NOW_US) == [Authenticate(ACCOUNT_ID, "k", AuthMethod.API_KEY, "1.0")]
    session.authenticated(claims=CLAIMS, tokens=TOKENS, epoch=3, now_us=NOW_US)
    return session


def sent(actions) -> list:
    """The messages the actions send, decoded (a Close's frames included)."""
    frames = [frame for action in actions if type(action) in (Send, Close)
              for frame in (action.frames if type(action) is Close else [action.frame])]  # fmt: skip
    return [binproto.decode(frame) for frame in frames]


def closes(actions) -> list[CloseCode]:
    return [action.code for action in actions if type(action) is Close]


def test_hello_with_a_key_asks_the_consumer_to_authenticate_and_ok_answers_auth_result():
    session = GatewaySession()
    assert session.state is ConnState.AWAITING_HELLO
    [authenticate] = session.receive_bytes(hello(), now_us=NOW_US)
    assert authenticate == Authenticate(ACCOUNT_ID, "k", AuthMethod.API_KEY, "1.0")
    [result] = sent(session.authenticated(claims=CLAIMS, tokens=TOKENS, epoch=3, now_us=NOW_US))
    assert (result.status, result.session_id, result.access_token, result.server_time_us, result.access_expires_us) == (
        AuthStatus.OK, CLAIMS.session_id, "eyJ.a.b", NOW_US, NOW_US + 15 * 60 * SECOND_US,
    )  # fmt: skip
    assert (session.state, session.epoch, session.started) == (ConnState.AUTHENTICATED, 3, True)


def test_a_frame_before_hello_is_answered_not_authenticated_and_closed_with_4001():
    session = GatewaySession()
    actions = session.receive_bytes(heartbeat(), now_us=NOW_US)
    error, closing = sent(actions)
    assert (error.code, closes(actions), closing.close_code) == (
        ErrorCode.NOT_AUTHENTICATED, [CloseCode.AUTH_FAILED], CloseCode.AUTH_FAILED,
    )  # fmt: skip
    assert session.state is ConnState.CLOSING
    assert session.receive_bytes(hello(), now_us=NOW_US) == []  # closing: read and dropped without an answer


def test_hello_twice_or_a_server_message_is_not_allowed_in_state_and_keeps_the_connection():
    session = authenticated()
    server_message = binproto.encode(binproto.EventAck(event_type=binproto.MsgType.TRADE_OPENED, event_seq=1,
                                                       ticket=1, status=binproto.EventAckStatus.ACCEPTED))  # fmt: skip
    for frame, name in ((hello(), "HELLO"), (server_message, "EVENT_ACK")):
        actions = session.receive_bytes(frame, now_us=NOW_US)
        [error] = sent(actions)
        assert (error.code, error.reason, closes(actions)) == (
            ErrorCode.NOT_ALLOWED_IN_STATE, f"{name} is not allowed now", [],
        )  # fmt: skip
    assert session.state is ConnState.AUTHENTICATED


def test_the_tenth_malformed_frame_within_a_minute_closes_with_4011_after_its_error():
    session = authenticated()
    for n in range(MAX_ERRORS - 1):
        actions = session.receive_bytes(GARBAGE, now_us=NOW_US + n * SECOND_US)
        assert [m.code for m in sent(actions)] == [ErrorCode.MALFORMED_FRAME] and closes(actions) == []
    actions = session.receive_bytes(GARBAGE, now_us=NOW_US + 59 * SECOND_US)
    error, closing = sent(actions)
    assert (error.code, closing.close_code, closes(actions)) == (
        ErrorCode.MALFORMED_FRAME, CloseCode.PROTOCOL_VIOLATION, [CloseCode.PROTOCOL_VIOLATION],
    )  # fmt: skip


def test_malformed_frames_spread_over_more_than_a_minute_do_not_close():
    session = authenticated()
    for n in range(3 * MAX_ERRORS):
        actions = session.receive_bytes(GARBAGE, now_us=NOW_US + n * (ERROR_WINDOW_S // 9 + 1) * SECOND_US)
        assert closes(actions) == []
    assert session.state is ConnState.AUTHENTICATED


def test_a_price_for_an_unknown_symbol_index_is_answered_unknown_symbol_and_never_counts():
    session = authenticated()
    prices = binproto.encode(binproto.PriceStream(ticks=(binproto.PriceTick(7, 1.0951, 1.0953, 20),),
                                                  timestamp_us=NOW_US))  # fmt: skip
    for _ in range(2 * MAX_ERRORS):
        actions = session.receive_bytes(prices, now_us=NOW_US)
        assert [m.code for m in sent(actions)] == [ErrorCode.UNKNOWN_SYMBOL] and closes(actions) == []
    table = binproto.SymbolTable(symbols=(binproto.SymbolEntry(7, 5, "EURUSD"),))
    assert session.receive_bytes(binproto.encode(table), now_us=NOW_US) == []
    [batch] = session.receive_bytes(prices, now_us=NOW_US + SECOND_US)
    assert batch.kind == "quotes"
    rows = [TickRow(*row) for row in batch.rows]  # plain tuples in TickRow's order
    assert [(r.symbol, r.bid, r.tenant_id, r.time_us, r.timestamp_trusted) for r in rows] == [
        ("EURUSD", 1.0951, str(CLAIMS.tenant_id), NOW_US, True)
    ]


def test_tick_rows_are_plain_tuples_the_garbage_collector_stops_tracking():
    """Tens of thousands a second wait in the batcher: a NamedTuple would stay in the collector's lists, and its passes
    pause the event loop (decision 0031); a tuple of plain values leaves them at the first collection."""
    session = authenticated()
    session.receive_bytes(binproto.encode(binproto.SymbolTable(symbols=(binproto.SymbolEntry(0, 5, "EURUSD"),))),
                          now_us=NOW_US)  # fmt: skip
    prices = binproto.PriceStream(ticks=(binproto.PriceTick(0, 1.0951, 1.0953, 20),), timestamp_us=NOW_US)
    [batch] = session.receive_bytes(binproto.encode(prices), now_us=NOW_US)
    v1 = struct.pack("<IHBBQ", binproto.MAGIC, 1, 1, 1, NOW_US) + struct.pack("<IIII", 1, 109_537, 109_557, 20)
    legacy = authenticated()
    legacy.v1_symbols = {1: "EURUSD"}
    [v1_batch] = legacy.receive_bytes(v1 + bytes(binproto.V1_PACKET_SIZE - len(v1)), now_us=NOW_US)
    rows = batch.rows + v1_batch.rows
    assert len(rows) == 2 and all(type(row) is tuple and len(row) == len(TickRow._fields) for row in rows)
    gc.collect()
    assert not any(gc.is_tracked(row) for row in rows)


def test_a_zero_price_is_said_not_counted_and_the_other_ticks_are_kept():
    session = authenticated()
    session.receive_bytes(binproto.encode(binproto.SymbolTable(symbols=(binproto.SymbolEntry(0, 5, "EURUSD"),
                                                                        binproto.SymbolEntry(1, 5, "GBPUSD")))),
                          now_us=NOW_US)  # fmt: skip
    ticks = (binproto.PriceTick(0, 1.0951, 1.0953, 20), binproto.PriceTick(1, 0.0, 1.27, 20))
    actions = session.receive_text(binproto.to_json(binproto.PriceStream(ticks=ticks, timestamp_us=NOW_US)),
                                   now_us=NOW_US)  # fmt: skip
    assert [TickRow(*row).symbol for action in actions if type(action) is Batch for row in action.rows] == ["EURUSD"]
    assert [(m.code, m.reason) for m in sent(actions)] == [(ErrorCode.MALFORMED_FRAME, TICK_PRICE_OUT_OF_RANGE)]
    assert len(session.errors) == 0


def test_past_the_unacked_limit_the_ea_is_closed_as_a_slow_consumer_and_an_ack_frees_a_slot():
    session = authenticated(max_unacked=3)
    first = command()
    for message in (first, command(), command()):
        assert [m.command_id for m in sent(session.outbound(message, now_us=NOW_US))] == [message.command_id]
    assert session.outbound(first, now_us=NOW_US) == []  # already on this socket: not sent twice
    ack = binproto.Ack(acked_type=binproto.MsgType.COMMAND, ref_id=first.command_id, ref_version=0,
                       status=binproto.AckStatus.EXECUTED, reason_code=0, reason="")  # fmt: skip
    assert session.receive_bytes(binproto.encode(ack), now_us=NOW_US) == [RecordAck(ack)]
    assert len(sent(session.outbound(command(), now_us=NOW_US))) == 1  # the ACK freed a slot
    actions = session.outbound(command(), now_us=NOW_US)
    [closing] = sent(actions)
    assert (closing.close_code, closes(actions)) == (CloseCode.SLOW_CONSUMER, [CloseCode.SLOW_CONSUMER])
    assert session.outbound(command(), now_us=NOW_US) == []  # closing: nothing more goes out


def test_an_item_delivered_live_and_acknowledged_while_the_resync_is_read_is_not_sent_again_by_it():
    """The resync's read can start before that ACK is committed, so it still lists the item (issue 21's race: the
    live EA got a signal twice). Only for that resync: outside one, a repeat after its ACK goes out as before."""
    session = authenticated()
    live = command()
    session.resync_begin()
    assert len(sent(session.outbound(live, now_us=NOW_US))) == 1  # the hub's live delivery
    ack = binproto.Ack(acked_type=binproto.MsgType.COMMAND, ref_id=live.command_id, ref_version=0,
                       status=binproto.AckStatus.RECEIVED, reason_code=0, reason="")  # fmt: skip
    session.receive_bytes(binproto.encode(ack), now_us=NOW_US)
    pending = command()
    assert session.outbound(live, now_us=NOW_US) == []  # the resync's copy
    assert session.outbound(live, now_us=NOW_US, resend=True) == []
    assert len(sent(session.outbound(pending, now_us=NOW_US))) == 1  # what it lists and the EA has not had
    session.resync_end()
    assert len(sent(session.outbound(live, now_us=NOW_US))) == 1


def test_a_signal_is_marked_sent_and_an_expired_one_is_never_sent():
    session = authenticated()

    def signal(valid_until_us: int) -> binproto.TradingSignal:
        return binproto.TradingSignal(
            signal_id=uuid.uuid4(), action=binproto.Action.BUY, entry_price=1.1, entry_min=1.09, entry_max=1.11,
            stop_loss=1.0, take_profit=1.2, volume=0.1, risk_percent=1.0,
            sizing_method=binproto.SizingMethod.FIXED_LOTS, confidence=0.5, valid_until_us=valid_until_us, ticket=0,
            symbol="EURUSD", model_version="m", strategy_name="s",
        )  # fmt: skip

    live = signal(NOW_US + SECOND_US)
    assert session.outbound(live, now_us=NOW_US)[1:] == [MarkSignalSent(live.signal_id)]
    assert session.outbound(signal(NOW_US), now_us=NOW_US) == []


def test_hello_with_a_skewed_clock_is_refused_recorded_and_closed_with_4001():
    session = GatewaySession()
    actions = session.receive_bytes(hello(timestamp_us=NOW_US - 61 * SECOND_US), now_us=NOW_US)
    assert actions[0] == RecordRefusal(ACCOUNT_ID, "clock_skew")
    result, closing = sent(actions)
    assert (result.status, result.reason) == (AuthStatus.CLOCK_SKEW, "HELLO timestamp is -61 s off the server clock"
                                                                     " (limit ±60 s)")  # fmt: skip
    assert (closing.close_code, closes(actions)) == (CloseCode.AUTH_FAILED, [CloseCode.AUTH_FAILED])


def test_a_rate_limited_reconnect_is_refused_with_4008_and_the_retry_delay():
    session = GatewaySession()
    session.receive_bytes(hello(), now_us=NOW_US)
    actions = session.refuse(AuthStatus.RATE_LIMITED, "rate limited: reconnect in 30 s", account_id=ACCOUNT_ID,
                             now_us=NOW_US, retry_after_ms=30_000)  # fmt: skip
    result, closing = sent(actions)
    assert (result.status, closing.close_code, closing.retry_after_ms, closes(actions)) == (
        AuthStatus.RATE_LIMITED, CloseCode.RATE_LIMITED, 30_000, [CloseCode.RATE_LIMITED],
    )  # fmt: skip


def test_a_refused_token_refresh_ends_the_session_with_4002():
    session = authenticated()
    assert session.receive_bytes(binproto.encode(binproto.TokenRefresh(refresh_token="rt")), now_us=NOW_US) == [
        RefreshToken("rt")
    ]
    actions = session.token_refresh_refused(AuthStatus.INVALID_TOKEN, "refresh token expired", now_us=NOW_US)
    result, closing = sent(actions)
    assert (result.status, closing.close_code) == (AuthStatus.INVALID_TOKEN, CloseCode.SESSION_EXPIRED)
    assert session.state is ConnState.CLOSING


def test_a_trade_event_is_handed_to_the_journal_and_acknowledged_with_its_outcome():
    session = authenticated()
    event = binproto.TradeOpened(
        event_seq=4, ticket=77, order_type=binproto.OrderType.BUY, volume=0.1, price=1.1, stop_loss=0.0,
        take_profit=0.0, signal_id=None, open_time_us=NOW_US, commission=0.0, magic=0, symbol="EURUSD",
    )  # fmt: skip
    assert session.receive_bytes(binproto.encode(event), now_us=NOW_US) == [RecordTradeEvent(event)]
    [ack] = sent(session.trade_event_recorded(event, binproto.EventAckStatus.DUPLICATE))
    assert (ack.event_seq, ack.ticket, ack.status) == (4, 77, binproto.EventAckStatus.DUPLICATE)


def test_a_legacy_v1_ea_is_never_answered_but_its_garbage_still_counts_towards_4011():
    session = GatewaySession()
    assert session.handshake(account_id="42", api_key="suho_ea_x") == [
        Authenticate("42", "suho_ea_x", AuthMethod.API_KEY, "legacy-v1")
    ]
    assert session.authenticated(claims=CLAIMS, tokens=TOKENS, epoch=1, now_us=NOW_US) == []  # no AUTH_RESULT
    records = struct.pack("<IIII", 1, 109_537, 109_557, 20) + struct.pack("<IIII", 2, 0, 127_325, 25)
    frame = struct.pack("<IHBBQ", binproto.MAGIC, 1, 1, 2, NOW_US) + records
    [batch] = session.receive_bytes(frame + bytes(binproto.V1_PACKET_SIZE - len(frame)), now_us=NOW_US)
    rows = [TickRow(*row) for row in batch.rows]
    assert [(row.symbol, round(row.bid, 5)) for row in rows] == [("EURUSD", 1.09537)]  # the zero price: no row
    assert session.outbound(command(), now_us=NOW_US) == []  # sent nothing
    for _ in range(MAX_ERRORS - 1):
        assert session.receive_bytes(GARBAGE, now_us=NOW_US) == []
    assert session.receive_bytes(GARBAGE, now_us=NOW_US) == [Close(CloseCode.PROTOCOL_VIOLATION, ())]


def test_a_legacy_v1_ea_refused_in_the_handshake_gets_only_the_close_frame_and_its_key_is_never_shown():
    session = GatewaySession()
    [authenticate] = session.handshake(account_id="42", api_key="suho_ea_x")
    assert "suho_ea_x" not in repr(authenticate)  # an action may end up in a log line
    assert session.refuse(AuthStatus.REVOKED_KEY, "key revoked", account_id="42", now_us=NOW_US) == [
        Close(CloseCode.REVOKED, ())
    ]


def test_no_hello_in_time_closes_only_a_connection_still_waiting_for_it():
    assert closes(GatewaySession().hello_deadline()) == [CloseCode.AUTH_FAILED]
    assert authenticated().hello_deadline() == []


def test_an_oversized_frame_is_answered_too_large_and_closed_with_4009():
    actions = authenticated().receive_bytes(b"\x00" * (binproto.MAX_FRAME_SIZE + 1), now_us=NOW_US)
    error, closing = sent(actions)
    assert (error.code, closing.close_code, closes(actions)) == (
        ErrorCode.TOO_LARGE, CloseCode.TOO_LARGE, [CloseCode.TOO_LARGE],
    )  # fmt: skip


def test_heartbeat_and_finance_become_rows_stamped_with_the_time_given():
    session = authenticated()
    [batch] = session.receive_bytes(heartbeat(), now_us=NOW_US + timedelta(minutes=10).seconds * SECOND_US)
    assert (batch.kind, batch.rows[0].session_id, batch.rows[0].status) == (
        "heartbeats", str(CLAIMS.session_id), "online",
    )  # fmt: skip
