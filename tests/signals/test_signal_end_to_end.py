"""The trading loop through the real EA gateway, acting as the EA over Channels' communicator: seed §6.3's example
adjusted, delivered, executed, closed at TP and fed back; EA rejections; expired signals never reach the EA."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

import binproto
from accounts.services import api_key_create
from quotes.selectors import quote_latest
from signals.messages import signal_message
from signals.models import SignalExecution, TradingSignal
from signals.selectors import feedback_rows
from signals.services import SignalSpec, signal_create, signals_expire_stale
from suho.bus import get_bus
from suho.routers import operator_path
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect, receive_until, v1_packet
from tests.signals.conftest import reference_put, seed_json
from trading.gateway import batchers_flush

EURUSD_V1 = 1


@pytest.fixture
def ea(account):
    """(account, plaintext API key) of a committed account."""
    return account, api_key_create(account=account)[1]


async def _stream_quote(communicator, account, bid=1.0951, ask=1.0953) -> None:
    """Send a tick and wait until the account's latest quote is it (the consumer hands ticks to a batcher)."""
    await communicator.send_to(bytes_data=v1_packet([(EURUSD_V1, bid, ask)], time.time_ns() // 1000))

    def landed():
        with tenant_context(account.tenant_id):
            quote = quote_latest(
                account_id=account.account_id, symbol="EURUSD", since=timezone.now() - timedelta(minutes=5)
            )
        return quote is not None and (quote["bid"], quote["ask"]) == (bid, ask)

    deadline = time.monotonic() + 5
    while not await database_sync_to_async(landed)():
        assert time.monotonic() < deadline, "the tick never landed"
        await batchers_flush()
        await asyncio.sleep(0.02)


def _now_us() -> int:
    return time.time_ns() // 1000


async def _until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not (result := await database_sync_to_async(check)()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return result


def _signal(signal_id) -> TradingSignal:
    with operator_path():
        return TradingSignal.objects.get(signal_id=signal_id)


async def test_the_seed_example_is_adjusted_delivered_executed_closed_at_tp_and_fed_back(ea, api):
    account, secret = ea
    communicator, result = await connect(account, secret)
    assert result.status == binproto.AuthStatus.OK
    await _stream_quote(communicator, account, bid=1.0950, ask=1.0952)  # two ticks: volatility has a sample
    await _stream_quote(communicator, account)
    await database_sync_to_async(reference_put)()

    response = await database_sync_to_async(api.post)("/api/signals/", seed_json(account.account_id))
    assert response.status_code == 201, response.json()
    signal_id = response.json()["signal_id"]

    delivered = await receive_until(communicator, binproto.TradingSignal)
    assert str(delivered.signal_id) == signal_id
    assert (delivered.action, delivered.symbol) == (binproto.Action.BUY, "EURUSD")
    assert delivered.entry_price == pytest.approx(1.0953)
    assert (delivered.entry_min, delivered.entry_max) == (pytest.approx(1.0951), pytest.approx(1.0955))
    assert (delivered.stop_loss, delivered.take_profit) == (pytest.approx(1.0934), pytest.approx(1.0984))
    await _until(lambda: _signal(signal_id).status == "sent")

    opened_us = _now_us()
    await communicator.send_to(bytes_data=binproto.encode(binproto.TradeOpened(
        event_seq=1, ticket=123456789, order_type=binproto.OrderType.BUY, volume=0.1, price=1.0954, stop_loss=1.0934,
        take_profit=1.0984, signal_id=delivered.signal_id, open_time_us=opened_us, commission=-0.7, magic=7,
        symbol="EURUSD", timestamp_us=opened_us)))  # fmt: skip
    assert (await receive_until(communicator, binproto.EventAck)).status == binproto.EventAckStatus.ACCEPTED
    closed_us = _now_us()
    await communicator.send_to(bytes_data=binproto.encode(binproto.TradeClosed(
        event_seq=2, ticket=123456789, order_type=binproto.OrderType.BUY, volume=0.1, open_price=1.0954,
        close_price=1.0984, stop_loss=1.0934, take_profit=1.0984, signal_id=delivered.signal_id,
        open_time_us=opened_us, close_time_us=closed_us, profit=30.0, commission=-0.7, swap=0.0,
        close_reason=binproto.CloseReason.TAKE_PROFIT, symbol="EURUSD", timestamp_us=closed_us)))  # fmt: skip
    assert (await receive_until(communicator, binproto.EventAck)).status == binproto.EventAckStatus.ACCEPTED
    await communicator.disconnect()

    def outcome():
        with operator_path():
            return SignalExecution.objects.get(signal_id=signal_id), TradingSignal.objects.get(signal_id=signal_id)

    execution, signal = await database_sync_to_async(outcome)()
    assert signal.status == "closed"
    assert (execution.signal_entry_price, execution.actual_entry_price) == (Decimal("1.0953"), Decimal("1.0954"))
    assert (execution.price_difference, execution.slippage_pips) == (Decimal("0.0001"), Decimal("1.00"))
    assert execution.execution_latency_ms is not None and execution.execution_latency_ms >= 0
    assert execution.spread_at_execution == Decimal("20")
    assert execution.market_volatility is not None and execution.market_volatility > 0
    assert (execution.trade_closed, execution.close_reason) == (True, "take_profit")
    assert (execution.profit, execution.profit_pips) == (Decimal("30.00"), Decimal("30.00"))

    def feedback():
        with tenant_context(account.tenant_id):
            return feedback_rows(days=1)

    rows = await database_sync_to_async(feedback)()
    assert [(str(r["signal_id"]), r["trade_result"], r["polygon_ask"]) for r in rows] == [
        (signal_id, "WIN", Decimal("1.0951"))]  # fmt: skip


async def test_an_ea_rejection_is_recorded_with_the_eas_reason(ea, api):
    account, secret = ea
    communicator, _ = await connect(account, secret)
    await _stream_quote(communicator, account)
    response = await database_sync_to_async(api.post)("/api/signals/", seed_json(account.account_id))
    assert response.json()["status"] == "pending", response.json()["status_reason"]
    delivered = await receive_until(communicator, binproto.TradingSignal)
    await communicator.send_to(bytes_data=binproto.encode(binproto.Ack(
        acked_type=binproto.MsgType.TRADING_SIGNAL, ref_id=delivered.signal_id, ref_version=0,
        status=binproto.AckStatus.REJECTED, reason_code=10016, reason="price out of range",
        timestamp_us=_now_us())))  # fmt: skip
    signal_id = response.json()["signal_id"]
    signal = await _until(lambda: (s := _signal(signal_id)).status == "rejected" and s)
    assert signal.status_reason == "EA: price out of range"
    await communicator.disconnect()
    assert (await database_sync_to_async(api.get)(f"/api/signals/{signal_id}/")).json()["status"] == "rejected"


async def test_an_expired_signal_never_reaches_an_ea_that_reconnects_late(ea):
    account, secret = ea
    communicator, _ = await connect(account, secret)
    await _stream_quote(communicator, account)
    await communicator.disconnect()  # the EA goes away; the signal is made while it is offline

    valid_until = timezone.now() + timedelta(seconds=3)
    spec = SignalSpec(symbol="EURUSD", action="BUY", volume=Decimal("0.1"), valid_until=valid_until,
                      stop_loss=Decimal("1.0930"))  # fmt: skip
    signal = await database_sync_to_async(signal_create)(
        tenant_id=account.tenant_id, account_id=account.account_id, payload=spec, source="ml"
    )
    assert signal.status == "pending"
    while timezone.now() <= valid_until:  # bounded: valid_until is three seconds away
        await asyncio.sleep(0.05)
    assert await database_sync_to_async(signals_expire_stale)() == 1

    communicator, _ = await connect(account, secret)
    await receive_until(communicator, binproto.ConfigUpdate)  # resync: risk parameters, settings, then signals
    assert await communicator.receive_nothing(timeout=0.5)
    # A late copy from NATS (redelivery, a slow bridge) is dropped by the gateway too.
    get_bus().publish(f"mt5.signal.{account.account_id}.{signal.signal_id}",
                      binproto.to_json(signal_message(signal)).encode())  # fmt: skip
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()
    expired = await database_sync_to_async(_signal)(signal.signal_id)
    assert (expired.status, expired.sent_to_ea_at, expired.executed_at) == ("expired", None, None)
