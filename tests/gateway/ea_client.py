"""A minimal binary EA client for gateway tests, over Channels' communicator."""

from __future__ import annotations

import time

from channels.testing import WebsocketCommunicator
from django.db import connections

import binproto
from suho.asgi import application


def hello(account, secret) -> bytes:
    return binproto.encode(
        binproto.Hello(account_id=account.account_id, auth_method=binproto.AuthMethod.API_KEY, ea_version="1.0",
                       mt5_build=4000, access_token=secret, protocol_versions=(1, 2))
    )  # fmt: skip


async def receive_until(communicator, kind, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        frame = await communicator.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if frame["type"] == "websocket.close":
            raise AssertionError(f"closed while waiting for {kind.__name__}: {frame}")
        message = binproto.decode(frame["bytes"])
        if isinstance(message, kind):
            return message


async def connect(account, secret):
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(bytes_data=hello(account, secret))
    result = await receive_until(communicator, binproto.AuthResult)
    if result.status == binproto.AuthStatus.OK:
        await receive_until(communicator, binproto.RiskParameters)  # the resync starts once the connect committed
    return communicator, result


def v1_packet(ticks: list[tuple[int, float, float]], timestamp_us: int) -> bytes:
    return binproto.encode(
        binproto.PriceStream(
            ticks=tuple(binproto.PriceTick(symbol=sid, bid=bid, ask=ask, spread_points=20) for sid, bid, ask in ticks),
            version=1, timestamp_us=timestamp_us,
        ),
        pad=len(ticks) <= 8,
    )  # fmt: skip


def trade_opened(ticket: int, seq: int, signal_id=None) -> binproto.TradeOpened:
    now_us = time.time_ns() // 1000
    return binproto.TradeOpened(
        event_seq=seq, ticket=ticket, order_type=binproto.OrderType.BUY, volume=0.1, price=1.0954, stop_loss=1.0934,
        take_profit=1.0984, signal_id=signal_id, open_time_us=now_us, commission=-0.7, magic=7, symbol="EURUSD",
        timestamp_us=now_us,
    )  # fmt: skip


def rows(sql: str, params=()):
    with connections["operator"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
