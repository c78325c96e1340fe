"""Broker adjustment (seed §6.3) as pure arithmetic: the worked example exactly, SELL on bids, JPY pips."""

from __future__ import annotations

from decimal import Decimal as D

from signals.services.adjustment import signal_adjust


def test_the_seed_worked_example_holds_exactly():
    adjusted = signal_adjust(
        symbol="EURUSD", action="BUY", reference_price=D("1.0951"), broker_bid=D("1.0951"), broker_ask=D("1.0953"),
        stop_loss=D("1.0932"), take_profit=D("1.0982"), slippage_tolerance_pips=D("2"),
    )  # fmt: skip
    assert (adjusted.entry_price, adjusted.entry_price_min, adjusted.entry_price_max) == (
        D("1.0953"), D("1.0951"), D("1.0955"))  # fmt: skip
    assert (adjusted.stop_loss, adjusted.take_profit) == (D("1.0934"), D("1.0984"))
    assert (adjusted.price_deviation, adjusted.deviation_pips) == (D("0.0002"), D("2.00"))


def test_a_sell_uses_bids_and_shifts_by_the_bid_deviation():
    adjusted = signal_adjust(
        symbol="EURUSD", action="SELL", reference_price=D("1.0949"), broker_bid=D("1.0946"), broker_ask=D("1.0948"),
        stop_loss=D("1.0970"), take_profit=D("1.0920"), slippage_tolerance_pips=D("1.5"),
    )  # fmt: skip
    assert (adjusted.entry_price, adjusted.entry_price_min, adjusted.entry_price_max) == (
        D("1.0946"), D("1.09445"), D("1.09475"))  # fmt: skip
    assert (adjusted.stop_loss, adjusted.take_profit, adjusted.deviation_pips) == (D("1.0967"), D("1.0917"), D("-3.00"))


def test_jpy_pairs_use_their_own_pip_and_no_reference_means_no_shift():
    adjusted = signal_adjust(
        symbol="USDJPY.m", action="BUY", reference_price=None, broker_bid=D("149.850"), broker_ask=D("149.870"),
        stop_loss=D("149.500"), take_profit=None, slippage_tolerance_pips=D("2"),
    )  # fmt: skip
    assert (adjusted.entry_price_min, adjusted.entry_price_max) == (D("149.85"), D("149.89"))
    assert (adjusted.stop_loss, adjusted.take_profit, adjusted.price_deviation) == (D("149.5"), None, D("0"))
