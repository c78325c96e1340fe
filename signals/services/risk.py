"""The risk gate (issue 6 item 4): every check a signal must pass for one account before anything is sent.

`risk_check` reads (account, latest balance, today's closed P&L, the broker quote) and returns the first refusal
as a message, or None; the caller records a refusal on the signal (PENDING → REJECTED) and audits it. Position
sizing is here too: fixed lots as sent, or risk % of equity over the stop-loss distance.

Pip value assumption (risk % sizing): one lot is `CONTRACT_SIZES` units (FX 100,000; gold 100 oz; silver
5,000 oz), so a pip is worth `pip_size × contract` in the symbol's quote currency — $10 for EURUSD. It is converted
to the account currency only where the symbol itself holds the rate: quote currency = account currency (EURUSD on a
USD account: as is) or base currency = account currency (USDJPY on a USD account: ÷ price). Crosses (EURGBP on a
USD account) and indices have no rate here, so risk % sizing refuses them with a reason instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_DOWN, Decimal

from accounts.models import MT5Account
from quotes.instruments import normalise_symbol, pip_size
from signals.selectors import account_equity_latest, account_loss_figures

RISK_TENANT_TRADING_DISABLED = "trading is disabled for this tenant"
RISK_TRADING_DISABLED = "trading is disabled for this account"
RISK_EMERGENCY_STOP = "the account's emergency stop is on"
RISK_SYMBOL_NOT_ALLOWED = "{symbol} is not one of the account's allowed symbols"
RISK_OUTSIDE_TRADING_HOURS = "outside the account's trading hours ({start}–{end} UTC)"
RISK_MAX_POSITION_SIZE = "volume {volume} lots exceeds the max position size of {limit} lots"
RISK_DAILY_LOSS = "daily loss limit of {limit} reached (closed today: {pnl})"
RISK_DRAWDOWN = "drawdown {drawdown}% is at or above the limit of {limit}%"
RISK_SPREAD = "spread {spread} points exceeds the max spread of {limit} points"
RISK_SIZING_NO_STOP_LOSS = "risk-percent sizing needs a stop loss"
RISK_SIZING_NO_EQUITY = "risk-percent sizing needs the account's equity, and the EA has reported none"
RISK_SIZING_NO_PIP_VALUE = "risk-percent sizing cannot value a pip of {symbol} in {currency}"
RISK_SIZING_TOO_SMALL = "risk-percent sizing gives less than {minimum} lots"

LOT_STEP = Decimal("0.01")
CONTRACT_SIZES: tuple[tuple[str, Decimal], ...] = (
    (r"^XAU", Decimal(100)),
    (r"^XAG", Decimal(5000)),
    (r"^(XPT|XPD)", Decimal(100)),
)
FX_CONTRACT = Decimal(100_000)


@dataclass(frozen=True)
class RiskDecision:
    volume: Decimal  # after sizing
    refusal: str | None


def risk_check(
    *, account: MT5Account, symbol: str, action: str, volume: Decimal, entry_price: Decimal,
    stop_loss: Decimal | None, spread_points: float | None, now: datetime,
    loss_figures: tuple[Decimal | None, Decimal | None] | None = None,
) -> RiskDecision:  # fmt: skip
    """Run in the account's tenant context. Checks in order; the first refusal wins. `loss_figures`: the
    account's (daily_pnl, drawdown) if the caller read them already (`account_loss_figures`)."""
    for check in (_switches, _symbol, _hours):
        refusal = check(account=account, symbol=symbol, now=now)
        if refusal:
            return RiskDecision(volume, refusal)
    sized, refusal = _size(account=account, symbol=symbol, volume=volume, entry=entry_price, stop_loss=stop_loss)
    if refusal:
        return RiskDecision(volume, refusal)
    if sized > account.max_position_size:
        return RiskDecision(sized, RISK_MAX_POSITION_SIZE.format(volume=sized, limit=account.max_position_size))
    daily_pnl, drawdown = loss_figures or account_loss_figures(account=account)
    refusal = _daily_loss(account, daily_pnl) or _drawdown(account, drawdown) or _spread(account, spread_points)
    return RiskDecision(sized, refusal)


def _switches(*, account: MT5Account, **_) -> str | None:
    if not account.tenant.trading_enabled:
        return RISK_TENANT_TRADING_DISABLED
    if not account.trading_enabled or not account.is_active:
        return RISK_TRADING_DISABLED
    if account.emergency_stop:
        return RISK_EMERGENCY_STOP
    return None


def _symbol(*, account: MT5Account, symbol: str, **_) -> str | None:
    allowed = {normalise_symbol(s) for s in account.allowed_symbols}
    if allowed and normalise_symbol(symbol) not in allowed:
        return RISK_SYMBOL_NOT_ALLOWED.format(symbol=symbol)
    return None


def _hours(*, account: MT5Account, now: datetime, **_) -> str | None:
    start, end = account.trading_hours_start_utc, account.trading_hours_end_utc
    if start is None or end is None or start == end:
        return None
    if not within_hours(now.time(), start, end):
        return RISK_OUTSIDE_TRADING_HOURS.format(start=f"{start:%H:%M}", end=f"{end:%H:%M}")
    return None


def within_hours(moment: time, start: time, end: time) -> bool:
    """[start, end) in UTC; a window with end < start runs over midnight (22:00–06:00)."""
    return start <= moment < end if start < end else moment >= start or moment < end


def _size(
    *, account: MT5Account, symbol: str, volume: Decimal, entry: Decimal, stop_loss: Decimal | None
) -> tuple[Decimal, str | None]:
    if account.sizing_method != MT5Account.SizingMethod.RISK_PERCENT:
        return volume, None
    if stop_loss is None or stop_loss == entry:
        return volume, RISK_SIZING_NO_STOP_LOSS
    equity = account_equity_latest(account=account)
    if equity is None:
        return volume, RISK_SIZING_NO_EQUITY
    pip_value = pip_value_per_lot(symbol=symbol, price=entry, currency=account.currency)
    if pip_value is None:
        return volume, RISK_SIZING_NO_PIP_VALUE.format(symbol=symbol, currency=account.currency)
    stop_pips = abs(entry - stop_loss) / pip_size(symbol)
    risk_money = equity * account.risk_percent / 100
    sized = (risk_money / (stop_pips * pip_value)).quantize(LOT_STEP, rounding=ROUND_DOWN)
    if sized < LOT_STEP:
        return volume, RISK_SIZING_TOO_SMALL.format(minimum=LOT_STEP)
    return sized, None


def pip_value_per_lot(*, symbol: str, price: Decimal, currency: str) -> Decimal | None:
    """What one pip of one lot is worth in `currency`, or None where the symbol holds no rate for it."""
    name = normalise_symbol(symbol)
    contract = next((size for pattern, size in CONTRACT_SIZES if re.match(pattern, name)), FX_CONTRACT)
    in_quote = pip_size(name) * contract
    base, quote = name[:3], name[3:6]
    if quote == currency.upper():
        return in_quote
    if base == currency.upper() and price > 0:
        return in_quote / price
    return None


def _daily_loss(account: MT5Account, pnl: Decimal | None) -> str | None:
    if pnl is not None and pnl < -account.max_daily_loss:
        return RISK_DAILY_LOSS.format(limit=account.max_daily_loss, pnl=pnl)
    return None


def _drawdown(account: MT5Account, drawdown: Decimal | None) -> str | None:
    """The EA's own drawdown (percent from its max balance) on the latest balance snapshot."""
    if drawdown is not None and drawdown > 0 and drawdown >= account.max_drawdown_percent:
        return RISK_DRAWDOWN.format(drawdown=_plain(drawdown), limit=_plain(account.max_drawdown_percent))
    return None


def _spread(account: MT5Account, spread_points: float | None) -> str | None:
    if spread_points is not None and Decimal(str(spread_points)) > account.max_spread_points:
        return RISK_SPREAD.format(spread=spread_points, limit=account.max_spread_points)
    return None


def _plain(value: Decimal) -> str:
    """25.0000 → "25", 20.50 → "20.5" (never 2E+1)."""
    return f"{value.normalize():f}"
