"""The reference EA's own trading rules, offline: no server, so nothing is sent and trade events wait in the outbox
(its rules against the real server: tests/gateway/test_simulated_ea.py)."""

from __future__ import annotations

import time
import uuid

import pytest

import binproto
from eaclient.simulated import (
    REJECT_EXPIRED,
    REJECT_OUTSIDE_RANGE,
    REJECT_TRADING_DISABLED,
    Quote,
    SimulatedEA,
    SimulatorConfig,
    position_profit,
)


def offline_ea() -> SimulatedEA:
    return SimulatedEA(SimulatorConfig(url="ws://127.0.0.1:9/", account_id=uuid.uuid4(), api_key="k", seed=1))


def trading_signal(ea: SimulatedEA, *, action=binproto.Action.BUY, low=None, high=None, valid_s=60.0, **fields):
    quote = ea.walk.quotes["EURUSD"]
    return binproto.TradingSignal(
        signal_id=uuid.uuid4(), action=action, entry_price=quote.ask,
        entry_min=quote.ask - 0.001 if low is None else low, entry_max=quote.ask + 0.001 if high is None else high,
        stop_loss=fields.get("sl", quote.ask - 0.002), take_profit=fields.get("tp", quote.ask + 0.002), volume=0.1,
        risk_percent=0.0, sizing_method=binproto.SizingMethod.FIXED_LOTS, confidence=0.9,
        valid_until_us=time.time_ns() // 1000 + int(valid_s * 1e6), ticket=0, symbol="EURUSD", model_version="t",
        strategy_name="t",
    )  # fmt: skip


async def test_a_take_profit_hit_closes_the_position_with_its_profit_and_a_repeated_signal_is_not_executed_again():
    ea = offline_ea()
    signal = trading_signal(ea)
    await ea.handle(signal)
    await ea.handle(signal)  # at-least-once delivery
    [position] = ea.positions.values()
    assert (ea.counters.trades_opened, ea.counters.repeated_deliveries) == (1, 1)
    assert ea.last_ack(signal.signal_id).status == binproto.AckStatus.EXECUTED

    await ea.apply_quote(
        "EURUSD", Quote(bid=position.take_profit + 0.0001, ask=position.take_profit + 0.0002, spread_points=10)
    )
    assert not ea.positions and ea.counters.trades_closed == 1
    opened, *closed = ea.unacknowledged()  # both wait for the server's EVENT_ACKs
    assert isinstance(opened, binproto.TradeOpened) and opened.signal_id == signal.signal_id
    assert [(c.close_reason, c.signal_id) for c in closed] == [(binproto.CloseReason.TAKE_PROFIT, signal.signal_id)]
    assert (
        closed[0].profit
        == position_profit(position, closed[0].close_price)
        == pytest.approx((closed[0].close_price - position.open_price) * 0.1 * 100_000, abs=0.01)
    )


async def test_a_stop_loss_on_a_sell_and_usd_based_profit_in_dollars():
    ea = offline_ea()
    quote = ea.walk.quotes["USDJPY"]
    signal = binproto.TradingSignal(
        signal_id=uuid.uuid4(), action=binproto.Action.SELL, entry_price=quote.bid, entry_min=0.0, entry_max=0.0,
        stop_loss=quote.bid + 0.5, take_profit=quote.bid - 0.5, volume=1.0, risk_percent=0.0,
        sizing_method=binproto.SizingMethod.FIXED_LOTS, confidence=0.5, valid_until_us=time.time_ns() // 1000 + 10**7,
        ticket=0, symbol="USDJPY", model_version="", strategy_name="",
    )  # fmt: skip
    await ea.handle(signal)
    [position] = ea.positions.values()
    await ea.apply_quote("USDJPY", Quote(bid=quote.bid + 0.6, ask=quote.bid + 0.62, spread_points=20))
    _opened, closed = ea.unacknowledged()
    assert closed.close_reason == binproto.CloseReason.STOP_LOSS
    assert closed.profit == pytest.approx(
        -(closed.close_price - position.open_price) * 100_000 / closed.close_price, abs=0.01
    )


async def test_expired_out_of_range_and_disabled_signals_are_rejected_and_nothing_opens():
    ea = offline_ea()
    expired, outside = trading_signal(ea, valid_s=-1), trading_signal(ea, low=0.5, high=0.6)
    await ea.handle(expired)
    await ea.handle(outside)
    command = binproto.Command(command_id=uuid.uuid4(), command=binproto.CommandType.DISABLE_TRADING, ticket=0,
                               stop_loss=0.0, take_profit=0.0, issued_us=0)  # fmt: skip
    await ea.handle(command)
    disabled = trading_signal(ea)
    await ea.handle(disabled)
    assert [ea.last_ack(s.signal_id).reason for s in (expired, outside, disabled)] == [
        REJECT_EXPIRED, REJECT_OUTSIDE_RANGE, REJECT_TRADING_DISABLED
    ]  # fmt: skip
    assert ea.last_ack(command.command_id).status == binproto.AckStatus.EXECUTED
    assert not ea.positions and not ea.unacknowledged() and ea.counters.signals_rejected == 3
