"""The `Terminal` interface: what the agent needs from a MetaTrader 5 terminal, in plain dataclasses.

Two implementations: `eaclient.terminals.simulated.SimulatedTerminal` (the simulated market and broker) and
`eaclient.terminals.mt5.Mt5Terminal` (MetaQuotes' `MetaTrader5` package, Windows only). The agent calls a terminal
from one worker thread at a time (the `MetaTrader5` package blocks on its IPC with the terminal), so an
implementation needs no locking of its own against the agent; the simulated one locks for tests that script it.

Units: prices and lots as the terminal has them, money in the account currency, times in µs since the epoch (UTC).
A method that cannot reach the terminal raises `TerminalError`; an order the terminal or broker refuses is an
`OrderResult` with `ok` False and the trade retcode, not an exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from binproto import AccountType, OrderType

# MT5 trade return codes the agent acts on (MqlTradeResult.retcode; the MetaTrader5 package's TRADE_RETCODE_*).
RETCODE_REQUOTE = 10004
RETCODE_PLACED = 10008
RETCODE_DONE = 10009
RETCODE_DONE_PARTIAL = 10010
RETCODE_TIMEOUT = 10012
RETCODE_INVALID_STOPS = 10016
RETCODE_MARKET_CLOSED = 10018
RETCODE_NO_MONEY = 10019
RETCODE_PRICE_CHANGED = 10020
RETCODE_PRICE_OFF = 10021
RETCODE_CONNECTION = 10031
RETCODE_POSITION_CLOSED = 10036
# order_check answers 0 ("Done") when a request would be accepted (MqlTradeCheckResult).
RETCODE_CHECK_OK = 0
# Not trade retcodes: the agent's own codes for "order_send got no answer" (the MetaTrader5 package returned None:
# the order may have gone out) and "the order was not sent" (order_check got no answer).
RETCODE_NO_REPLY = 1
RETCODE_NOT_SENT = 2
RETCODES_DONE = frozenset({RETCODE_DONE, RETCODE_DONE_PARTIAL, RETCODE_PLACED})
# The price moved before the order reached the broker: worth one more try at a fresh price inside the entry range.
RETCODES_REQUOTE = frozenset({RETCODE_REQUOTE, RETCODE_PRICE_CHANGED, RETCODE_PRICE_OFF})
# The order may or may not have been executed: only the terminal's positions and deals can tell.
RETCODES_UNKNOWN = frozenset({RETCODE_TIMEOUT, RETCODE_CONNECTION, RETCODE_NO_REPLY})


class TerminalError(Exception):
    """The terminal could not be reached or refused a call (not a trade refusal: that is an OrderResult)."""


class DealEntry(enum.IntEnum):
    """ENUM_DEAL_ENTRY: whether a deal opened, closed or reversed a position."""

    IN = 0
    OUT = 1
    INOUT = 2
    OUT_BY = 3


class DealReason(enum.IntEnum):
    """ENUM_DEAL_REASON: who or what made the deal."""

    CLIENT = 0
    MOBILE = 1
    WEB = 2
    EXPERT = 3
    SL = 4
    TP = 5
    SO = 6
    ROLLOVER = 7
    VMARGIN = 8
    SPLIT = 9


@dataclass(frozen=True)
class TerminalStatus:
    connected: bool  # terminal ↔ broker
    trade_allowed: bool  # algorithmic trading allowed in the terminal and on the account
    build: int


@dataclass(frozen=True)
class AccountInfo:
    login: int
    account_type: AccountType
    leverage: int
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float  # percent; 0 without positions
    profit: float  # floating P&L
    currency: str
    company: str  # the broker
    server: str


@dataclass(frozen=True)
class SymbolInfo:
    name: str
    digits: int
    point: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    tradeable: bool  # SYMBOL_TRADE_MODE allows opening both ways


@dataclass(frozen=True)
class Tick:
    symbol: str
    time_us: int
    bid: float
    ask: float


@dataclass(frozen=True)
class Position:
    ticket: int  # the position ticket (POSITION_TICKET: the id every deal of it carries as position_id)
    symbol: str
    order_type: OrderType  # BUY or SELL
    volume: float
    open_price: float
    stop_loss: float  # 0 = none
    take_profit: float
    profit: float
    swap: float
    open_time_us: int
    magic: int
    comment: str


@dataclass(frozen=True)
class Deal:
    ticket: int
    order: int
    position_ticket: int  # DEAL_POSITION_ID; 0 for balance operations
    symbol: str
    order_type: OrderType  # the deal's direction: BUY or SELL
    entry: DealEntry
    reason: DealReason
    volume: float
    price: float
    profit: float
    commission: float
    swap: float
    fee: float
    time_us: int
    magic: int
    comment: str


@dataclass(frozen=True)
class OrderRequest:
    """A market order: opens a position, or closes `position_ticket` when it is not 0."""

    symbol: str
    order_type: OrderType  # BUY or SELL
    volume: float
    price: float  # the price the agent expects (ask for a buy, bid for a sell)
    stop_loss: float = 0.0
    take_profit: float = 0.0
    deviation_points: int = 10  # slippage the broker may fill within
    magic: int = 0
    comment: str = ""
    position_ticket: int = 0


@dataclass(frozen=True)
class OrderResult:
    retcode: int
    comment: str  # the terminal's or broker's words
    order: int = 0
    deal: int = 0
    position_ticket: int = 0  # the position opened or closed (a market order's ticket in hedging accounts)
    price: float = 0.0
    volume: float = 0.0

    @property
    def ok(self) -> bool:
        return self.retcode in RETCODES_DONE

    @property
    def outcome_unknown(self) -> bool:
        return self.retcode in RETCODES_UNKNOWN


class Terminal(Protocol):
    """One MetaTrader 5 terminal logged in to one trading account."""

    def connect(self) -> None:
        """Attach to the terminal (and log in when credentials were given). Raises TerminalError."""

    def shutdown(self) -> None: ...

    def status(self) -> TerminalStatus: ...

    def account(self) -> AccountInfo: ...

    def symbol(self, name: str) -> SymbolInfo | None:
        """The symbol's properties, selecting it in Market Watch first; None if the broker has no such symbol."""

    def ticks_since(self, symbol: str, since_us: int) -> list[Tick]:
        """Ticks of `symbol` newer than `since_us`, oldest first; empty when there is none."""

    def positions(self) -> list[Position]: ...

    def deals_since(self, since_us: int) -> list[Deal]:
        """Buy and sell deals whose time is at or after `since_us`, oldest first. Deal times are the terminal's (MT5
        stamps history with the trade server's clock): compare them with each other, not with this machine's."""

    def send_order(self, request: OrderRequest) -> OrderResult:
        """Check, then send a market order with the symbol's filling mode."""

    def close_position(self, ticket: int, *, comment: str = "", magic: int = 0) -> OrderResult: ...

    def modify_position(self, ticket: int, *, stop_loss: float, take_profit: float) -> OrderResult: ...

    def last_error(self) -> tuple[int, str]: ...
