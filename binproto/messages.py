"""Every message and record of the protocol. A field's annotation is its wire layout, so this file is the spec's
table of contents: the codec, the JSON form, the docs test and the property tests all read these declarations.

Rules the codec relies on (and that an EA author sees in docs/protocol.md):
- fields go on the wire in declaration order, little-endian, packed (no alignment);
- every fixed-size field comes before the first variable-size one (strings, lists), so a body is one fixed block
  followed by its strings and lists;
- a field without a wire annotation (``version``, ``timestamp_us``, ``PriceTick.server_id``) is not in the body.
Messages are frozen slotted dataclasses. Records inside lists are NamedTuples: immutable and compared by value like
the dataclasses, and built several times faster, which is what a 64-symbol price packet is made of.
"""

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, NamedTuple
from uuid import UUID

from binproto.constants import (
    ALL_WEEKDAYS,
    CURRENT_VERSION,
    MAX_DIGITS,
    MAX_F64,
    MAX_LABEL_BYTES,
    MAX_PARAMS,
    MAX_POSITIONS,
    MAX_PROTOCOL_VERSIONS,
    MAX_SYMBOL_BYTES,
    MAX_SYMBOLS,
    MAX_TEXT_BYTES,
    MAX_TICKS,
    MAX_TOKEN_BYTES,
    MAX_TRADING_WINDOWS,
    MINUTES_PER_DAY,
    SERVER_TYPES_FROM,
    AccountType,
    AckStatus,
    Action,
    AuthMethod,
    AuthStatus,
    CloseCode,
    CloseReason,
    CommandType,
    ConnectionStatus,
    ErrorCode,
    EventAckStatus,
    MarketSession,
    MsgType,
    OrderType,
    QuoteQuality,
    SizingMethod,
)


# --- wire kinds -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fixed:
    """A fixed-size field. ``fmt`` is its struct code; a number must lie in [lo, hi] when they are given.
    The Python type beside it gives the meaning: int, bool (0 or 1), an IntEnum (closed set), float, UUID."""

    name: str
    fmt: str
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """UTF-8 without NUL characters, after a u8 (``prefix="B"``) or u16 (``"H"``) byte length."""

    name: str
    prefix: str
    max_bytes: int
    min_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Items:
    """A u8 or u16 item count, then the items: records (NamedTuples) or scalars (an Annotated alias)."""

    name: str
    count: str
    max_items: int
    item: Any


@dataclass(frozen=True, slots=True)
class Pairs:
    """Key/value strings: u8 count, then count × (key str8 1..64 bytes, value str8 0..255 bytes); keys unique."""

    name: str
    max_items: int


u8: Final = Fixed("u8", "B")
u16: Final = Fixed("u16", "H")
u32: Final = Fixed("u32", "I")
u64: Final = Fixed("u64", "Q")
uuid16: Final = Fixed("uuid", "16s")
uuid16_or_zero: Final = Fixed("uuid/0", "16s")  # all-zero bytes mean "none" (Python None)
f64_signed: Final = Fixed("f64", "d", -MAX_F64, MAX_F64)
f64_nonnegative: Final = Fixed("f64+", "d", 0.0, MAX_F64)
f64_unit: Final = Fixed("f64 0..1", "d", 0.0, 1.0)
symbol_text: Final = Text("str8", "B", MAX_SYMBOL_BYTES, min_bytes=1)
label_text: Final = Text("str8", "B", MAX_LABEL_BYTES)
reason_text: Final = Text("str8", "B", MAX_TEXT_BYTES)
token_text: Final = Text("str16", "H", MAX_TOKEN_BYTES)


def list8(item: Any, limit: int) -> Items:
    return Items("list8", "B", limit, item)


def list16(item: Any, limit: int) -> Items:
    return Items("list16", "H", limit, item)


U8 = Annotated[int, u8]
U16 = Annotated[int, u16]
U32 = Annotated[int, u32]
U64 = Annotated[int, u64]
Flag = Annotated[bool, u8]
Uuid = Annotated[UUID, uuid16]
OptionalUuid = Annotated[UUID | None, uuid16_or_zero]
Price = Annotated[float, f64_nonnegative]  # 0 means "none" for SL/TP, as in MT5
Lots = Annotated[float, f64_nonnegative]
Percent = Annotated[float, f64_nonnegative]
Money = Annotated[float, f64_signed]
Symbol = Annotated[str, symbol_text]
Label = Annotated[str, label_text]
Reason = Annotated[str, reason_text]
Token = Annotated[str, token_text]
Params = Annotated[tuple[tuple[str, str], ...], Pairs("pairs8", MAX_PARAMS)]
TimeUs = U64  # µs since the Unix epoch, 0 = none


# --- records (list items) ---------------------------------------------------------------------------------------
class PriceTick(NamedTuple):
    """One symbol's quote. ``symbol`` is the v1 symbol id or the v2 symbol-table index."""

    symbol: U16
    bid: Price
    ask: Price
    spread_points: U32
    quote_quality: Annotated[QuoteQuality, u8] = QuoteQuality.UNKNOWN
    tradeable: Flag = True
    market_session: Annotated[MarketSession, u8] = MarketSession.UNKNOWN
    server_id: int = 0  # version 1 only (flags' high 16 bits); not in the v2 record


class SymbolEntry(NamedTuple):
    index: U16
    digits: Annotated[int, Fixed("u8", "B", 0, MAX_DIGITS)]
    name: Symbol


class Position(NamedTuple):
    ticket: U64
    order_type: Annotated[OrderType, Fixed("u8", "B", OrderType.BUY, OrderType.SELL)]
    volume: Lots
    open_price: Price
    stop_loss: Price
    take_profit: Price
    profit: Money
    symbol: Symbol


class TradingWindow(NamedTuple):
    """Trading allowed on the weekdays in the mask (bit 0 Monday … bit 6 Sunday) from start to end minute, UTC."""

    weekdays: Annotated[int, Fixed("u8", "B", 1, ALL_WEEKDAYS)]
    start_minute: Annotated[int, Fixed("u16", "H", 0, MINUTES_PER_DAY - 1)]
    end_minute: Annotated[int, Fixed("u16", "H", 1, MINUTES_PER_DAY)]


# --- EA → server ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PriceStream:
    TYPE: ClassVar = MsgType.PRICE_STREAM
    ticks: Annotated[tuple[PriceTick, ...], list16(PriceTick, MAX_TICKS)]
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE: ClassVar = MsgType.HELLO
    account_id: Uuid
    auth_method: Annotated[AuthMethod, u8]
    mt5_build: U32
    ea_version: Label
    access_token: Token
    protocol_versions: Annotated[tuple[int, ...], list8(U16, MAX_PROTOCOL_VERSIONS)]
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class SymbolTable:
    TYPE: ClassVar = MsgType.SYMBOL_TABLE
    symbols: Annotated[tuple[SymbolEntry, ...], list16(SymbolEntry, MAX_SYMBOLS)]
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class AccountProfile:
    TYPE: ClassVar = MsgType.ACCOUNT_PROFILE
    login: U64
    account_type: Annotated[AccountType, u8]
    leverage: U32
    mt5_build: U32
    broker: Label
    server: Label
    currency: Label
    ea_version: Label
    settings: Params
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class AccountFinance:
    TYPE: ClassVar = MsgType.ACCOUNT_FINANCE
    balance: Money
    equity: Money
    margin: Percent  # margin in use, account currency (never negative)
    margin_free: Money
    margin_level: Percent
    floating_pnl: Money
    daily_pnl: Money
    drawdown_pct: Percent
    max_balance: Money
    open_positions: U16
    pending_orders: U16
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class TradeOpened:
    TYPE: ClassVar = MsgType.TRADE_OPENED
    event_seq: U64
    ticket: U64
    order_type: Annotated[OrderType, u8]
    volume: Lots
    price: Price
    stop_loss: Price
    take_profit: Price
    signal_id: OptionalUuid
    open_time_us: TimeUs
    commission: Money
    magic: U64
    symbol: Symbol
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class TradeClosed:
    TYPE: ClassVar = MsgType.TRADE_CLOSED
    event_seq: U64
    ticket: U64
    order_type: Annotated[OrderType, u8]
    volume: Lots
    open_price: Price
    close_price: Price
    stop_loss: Price
    take_profit: Price
    signal_id: OptionalUuid
    open_time_us: TimeUs
    close_time_us: TimeUs
    profit: Money
    commission: Money
    swap: Money
    close_reason: Annotated[CloseReason, u8]
    symbol: Symbol
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class TradeModified:
    TYPE: ClassVar = MsgType.TRADE_MODIFIED
    event_seq: U64
    ticket: U64
    order_type: Annotated[OrderType, u8]
    volume: Lots
    price: Price
    stop_loss: Price
    take_profit: Price
    signal_id: OptionalUuid
    modify_time_us: TimeUs
    symbol: Symbol
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    TYPE: ClassVar = MsgType.HEARTBEAT
    connection_status: Annotated[ConnectionStatus, u8]
    latency_ms: U32
    uptime_s: U32
    mt5_build: U32
    terminal_connected: Flag
    trade_allowed: Flag
    error_count: U32
    last_error_code: U32
    last_error_message: Reason
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Ack:
    """The EA's answer to a server message: signals and commands by id, risk/config updates by version."""

    TYPE: ClassVar = MsgType.ACK
    acked_type: Annotated[MsgType, Fixed("u8", "B", SERVER_TYPES_FROM, 0xFF)]
    ref_id: OptionalUuid
    ref_version: U32
    status: Annotated[AckStatus, u8]
    reason_code: U32
    reason: Reason
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class TokenRefresh:
    TYPE: ClassVar = MsgType.TOKEN_REFRESH
    refresh_token: Token
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Positions:
    TYPE: ClassVar = MsgType.POSITIONS
    positions: Annotated[tuple[Position, ...], list16(Position, MAX_POSITIONS)]
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


# --- server → EA ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuthResult:
    TYPE: ClassVar = MsgType.AUTH_RESULT
    status: Annotated[AuthStatus, u8]
    session_id: OptionalUuid
    access_expires_us: TimeUs
    server_time_us: TimeUs
    access_token: Token
    refresh_token: Token
    reason: Reason
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class TradingSignal:
    TYPE: ClassVar = MsgType.TRADING_SIGNAL
    signal_id: Uuid
    action: Annotated[Action, u8]
    entry_price: Price
    entry_min: Price
    entry_max: Price
    stop_loss: Price
    take_profit: Price
    volume: Lots
    risk_percent: Percent
    sizing_method: Annotated[SizingMethod, u8]
    confidence: Annotated[float, f64_unit]
    valid_until_us: TimeUs
    ticket: U64  # CLOSE: the position to close, 0 = this symbol's positions opened by signals
    symbol: Symbol
    model_version: Label
    strategy_name: Label
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class RiskParameters:
    TYPE: ClassVar = MsgType.RISK_PARAMETERS
    risk_version: U32
    max_position_lots: Lots
    max_daily_loss: Price  # account currency, never negative
    max_drawdown_pct: Percent
    emergency_stop: Flag
    trading_enabled: Flag
    allowed_symbols: Annotated[tuple[str, ...], list16(Symbol, MAX_SYMBOLS)]  # empty = no restriction
    trading_hours: Annotated[tuple[TradingWindow, ...], list8(TradingWindow, MAX_TRADING_WINDOWS)]  # empty = always
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    TYPE: ClassVar = MsgType.CONFIG_UPDATE
    config_version: U32
    sl_multiplier: Percent
    tp_multiplier: Percent
    slippage_points: U32
    max_spread_points: U32
    magic: U64
    comment_prefix: Label
    params: Params
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Command:
    TYPE: ClassVar = MsgType.COMMAND
    command_id: Uuid
    command: Annotated[CommandType, u8]
    ticket: U64  # MODIFY_ORDER only, else 0
    stop_loss: Price  # MODIFY_ORDER only, else 0
    take_profit: Price  # MODIFY_ORDER only, else 0
    issued_us: TimeUs
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class EventAck:
    TYPE: ClassVar = MsgType.EVENT_ACK
    event_type: Annotated[MsgType, Fixed("u8", "B", MsgType.TRADE_OPENED, MsgType.TRADE_MODIFIED)]
    event_seq: U64
    ticket: U64
    status: Annotated[EventAckStatus, u8]
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class Error:
    TYPE: ClassVar = MsgType.ERROR
    code: Annotated[ErrorCode, u16]
    reason: Reason
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


@dataclass(frozen=True, slots=True)
class SessionClosing:
    TYPE: ClassVar = MsgType.SESSION_CLOSING
    close_code: Annotated[CloseCode, u16]
    retry_after_ms: U32  # 0 = reconnect with the EA's normal backoff
    reason: Reason
    version: int = CURRENT_VERSION
    timestamp_us: int = 0


Message = (
    PriceStream
    | Hello
    | SymbolTable
    | AccountProfile
    | AccountFinance
    | TradeOpened
    | TradeClosed
    | TradeModified
    | Heartbeat
    | Ack
    | TokenRefresh
    | Positions
    | AuthResult
    | TradingSignal
    | RiskParameters
    | ConfigUpdate
    | Command
    | EventAck
    | Error
    | SessionClosing
)
MESSAGE_CLASSES: Final = Message.__args__  # in MsgType order
CLASS_BY_TYPE: Final = {cls.TYPE: cls for cls in MESSAGE_CLASSES}
