"""Broker adjustment (seed §6.3): a signal made on reference prices, moved onto the account's own broker quote.

Pure arithmetic on Decimals: no database, no clock. BUY trades at the broker's ask, SELL at its bid, so the
deviation is taken on that side: `broker ask − reference ask` (BUY), `broker bid − reference bid` (SELL). The entry
becomes the broker price, the range is that price ± the account's slippage tolerance, and SL/TP move by the
deviation so their distances from the entry the model intended are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quotes.instruments import pip_size

PRICE_PLACES = Decimal("0.00000001")  # suho.fields.price: 8 decimals


@dataclass(frozen=True)
class Adjusted:
    entry_price: Decimal
    entry_price_min: Decimal
    entry_price_max: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    price_deviation: Decimal  # broker − reference, price units
    deviation_pips: Decimal


def signal_adjust(
    *,
    symbol: str,
    action: str,
    reference_price: Decimal | None,
    broker_bid: Decimal,
    broker_ask: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    slippage_tolerance_pips: Decimal,
) -> Adjusted:
    """`reference_price` is the reference ask (BUY) or bid (SELL) the producer priced on; None means the producer
    priced on this broker already (deviation 0)."""
    pip = pip_size(symbol)
    broker_price = broker_ask if action == "BUY" else broker_bid
    deviation = Decimal(0) if reference_price is None else broker_price - reference_price
    tolerance = slippage_tolerance_pips * pip
    return Adjusted(
        entry_price=_q(broker_price),
        entry_price_min=_q(broker_price - tolerance),
        entry_price_max=_q(broker_price + tolerance),
        stop_loss=None if stop_loss is None else _q(stop_loss + deviation),
        take_profit=None if take_profit is None else _q(take_profit + deviation),
        price_deviation=_q(deviation),
        deviation_pips=(deviation / pip).quantize(Decimal("0.01")),
    )


def _q(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES)
