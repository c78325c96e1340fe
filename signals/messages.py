"""Rows → binproto messages: everything the server sends an EA, built from its database row in one place (a signal,
the account's risk parameters and settings, a command), so units and "not set" (0, microseconds) agree.

It lives in signals, the lowest layer that publishes one of them (signals.delivery); trading's outbound and resync
import it. A command row is trading's `EACommand`, taken by its fields: signals does not import trading.
"""

from __future__ import annotations

import binproto
from accounts.models import MT5Account
from signals.models import TradingSignal
from suho.clock import datetime_to_us, now_us

ACTIONS = {"BUY": binproto.Action.BUY, "SELL": binproto.Action.SELL, "CLOSE": binproto.Action.CLOSE}
COMMAND_TYPES = {  # EACommand.Kind → the wire's command
    "close_all": binproto.CommandType.CLOSE_ALL_POSITIONS,
    "disable_trading": binproto.CommandType.DISABLE_TRADING,
    "enable_trading": binproto.CommandType.ENABLE_TRADING,
    "modify_order": binproto.CommandType.MODIFY_ORDER,
    "reconnect": binproto.CommandType.RECONNECT,
    "restart_ea": binproto.CommandType.RESTART_EA,
}


def _f(value) -> float:
    return float(value) if value is not None else 0.0


def _minutes(value) -> int | None:
    return None if value is None else value.hour * 60 + value.minute


def signal_message(signal: TradingSignal) -> binproto.TradingSignal:
    return binproto.TradingSignal(
        signal_id=signal.signal_id,
        action=ACTIONS[signal.action],
        entry_price=_f(signal.entry_price),
        entry_min=_f(signal.entry_price_min),
        entry_max=_f(signal.entry_price_max),
        stop_loss=_f(signal.stop_loss),
        take_profit=_f(signal.take_profit),
        volume=float(signal.volume),
        risk_percent=_f(signal.risk_percent),
        sizing_method=binproto.SizingMethod[signal.sizing_method.upper()],
        confidence=_f(signal.confidence_score),
        valid_until_us=datetime_to_us(signal.valid_until),
        ticket=int(signal.metadata.get("ticket", 0)) if signal.action == "CLOSE" else 0,
        symbol=signal.symbol,
        model_version=signal.model_version,
        strategy_name=signal.strategy_name,
        timestamp_us=now_us(),
    )


# What the two account messages read of the account: a read made only for them (the resync's) loads no more.
ACCOUNT_MESSAGE_FIELDS = (
    "config_version", "max_position_size", "max_daily_loss", "max_drawdown_percent", "emergency_stop",
    "trading_enabled", "allowed_symbols", "trading_hours_start_utc", "trading_hours_end_utc", "sl_multiplier",
    "tp_multiplier", "slippage_tolerance_pips", "max_spread_points", "magic_number", "comment_prefix",
    "strategy_parameters",
)  # fmt: skip


def risk_parameters_message(account: MT5Account) -> binproto.RiskParameters:
    start, end = _minutes(account.trading_hours_start_utc), _minutes(account.trading_hours_end_utc)
    hours = ()
    if start is not None and end is not None and end > start:
        hours = (binproto.TradingWindow(weekdays=binproto.ALL_WEEKDAYS, start_minute=start, end_minute=end),)
    return binproto.RiskParameters(
        risk_version=account.config_version,
        max_position_lots=float(account.max_position_size),
        max_daily_loss=float(account.max_daily_loss),
        max_drawdown_pct=float(account.max_drawdown_percent),
        emergency_stop=account.emergency_stop,
        trading_enabled=account.trading_enabled and not account.emergency_stop,
        allowed_symbols=tuple(account.allowed_symbols),
        trading_hours=hours,
        timestamp_us=now_us(),
    )


def config_update_message(account: MT5Account) -> binproto.ConfigUpdate:
    return binproto.ConfigUpdate(
        config_version=account.config_version,
        sl_multiplier=float(account.sl_multiplier),
        tp_multiplier=float(account.tp_multiplier),
        slippage_points=int(account.slippage_tolerance_pips * 10),
        max_spread_points=int(account.max_spread_points),
        magic=account.magic_number,
        comment_prefix=account.comment_prefix,
        params=tuple((str(k), str(v)) for k, v in account.strategy_parameters.items()),
        timestamp_us=now_us(),
    )


def command_message(command) -> binproto.Command:
    """`command`: a trading.models.EACommand row."""
    return binproto.Command(
        command_id=command.command_id,
        command=COMMAND_TYPES[command.kind],
        ticket=command.ticket or 0,
        stop_loss=float(command.stop_loss or 0),
        take_profit=float(command.take_profit or 0),
        issued_us=datetime_to_us(command.created_at),
        timestamp_us=now_us(),
    )
