"""Bad input on the EA socket: error frames, closes with documented codes, nothing written, neighbours unaffected."""

from __future__ import annotations

import random
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

import binproto
from accounts.models import MT5Account
from accounts.services import api_key_create
from suho.asgi import application
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect, receive_until, rows, v1_packet
from trading import consumers
from trading.gateway import batchers_flush

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


def second_account(tenant, account):
    with tenant_context(tenant.id):
        other = MT5Account.objects.create(tenant=tenant, user_id=account.user_id, name="Neighbour")
        _key, secret = api_key_create(account=other)
    return other, secret


def mutated_frames(count: int, seed: int = 7):
    """Random bytes and single-byte mutations of valid frames: most fail to decode, some decode to odd values."""
    rng = random.Random(seed)
    now_us = time.time_ns() // 1000
    valid = [
        v1_packet([(1, 1.1, 1.1002)], now_us),
        binproto.encode(binproto.Ack(acked_type=binproto.MsgType.TRADING_SIGNAL, ref_id=None, ref_version=0,
                                     status=binproto.AckStatus.RECEIVED, reason_code=0, reason="")),
        binproto.encode(binproto.SymbolTable(symbols=(binproto.SymbolEntry(index=1, digits=5, name="EURUSD.m"),))),
    ]  # fmt: skip
    for _ in range(count):
        if rng.random() < 0.5:
            yield rng.randbytes(rng.randrange(1, 200))
        else:
            frame = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            if frame[6] == binproto.MsgType.PRICE_STREAM:
                frame[6] = binproto.MsgType.HELLO  # keep prices out: a mutated tick could be a valid one
            yield bytes(frame)


async def test_ten_thousand_garbage_frames_get_errors_or_a_close_and_write_nothing(ea_account, monkeypatch):
    monkeypatch.setattr(consumers, "MAX_ERRORS", 20_000)  # see every frame answered, not just the first 20
    tenant, account, secret = ea_account
    other, other_secret = await database_sync_to_async(second_account)(tenant, account)
    garbage, _ = await connect(account, secret)
    neighbour, _ = await connect(other, other_secret)
    errors = closed = 0
    undecodable = 0
    for frame in mutated_frames(10_000):
        try:
            binproto.decode(frame)
        except binproto.ProtocolError:
            undecodable += 1
        await garbage.send_to(bytes_data=frame)
    # The neighbour (a second connection) keeps streaming while the first one is flooded.
    await neighbour.send_to(bytes_data=v1_packet([(1, 1.2, 1.2002)], time.time_ns() // 1000))
    while True:
        try:
            output = await garbage.receive_output(timeout=2)
        except Exception:  # noqa: BLE001 — no more output
            break
        if output["type"] == "websocket.close":
            closed += 1
            break
        if isinstance(binproto.decode(output["bytes"]), binproto.Error):
            errors += 1
    await batchers_flush()
    assert not closed
    assert errors >= undecodable > 5_000  # every frame that cannot decode got its error frame
    assert await database_sync_to_async(rows)(
        "SELECT account_id, count(*) FROM mt5_broker_quotes GROUP BY account_id"
    ) == [(other.account_id, 1)]  # only the neighbour's tick: the flood wrote nothing


async def test_sustained_garbage_closes_the_connection_with_protocol_violation(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    for _ in range(consumers.MAX_ERRORS + 2):
        await communicator.send_to(bytes_data=b"\x00" * 20)
    closing = await receive_until(communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.PROTOCOL_VIOLATION


async def test_a_frame_before_hello_is_refused_and_nothing_is_written(ea_account):
    _tenant, _account, _secret = ea_account
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    await communicator.connect()
    await communicator.send_to(bytes_data=v1_packet([(1, 1.1, 1.1002)], time.time_ns() // 1000))
    error = await receive_until(communicator, binproto.Error)
    assert error.code == binproto.ErrorCode.NOT_AUTHENTICATED
    closing = await receive_until(communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.AUTH_FAILED
    await communicator.disconnect()
    await batchers_flush()
    assert await database_sync_to_async(rows)("SELECT count(*) FROM mt5_broker_quotes") == [(0,)]


async def test_an_oversized_frame_is_refused(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    await communicator.send_to(bytes_data=b"\x00" * (binproto.MAX_FRAME_SIZE + 1))
    error = await receive_until(communicator, binproto.Error)
    assert error.code == binproto.ErrorCode.TOO_LARGE


async def test_an_ea_that_stops_acknowledging_is_closed_as_a_slow_consumer(ea_account, monkeypatch):
    from trading.outbound import command_issue

    monkeypatch.setattr(consumers, "MAX_UNACKED_OUTBOUND", 3)
    tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    for _ in range(5):
        await database_sync_to_async(command_issue)(
            tenant_id=tenant.id, account_id=account.account_id, kind="reconnect", issued_by="test"
        )
    closing = await receive_until(communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.SLOW_CONSUMER


async def test_a_tick_the_database_cannot_hold_is_dropped_and_the_stream_keeps_flowing(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    symbols = (binproto.SymbolEntry(index=1, digits=2, name="BTCUSD"), binproto.SymbolEntry(2, 5, "EURUSD"))
    await communicator.send_to(bytes_data=binproto.encode(binproto.SymbolTable(symbols=symbols)))
    now_us = time.time_ns() // 1000
    huge = binproto.PriceTick(symbol=1, bid=1e13, ask=1e13 + 1, spread_points=1)  # legal on the wire, not in numeric
    normal = binproto.PriceTick(symbol=2, bid=1.0951, ask=1.0953, spread_points=2)
    await communicator.send_to(
        bytes_data=binproto.encode(binproto.PriceStream(ticks=(huge, normal), timestamp_us=now_us))
    )
    error = await receive_until(communicator, binproto.Error)
    assert error.reason == consumers.TICK_PRICE_OUT_OF_RANGE
    await communicator.disconnect()
    await batchers_flush()
    assert await database_sync_to_async(rows)(
        "SELECT symbol FROM mt5_broker_quotes WHERE account_id = %s", [account.account_id]
    ) == [("EURUSD",)]


async def test_a_batch_with_a_row_the_database_refuses_loses_only_that_row(ea_account):
    """Belt and braces behind the consumer's range check: the batcher isolates a refused row by halving."""
    from quotes.ingest import TickRow
    from trading.gateway import batcher

    tenant, account, _secret = ea_account
    now_us = time.time_ns() // 1000
    good = [TickRow(now_us + i, str(tenant.id), str(account.account_id), "EURUSD", 1.1, 1.1002, 2, 0, True, "unknown",
                    True) for i in range(7)]  # fmt: skip
    poison = good[0]._replace(bid=1e13)
    quotes = batcher("quotes")
    dropped_before = quotes.dropped_rows
    quotes.add([*good[:3], poison, *good[3:]])
    await batchers_flush()
    assert quotes.dropped_rows == dropped_before + 1
    assert await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_broker_quotes WHERE account_id = %s", [account.account_id]
    ) == [(7,)]
