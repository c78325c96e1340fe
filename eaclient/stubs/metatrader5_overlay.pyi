# Local overlay for the MetaTrader5 package's type stubs: what metatrader5-stubs 0.1.3 does not declare, written from
# MetaQuotes' documentation of the package ("Python Integration" in the MQL5 reference; the MQL5 book, section 7.9):
# login, account_info, symbol_info, copy_ticks_from, history_deals_get, order_check and the named tuples they return.
# eaclient/stubs/typecheck.py appends this file to the published stubs (unchanged) and runs mypy on eaclient with the
# result: a name declared in both makes mypy fail, so a newer metatrader5-stubs that adds one shows up at once.
# Nothing here was checked against a real terminal: field names and order are the documentation's example output.

from datetime import datetime
from typing import overload

class AccountInfo(NamedTuple):
    login: int
    trade_mode: int
    leverage: int
    limit_orders: int
    margin_so_mode: int
    trade_allowed: bool
    trade_expert: bool
    margin_mode: int
    currency_digits: int
    fifo_close: bool
    balance: float
    credit: float
    profit: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    margin_so_call: float
    margin_so_so: float
    margin_initial: float
    margin_maintenance: float
    assets: float
    liabilities: float
    commission_blocked: float
    name: str
    server: str
    currency: str
    company: str

class SymbolInfo(NamedTuple):
    custom: bool
    chart_mode: int
    select: bool
    visible: bool
    session_deals: int
    session_buy_orders: int
    session_sell_orders: int
    volume: int
    volumehigh: int
    volumelow: int
    time: int
    digits: int
    spread: int
    spread_float: bool
    ticks_bookdepth: int
    trade_calc_mode: int
    trade_mode: int
    start_time: int
    expiration_time: int
    trade_stops_level: int
    trade_freeze_level: int
    trade_exemode: int
    swap_mode: int
    swap_rollover3days: int
    margin_hedged_use_leg: bool
    expiration_mode: int
    filling_mode: int
    order_mode: int
    order_gtc_mode: int
    option_mode: int
    option_right: int
    bid: float
    bidhigh: float
    bidlow: float
    ask: float
    askhigh: float
    asklow: float
    last: float
    lasthigh: float
    lastlow: float
    volume_real: float
    volumehigh_real: float
    volumelow_real: float
    option_strike: float
    point: float
    trade_tick_value: float
    trade_tick_value_profit: float
    trade_tick_value_loss: float
    trade_tick_size: float
    trade_contract_size: float
    trade_accrued_interest: float
    trade_face_value: float
    trade_liquidity_rate: float
    volume_min: float
    volume_max: float
    volume_step: float
    volume_limit: float
    swap_long: float
    swap_short: float
    margin_initial: float
    margin_maintenance: float
    session_volume: float
    session_turnover: float
    session_interest: float
    session_buy_orders_volume: float
    session_sell_orders_volume: float
    session_open: float
    session_close: float
    session_aw: float
    session_price_settlement: float
    session_price_limit_min: float
    session_price_limit_max: float
    margin_hedged: float
    price_change: float
    price_volatility: float
    price_theoretical: float
    price_greeks_delta: float
    price_greeks_theta: float
    price_greeks_gamma: float
    price_greeks_vega: float
    price_greeks_rho: float
    price_greeks_omega: float
    price_sensitivity: float
    basis: str
    category: str
    currency_base: str
    currency_profit: str
    currency_margin: str
    bank: str
    description: str
    exchange: str
    formula: str
    isin: str
    name: str
    page: str
    path: str

class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str

class OrderCheckResult(NamedTuple):
    retcode: int
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float
    comment: str
    request: TradeRequest

def login(login: int, /, *, password: str = ..., server: str = ..., timeout: int = ...) -> bool:
    """Connect to a trading account with the given parameters (the terminal must be initialized)."""
    ...

def account_info() -> AccountInfo | None:
    """The current trading account; None on error (see last_error())."""
    ...

def symbol_info(symbol: str, /) -> SymbolInfo | None:
    """All properties of a symbol (it must be selected in Market Watch); None on error."""
    ...

def copy_ticks_from(symbol: str, date_from: datetime | int, count: int, flags: int, /) -> np.ndarray | None:
    """Up to `count` ticks from `date_from` (a UTC datetime or seconds since 1970): a numpy structured array with the
    columns time, bid, ask, last, volume, time_msc, flags, volume_real; None on error."""
    ...

@overload
def history_deals_get(
    date_from: datetime | int, date_to: datetime | int, /, *, group: str = ...
) -> tuple[TradeDeal, ...] | None: ...
@overload
def history_deals_get(*, ticket: int) -> tuple[TradeDeal, ...] | None: ...
@overload
def history_deals_get(*, position: int) -> tuple[TradeDeal, ...] | None: ...
def order_check(request: TradeRequest, /) -> OrderCheckResult | None:
    """Whether the request could be executed and what margin it would take; retcode 0 means it would be accepted."""
    ...
