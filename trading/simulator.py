"""The reference EA: a simulated MetaTrader 5 Expert Advisor that speaks the Suho Binary Protocol end to end.

One `SimulatedEA` per MT5 account (the server keeps one live session per account). It authenticates with the
account's API key, streams ticks from a seeded random walk, reports finance, heartbeats and positions, executes the
signals it receives against its own quote, watches stop-loss and take-profit, obeys commands, keeps trade events in
an outbox until the server's EVENT_ACK, refreshes its token, and reconnects with backoff. It is the gateway's test
double, the load generator (`simulators_run` runs many in one process) and `make run`'s live demo
(`manage.py simulate_ea`). Spec: docs/protocol.md.

No Django here: a plain asyncio client (binproto + websockets), like an EA on a trader's VPS. Money is simple on
purpose: USD accounts, one contract size per instrument, P&L of USD-based pairs converted at the close price.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

import binproto
from binproto import AckStatus, Action, AuthMethod, AuthStatus, CloseCode, CloseReason, CommandType, MsgType, OrderType
from binproto.constants import MAX_POSITIONS, MAX_TICKS, V1_MAX_RECORDS, V1_SLOTS

log = logging.getLogger(__name__)

# Why the EA refuses a signal (ACK REJECTED) or fails a command (ACK FAILED): the server stores them; tests reuse them.
REJECT_OUTSIDE_RANGE = "price outside entry range"
REJECT_EXPIRED = "expired"
REJECT_TRADING_DISABLED = "trading disabled"
REJECT_EMERGENCY_STOP = "emergency stop"
REJECT_UNKNOWN_SYMBOL = "unknown symbol"
REJECT_SYMBOL_NOT_ALLOWED = "symbol not allowed by the risk parameters"
REJECT_OUTSIDE_HOURS = "outside trading hours"
REJECT_SPREAD = "spread above max_spread_points"
REJECT_VOLUME = "volume above max_position_lots"
FAIL_NO_POSITION = "no such position"
RETCODE_POSITION_NOT_FOUND = 4753  # MQL5 ERR_TRADE_POSITION_NOT_FOUND

MAX_FRAMES_PER_S = 50  # price frames per connection (the server allows 500 frames/s); faster rates batch ticks
BACKOFF_FIRST_S = 1.0
RECONNECT_AT_ONCE_S = 0.2  # after RECONNECT / RESTART_EA or a refused refresh
RECV_IDLE_S = 60.0  # the server may be silent for long; keepalive pings watch the peer meanwhile
OUTBOX_CHECK_S = 1.0
TOKEN_REFRESH_MARGIN_S = 60.0  # refresh this long before the access token expires (at most 1/5 of its lifetime)
SEEN_IDS_TTL_S = 24 * 3600  # signal and command ids are remembered this long (docs/protocol.md §8)
COMMISSION_PER_LOT_SIDE = -3.5  # USD, charged at open and again at close
V1_IDS = {name: symbol_id for symbol_id, name in binproto.DEFAULT_V1_SYMBOLS.items()}


@dataclass(frozen=True)
class Instrument:
    digits: int
    start_price: float  # the walk starts near it and is pulled back towards it
    spread_points: int  # typical spread
    contract_size: float  # units per lot

    @property
    def point(self) -> float:
        return 10.0**-self.digits


INSTRUMENTS: dict[str, Instrument] = {
    "EURUSD": Instrument(5, 1.08500, 12, 100_000),
    "GBPUSD": Instrument(5, 1.27000, 16, 100_000),
    "USDJPY": Instrument(3, 149.500, 14, 100_000),
    "USDCHF": Instrument(5, 0.88000, 15, 100_000),
    "AUDUSD": Instrument(5, 0.66000, 13, 100_000),
    "USDCAD": Instrument(5, 1.36000, 17, 100_000),
    "NZDUSD": Instrument(5, 0.60000, 19, 100_000),
    "XAUUSD": Instrument(2, 2400.00, 25, 100),
    "XAGUSD": Instrument(3, 28.500, 25, 5_000),
    "BTCUSD": Instrument(2, 67000.00, 1500, 1),  # v2 only: above v1's 42,949.67 price limit
}
DEFAULT_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")


def _now_us() -> int:
    return time.time_ns() // 1000


# --- prices and money -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    bid: float
    ask: float
    spread_points: int


class PriceWalk:
    """Per symbol: log-normal steps (σ 0.002 % a tick) with a weak pull back to the start price, a spread around the
    instrument's typical one, prices rounded to its digits. The same seed gives the same prices."""

    SIGMA = 2e-5
    REVERSION = 1e-3

    def __init__(self, symbols: Iterable[str], seed: int | None = None):
        self.rng = random.Random(seed)
        self.mid = {s: INSTRUMENTS[s].start_price * (1 + self.rng.uniform(-0.002, 0.002)) for s in symbols}
        self.quotes = {s: self._quote(s) for s in self.mid}

    def step(self, symbol: str) -> Quote:
        start = INSTRUMENTS[symbol].start_price
        mid = self.mid[symbol] * math.exp(self.rng.gauss(0.0, self.SIGMA))
        self.mid[symbol] = mid + (start - mid) * self.REVERSION
        return self._quote(symbol)

    def _quote(self, symbol: str) -> Quote:
        instrument = INSTRUMENTS[symbol]
        spread = max(1, round(instrument.spread_points * self.rng.uniform(0.7, 1.3)))
        bid = round(self.mid[symbol] - spread * instrument.point / 2, instrument.digits)
        return Quote(bid, round(bid + spread * instrument.point, instrument.digits), spread)


@dataclass
class SimPosition:
    ticket: int
    symbol: str
    order_type: OrderType  # BUY or SELL
    volume: float
    open_price: float
    stop_loss: float  # 0 = none
    take_profit: float
    signal_id: UUID | None
    open_time_us: int
    magic: int


def exit_price(position: SimPosition, quote: Quote) -> float:
    """A buy closes at the bid, a sell at the ask."""
    return quote.bid if position.order_type == OrderType.BUY else quote.ask


def position_profit(position: SimPosition, close_price: float) -> float:
    """P&L in USD: move × volume × contract size; for USD-based pairs (USDJPY…) the quote currency at the close."""
    direction = 1.0 if position.order_type == OrderType.BUY else -1.0
    contract = INSTRUMENTS[position.symbol].contract_size
    raw = (close_price - position.open_price) * direction * position.volume * contract
    return round(raw / close_price if position.symbol.startswith("USD") else raw, 2)


def position_margin(position: SimPosition, leverage: int) -> float:
    contract = INSTRUMENTS[position.symbol].contract_size
    notional = position.volume * contract * (1.0 if position.symbol.startswith("USD") else position.open_price)
    return notional / max(leverage, 1)


def stop_hit(position: SimPosition, quote: Quote) -> CloseReason | None:
    price = exit_price(position, quote)
    sign = 1.0 if position.order_type == OrderType.BUY else -1.0
    if position.stop_loss and sign * (price - position.stop_loss) <= 0:
        return CloseReason.STOP_LOSS
    if position.take_profit and sign * (price - position.take_profit) >= 0:
        return CloseReason.TAKE_PROFIT
    return None


def market_session(moment: datetime) -> binproto.MarketSession:
    hour = moment.hour
    if hour < 7:
        return binproto.MarketSession.TOKYO
    if hour < 12:
        return binproto.MarketSession.LONDON
    if hour < 21:
        return binproto.MarketSession.NEW_YORK
    return binproto.MarketSession.SYDNEY


def within_trading_hours(windows: tuple[binproto.TradingWindow, ...], moment: datetime) -> bool:
    if not windows:
        return True
    minute = moment.hour * 60 + moment.minute
    return any(w.weekdays >> moment.weekday() & 1 and w.start_minute <= minute < w.end_minute for w in windows)


# --- configuration and counters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorConfig:
    url: str
    account_id: UUID
    api_key: str = field(repr=False)
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    ticks_per_second: float = 2.0  # per symbol; 0 = no price stream
    protocol_version: int = 2  # price stream: 2 = SYMBOL_TABLE + v2 ticks, 1 = legacy v1 symbol ids
    balance_interval_s: float = 30.0
    heartbeat_interval_s: float = 30.0
    seed: int | None = None
    starting_balance: float = 10_000.0
    leverage: int = 100
    network_timeout_s: float = 10.0  # every send, connect, close and the wait for AUTH_RESULT
    event_retry_s: float = 10.0  # resend a trade event without EVENT_ACK after this long
    max_backoff_s: float = 30.0
    ea_version: str = "suho-sim/1.0"
    mt5_build: int = 4755

    def __post_init__(self) -> None:
        unknown = [s for s in self.symbols if s not in INSTRUMENTS]
        if unknown or not self.symbols:
            raise ValueError(f"unknown symbols {unknown}; the simulator knows {', '.join(INSTRUMENTS)}")
        if self.protocol_version not in binproto.SUPPORTED_VERSIONS:
            raise ValueError(f"protocol_version must be 1 or 2, got {self.protocol_version}")
        if self.protocol_version == binproto.V1 and (no_id := [s for s in self.symbols if s not in V1_IDS]):
            raise ValueError(f"{', '.join(no_id)} have no v1 symbol id; use protocol version 2")
        if self.ticks_per_second < 0:
            raise ValueError("ticks_per_second must not be negative")


@dataclass
class SimulatorCounters:
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
    signals_executed: int = 0
    signals_rejected: int = 0
    repeated_deliveries: int = 0  # a signal or command id seen before: its ACK was repeated
    trades_opened: int = 0
    trades_closed: int = 0
    trades_modified: int = 0
    events_resent: int = 0
    event_acks: int = 0
    commands_executed: int = 0
    commands_failed: int = 0
    risk_received: int = 0
    config_received: int = 0
    token_refreshes: int = 0
    errors_received: int = 0
    last_error: str = ""


@dataclass
class _Pending:
    event: binproto.TradeOpened | binproto.TradeClosed | binproto.TradeModified
    sent_at: float  # monotonic; 0 = never sent


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


# --- the EA -----------------------------------------------------------------------------------------------------


class SimulatedEA:
    """One simulated EA. `await run()` until `stop()` (or `duration_s`); `counters` tell what happened.

    Everything runs on the caller's event loop (a few tasks per live session, no threads), so the state needs no
    locks; `simulators_run` puts many EAs on one loop.
    """

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.counters = SimulatorCounters()
        self.walk = PriceWalk(config.symbols, config.seed)
        self.positions: dict[int, SimPosition] = {}
        self.balance = config.starting_balance
        self.max_balance = config.starting_balance
        self.risk: binproto.RiskParameters | None = None
        self.settings: binproto.ConfigUpdate | None = None
        self.trading_disabled = False  # by DISABLE_TRADING, until ENABLE_TRADING
        self.session_id: UUID | None = None
        # Event numbers and tickets must grow across restarts (the server deduplicates on them): start from the clock.
        self._event_seq = self._ticket = _now_us()
        self._outbox: dict[tuple[MsgType, int, int], _Pending] = {}
        self._signal_acks = _AckMemory()
        self._command_acks = _AckMemory()
        self._ws: ClientConnection | None = None
        self._stopping = asyncio.Event()
        self._failures = 0
        self._reconnect_reason = ""
        self._closing: binproto.SessionClosing | None = None
        self._used_token = False
        self._access_token = self._refresh_token = ""
        self._access_expires_at = self._refresh_due = 0.0  # monotonic
        self._started = time.monotonic()
        self._realized_today, self._day = 0.0, datetime.now(UTC).date()
        self._jitter = random.Random()
        self._symbol_index = {symbol: i for i, symbol in enumerate(config.symbols)}  # v2 SYMBOL_TABLE indexes
        self._log = {"account_id": str(config.account_id)}

    # --- life cycle ---------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def unacknowledged(self) -> list[binproto.TradeOpened | binproto.TradeClosed | binproto.TradeModified]:
        """Trade events still waiting for their EVENT_ACK, oldest first."""
        return [pending.event for pending in self._outbox.values()]

    def stop(self) -> None:
        """End `run()`: the live session is closed normally, nothing is reconnected."""
        self._stopping.set()

    async def run(self, *, duration_s: float | None = None) -> SimulatorCounters:
        """Connect, serve, and reconnect (exponential backoff with jitter, capped) until `stop()` or `duration_s`."""
        self._stopping.clear()
        timer = asyncio.get_running_loop().call_later(duration_s, self.stop) if duration_s else None
        try:
            while not self._stopping.is_set():
                try:
                    delay = await self._connect_and_serve()
                except Exception:
                    log.exception("simulated EA session failed", extra=self._log)
                    self._failures += 1
                    delay = self._backoff()
                if delay is None:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
        finally:
            if timer is not None:
                timer.cancel()
        return self.counters

    def _backoff(self) -> float:
        step = min(self.config.max_backoff_s, BACKOFF_FIRST_S * 2 ** max(self._failures - 1, 0))
        return step * self._jitter.uniform(0.5, 1.0)

    async def _connect_and_serve(self) -> float | None:
        """One connection: the delay before the next attempt, or None to stop for good."""
        timeout = self.config.network_timeout_s
        try:
            ws = await connect(
                self.config.url,
                open_timeout=timeout,
                close_timeout=timeout,
                ping_interval=20,
                ping_timeout=20,
                compression=None,
                max_size=binproto.MAX_JSON_FRAME_SIZE * 4,
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._failures += 1
            self.counters.connect_failures += 1
            log.warning("EA cannot connect to %s: %s", self.config.url, exc, extra=self._log)
            return self._backoff()
        try:
            result = await self._authenticate(ws)
            if result.status != AuthStatus.OK:
                return self._refused(result)
            self._authenticated(result)
            self._failures = 0
            self._ws = ws
            await self._serve(ws)
        except (ConnectionClosed, TimeoutError, binproto.ProtocolError) as exc:
            self._failures += 1
            log.info("EA connection lost: %s", exc, extra=self._log)
        finally:
            self._ws = None
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
            self._forget_tokens()
        if reason:
            return RECONNECT_AT_ONCE_S
        if closing is not None and closing.retry_after_ms:
            return closing.retry_after_ms / 1000
        self._failures = max(self._failures, 1)
        return self._backoff()

    async def _authenticate(self, ws: ClientConnection) -> binproto.AuthResult:
        loop = asyncio.get_running_loop()
        self._used_token = (
            bool(self._access_token) and self._access_expires_at - loop.time() > 2 * TOKEN_REFRESH_MARGIN_S
        )
        hello = binproto.Hello(
            account_id=self.config.account_id,
            auth_method=AuthMethod.ACCESS_TOKEN if self._used_token else AuthMethod.API_KEY,
            mt5_build=self.config.mt5_build,
            ea_version=self.config.ea_version,
            access_token=self._access_token if self._used_token else self.config.api_key,
            protocol_versions=(binproto.V2, binproto.V1),
            timestamp_us=_now_us(),
        )
        async with asyncio.timeout(self.config.network_timeout_s):
            await ws.send(binproto.encode(hello))
            while True:
                message = self._decode(await ws.recv())
                if isinstance(message, binproto.AuthResult):
                    return message
                if message is not None:
                    await self.handle(message)  # ERROR or SESSION_CLOSING: counted and remembered

    def _refused(self, result: binproto.AuthResult) -> float:
        self.counters.auth_refusals += 1
        self.counters.last_refusal = f"{result.status.name.lower()}: {result.reason}"
        log.warning("EA authentication refused: %s", self.counters.last_refusal, extra=self._log)
        self._closing = None
        if self._used_token:  # the token or its session is gone: the API key decides, at once
            self._forget_tokens()
            return RECONNECT_AT_ONCE_S
        self._failures += 1
        return self.config.max_backoff_s * self._jitter.uniform(0.5, 1.0)

    def _authenticated(self, result: binproto.AuthResult) -> None:
        if self.counters.connects:
            self.counters.reconnects += 1
        self.counters.connects += 1
        self.session_id = result.session_id
        self._tokens_keep(result)
        log.info("EA authenticated (session %s)", result.session_id, extra=self._log)

    def _tokens_keep(self, result: binproto.AuthResult) -> None:
        """A quick reconnect with the access token gets no new tokens: the ones held stay valid."""
        if result.access_token:
            self._access_token, self._refresh_token = result.access_token, result.refresh_token
        lifetime_s = max(0.0, (result.access_expires_us - result.server_time_us) / 1e6)
        now = asyncio.get_running_loop().time()
        self._access_expires_at = now + lifetime_s
        self._refresh_due = now + lifetime_s - min(TOKEN_REFRESH_MARGIN_S, lifetime_s / 5)

    def _forget_tokens(self) -> None:
        self._access_token = self._refresh_token = ""
        self._access_expires_at = self._refresh_due = 0.0

    async def _serve(self, ws: ClientConnection) -> None:
        await self._send_initial_state()
        loops = [
            self._read_loop(ws),
            self._finance_loop(),
            self._heartbeat_loop(),
            self._token_loop(),
            self._outbox_loop(),
            self._stopping.wait(),
        ]
        if self.config.ticks_per_second > 0:
            loops.append(self._tick_loop())
        tasks = [asyncio.create_task(coro) for coro in loops]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()

    async def _send_initial_state(self) -> None:
        """docs/protocol.md §6 step 3: symbol table, profile, positions, finance, then every unacknowledged event."""
        if self.config.protocol_version == binproto.V2:
            entries = tuple(
                binproto.SymbolEntry(index=i, digits=INSTRUMENTS[s].digits, name=s)
                for i, s in enumerate(self.config.symbols)
            )
            await self._send(binproto.SymbolTable(symbols=entries, timestamp_us=_now_us()))
        await self._send(self._profile())
        await self._send_positions()
        await self._send_finance()
        for pending in list(self._outbox.values()):
            self.counters.events_resent += 1
            await self._resend(pending)

    # --- outgoing -----------------------------------------------------------------------------------------------

    async def _send(self, message) -> bool:
        """Send one frame; False when not connected. A timeout or a closed socket raises and ends the session."""
        ws = self._ws
        if ws is None:
            return False
        pad = message.version == binproto.V1 and len(message.ticks) <= V1_SLOTS  # as the legacy EA sends it
        async with asyncio.timeout(self.config.network_timeout_s):
            await ws.send(binproto.encode(message, pad=pad))
        return True

    async def _emit(self, event) -> None:
        """A trade event: into the outbox first (it is money), then on the wire; it leaves on its EVENT_ACK."""
        pending = _Pending(event, time.monotonic())
        self._outbox[(event.TYPE, event.ticket, event.event_seq)] = pending
        await self._send(event)

    async def _resend(self, pending: _Pending) -> None:
        pending.sent_at = time.monotonic()
        await self._send(pending.event)

    def _next_event(self) -> tuple[int, int]:
        self._event_seq += 1
        return self._event_seq, _now_us()

    def _profile(self) -> binproto.AccountProfile:
        settings = (
            ("simulator", "1"),
            ("price_protocol", str(self.config.protocol_version)),
            ("ticks_per_second", f"{self.config.ticks_per_second:g}"),
        )
        return binproto.AccountProfile(
            login=self.config.account_id.int % 100_000_000,
            account_type=binproto.AccountType.DEMO,
            leverage=self.config.leverage,
            mt5_build=self.config.mt5_build,
            broker="Suho Simulated Broker",
            server="SuhoSim-Demo",
            currency="USD",
            ea_version=self.config.ea_version,
            settings=settings,
            timestamp_us=_now_us(),
        )

    def finance(self) -> binproto.AccountFinance:
        today = datetime.now(UTC).date()
        if today != self._day:
            self._realized_today, self._day = 0.0, today
        floating = sum(position_profit(p, exit_price(p, self.walk.quotes[p.symbol])) for p in self.positions.values())
        equity = self.balance + floating
        margin = sum(position_margin(p, self.config.leverage) for p in self.positions.values())
        self.max_balance = max(self.max_balance, self.balance)
        return binproto.AccountFinance(
            balance=round(self.balance, 2),
            equity=round(equity, 2),
            margin=round(margin, 2),
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100, 2) if margin else 0.0,
            floating_pnl=round(floating, 2),
            daily_pnl=round(self._realized_today + floating, 2),
            drawdown_pct=round(max(0.0, (self.max_balance - equity) / self.max_balance * 100), 4),
            max_balance=round(self.max_balance, 2),
            open_positions=len(self.positions),
            pending_orders=0,
            timestamp_us=_now_us(),
        )

    async def _send_finance(self) -> None:
        if await self._send(self.finance()):
            self.counters.balances_sent += 1

    async def _send_positions(self) -> None:
        records = tuple(
            binproto.Position(
                ticket=p.ticket,
                order_type=p.order_type,
                volume=p.volume,
                open_price=p.open_price,
                stop_loss=p.stop_loss,
                take_profit=p.take_profit,
                symbol=p.symbol,
                profit=position_profit(p, exit_price(p, self.walk.quotes[p.symbol])),
            )
            for p in list(self.positions.values())[:MAX_POSITIONS]
        )
        if await self._send(binproto.Positions(positions=records, timestamp_us=_now_us())):
            self.counters.positions_sent += 1

    async def _positions_changed(self) -> None:
        await self._send_positions()
        await self._send_finance()

    # --- periodic loops (one session's tasks) -------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        frames_per_s = min(self.config.ticks_per_second, MAX_FRAMES_PER_S)
        per_frame = max(1, round(self.config.ticks_per_second / frames_per_s))
        interval = 1.0 / frames_per_s
        next_at = loop.time()
        while True:
            ticks = []
            for symbol in self.config.symbols:
                for _ in range(per_frame):
                    quote = self.walk.step(symbol)
                    ticks.append((symbol, quote))
                    await self.apply_quote(symbol, quote)
            await self._send_prices(ticks)
            next_at += interval
            now = loop.time()
            if next_at < now - 1.0:  # fell behind (a slow socket): do not burst to catch up
                next_at = now
            await asyncio.sleep(max(0.0, next_at - now))

    async def _send_prices(self, ticks: list[tuple[str, Quote]]) -> None:
        v1 = self.config.protocol_version == binproto.V1
        now = datetime.now(UTC)
        session = market_session(now)
        index = self._symbol_index
        records = [
            binproto.PriceTick(symbol=V1_IDS[s], bid=q.bid, ask=q.ask, spread_points=q.spread_points)
            if v1
            else binproto.PriceTick(
                symbol=index[s],
                bid=q.bid,
                ask=q.ask,
                spread_points=q.spread_points,
                quote_quality=binproto.QuoteQuality.GOOD,
                tradeable=True,
                market_session=session,
            )
            for s, q in ticks
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

    async def _finance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.balance_interval_s)
            await self._send_finance()

    async def _heartbeat_loop(self) -> None:
        while True:
            ws = self._ws
            latency_ms = int(getattr(ws, "latency", 0.0) * 1000) if ws is not None else 0
            heartbeat = binproto.Heartbeat(
                connection_status=binproto.ConnectionStatus.ONLINE,
                latency_ms=latency_ms,
                uptime_s=int(time.monotonic() - self._started),
                mt5_build=self.config.mt5_build,
                terminal_connected=True,
                trade_allowed=not self.trading_disabled,
                error_count=self.counters.errors_received,
                last_error_code=0,
                last_error_message=self.counters.last_error.encode()[:250].decode(errors="ignore"),
                timestamp_us=_now_us(),
            )
            if await self._send(heartbeat):
                self.counters.heartbeats_sent += 1
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _token_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(1.0, self._refresh_due - loop.time()))
            if loop.time() >= self._refresh_due:
                await self.token_refresh()

    async def token_refresh(self) -> bool:
        """Ask for new tokens now (the token loop does it before the access token expires); the answer comes as
        AUTH_RESULT. False when there is no refresh token or no connection."""
        if not self._refresh_token:
            return False
        self._refresh_due = asyncio.get_running_loop().time() + 30.0  # ask again if no answer comes
        return await self._send(binproto.TokenRefresh(refresh_token=self._refresh_token, timestamp_us=_now_us()))

    async def _outbox_loop(self) -> None:
        while True:
            await asyncio.sleep(OUTBOX_CHECK_S)
            overdue = time.monotonic() - self.config.event_retry_s
            for pending in [p for p in self._outbox.values() if p.sent_at < overdue]:
                self.counters.events_resent += 1
                await self._resend(pending)

    async def _read_loop(self, ws: ClientConnection) -> None:
        while not self._reconnect_reason:
            try:
                async with asyncio.timeout(RECV_IDLE_S):
                    data = await ws.recv()
            except TimeoutError:
                continue
            message = self._decode(data)
            if message is not None:
                await self.handle(message)

    def _decode(self, data: bytes | str):
        try:
            return binproto.from_json(data) if isinstance(data, str) else binproto.decode(data)
        except binproto.ProtocolError as exc:
            self.counters.errors_received += 1
            self.counters.last_error = f"undecodable server frame: {exc}"
            log.warning("EA got an undecodable frame: %s", exc, extra=self._log)
            return None

    # --- incoming -----------------------------------------------------------------------------------------------

    async def handle(self, message) -> None:
        """Act on one server message (works offline too: then nothing is sent, trade events wait in the outbox)."""
        if isinstance(message, binproto.TradingSignal):
            await self._on_signal(message)
        elif isinstance(message, binproto.Command):
            await self._on_command(message)
        elif isinstance(message, binproto.EventAck):
            if self._outbox.pop((message.event_type, message.ticket, message.event_seq), None) is not None:
                self.counters.event_acks += 1
        elif isinstance(message, binproto.RiskParameters):
            self.counters.risk_received += 1
            if self.risk is None or message.risk_version > self.risk.risk_version:
                self.risk = message
            await self._send(self._ack(MsgType.RISK_PARAMETERS, ref_version=message.risk_version))
        elif isinstance(message, binproto.ConfigUpdate):
            self.counters.config_received += 1
            if self.settings is None or message.config_version > self.settings.config_version:
                self.settings = message
            await self._send(self._ack(MsgType.CONFIG_UPDATE, ref_version=message.config_version))
        elif isinstance(message, binproto.AuthResult):
            self._on_refresh_result(message)
        elif isinstance(message, binproto.Error):
            self.counters.errors_received += 1
            self.counters.last_error = f"{message.code.name.lower()}: {message.reason}"
            log.warning("EA got ERROR %s", self.counters.last_error, extra=self._log)
        elif isinstance(message, binproto.SessionClosing):
            self._closing = message
            self.counters.last_close = f"{int(message.close_code)} {message.close_code.name}: {message.reason}"
            log.info("server is closing the session: %s", self.counters.last_close, extra=self._log)

    def _on_refresh_result(self, result: binproto.AuthResult) -> None:
        if result.status == AuthStatus.OK:
            self.counters.token_refreshes += 1
            self._tokens_keep(result)
            return
        self.counters.last_refusal = f"refresh {result.status.name.lower()}: {result.reason}"
        log.warning("EA token refresh refused: %s; reconnecting with the API key", result.reason, extra=self._log)
        self._forget_tokens()
        self._reconnect_reason = "refresh refused"

    @staticmethod
    def _ack(
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
            timestamp_us=_now_us(),
        )

    def last_ack(self, ref_id: UUID) -> binproto.Ack | None:
        """The ACK this EA gave a signal or command id (None if it never saw it)."""
        return self._signal_acks.get(ref_id) or self._command_acks.get(ref_id)

    # --- signals --------------------------------------------------------------------------------------------------

    async def _on_signal(self, signal: binproto.TradingSignal) -> None:
        self.counters.signals_received += 1
        previous = self._signal_acks.get(signal.signal_id)
        if previous is not None:  # at-least-once delivery: never execute twice, repeat the answer
            self.counters.repeated_deliveries += 1
            await self._send(previous)
            return
        if signal.action == Action.CLOSE:
            await self._close_by_signal(signal)
            return
        quote = self.walk.quotes.get(signal.symbol)
        price = (quote.ask if signal.action == Action.BUY else quote.bid) if quote else 0.0
        volume = self._signal_volume(signal, price)
        reason = self._signal_refusal(signal, quote, price, volume)
        if reason:
            self.counters.signals_rejected += 1
            await self._answer_signal(signal, AckStatus.REJECTED, reason)
            log.info("EA rejected signal %s: %s", signal.signal_id, reason, extra=self._log)
            return
        self.counters.signals_executed += 1
        await self._answer_signal(signal, AckStatus.EXECUTED, "")
        seq, now_us = self._next_event()
        self._ticket += 1
        position = SimPosition(
            ticket=self._ticket,
            symbol=signal.symbol,
            volume=volume,
            open_price=price,
            stop_loss=signal.stop_loss,
            order_type=OrderType.BUY if signal.action == Action.BUY else OrderType.SELL,
            take_profit=signal.take_profit,
            signal_id=signal.signal_id,
            open_time_us=now_us,
            magic=self.settings.magic if self.settings else 0,
        )
        commission = round(COMMISSION_PER_LOT_SIDE * volume, 2)
        self.balance += commission
        self.positions[position.ticket] = position
        self.counters.trades_opened += 1
        log.info(
            "EA opened %s %s %.2f @ %s for signal %s",
            position.order_type.name,
            position.symbol,
            volume,
            price,
            signal.signal_id,
            extra=self._log,
        )
        await self._emit(
            binproto.TradeOpened(
                event_seq=seq,
                ticket=position.ticket,
                order_type=position.order_type,
                volume=volume,
                price=price,
                stop_loss=position.stop_loss,
                take_profit=position.take_profit,
                signal_id=signal.signal_id,
                open_time_us=now_us,
                commission=commission,
                magic=position.magic,
                symbol=position.symbol,
                timestamp_us=now_us,
            )
        )
        await self._positions_changed()

    async def _answer_signal(self, signal: binproto.TradingSignal, status: AckStatus, reason: str) -> None:
        ack = self._ack(MsgType.TRADING_SIGNAL, ref_id=signal.signal_id, status=status, reason=reason)
        self._signal_acks.put(signal.signal_id, ack)
        await self._send(ack)

    def _signal_volume(self, signal: binproto.TradingSignal, price: float) -> float:
        """Fixed lots, or the lots whose stop-loss loses `risk_percent` of equity (0.01 lot steps, at least 0.01)."""
        if signal.sizing_method != binproto.SizingMethod.RISK_PERCENT or not signal.stop_loss or not price:
            return signal.volume
        instrument = INSTRUMENTS.get(signal.symbol)
        if instrument is None:
            return signal.volume
        loss_per_lot = abs(price - signal.stop_loss) * instrument.contract_size
        if signal.symbol.startswith("USD"):
            loss_per_lot /= price
        equity = self.finance().equity
        return max(0.01, math.floor(equity * signal.risk_percent / 100 / loss_per_lot * 100) / 100)

    def _signal_refusal(self, signal: binproto.TradingSignal, quote: Quote | None, price: float, volume: float) -> str:
        if signal.valid_until_us <= _now_us():  # by the EA's own clock
            return REJECT_EXPIRED
        risk, settings = self.risk, self.settings
        if risk is not None and risk.emergency_stop:
            return REJECT_EMERGENCY_STOP
        if self.trading_disabled or (risk is not None and not risk.trading_enabled):
            return REJECT_TRADING_DISABLED
        if quote is None:
            return REJECT_UNKNOWN_SYMBOL
        if risk is not None and risk.allowed_symbols and signal.symbol not in risk.allowed_symbols:
            return REJECT_SYMBOL_NOT_ALLOWED
        if risk is not None and not within_trading_hours(risk.trading_hours, datetime.now(UTC)):
            return REJECT_OUTSIDE_HOURS
        if (signal.entry_min and price < signal.entry_min) or (signal.entry_max and price > signal.entry_max):
            return REJECT_OUTSIDE_RANGE  # 0 = no bound, as for SL/TP
        if settings is not None and settings.max_spread_points and quote.spread_points > settings.max_spread_points:
            return REJECT_SPREAD
        if risk is not None and risk.max_position_lots and volume > risk.max_position_lots:
            return REJECT_VOLUME
        return ""

    async def _close_by_signal(self, signal: binproto.TradingSignal) -> None:
        if signal.valid_until_us <= _now_us():
            self.counters.signals_rejected += 1
            await self._answer_signal(signal, AckStatus.REJECTED, REJECT_EXPIRED)
            return
        targets = [
            p
            for p in self.positions.values()
            if p.ticket == signal.ticket or (not signal.ticket and p.symbol == signal.symbol and p.signal_id)
        ]
        if not targets:
            self.counters.signals_rejected += 1
            await self._answer_signal(signal, AckStatus.REJECTED, FAIL_NO_POSITION)
            return
        self.counters.signals_executed += 1
        await self._answer_signal(signal, AckStatus.EXECUTED, "")
        for position in targets:
            await self._close_position(position, CloseReason.SIGNAL_CLOSE)
        await self._positions_changed()

    # --- positions ------------------------------------------------------------------------------------------------

    async def apply_quote(self, symbol: str, quote: Quote) -> None:
        """A new quote: remember it and close what hit its stop-loss or take-profit."""
        self.walk.quotes[symbol] = quote
        hits = [(p, r) for p in self.positions.values() if p.symbol == symbol and (r := stop_hit(p, quote))]
        for position, reason in hits:
            await self._close_position(position, reason)
        if hits:
            await self._positions_changed()

    async def set_quote(self, symbol: str, bid: float, ask: float) -> Quote:
        """Quote `symbol` at exactly `bid`/`ask` now, for scripted demos and tests (typically with
        `ticks_per_second=0`): like one tick of the stream, the quote is applied (positions that hit their SL or TP
        close) and sent as a price tick; the walk continues from its mid. Returns the quote."""
        if symbol not in self._symbol_index:
            raise ValueError(f"{symbol} is not one of this EA's symbols ({', '.join(self.config.symbols)})")
        if not 0 < bid <= ask:
            raise ValueError(f"a quote needs 0 < bid <= ask, got {bid}/{ask}")
        instrument = INSTRUMENTS[symbol]
        quote = Quote(bid, ask, round((ask - bid) / instrument.point))
        self.walk.mid[symbol] = (bid + ask) / 2
        await self.apply_quote(symbol, quote)
        await self._send_prices([(symbol, quote)])
        return quote

    async def _close_position(self, position: SimPosition, reason: CloseReason) -> None:
        price = exit_price(position, self.walk.quotes[position.symbol])
        profit = position_profit(position, price)
        close_commission = round(COMMISSION_PER_LOT_SIDE * position.volume, 2)
        self.positions.pop(position.ticket, None)
        self.balance += profit + close_commission
        self._realized_today += profit + 2 * close_commission
        self.counters.trades_closed += 1
        log.info(
            "EA closed ticket %d (%s) at %s, profit %.2f",
            position.ticket,
            reason.name.lower(),
            price,
            profit,
            extra=self._log,
        )
        seq, now_us = self._next_event()
        await self._emit(
            binproto.TradeClosed(
                event_seq=seq,
                ticket=position.ticket,
                order_type=position.order_type,
                volume=position.volume,
                open_price=position.open_price,
                close_price=price,
                stop_loss=position.stop_loss,
                take_profit=position.take_profit,
                signal_id=position.signal_id,
                open_time_us=position.open_time_us,
                close_time_us=now_us,
                profit=profit,
                commission=2 * close_commission,
                swap=0.0,
                close_reason=reason,
                symbol=position.symbol,
                timestamp_us=now_us,
            )
        )

    # --- commands -------------------------------------------------------------------------------------------------

    async def _on_command(self, command: binproto.Command) -> None:
        previous = self._command_acks.get(command.command_id)
        if previous is not None:
            self.counters.repeated_deliveries += 1
            await self._send(previous)
            return
        status, reason, code = AckStatus.EXECUTED, "", 0
        kind = command.command
        if kind == CommandType.CLOSE_ALL_POSITIONS:
            for position in list(self.positions.values()):
                await self._close_position(position, CloseReason.EXPERT)
            await self._positions_changed()
        elif kind in (CommandType.DISABLE_TRADING, CommandType.ENABLE_TRADING):
            self.trading_disabled = kind == CommandType.DISABLE_TRADING
        elif kind == CommandType.MODIFY_ORDER:
            status, reason, code = await self._modify(command)
        elif kind in (CommandType.RECONNECT, CommandType.RESTART_EA):
            self._reconnect_reason = kind.name.lower()  # after the ACK below, the read loop ends the session
        if status == AckStatus.EXECUTED:
            self.counters.commands_executed += 1
        else:
            self.counters.commands_failed += 1
        log.info("EA command %s: %s %s", kind.name, status.name.lower(), reason, extra=self._log)
        ack = self._ack(MsgType.COMMAND, ref_id=command.command_id, status=status, reason=reason, reason_code=code)
        self._command_acks.put(command.command_id, ack)
        await self._send(ack)

    async def _modify(self, command: binproto.Command) -> tuple[AckStatus, str, int]:
        position = self.positions.get(command.ticket)
        if position is None:
            return AckStatus.FAILED, FAIL_NO_POSITION, RETCODE_POSITION_NOT_FOUND
        position.stop_loss, position.take_profit = command.stop_loss, command.take_profit
        self.counters.trades_modified += 1
        seq, now_us = self._next_event()
        await self._emit(
            binproto.TradeModified(
                event_seq=seq,
                ticket=position.ticket,
                order_type=position.order_type,
                volume=position.volume,
                price=position.open_price,
                stop_loss=position.stop_loss,
                take_profit=position.take_profit,
                signal_id=position.signal_id,
                modify_time_us=now_us,
                symbol=position.symbol,
                timestamp_us=now_us,
            )
        )
        await self._positions_changed()
        return AckStatus.EXECUTED, "", 0


# --- many EAs in one process ------------------------------------------------------------------------------------


async def simulators_run(eas: list[SimulatedEA], *, duration_s: float | None = None) -> list[SimulatorCounters]:
    """Run every EA until `duration_s` passes or each is stopped (SIGINT/SIGTERM stop them all when set up by the
    caller with `SimulatedEA.stop`). One account per EA: the server keeps one session per account."""
    accounts = [ea.config.account_id for ea in eas]
    if len(set(accounts)) != len(accounts):
        raise ValueError("each simulated EA needs its own account (one live session per account)")
    return list(await asyncio.gather(*(ea.run(duration_s=duration_s) for ea in eas)))
