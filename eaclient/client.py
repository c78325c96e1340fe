"""EAClient: the EA's side of the Suho Binary Protocol (docs/protocol.md) over one WebSocket, kept alive.

It does what every EA must do the same way, whatever terminal sits behind it: connect, HELLO with the API key (or a
still-valid access token), AUTH_RESULT, the initial state, TOKEN_REFRESH before expiry, reconnect with backoff,
heartbeats and finance on schedule, trade events through the outbox until EVENT_ACK, signals and commands answered
exactly once per id (a repeat gets the same ACK again), risk parameters and configuration kept by version.

What the terminal knows and does (prices, positions, executing a signal) comes from a `Handler`: the simulated EA
(eaclient/simulated.py), the agent for a real terminal, a load generator. Everything runs on the caller's event
loop (a few tasks per live session, no threads), so the state needs no locks and many clients share one loop.
No Django here: binproto, websockets and the standard library only, like an EA on a trader's VPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

import binproto
from binproto import AckStatus, AuthMethod, AuthStatus, CloseCode, CommandType, MsgType
from binproto.constants import MAX_TICKS, V1_MAX_RECORDS, V1_SLOTS
from eaclient.outbox import Outbox, TradeEvent
from eaclient.session import Backoff, Session, Tokens

log = logging.getLogger(__name__)

RECONNECT_AT_ONCE_S = 0.2  # after RECONNECT / RESTART_EA or a refused refresh
RECV_IDLE_S = 60.0  # the server may be silent for long; keepalive pings watch the peer meanwhile
OUTBOX_CHECK_S = 1.0
SEEN_IDS_TTL_S = 24 * 3600  # signal and command ids are remembered this long (docs/protocol.md §8)
NO_ANSWER = "the EA did not answer"  # ACK FAILED when a handler returned without answering
SIGNALS_UNSUPPORTED = "this EA does not trade"
V1_IDS = {name: symbol_id for symbol_id, name in binproto.DEFAULT_V1_SYMBOLS.items()}
EA_VERSION = "suho-ea/1.0"
MT5_BUILD = 4755


def now_us() -> int:
    return time.time_ns() // 1000


# --- opening a session: shared by EAClient and by callers that drive the wire themselves (bench, wire tests) --------


class AuthRefused(Exception):
    """AUTH_RESULT was not OK; `result` says why."""

    def __init__(self, result: binproto.AuthResult):
        super().__init__(f"authentication refused: {result.status.name} {result.reason}")
        self.result = result


def hello_build(
    account_id: UUID,
    *,
    api_key: str = "",
    access_token: str = "",
    ea_version: str = EA_VERSION,
    mt5_build: int = MT5_BUILD,
) -> binproto.Hello:
    """HELLO for `account_id`: with the access token when one is given (a quick reconnect spares the server an
    Argon2 check of the key), else with the API key. Offers versions 2 and 1; the server picks."""
    return binproto.Hello(
        account_id=account_id,
        auth_method=AuthMethod.ACCESS_TOKEN if access_token else AuthMethod.API_KEY,
        mt5_build=mt5_build,
        ea_version=ea_version,
        access_token=access_token or api_key,
        protocol_versions=(binproto.V2, binproto.V1),
        timestamp_us=now_us(),
    )


async def ws_open(url: str, *, timeout_s: float = 10.0, **options) -> ClientConnection:
    """The WebSocket as an EA opens it: no compression (binary frames are small and dense), keepalive pings (the
    server may be silent for minutes), room for the largest JSON frame. `options` override (the bench turns pings
    off and caps frames lower)."""
    defaults = {
        "open_timeout": timeout_s,
        "close_timeout": timeout_s,
        "ping_interval": 20,
        "ping_timeout": 20,
        "compression": None,
        "max_size": binproto.MAX_JSON_FRAME_SIZE * 4,
    }
    return await connect(url, **defaults | options)


async def authenticate(
    ws: ClientConnection,
    hello: binproto.Hello,
    *,
    timeout_s: float,
    on_other: Callable[[Any], Awaitable[None]] | None = None,
) -> binproto.AuthResult:
    """Send HELLO and read until AUTH_RESULT (returned, whatever its status). A frame before it (ERROR,
    SESSION_CLOSING) goes to the coroutine function `on_other`, if given. TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        await ws.send(binproto.encode(hello))
        while True:
            data = await ws.recv()
            message = binproto.from_json(data) if isinstance(data, str) else binproto.decode(data)
            if isinstance(message, binproto.AuthResult):
                return message
            if on_other is not None:
                await on_other(message)


async def session_open(
    url: str, hello: binproto.Hello, *, timeout_s: float = 10.0, **options
) -> tuple[ClientConnection, binproto.AuthResult]:
    """A connected, authenticated socket for a caller that drives the session itself (a load generator sending
    pre-encoded frames); AuthRefused or the connection's error otherwise, the socket closed. An EA that should
    stay connected uses `EAClient`, which reconnects, resyncs and keeps the protocol's promises."""
    ws = await ws_open(url, timeout_s=timeout_s, **options)
    try:
        result = await authenticate(ws, hello, timeout_s=timeout_s)
        if result.status != AuthStatus.OK:
            raise AuthRefused(result)
    except BaseException:
        await ws.close()
        raise
    return ws, result


@dataclass(frozen=True)
class ClientConfig:
    url: str
    account_id: UUID
    api_key: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)  # the first HELLO presents it (sessions made in bulk: bench)
    price_protocol: int = 2  # 2 = SYMBOL_TABLE + v2 ticks, 1 = legacy v1 symbol ids
    balance_interval_s: float = 30.0
    heartbeat_interval_s: float = 30.0
    positions_interval_s: float = 0.0  # 0: POSITIONS at session start and on change only
    network_timeout_s: float = 10.0  # every send, connect, close and the wait for AUTH_RESULT
    event_retry_s: float = 10.0  # resend a trade event without EVENT_ACK after this long
    max_backoff_s: float = 30.0
    outbox_path: str | None = None  # sqlite3 file: unacknowledged events and event_seq survive a restart
    ea_version: str = EA_VERSION
    mt5_build: int = MT5_BUILD

    def __post_init__(self) -> None:
        if not (self.api_key or self.access_token):
            raise ValueError("an EA needs its API key (or an access token) to authenticate")
        if self.price_protocol not in binproto.SUPPORTED_VERSIONS:
            raise ValueError(f"price_protocol must be 1 or 2, got {self.price_protocol}")


@dataclass
class ClientCounters:
    connects: int = 0  # successful authentications
    reconnects: int = 0  # … after the first
    connect_failures: int = 0
    auth_refusals: int = 0
    last_refusal: str = ""
    last_close: str = ""  # the server's last SESSION_CLOSING, "code: reason"
    ticks_sent: int = 0
    price_frames_sent: int = 0
    balances_sent: int = 0
    heartbeats_sent: int = 0
    positions_sent: int = 0
    signals_received: int = 0
    signals_executed: int = 0  # answered EXECUTED
    signals_rejected: int = 0  # answered REJECTED or FAILED
    repeated_deliveries: int = 0  # a signal or command id seen before: its ACK was repeated
    events_resent: int = 0
    event_acks: int = 0
    commands_executed: int = 0
    commands_failed: int = 0
    risk_received: int = 0
    config_received: int = 0
    token_refreshes: int = 0
    errors_received: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class TerminalStatus:
    """What HEARTBEAT says about the terminal behind the EA."""

    terminal_connected: bool = True
    trade_allowed: bool = True


class Handler:
    """The terminal's side, called by `EAClient`. Override what your EA has; the defaults describe an EA with
    nothing to report that refuses every signal and command (a price feeder, a load generator).

    `on_signal` and `on_command` must answer through `EAClient.answer` (before sending the trade events that follow
    from it: the server links a TRADE_OPENED to an answered signal); one that returns without answering is answered
    FAILED for it. They are never called twice for one id.
    """

    def symbols(self) -> dict[str, int]:
        """Symbol name → digits, announced in SYMBOL_TABLE at each session start (v2 prices need it)."""
        return {}

    def profile(self) -> binproto.AccountProfile | None:
        return None

    def open_positions(self) -> Sequence[binproto.Position] | None:
        """The open positions now (None: this EA does not report positions)."""
        return None

    def finance(self) -> binproto.AccountFinance | None:
        return None

    def status(self) -> TerminalStatus:
        return TerminalStatus()

    async def on_signal(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        await client.answer(signal, AckStatus.REJECTED, SIGNALS_UNSUPPORTED)

    async def on_command(self, client: EAClient, command: binproto.Command) -> None:
        await client.answer(command, AckStatus.FAILED, SIGNALS_UNSUPPORTED)

    async def stream(self, client: EAClient) -> None:
        """Runs while a session is live and is cancelled when it ends: stream prices with `client.send_prices`."""


class _AckMemory:
    """The last ACK per signal or command id, kept 24 hours: a repeated delivery gets the same answer again."""

    def __init__(self) -> None:
        self._acks: OrderedDict[UUID, tuple[float, binproto.Ack]] = OrderedDict()

    def get(self, ref_id: UUID) -> binproto.Ack | None:
        entry = self._acks.get(ref_id)
        return entry[1] if entry else None

    def put(self, ref_id: UUID, ack: binproto.Ack) -> None:
        now = time.monotonic()
        self._acks[ref_id] = (now, ack)
        while self._acks and next(iter(self._acks.values()))[0] < now - SEEN_IDS_TTL_S:
            self._acks.popitem(last=False)


def ack_build(
    acked_type: MsgType,
    *,
    ref_id: UUID | None = None,
    ref_version: int = 0,
    status: AckStatus = AckStatus.EXECUTED,
    reason: str = "",
    reason_code: int = 0,
) -> binproto.Ack:
    return binproto.Ack(
        acked_type=acked_type,
        ref_id=ref_id,
        ref_version=ref_version,
        status=status,
        reason_code=reason_code,
        reason=reason,
        timestamp_us=now_us(),
    )


class EAClient:
    """One EA connection for one MT5 account. `await run()` until `stop()`; `counters` tell what happened.

    `handle(message)` acts on a server message and works offline too (nothing is sent then; trade events wait in
    the outbox), which is how the EA's own rules are tested without a server.
    """

    def __init__(self, config: ClientConfig, handler: Handler, *, counters: ClientCounters | None = None):
        self.config = config
        self.handler = handler
        self.counters = counters if counters is not None else ClientCounters()
        self.outbox = Outbox(config.outbox_path)
        self.risk: binproto.RiskParameters | None = None  # the highest version received
        self.settings: binproto.ConfigUpdate | None = None
        self.session_id: UUID | None = None
        self._session: Session | None = None
        self._ws: ClientConnection | None = None
        self._tokens = Tokens(access=config.access_token, expires_at=float("inf") if config.access_token else 0.0)
        self._backoff = Backoff(config.max_backoff_s)
        self._signal_acks = _AckMemory()
        self._command_acks = _AckMemory()
        self._symbol_index: dict[str, int] = {}  # this session's SYMBOL_TABLE
        self._stopping = asyncio.Event()
        self._reconnect_reason = ""
        self._closing: binproto.SessionClosing | None = None
        self._used_token = False
        self._started = time.monotonic()
        self._log = {"account_id": str(config.account_id)}

    # --- life cycle ---------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Authenticated and serving (the initial state may still be on its way)."""
        return self._ws is not None

    def unacknowledged(self) -> list[TradeEvent]:
        """Trade events still waiting for their EVENT_ACK, oldest first."""
        return self.outbox.pending()

    def last_ack(self, ref_id: UUID) -> binproto.Ack | None:
        """The ACK this EA gave a signal or command id (None if it never saw it)."""
        return self._signal_acks.get(ref_id) or self._command_acks.get(ref_id)

    def stop(self) -> None:
        """End `run()`: the live session is closed normally, nothing is reconnected."""
        self._stopping.set()

    async def run(self, *, duration_s: float | None = None) -> ClientCounters:
        """Connect, serve, and reconnect (exponential backoff with jitter, capped) until `stop()` or `duration_s`."""
        self._stopping.clear()
        timer = asyncio.get_running_loop().call_later(duration_s, self.stop) if duration_s else None
        try:
            while not self._stopping.is_set():
                try:
                    delay = await self._connect_and_serve()
                except Exception:
                    log.exception("EA session failed", extra=self._log)
                    self._backoff.failed()
                    delay = self._backoff.delay()
                if delay is None:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
        finally:
            if timer is not None:
                timer.cancel()
        return self.counters

    async def _connect_and_serve(self) -> float | None:
        """One connection: the delay before the next attempt, or None to stop for good."""
        try:
            ws = await ws_open(self.config.url, timeout_s=self.config.network_timeout_s)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._backoff.failed()
            self.counters.connect_failures += 1
            log.warning("EA cannot connect to %s: %s", self.config.url, exc, extra=self._log)
            return self._backoff.delay()
        self._session = Session()
        try:
            result = await self._authenticate(ws)
            if result.status != AuthStatus.OK:
                return self._refused(result)
            self._authenticated(result)
            self._ws = ws
            await self._serve(ws)
        except (ConnectionClosed, TimeoutError, binproto.ProtocolError) as exc:
            self._backoff.failed()
            log.info("EA connection lost: %s", exc, extra=self._log)
        finally:
            self._ws = self._session = None
            await self._disconnect(ws)
        return self._after_session()

    async def _disconnect(self, ws: ClientConnection) -> None:
        """The closing handshake, bounded: `close()` itself may wait on a full send buffer."""
        try:
            async with asyncio.timeout(2 * self.config.network_timeout_s):
                await ws.close()
        except TimeoutError:
            ws.transport.abort()

    def _after_session(self) -> float | None:
        closing, self._closing = self._closing, None
        reason, self._reconnect_reason = self._reconnect_reason, ""
        if self._stopping.is_set():
            return None
        if closing is not None and closing.close_code == CloseCode.REPLACED:
            log.warning("EA replaced by a newer session for this account; not reconnecting", extra=self._log)
            return None
        if closing is not None and closing.close_code == CloseCode.SESSION_EXPIRED:
            self._tokens.forget()
        if reason:
            return RECONNECT_AT_ONCE_S
        if closing is not None and closing.retry_after_ms:
            return closing.retry_after_ms / 1000
        if not self._backoff.failures:
            self._backoff.failed()
        return self._backoff.delay()

    # --- authentication -----------------------------------------------------------------------------------------

    async def _authenticate(self, ws: ClientConnection) -> binproto.AuthResult:
        self._used_token = self._tokens.usable(asyncio.get_running_loop().time())
        hello = hello_build(
            self.config.account_id,
            api_key=self.config.api_key,
            access_token=self._tokens.access if self._used_token else "",
            ea_version=self.config.ea_version,
            mt5_build=self.config.mt5_build,
        )
        # ERROR or SESSION_CLOSING before AUTH_RESULT: counted and remembered
        result = await authenticate(ws, hello, timeout_s=self.config.network_timeout_s, on_other=self.handle)
        if self._session is not None:
            self._session.on_auth_result(result)
        return result

    def _refused(self, result: binproto.AuthResult) -> float:
        self.counters.auth_refusals += 1
        self.counters.last_refusal = f"{result.status.name.lower()}: {result.reason}"
        log.warning("EA authentication refused: %s", self.counters.last_refusal, extra=self._log)
        self._closing = None
        if self._used_token and self.config.api_key:  # the token or its session is gone: the API key decides, at once
            self._tokens.forget()
            return RECONNECT_AT_ONCE_S
        self._backoff.failed()
        return self._backoff.longest()

    def _authenticated(self, result: binproto.AuthResult) -> None:
        if self.counters.connects:
            self.counters.reconnects += 1
        self.counters.connects += 1
        self.session_id = result.session_id
        self._backoff.succeeded()
        self._tokens.keep(result, asyncio.get_running_loop().time())
        log.info("EA authenticated (session %s)", result.session_id, extra=self._log)

    def _on_refresh_result(self, result: binproto.AuthResult) -> None:
        if result.status == AuthStatus.OK:
            self.counters.token_refreshes += 1
            self._tokens.keep(result, asyncio.get_running_loop().time())
            return
        self.counters.last_refusal = f"refresh {result.status.name.lower()}: {result.reason}"
        log.warning("EA token refresh refused: %s; reconnecting with the API key", result.reason, extra=self._log)
        self._tokens.forget()
        self._reconnect_reason = "refresh refused"

    async def token_refresh(self) -> bool:
        """Ask for new tokens now (the token loop does it before the access token expires); the answer comes as
        AUTH_RESULT. False when there is no refresh token or no connection."""
        now = asyncio.get_running_loop().time()
        if not self._tokens.refresh:
            self._tokens.refresh_due = self._tokens.expires_at  # nothing to refresh with: only a reconnect helps
            return False
        self._tokens.refresh_asked(now)
        return await self._send(binproto.TokenRefresh(refresh_token=self._tokens.refresh, timestamp_us=now_us()))

    # --- one live session ---------------------------------------------------------------------------------------

    async def _serve(self, ws: ClientConnection) -> None:
        await self._send_initial_state()
        loops = [
            self._read_loop(ws),
            self._finance_loop(),
            self._heartbeat_loop(),
            self._token_loop(),
            self._outbox_loop(),
            self._stream(),
            self._stopping.wait(),
        ]
        if self.config.positions_interval_s > 0:
            loops.append(self._positions_loop())
        tasks = [asyncio.create_task(coro) for coro in loops]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if (error := task.exception()) is not None:
                raise error

    async def _send_initial_state(self) -> None:
        """docs/protocol.md §6 step 3: symbol table, profile, positions, finance, then every unacknowledged event."""
        symbols = self.handler.symbols()
        self._symbol_index = {name: i for i, name in enumerate(symbols)}
        if self.config.price_protocol == binproto.V2 and symbols:
            entries = tuple(
                binproto.SymbolEntry(index=i, digits=digits, name=name)
                for i, (name, digits) in enumerate(symbols.items())
            )
            await self._send(binproto.SymbolTable(symbols=entries, timestamp_us=now_us()))
        profile = self.handler.profile()
        if profile is not None:
            await self._send(profile)
        await self.positions_changed()
        for event in self.outbox.pending():
            self.counters.events_resent += 1
            await self._send_event(event)

    async def _read_loop(self, ws: ClientConnection) -> None:
        session = self._session
        assert session is not None  # set by _connect_and_serve before serving
        while not self._reconnect_reason:
            idle_s = self.config.network_timeout_s if session.closing else RECV_IDLE_S
            try:
                async with asyncio.timeout(idle_s):
                    data = await ws.recv()
            except TimeoutError:
                if session.closing:
                    return  # the server said it closes and did not: stop waiting for it
                continue
            message = self._decode(data)
            if message is None:
                continue
            if not session.may_receive(message.TYPE):
                log.info("EA dropped %s in state %s", message.TYPE.name, session.state.name, extra=self._log)
                continue
            await self.handle(message)

    def _decode(self, data: bytes | str):
        try:
            return binproto.from_json(data) if isinstance(data, str) else binproto.decode(data)
        except binproto.ProtocolError as exc:
            self.counters.errors_received += 1
            self.counters.last_error = f"undecodable server frame: {exc}"
            log.warning("EA got an undecodable frame: %s", exc, extra=self._log)
            return None

    # --- periodic loops (one session's tasks) -------------------------------------------------------------------

    async def _stream(self) -> None:
        """The handler's stream; one that ends (nothing to stream) leaves the session running."""
        await self.handler.stream(self)
        await asyncio.Event().wait()

    async def _finance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.balance_interval_s)
            await self.send_finance()

    async def _positions_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.positions_interval_s)
            await self.send_positions()

    async def _heartbeat_loop(self) -> None:
        while True:
            ws, status = self._ws, self.handler.status()
            heartbeat = binproto.Heartbeat(
                connection_status=binproto.ConnectionStatus.ONLINE,
                latency_ms=int(getattr(ws, "latency", 0.0) * 1000) if ws is not None else 0,
                uptime_s=int(time.monotonic() - self._started),
                mt5_build=self.config.mt5_build,
                terminal_connected=status.terminal_connected,
                trade_allowed=status.trade_allowed,
                error_count=self.counters.errors_received,
                last_error_code=0,
                last_error_message=self.counters.last_error.encode()[:250].decode(errors="ignore"),
                timestamp_us=now_us(),
            )
            if await self._send(heartbeat):
                self.counters.heartbeats_sent += 1
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _token_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(1.0, self._tokens.refresh_due - loop.time()))
            if loop.time() >= self._tokens.refresh_due:
                await self.token_refresh()

    async def _outbox_loop(self) -> None:
        while True:
            await asyncio.sleep(OUTBOX_CHECK_S)
            for event in self.outbox.overdue(self.config.event_retry_s):
                self.counters.events_resent += 1
                await self._send_event(event)

    # --- outgoing -----------------------------------------------------------------------------------------------

    async def _send(self, message) -> bool:
        """Send one frame; False when not connected or the state does not allow it. A timeout or a closed socket
        raises and ends the session."""
        ws, session = self._ws, self._session
        if ws is None or session is None or not session.may_send(message.TYPE):
            return False
        pad = message.version == binproto.V1 and len(message.ticks) <= V1_SLOTS  # as the legacy EA sends it
        async with asyncio.timeout(self.config.network_timeout_s):
            await ws.send(binproto.encode(message, pad=pad))
        return True

    async def emit(self, event: TradeEvent) -> None:
        """A trade event (numbered with `outbox.next_seq()`): into the outbox first (it is money), then on the
        wire; it leaves the outbox on its EVENT_ACK."""
        self.outbox.add(event)
        await self._send_event(event)

    async def _send_event(self, event: TradeEvent) -> None:
        if await self._send(event):
            self.outbox.sent(event)

    async def answer(
        self,
        message: binproto.TradingSignal | binproto.Command,
        status: AckStatus,
        reason: str = "",
        reason_code: int = 0,
    ) -> None:
        """The one answer to a signal or command: remembered (a repeated delivery gets it again), counted, sent."""
        if isinstance(message, binproto.TradingSignal):
            ack = ack_build(MsgType.TRADING_SIGNAL, ref_id=message.signal_id, status=status, reason=reason,
                            reason_code=reason_code)  # fmt: skip
            self._signal_acks.put(message.signal_id, ack)
            if status == AckStatus.EXECUTED:
                self.counters.signals_executed += 1
            else:
                self.counters.signals_rejected += 1
        else:
            ack = ack_build(MsgType.COMMAND, ref_id=message.command_id, status=status, reason=reason,
                            reason_code=reason_code)  # fmt: skip
            self._command_acks.put(message.command_id, ack)
            if status == AckStatus.EXECUTED:
                self.counters.commands_executed += 1
            else:
                self.counters.commands_failed += 1
        await self._send(ack)

    async def send_finance(self) -> None:
        finance = self.handler.finance()
        if finance is not None and await self._send(finance):
            self.counters.balances_sent += 1

    async def send_positions(self) -> None:
        positions = self.handler.open_positions()
        if positions is None:
            return
        records = tuple(positions[: binproto.constants.MAX_POSITIONS])
        if await self._send(binproto.Positions(positions=records, timestamp_us=now_us())):
            self.counters.positions_sent += 1

    async def positions_changed(self) -> None:
        """Positions and finance now (docs/protocol.md §6: POSITIONS on change)."""
        await self.send_positions()
        await self.send_finance()

    async def send_prices(self, ticks: Iterable[tuple[str, float, float, int]]) -> None:
        """Ticks `(symbol, bid, ask, spread_points)` in as few PRICE_STREAM frames as the size limit allows: v2
        ticks name symbols by this session's SYMBOL_TABLE index, v1 ticks by the legacy symbol ids."""
        v1 = self.config.price_protocol == binproto.V1
        now = datetime.now(UTC)
        session = market_session(now)
        index = self._symbol_index
        records = [
            binproto.PriceTick(symbol=V1_IDS[s], bid=bid, ask=ask, spread_points=spread)
            if v1
            else binproto.PriceTick(
                symbol=index[s],
                bid=bid,
                ask=ask,
                spread_points=spread,
                quote_quality=binproto.QuoteQuality.GOOD,
                tradeable=True,
                market_session=session,
            )
            for s, bid, ask, spread in ticks
        ]
        limit = V1_MAX_RECORDS if v1 else MAX_TICKS
        timestamp_us = int(now.timestamp() * 1_000_000)
        for start in range(0, len(records), limit):
            chunk = tuple(records[start : start + limit])
            message = binproto.PriceStream(
                ticks=chunk, version=binproto.V1 if v1 else binproto.V2, timestamp_us=timestamp_us
            )
            if await self._send(message):
                self.counters.price_frames_sent += 1
                self.counters.ticks_sent += len(chunk)

    # --- incoming -----------------------------------------------------------------------------------------------

    async def handle(self, message) -> None:
        """Act on one server message (works offline too: then nothing is sent, trade events wait in the outbox)."""
        if isinstance(message, binproto.TradingSignal):
            await self._on_signal(message)
        elif isinstance(message, binproto.Command):
            await self._on_command(message)
        elif isinstance(message, binproto.EventAck):
            if self.outbox.ack(message.event_type, message.ticket, message.event_seq):
                self.counters.event_acks += 1
        elif isinstance(message, binproto.RiskParameters):
            self.counters.risk_received += 1
            if self.risk is None or message.risk_version > self.risk.risk_version:
                self.risk = message
            await self._send(ack_build(MsgType.RISK_PARAMETERS, ref_version=message.risk_version))
        elif isinstance(message, binproto.ConfigUpdate):
            self.counters.config_received += 1
            if self.settings is None or message.config_version > self.settings.config_version:
                self.settings = message
            await self._send(ack_build(MsgType.CONFIG_UPDATE, ref_version=message.config_version))
        elif isinstance(message, binproto.AuthResult):
            if self._session is not None:
                self._session.on_auth_result(message)
            self._on_refresh_result(message)
        elif isinstance(message, binproto.Error):
            self.counters.errors_received += 1
            self.counters.last_error = f"{message.code.name.lower()}: {message.reason}"
            log.warning("EA got ERROR %s", self.counters.last_error, extra=self._log)
        elif isinstance(message, binproto.SessionClosing):
            self._closing = message
            if self._session is not None:
                self._session.close()
            self.counters.last_close = f"{int(message.close_code)} {message.close_code.name}: {message.reason}"
            log.info("server is closing the session: %s", self.counters.last_close, extra=self._log)

    async def _on_signal(self, signal: binproto.TradingSignal) -> None:
        self.counters.signals_received += 1
        previous = self._signal_acks.get(signal.signal_id)
        if previous is not None:  # at-least-once delivery: never execute twice, repeat the answer
            self.counters.repeated_deliveries += 1
            await self._send(previous)
            return
        await self.handler.on_signal(self, signal)
        if self._signal_acks.get(signal.signal_id) is None:
            log.error("EA handler left signal %s unanswered", signal.signal_id, extra=self._log)
            await self.answer(signal, AckStatus.FAILED, NO_ANSWER)

    async def _on_command(self, command: binproto.Command) -> None:
        previous = self._command_acks.get(command.command_id)
        if previous is not None:
            self.counters.repeated_deliveries += 1
            await self._send(previous)
            return
        if command.command in (CommandType.RECONNECT, CommandType.RESTART_EA):
            self._reconnect_reason = command.command.name.lower()  # after the ACK, the read loop ends the session
            await self.answer(command, AckStatus.EXECUTED)
        else:
            await self.handler.on_command(self, command)
            if self._command_acks.get(command.command_id) is None:
                log.error("EA handler left command %s unanswered", command.command_id, extra=self._log)
                await self.answer(command, AckStatus.FAILED, NO_ANSWER)
        ack = self._command_acks.get(command.command_id)
        if ack is not None:
            log.info("EA command %s: %s %s", command.command.name, ack.status.name.lower(), ack.reason, extra=self._log)


def market_session(moment: datetime) -> binproto.MarketSession:
    hour = moment.hour
    if hour < 7:
        return binproto.MarketSession.TOKYO
    if hour < 12:
        return binproto.MarketSession.LONDON
    if hour < 21:
        return binproto.MarketSession.NEW_YORK
    return binproto.MarketSession.SYDNEY


async def clients_run(clients: Sequence[EAClient], *, duration_s: float | None = None) -> list[ClientCounters]:
    """Run every client until `duration_s` passes or each is stopped. One account per client: the server keeps one
    live session per account, so two clients of one account would keep replacing each other."""
    accounts = [client.config.account_id for client in clients]
    if len(set(accounts)) != len(accounts):
        raise ValueError("each EA needs its own account (one live session per account)")
    return list(await asyncio.gather(*(client.run(duration_s=duration_s) for client in clients)))
