"""TRADE_OPENED and TRADE_CLOSED built from a position as the EA reported it: the simulated EA and the terminal agent
report the same fields the same way (what TRADE_CLOSED repeats is what TRADE_OPENED said)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import binproto
from binproto import CloseReason, OrderType


class OpenPosition(Protocol):
    """What the terminal says of an open position (read-only: the agent's journal keeps frozen positions)."""

    @property
    def ticket(self) -> int: ...

    @property
    def symbol(self) -> str: ...

    @property
    def order_type(self) -> OrderType: ...

    @property
    def volume(self) -> float: ...

    @property
    def open_price(self) -> float: ...

    @property
    def stop_loss(self) -> float: ...

    @property
    def take_profit(self) -> float: ...


class ReportedPosition(OpenPosition, Protocol):
    """A position as TRADE_OPENED reported it: also its signal, open time and magic number."""

    @property
    def signal_id(self) -> UUID | None: ...

    @property
    def open_time_us(self) -> int: ...

    @property
    def magic(self) -> int: ...


def trade_opened(
    position: ReportedPosition, *, event_seq: int, commission: float, timestamp_us: int
) -> binproto.TradeOpened:
    return binproto.TradeOpened(
        event_seq=event_seq,
        ticket=position.ticket,
        order_type=position.order_type,
        volume=position.volume,
        price=position.open_price,
        stop_loss=position.stop_loss,
        take_profit=position.take_profit,
        signal_id=position.signal_id,
        open_time_us=position.open_time_us,
        commission=commission,
        magic=position.magic,
        symbol=position.symbol,
        timestamp_us=timestamp_us,
    )


def trade_closed(
    position: ReportedPosition,
    *,
    event_seq: int,
    volume: float,
    close_price: float,
    close_time_us: int,
    profit: float,
    commission: float,
    swap: float,
    reason: CloseReason,
    timestamp_us: int,
) -> binproto.TradeClosed:
    """`volume`: what this close took (a partial close takes less than the position's volume)."""
    return binproto.TradeClosed(
        event_seq=event_seq,
        ticket=position.ticket,
        order_type=position.order_type,
        volume=volume,
        open_price=position.open_price,
        close_price=close_price,
        stop_loss=position.stop_loss,
        take_profit=position.take_profit,
        signal_id=position.signal_id,
        open_time_us=position.open_time_us,
        close_time_us=close_time_us,
        profit=profit,
        commission=commission,
        swap=swap,
        close_reason=reason,
        symbol=position.symbol,
        timestamp_us=timestamp_us,
    )


def trade_modified(
    position: OpenPosition, *, signal_id: UUID | None, event_seq: int, modify_time_us: int, timestamp_us: int
) -> binproto.TradeModified:
    """`position` with its new stop loss and take profit."""
    return binproto.TradeModified(
        event_seq=event_seq,
        ticket=position.ticket,
        order_type=position.order_type,
        volume=position.volume,
        price=position.open_price,
        stop_loss=position.stop_loss,
        take_profit=position.take_profit,
        signal_id=signal_id,
        modify_time_us=modify_time_us,
        symbol=position.symbol,
        timestamp_us=timestamp_us,
    )
