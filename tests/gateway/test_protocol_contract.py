"""docs/protocol.md §9 against a real server: for every row of the `ErrorCode` table, the situation the row names is
provoked over a real WebSocket to daphne (conftest's `server_url`), and the server must answer that code and then do
what the row's last column says (close with the code it names, or drop the frame and keep the connection).

The table is read from the document itself, so a row added, removed or reworded there is tested as written."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import struct
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import binproto
from binproto import AuthStatus, CloseCode, ErrorCode
from tests.gateway.ea_client import hello, trade_opened, wire_session

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
WAIT_S = 15.0
NOT_PROVOKED = {
    ErrorCode.INTERNAL_ERROR: "a server failure: nothing an EA sends provokes it on a healthy server",
    ErrorCode.RATE_LIMITED: "never sent as an ERROR frame: the close 4008 is tested in test_server_limits.py",
}


def error_code_table() -> dict[ErrorCode, str]:
    """§9's `ErrorCode` table: code → its "then" column."""
    section = DOCS[DOCS.index("### `ErrorCode`") :]
    rows = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[ErrorCode(int(cells[0]))] = cells[3]
    return rows


def now_us() -> int:
    return time.time_ns() // 1000


def frame_with_header(*, version: int = 2, msg_type: int, body: bytes = b"") -> bytes:
    return struct.pack("<IHBBQ", binproto.MAGIC, version, msg_type, 0, now_us()) + body


async def next_message(ws):
    async with asyncio.timeout(WAIT_S):
        data = await ws.recv()
    assert isinstance(data, bytes), f"the server answered with a text frame: {data!r}"
    return binproto.decode(data)


async def until(ws, kind):
    while not isinstance(message := await next_message(ws), kind):
        pass
    return message


async def close_code(ws) -> int:
    """Read until the server closes; its close code."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else closed.code


async def session(url, account, secret):
    ws = await wire_session(url, account, secret, max_size=None)
    await until(ws, binproto.ConfigUpdate)  # the resync has run: what follows answers the frames the test sends
    return ws


async def still_serving(ws, seq: int = 1) -> None:
    await ws.send(binproto.encode(trade_opened(900_000 + seq, seq)))
    ack = await until(ws, binproto.EventAck)
    assert (ack.event_seq, ack.status) == (seq, binproto.EventAckStatus.ACCEPTED)


# --- one situation per documented error code: (connect, provoke) → the ERROR the server sent --------------------


async def malformed(url, account, secret):
    ws = await session(url, account, secret)
    await ws.send(b"\x00" * 20)
    return ws


async def unsupported_version(url, account, secret):
    ws = await session(url, account, secret)
    await ws.send(frame_with_header(version=3, msg_type=binproto.MsgType.HEARTBEAT))
    return ws


async def unknown_type(url, account, secret):
    ws = await session(url, account, secret)
    await ws.send(frame_with_header(msg_type=0x7F))
    return ws


async def not_authenticated(url, account, secret):
    ws = await connect(url, max_size=None)
    await ws.send(binproto.encode(binproto.TokenRefresh(refresh_token="x", timestamp_us=now_us())))
    return ws


async def not_allowed_in_state(url, account, secret):
    ws = await session(url, account, secret)
    await ws.send(hello(account, secret))
    return ws


async def too_large(url, account, secret):
    ws = await session(url, account, secret)
    await ws.send(frame_with_header(msg_type=binproto.MsgType.POSITIONS, body=bytes(binproto.MAX_FRAME_SIZE)))
    return ws


async def unknown_symbol(url, account, secret):
    ws = await session(url, account, secret)
    tick = binproto.PriceTick(symbol=5, bid=1.1, ask=1.1002, spread_points=2)
    await ws.send(binproto.encode(binproto.PriceStream(ticks=(tick,), timestamp_us=now_us())))
    return ws


SITUATIONS = {
    ErrorCode.MALFORMED_FRAME: malformed,
    ErrorCode.UNSUPPORTED_VERSION: unsupported_version,
    ErrorCode.UNKNOWN_TYPE: unknown_type,
    ErrorCode.NOT_AUTHENTICATED: not_authenticated,
    ErrorCode.NOT_ALLOWED_IN_STATE: not_allowed_in_state,
    ErrorCode.TOO_LARGE: too_large,
    ErrorCode.UNKNOWN_SYMBOL: unknown_symbol,
}


def test_every_documented_error_code_has_a_situation_here():
    assert set(error_code_table()) == set(ErrorCode)
    assert set(SITUATIONS) | set(NOT_PROVOKED) == set(ErrorCode)


@pytest.mark.parametrize("code", list(SITUATIONS), ids=lambda code: code.name)
async def test_the_server_answers_each_documented_situation_as_the_table_says(code, server_url, ea_account):
    _tenant, account, secret = ea_account
    then = error_code_table()[code]
    ws = await SITUATIONS[code](server_url, account, secret)
    error = await until(ws, binproto.Error)
    assert error.code == code, error.reason
    closes = re.match(r"close (\d{4})", then)
    if closes:
        closing = await until(ws, binproto.SessionClosing)
        assert closing.close_code == int(closes.group(1))
        assert await close_code(ws) == int(closes.group(1))
    else:
        assert then.startswith("dropped")
        await still_serving(ws)
        await ws.close()


async def test_exactly_the_tenth_malformed_frame_within_a_minute_closes_with_protocol_violation(server_url, ea_account):
    _tenant, account, secret = ea_account
    ws = await session(server_url, account, secret)
    for _ in range(9):
        await ws.send(b"\x00" * 20)
        assert (await until(ws, binproto.Error)).code == ErrorCode.MALFORMED_FRAME
    await still_serving(ws)  # nine are tolerated
    await ws.send(frame_with_header(version=3, msg_type=binproto.MsgType.HEARTBEAT))  # counts as well
    assert (await until(ws, binproto.Error)).code == ErrorCode.UNSUPPORTED_VERSION
    assert (await until(ws, binproto.SessionClosing)).close_code == CloseCode.PROTOCOL_VIOLATION
    assert await close_code(ws) == CloseCode.PROTOCOL_VIOLATION


async def test_unknown_symbols_do_not_count_towards_the_protocol_violation_close(server_url, ea_account):
    _tenant, account, secret = ea_account
    ws = await unknown_symbol(server_url, account, secret)
    for _ in range(11):
        tick = binproto.PriceTick(symbol=5, bid=1.1, ask=1.1002, spread_points=2)
        await ws.send(binproto.encode(binproto.PriceStream(ticks=(tick,), timestamp_us=now_us())))
    for _ in range(12):
        assert (await until(ws, binproto.Error)).code == ErrorCode.UNKNOWN_SYMBOL
    await still_serving(ws)
    await ws.close()


async def test_a_hello_stamped_far_from_the_server_clock_is_refused_with_clock_skew(server_url, ea_account):
    _tenant, account, secret = ea_account
    ws = await connect(server_url, max_size=None)
    stamped = dataclasses.replace(binproto.decode(hello(account, secret)), timestamp_us=123_456_789)  # the issue's
    await ws.send(binproto.encode(stamped))
    result = await until(ws, binproto.AuthResult)
    assert result.status == AuthStatus.CLOCK_SKEW and abs(result.server_time_us - now_us()) < 60_000_000
    assert (await until(ws, binproto.SessionClosing)).close_code == CloseCode.AUTH_FAILED
    assert await close_code(ws) == CloseCode.AUTH_FAILED


async def test_answers_to_text_frames_are_binary(server_url, ea_account):
    _tenant, account, secret = ea_account
    ws = await session(server_url, account, secret)
    await ws.send('{"type":"heartbeat","version":2,"timestamp":0,"no_such_field":1}')
    assert (await until(ws, binproto.Error)).code == ErrorCode.MALFORMED_FRAME  # until() refuses text frames
    await ws.send(binproto.to_json(trade_opened(77, 1)))
    ack = await until(ws, binproto.EventAck)
    assert (ack.ticket, ack.status) == (77, binproto.EventAckStatus.ACCEPTED)
    await ws.close()


async def test_a_trade_event_the_database_can_never_hold_is_rejected_not_retried_forever(server_url, ea_account):
    _tenant, account, secret = ea_account
    ws = await session(server_url, account, secret)
    event = trade_opened(78, 1)
    await ws.send(binproto.encode(dataclasses.replace(event, price=1e14)))  # legal on the wire, not in numeric(20, 8)
    ack = await until(ws, binproto.EventAck)
    assert (ack.ticket, ack.status) == (78, binproto.EventAckStatus.REJECTED)
    await still_serving(ws, seq=2)
    await ws.close()
