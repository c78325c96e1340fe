"""The wire's numbers: framing, size limits and every enumeration, each declared once (spec: docs/protocol.md)."""

from collections.abc import Mapping
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Final

# --- framing -------------------------------------------------------------------------------------------------
MAGIC: Final = 0x53554854  # wire bytes 54 48 55 53; spells "SUHT", not "SUHO": the legacy EA's value, kept
HEADER_FORMAT: Final = "<IHBBQ"  # magic u32, version u16, msg_type u8, data_count u8, timestamp u64 (µs, Unix epoch)
HEADER_SIZE: Final = 16
V1: Final = 1
V2: Final = 2
SUPPORTED_VERSIONS: Final = (V1, V2)
CURRENT_VERSION: Final = V2

# --- version 1: the legacy Client-MT5 EA price stream -----------------------------------------------------------
V1_RECORD_FORMAT: Final = "<IIII"  # symbol_id, bid, ask (price × V1_PRICE_SCALE), flags
V1_RECORD_SIZE: Final = 16
V1_SLOTS: Final = 8
V1_PACKET_SIZE: Final = HEADER_SIZE + V1_SLOTS * V1_RECORD_SIZE  # 144: the EA's zero-padded frame
V1_MAX_RECORDS: Final = 255  # data_count is a u8; an exact-length frame may carry more than 8 records
V1_PRICE_SCALE: Final = 100_000
V1_MAX_PRICE: Final = 0xFFFF_FFFF / V1_PRICE_SCALE  # 42949.67295: BTCUSD does not fit, hence v2
V1_UNKNOWN_SYMBOL_ID: Final = 255
DEFAULT_V1_SYMBOLS: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "EURUSD",
        2: "GBPUSD",
        3: "USDJPY",
        4: "USDCHF",
        5: "AUDUSD",
        6: "USDCAD",
        7: "NZDUSD",
        8: "XAUUSD",
        9: "XAGUSD",
    }
)

# --- size limits: the one table ---------------------------------------------------------------------------------
MAX_FRAME_SIZE: Final = 65_536  # bytes of one binary frame, header included
MAX_JSON_FRAME_SIZE: Final = 262_144  # characters of one JSON text frame
MAX_SYMBOL_BYTES: Final = 32  # UTF-8 bytes of a symbol name (MT5 allows 31 characters)
MAX_LABEL_BYTES: Final = 64  # broker, server, currency, versions, strategy, comment prefix, parameter keys
MAX_TEXT_BYTES: Final = 255  # reasons, error messages, parameter values
MAX_TOKEN_BYTES: Final = 4096  # API keys, access and refresh tokens
MAX_SYMBOLS: Final = 1024  # entries in one SYMBOL_TABLE, names in RISK_PARAMETERS.allowed_symbols
MAX_TICKS: Final = 1024  # records in one v2 PRICE_STREAM
MAX_POSITIONS: Final = 500  # records in one POSITIONS snapshot
MAX_PARAMS: Final = 32  # key/value pairs in settings and strategy parameters
MAX_TRADING_WINDOWS: Final = 32  # entries in RISK_PARAMETERS.trading_hours
MAX_PROTOCOL_VERSIONS: Final = 8  # entries in HELLO.protocol_versions
MAX_DIGITS: Final = 10  # SYMBOL_TABLE.digits
MAX_F64: Final = 1e15  # every f64 is finite and |x| <= MAX_F64 (prices, lots, money, percentages)
MINUTES_PER_DAY: Final = 1440
ALL_WEEKDAYS: Final = 0x7F  # bit 0 = Monday … bit 6 = Sunday

# --- timestamps -------------------------------------------------------------------------------------------------
MAX_FUTURE_SKEW_US: Final = 5 * 60 * 1_000_000  # a header more than 5 minutes ahead of our clock is implausible
MAX_PAST_SKEW_US: Final = 24 * 3600 * 1_000_000  # … and so is one more than 24 hours behind it
MAX_HELLO_SKEW_US: Final = 60 * 1_000_000  # HELLO is built just before it is sent: further off → AUTH_RESULT CLOCK_SKEW


# --- message types ----------------------------------------------------------------------------------------------
class MsgType(IntEnum):
    """Header byte 6. EA → server below 0x80, server → EA from 0x80."""

    PRICE_STREAM = 0x01
    HELLO = 0x02
    SYMBOL_TABLE = 0x03
    ACCOUNT_PROFILE = 0x04
    ACCOUNT_FINANCE = 0x05
    TRADE_OPENED = 0x06
    TRADE_CLOSED = 0x07
    TRADE_MODIFIED = 0x08
    HEARTBEAT = 0x09
    ACK = 0x0A
    TOKEN_REFRESH = 0x0B
    POSITIONS = 0x0C
    AUTH_RESULT = 0x80
    TRADING_SIGNAL = 0x81
    RISK_PARAMETERS = 0x82
    CONFIG_UPDATE = 0x83
    COMMAND = 0x84
    EVENT_ACK = 0x85
    ERROR = 0x86
    SESSION_CLOSING = 0x87


SERVER_TYPES_FROM: Final = 0x80
TRADE_EVENT_TYPES: Final = frozenset({MsgType.TRADE_OPENED, MsgType.TRADE_CLOSED, MsgType.TRADE_MODIFIED})

# --- rate limits: per connection and message kind, counted where frames arrive (docs/protocol.md §9) -----------
# (sustained messages per second, burst). A frame over its kind's limit closes the connection with 4008.
RATE_LIMITS: Final[Mapping[MsgType, tuple[float, int]]] = MappingProxyType(
    {
        MsgType.PRICE_STREAM: (500.0, 2000),
        MsgType.HELLO: (1.0, 3),
        MsgType.SYMBOL_TABLE: (10.0, 50),
        MsgType.ACCOUNT_PROFILE: (1.0, 10),
        MsgType.ACCOUNT_FINANCE: (20.0, 200),
        MsgType.TRADE_OPENED: (20.0, 200),
        MsgType.TRADE_CLOSED: (20.0, 200),
        MsgType.TRADE_MODIFIED: (20.0, 200),
        MsgType.HEARTBEAT: (1.0, 10),
        MsgType.ACK: (50.0, 600),
        MsgType.TOKEN_REFRESH: (1.0, 10),
        MsgType.POSITIONS: (10.0, 100),
    }
)
RATE_LIMIT_OTHER: Final = (5.0, 20)  # frames whose kind cannot be read: garbage, unknown or server types
RATE_LIMIT_RETRY_AFTER_S: Final = 10  # SESSION_CLOSING.retry_after_ms after a 4008; the account waits that long


# --- enumerations carried in message bodies ---------------------------------------------------------------------
class QuoteQuality(IntEnum):
    UNKNOWN = 0
    GOOD = 1
    DELAYED = 2
    STALE = 3


class MarketSession(IntEnum):
    UNKNOWN = 0
    CLOSED = 1
    SYDNEY = 2
    TOKYO = 3
    LONDON = 4
    NEW_YORK = 5


class AuthMethod(IntEnum):
    API_KEY = 1
    ACCESS_TOKEN = 2


class AccountType(IntEnum):
    DEMO = 1
    LIVE = 2
    CONTEST = 3


class OrderType(IntEnum):
    """MT5's own ENUM_ORDER_TYPE numbering."""

    BUY = 0
    SELL = 1
    BUY_LIMIT = 2
    SELL_LIMIT = 3
    BUY_STOP = 4
    SELL_STOP = 5
    BUY_STOP_LIMIT = 6
    SELL_STOP_LIMIT = 7


class CloseReason(IntEnum):
    UNKNOWN = 0
    TAKE_PROFIT = 1
    STOP_LOSS = 2
    MANUAL = 3
    SIGNAL_CLOSE = 4
    STOP_OUT = 5
    EXPERT = 6


class ConnectionStatus(IntEnum):
    ONLINE = 1
    DEGRADED = 2
    RECONNECTING = 3


class AckStatus(IntEnum):
    RECEIVED = 1
    EXECUTED = 2
    REJECTED = 3
    FAILED = 4


class AuthStatus(IntEnum):
    OK = 0
    UNKNOWN_ACCOUNT = 1
    BAD_KEY = 2
    REVOKED_KEY = 3
    EXPIRED_TOKEN = 4
    INVALID_TOKEN = 5
    UNSUPPORTED_VERSION = 6
    CLOCK_SKEW = 7
    RATE_LIMITED = 8
    INTERNAL_ERROR = 9


class Action(IntEnum):
    BUY = 1
    SELL = 2
    CLOSE = 3


class SizingMethod(IntEnum):
    FIXED_LOTS = 1
    RISK_PERCENT = 2


class CommandType(IntEnum):
    CLOSE_ALL_POSITIONS = 1
    DISABLE_TRADING = 2
    ENABLE_TRADING = 3
    MODIFY_ORDER = 4
    RECONNECT = 5
    RESTART_EA = 6


class EventAckStatus(IntEnum):
    ACCEPTED = 1  # committed now
    DUPLICATE = 2  # committed before: stop retrying
    REJECTED = 3  # will never be committed (logged server-side): stop retrying


class ErrorCode(IntEnum):
    """ERROR.code (u16)."""

    MALFORMED_FRAME = 1
    UNSUPPORTED_VERSION = 2
    UNKNOWN_TYPE = 3
    NOT_AUTHENTICATED = 4
    NOT_ALLOWED_IN_STATE = 5
    RATE_LIMITED = 6
    TOO_LARGE = 7
    INTERNAL_ERROR = 8
    UNKNOWN_SYMBOL = 9


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (also SESSION_CLOSING.close_code)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown or deploy: reconnect
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # this process is shutting down (draining): reconnect after retry_after_ms
    AUTH_FAILED = 4001
    SESSION_EXPIRED = 4002
    REVOKED = 4003
    RATE_LIMITED = 4008
    TOO_LARGE = 4009
    SLOW_CONSUMER = 4010
    PROTOCOL_VIOLATION = 4011
    REPLACED = 4012


class ConnState(Enum):
    AWAITING_HELLO = "awaiting_hello"
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"
