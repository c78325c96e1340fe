"""One EA connection's protocol state, without I/O (h11's manner): it takes what arrived and returns what to do.

`GatewaySession` owns the connection's state (binproto's transition table, binproto/states.py), the legacy v1 flag,
the symbol tables, the malformed-frame error window and the unacknowledged-outbound limit. It never touches a
socket, the database, the bus or a clock: the caller (trading/consumers.py's `EAConsumer`, a thin I/O shell)
passes the time in, performs the actions it gets back in order, and reports the outcome of the I/O ones (an
authentication, a recorded trade event) with another call. The per-kind rate limits are not here: they are
counted where the bytes arrive, in suho/server.py, before a frame is queued (decision 0012).

Actions: `Send` (a frame; dropped once the session is closing), `Close` (its frames go out even so, then the close
frame), `Batch` (rows for a gateway batcher) and one action per service the consumer calls.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import binproto
from binproto import AuthMethod, AuthStatus, CloseCode, ConnState, ErrorCode, MsgType
from binproto.states import ConnEvent, ea_may_send, next_state
from suho.clock import datetime_to_us
from trading.ingest import BalanceRow, HeartbeatRow

log = logging.getLogger(__name__)

MAX_ERRORS = 10  # the 10th counted protocol error within ERROR_WINDOW_S closes the connection (docs/protocol.md §9)
ERROR_WINDOW_S = 60
COUNTED_ERRORS = frozenset(
    {ErrorCode.MALFORMED_FRAME, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNKNOWN_TYPE, ErrorCode.NOT_ALLOWED_IN_STATE}
)  # the EA's own garbage; not UNKNOWN_SYMBOL (it resends)
MAX_UNACKED_OUTBOUND = 256  # server messages the EA has not acknowledged: a reader that stopped reading

CLOCK_SKEW_REASON = "HELLO timestamp is {skew_s:+.0f} s off the server clock (limit ±{limit_s} s)"
SESSION_NAMES = {session.value: session.name.lower() for session in binproto.MarketSession}  # per tick: no enum call
MAX_PRICE = 1e11  # mt5_* price columns are numeric(20, 8); the wire allows up to 1e15
TICK_PRICE_OUT_OF_RANGE = "tick with a price outside (0, 1e11] dropped"
NOT_AUTHENTICATED_REASON = "send HELLO first"
FIRST_FRAME_NOT_HELLO = "the first frame must be HELLO"
NO_HELLO_IN_TIME = "no HELLO within the time limit"
TOO_MANY_ERRORS = "too many malformed frames"
TOO_MANY_UNACKED = "too many unacknowledged server messages"
REFRESH_REFUSED = "refresh refused; reconnect with the API key"
REFUSAL_CLOSE_CODES = {AuthStatus.REVOKED_KEY: CloseCode.REVOKED, AuthStatus.RATE_LIMITED: CloseCode.RATE_LIMITED}
REFUSALS_RECORDED = frozenset({AuthStatus.UNSUPPORTED_VERSION, AuthStatus.CLOCK_SKEW})


# --- actions: what the consumer does, in the order given ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send `frame`, unless the session has started closing meanwhile."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Send `frames` (the last reply and SESSION_CLOSING, decided before the close), then close with `code`."""

    code: CloseCode
    frames: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    """Add `rows` to the gateway batcher of `kind` (quotes, balances, heartbeats)."""

    kind: str
    rows: list


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Check the rate-limit hold, then the credential (an API key or an access token); report with `authenticated`
    or `refuse`."""

    account_id: Any
    credential: str = field(repr=False)  # a secret: never in a log line
    method: AuthMethod
    ea_version: str


@dataclass(frozen=True, slots=True)
class RecordRefusal:
    account_id: Any
    reason: str


@dataclass(frozen=True, slots=True)
class RecordTradeEvent:
    """Journal the event (idempotent); report with `trade_event_recorded`, or close as replaced."""

    event: Any


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    profile: binproto.AccountProfile


@dataclass(frozen=True, slots=True)
class WritePositions:
    positions: binproto.Positions


@dataclass(frozen=True, slots=True)
class RecordAck:
    ack: binproto.Ack


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """Exchange the refresh token; report with `token_refreshed` or `token_refresh_refused`."""

    refresh_token: str


@dataclass(frozen=True, slots=True)
class MarkSignalSent:
    """The signal's frame went out: record SENT (batched), unless the session is closing by now."""

    signal_id: UUID


Action = (
    Send | Close | Batch | Authenticate | RecordRefusal | RecordTradeEvent | UpdateProfile | WritePositions
    | RecordAck | RefreshToken | MarkSignalSent
)  # fmt: skip


# --- the session -------------------------------------------------------------------------------------------------


class GatewaySession:
    """One EA connection, from connect to close. Times are wall-clock microseconds (`now_us`), passed in."""

    def __init__(self, *, max_errors: int = MAX_ERRORS, max_unacked: int = MAX_UNACKED_OUTBOUND) -> None:
        self.state = ConnState.AWAITING_HELLO
        self.legacy = False  # a v1 EA authenticated in the handshake: it is sent nothing but the close frame
        self.started = False  # the account's live session was claimed: disconnect must end it
        self.claims: Any = None  # accounts' EAClaims: tenant_id, account_id, session_id, expires_at
        self.epoch = 0  # the live-session epoch this connection's session claimed (decision 0017)
        self.symbol_table: dict[int, str] = {}
        self.v1_symbols: dict[int, str] = dict(binproto.DEFAULT_V1_SYMBOLS)
        self.errors: deque[int] = deque()  # when each counted error arrived, oldest first
        self.unacked: dict[UUID, int] = {}  # outbound ref id → when it was sent
        # While a resync is read and sent: the ids the EA acknowledged meanwhile (at most max_unacked). A resync
        # read before such an ACK was committed still lists the item; it is not sent again.
        self.acked_in_resync: set[UUID] | None = None
        self.max_errors, self.max_unacked = max_errors, max_unacked
        self._tenant = self._account = ""  # the claims' ids as the row types hold them (once, not per tick)

    @property
    def closing(self) -> bool:
        return self.state is ConnState.CLOSING

    @property
    def takes_outbound(self) -> bool:
        """Signals, commands and configuration go to an authenticated v2 EA only (a legacy v1 EA is sent nothing)."""
        return self.state is ConnState.AUTHENTICATED and not self.legacy

    # --- events: the connection ----------------------------------------------------------------------------------

    def handshake(self, *, account_id: str, api_key: str) -> list[Action]:
        """A legacy v1 EA's credentials came with the WebSocket handshake: it never sends HELLO."""
        self.legacy = True
        return [Authenticate(account_id, api_key, AuthMethod.API_KEY, "legacy-v1")]

    def hello_deadline(self) -> list[Action]:
        if self.state is not ConnState.AWAITING_HELLO:
            return []
        return self.close(CloseCode.AUTH_FAILED, NO_HELLO_IN_TIME)

    def disconnected(self) -> None:
        self.state = next_state(self.state, ConnEvent.CLOSE)

    def close(
        self,
        code: CloseCode,
        reason: str,
        *,
        notify: bool = True,
        retry_after_ms: int = 0,
        frames: tuple[bytes, ...] = (),
        event: ConnEvent = ConnEvent.CLOSE,
    ) -> list[Action]:
        """Close (once): `frames`, then SESSION_CLOSING saying why (never to a legacy v1 EA), then the close frame."""
        if self.closing:
            return []
        self.state = next_state(self.state, event)
        if notify and not self.legacy:
            closing = binproto.SessionClosing(close_code=code, retry_after_ms=retry_after_ms, reason=reason[:200])
            frames += (binproto.encode(closing),)
        return [Close(code, frames)]

    # --- events: frames from the EA ------------------------------------------------------------------------------

    def receive_bytes(self, data: bytes, *, now_us: int) -> list[Action]:
        """A binary frame. A PRICE_STREAM after authentication takes the fast path (rows, no message objects)."""
        if self.closing:  # rate limits are counted where frames arrive, in suho.server
            return []
        if len(data) > binproto.MAX_FRAME_SIZE:
            return self._too_large(f"frame of {len(data)} bytes exceeds the limit",
                                   f"a frame over {binproto.MAX_FRAME_SIZE} bytes")  # fmt: skip
        try:
            if self.state is ConnState.AUTHENTICATED and len(data) >= binproto.HEADER_SIZE:
                if data[6] == MsgType.PRICE_STREAM:
                    if data[4] == binproto.V1:
                        timestamp_us, records = binproto.decode_v1_price_records(data)
                        return self._v1_ticks(timestamp_us, records, now_us)
                    timestamp_us, rows = binproto.decode_price_rows(data, self.symbol_table)
                    return self._ticks(timestamp_us, rows, now_us)
            return self.handle(binproto.decode(data), now_us=now_us)
        except binproto.ProtocolError as exc:
            return self.protocol_error(exc.code, str(exc), now_us=now_us)

    def receive_text(self, text: str, *, now_us: int) -> list[Action]:
        """A text frame: the protocol's JSON form."""
        if self.closing:
            return []
        if len(text) > binproto.MAX_JSON_FRAME_SIZE:
            return self._too_large("text frame exceeds the limit",
                                   f"a text frame over {binproto.MAX_JSON_FRAME_SIZE} characters")  # fmt: skip
        try:
            return self.handle(binproto.from_json(text), now_us=now_us)
        except binproto.ProtocolError as exc:
            return self.protocol_error(exc.code, str(exc), now_us=now_us)

    def handle(self, message: Any, *, now_us: int) -> list[Action]:
        """A decoded message from the EA, checked against what the connection's state allows (binproto.EA_ALLOWED)."""
        if self.closing:
            return []
        if not ea_may_send(self.state, message.TYPE):
            if self.state is ConnState.AWAITING_HELLO:
                error = binproto.Error(code=ErrorCode.NOT_AUTHENTICATED, reason=NOT_AUTHENTICATED_REASON)
                return self.close(CloseCode.AUTH_FAILED, FIRST_FRAME_NOT_HELLO, frames=(binproto.encode(error),))
            reason = f"{message.TYPE.name} is not allowed now"
            return self.protocol_error(ErrorCode.NOT_ALLOWED_IN_STATE, reason, now_us=now_us)
        kind = type(message)
        if kind is binproto.Hello:
            return self._hello(message, now_us)
        if kind is binproto.PriceStream:
            return self._price_stream(message, now_us)
        if kind is binproto.SymbolTable:
            self.symbol_table.update({entry.index: entry.name for entry in message.symbols})
            return []
        if kind is binproto.AccountFinance:
            return [self._finance(message, now_us)]
        if kind is binproto.Heartbeat:
            return [self._heartbeat(message, now_us)]
        if message.TYPE in binproto.TRADE_EVENT_TYPES:
            return [RecordTradeEvent(message)]
        if kind is binproto.AccountProfile:
            return [UpdateProfile(message)]
        if kind is binproto.Positions:
            return [WritePositions(message)]
        if kind is binproto.Ack:
            if message.ref_id is None:
                return []
            if self.unacked.pop(message.ref_id, None) is not None and self.acked_in_resync is not None:
                self.acked_in_resync.add(message.ref_id)
            return [RecordAck(message)]
        if kind is binproto.TokenRefresh:
            return [RefreshToken(message.refresh_token)]
        raise AssertionError(f"{message.TYPE.name} is allowed in {self.state.name} but has no handler")

    def protocol_error(self, code: ErrorCode, reason: str, *, now_us: int) -> list[Action]:
        """Answer ERROR (never to a legacy v1 EA); the 10th of the EA's own bad frames within a minute closes (4011)."""
        frames = () if self.legacy else (binproto.encode(binproto.Error(code=code, reason=reason[:250])),)
        if code in COUNTED_ERRORS:
            self.errors.append(now_us)
            while self.errors[0] < now_us - ERROR_WINDOW_S * 1_000_000:
                self.errors.popleft()
            if len(self.errors) >= self.max_errors:
                return self.close(CloseCode.PROTOCOL_VIOLATION, TOO_MANY_ERRORS, frames=frames)
        return [Send(frame) for frame in frames]

    def internal_error(self) -> list[Action]:
        """Handling a message failed on our side: the EA retries what matters (a trade event is not acknowledged)."""
        return [Send(binproto.encode(binproto.Error(code=ErrorCode.INTERNAL_ERROR, reason="internal error")))]

    # --- events: outcomes of the consumer's I/O ------------------------------------------------------------------

    def refuse(
        self,
        status: AuthStatus,
        reason: str,
        *,
        account_id: Any,
        now_us: int,
        retry_after_ms: int = 0,
    ) -> list[Action]:
        """Authentication refused: AUTH_RESULT with the status and SESSION_CLOSING (a legacy v1 EA, which authenticated
        in the handshake, gets neither), then close with the status's code (4001; 4003 revoked key; 4008 rate
        limited)."""
        send_result = not self.legacy
        actions: list[Action] = []
        if status in REFUSALS_RECORDED:
            actions.append(RecordRefusal(account_id, status.name.lower()))
        frames = (binproto.encode(self._auth_result(status, reason, now_us)),) if send_result else ()
        code = REFUSAL_CLOSE_CODES.get(status, CloseCode.AUTH_FAILED)
        return actions + self.close(
            code, f"authentication refused: {status.name.lower()}", notify=send_result, retry_after_ms=retry_after_ms,
            frames=frames, event=ConnEvent.AUTH_FAILED,
        )  # fmt: skip

    def authenticated(self, *, claims: Any, tokens: Any, epoch: int, now_us: int) -> list[Action]:
        """The account's live session is this connection's (claimed, any older one asked to close): answer OK."""
        if self.closing:
            return []
        self.state = next_state(self.state, ConnEvent.AUTH_OK)
        self.started = True
        self.claims, self.epoch = claims, epoch
        self._tenant, self._account = str(claims.tenant_id), str(claims.account_id)
        if self.legacy:  # a legacy v1 EA is sent nothing
            return []
        return [Send(binproto.encode(self._auth_ok(claims, tokens, now_us)))]

    def resync_begin(self) -> None:
        """A resync is about to be read: from now until resync_end, what the EA acknowledges is not resent."""
        self.acked_in_resync = set()

    def resync_done(self, *, v1_symbol_overrides: dict[int, str]) -> None:
        """The account's own v1 id table, read with the resync."""
        self.v1_symbols.update(v1_symbol_overrides)

    def resync_end(self) -> None:
        self.acked_in_resync = None

    def trade_event_recorded(self, event: Any, status: binproto.EventAckStatus) -> list[Action]:
        ack = binproto.EventAck(event_type=event.TYPE, event_seq=event.event_seq, ticket=event.ticket, status=status)
        return [Send(binproto.encode(ack))]

    def token_refreshed(self, *, claims: Any, tokens: Any, now_us: int) -> list[Action]:
        self.claims = claims
        if self.closing:
            return []
        self.state = next_state(self.state, ConnEvent.AUTH_OK)
        return [Send(binproto.encode(self._auth_ok(claims, tokens, now_us)))]

    def token_refresh_refused(self, status: AuthStatus, reason: str, *, now_us: int) -> list[Action]:
        """A refused refresh ends the session (4002): the EA reconnects with its API key."""
        frames = (binproto.encode(self._auth_result(status, reason, now_us)),)
        return self.close(CloseCode.SESSION_EXPIRED, REFRESH_REFUSED, frames=frames, event=ConnEvent.AUTH_FAILED)

    # --- outbound ----------------------------------------------------------------------------------------------

    def outbound(self, message: Any, *, now_us: int, resend: bool = False) -> list[Action]:
        """A server message for the EA (a signal, a command, configuration). A signal or command waits for the EA's
        ACK; past `max_unacked` of them the EA has stopped reading and is closed (4013). `resend`: from a resync,
        which may repeat one already waiting."""
        if not self.takes_outbound:
            return []
        if isinstance(message, binproto.TradingSignal) and message.valid_until_us <= now_us:
            return []  # never deliver an expired signal
        ref_id = getattr(message, "signal_id", None) or getattr(message, "command_id", None)
        if self.acked_in_resync and ref_id in self.acked_in_resync:
            return []  # delivered live and acknowledged while the resync was read
        if resend:
            self.unacked.pop(ref_id, None)  # a resend of something already waiting is not a second unacked item
        try:
            frame = binproto.encode(message)
        except binproto.ProtocolError:  # our own data breaks a protocol limit: log it, never blame the EA for it
            log.exception("%s not sent: it does not fit the protocol", message.TYPE.name, extra=self.log_context())
            return []
        if ref_id is not None:
            if ref_id in self.unacked:  # already on this socket: the resync and the live delivery of one item raced
                return []
            if len(self.unacked) >= self.max_unacked:
                return self.close(CloseCode.SLOW_CONSUMER, TOO_MANY_UNACKED)
            self.unacked[ref_id] = now_us
        if isinstance(message, binproto.TradingSignal):
            return [Send(frame), MarkSignalSent(message.signal_id)]
        return [Send(frame)]

    def log_context(self) -> dict:
        if self.claims is None:
            return {}
        return {"account_id": self.claims.account_id, "session_id": self.claims.session_id}

    # --- inside ------------------------------------------------------------------------------------------------

    def _too_large(self, error_reason: str, close_reason: str) -> list[Action]:
        error = binproto.Error(code=ErrorCode.TOO_LARGE, reason=error_reason)
        frames = () if self.legacy else (binproto.encode(error),)
        return self.close(CloseCode.TOO_LARGE, close_reason, frames=frames)

    def _hello(self, hello: binproto.Hello, now_us: int) -> list[Action]:
        if binproto.V2 not in hello.protocol_versions and binproto.V1 not in hello.protocol_versions:
            return self.refuse(AuthStatus.UNSUPPORTED_VERSION, "no supported protocol version",
                               account_id=hello.account_id, now_us=now_us)  # fmt: skip
        skew_us = hello.timestamp_us - now_us
        if abs(skew_us) > binproto.MAX_HELLO_SKEW_US:
            reason = CLOCK_SKEW_REASON.format(skew_s=skew_us / 1e6, limit_s=binproto.MAX_HELLO_SKEW_US // 1_000_000)
            return self.refuse(AuthStatus.CLOCK_SKEW, reason, account_id=hello.account_id, now_us=now_us)
        return [Authenticate(hello.account_id, hello.access_token, hello.auth_method, hello.ea_version)]

    def _price_stream(self, message: binproto.PriceStream, now_us: int) -> list[Action]:
        names = self.symbol_table if message.version == binproto.V2 else self.v1_symbols
        rows = [(names.get(t.symbol), t.bid, t.ask, t.spread_points, t.quote_quality, t.tradeable, t.market_session,
                 t.server_id)
                for t in message.ticks]  # fmt: skip
        if any(row[0] is None for row in rows):
            return self.protocol_error(ErrorCode.UNKNOWN_SYMBOL, "tick for a symbol not in the symbol table",
                                       now_us=now_us)  # fmt: skip
        return self._ticks(message.timestamp_us, rows, now_us)

    def _v1_ticks(self, timestamp_us: int, records: list[tuple], now_us: int) -> list[Action]:
        """The legacy packet's wire records → tick rows in one pass: named by the account's v1 id table (ids it lacks,
        such as the EA's 255, carry no usable quote and give no row), prices scaled from fixed point; a zero price
        is refused as in _ticks (a v1 price cannot exceed MAX_PRICE)."""
        names, scale = self.v1_symbols, binproto.V1_PRICE_SCALE
        time_us, trusted = binproto.resolve_timestamp(timestamp_us, now_us)
        tenant, account = self._tenant, self._account
        rows = [
            (time_us, tenant, account, names[sid], bid / scale, ask / scale, spread, 0, True, "unknown", trusted)
            for sid, bid, ask, spread, _server in records
            if bid and ask and sid in names
        ]  # in TickRow's order, as plain tuples (quotes/ingest.py says why)
        actions: list[Action] = [Batch("quotes", rows)] if rows else []
        if len(rows) != len(records) and not self.legacy and not all(bid and ask for _, bid, ask, _, _ in records):
            error = binproto.Error(code=ErrorCode.MALFORMED_FRAME, reason=TICK_PRICE_OUT_OF_RANGE)
            actions.append(Send(binproto.encode(error)))
        return actions

    def _ticks(self, timestamp_us: int, rows: list[tuple], now_us: int) -> list[Action]:
        valid = [row for row in rows if 0 < row[1] <= MAX_PRICE and 0 < row[2] <= MAX_PRICE]
        actions: list[Action] = []
        if valid:
            time_us, trusted = binproto.resolve_timestamp(timestamp_us, now_us)
            tenant, account = self._tenant, self._account
            actions.append(Batch("quotes",
                [(time_us, tenant, account, symbol, bid, ask, spread, quality, bool(tradeable), SESSION_NAMES[session],
                  trusted)  # TickRow's order, as a plain tuple (quotes/ingest.py says why)
                 for symbol, bid, ask, spread, quality, tradeable, session, _server in valid]
            ))  # fmt: skip
        if len(valid) != len(rows) and not self.legacy:  # said, not counted as garbage: a feed can quote zeros
            error = binproto.Error(code=ErrorCode.MALFORMED_FRAME, reason=TICK_PRICE_OUT_OF_RANGE)
            actions.append(Send(binproto.encode(error)))
        return actions

    def _finance(self, m: binproto.AccountFinance, now_us: int) -> Batch:
        time_us, _trusted = binproto.resolve_timestamp(m.timestamp_us, now_us)
        return Batch("balances",
            [BalanceRow(time_us, self._tenant, self._account, m.balance, m.equity, m.margin, m.margin_free,
                        m.margin_level, m.floating_pnl, m.open_positions, m.pending_orders, m.daily_pnl,
                        m.drawdown_pct, m.max_balance)]
        )  # fmt: skip

    def _heartbeat(self, m: binproto.Heartbeat, now_us: int) -> Batch:
        time_us, _trusted = binproto.resolve_timestamp(m.timestamp_us, now_us)
        status = (
            "online" if m.connection_status == binproto.ConnectionStatus.ONLINE else m.connection_status.name.lower()
        )
        return Batch("heartbeats",
            [HeartbeatRow(time_us, self._tenant, self._account, str(self.claims.session_id), status, m.latency_ms,
                          m.uptime_s, m.mt5_build, m.terminal_connected, m.trade_allowed, m.error_count,
                          m.last_error_code, m.last_error_message)]
        )  # fmt: skip

    def _auth_result(self, status: AuthStatus, reason: str, now_us: int) -> binproto.AuthResult:
        return binproto.AuthResult(status=status, session_id=None, access_expires_us=0, server_time_us=now_us,
                                   access_token="", refresh_token="", reason=reason[:250])  # fmt: skip

    def _auth_ok(self, claims: Any, tokens: Any, now_us: int) -> binproto.AuthResult:
        return binproto.AuthResult(
            status=AuthStatus.OK, session_id=claims.session_id,
            access_expires_us=datetime_to_us(claims.expires_at), server_time_us=now_us,
            access_token=tokens.access if tokens else "", refresh_token=tokens.refresh if tokens else "", reason="",
        )  # fmt: skip
