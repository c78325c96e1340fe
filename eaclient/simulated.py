"""The simulated MetaTrader 5 side: a seeded market, a USD broker account, and the EA that trades it over Suho.

`SimulatedEA` is the reference EA: an `EAClient` (eaclient/client.py: the protocol) whose handler is a simulated
terminal. It streams ticks from a seeded random walk, reports finance and positions, executes the signals it
receives against its own quote (the protocol's rejection rules), watches stop-loss and take-profit, and obeys
commands. It is the gateway's test double, the load generator (`simulators_run` runs many in one process) and
`make run`'s live demo (`python -m eaclient.simulate`). Money is simple on purpose: USD accounts, one contract size
per instrument, P&L of USD-based pairs converted at the close price.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import binproto
from binproto import AckStatus, Action, CloseReason, CommandType, OrderType
from eaclient.client import V1_IDS, ClientConfig, ClientCounters, EAClient, Handler, TerminalStatus, clients_run, now_us
from eaclient.market import DemoMarket
from eaclient.outbox import TradeEvent
from eaclient.trade_events import trade_closed, trade_modified, trade_opened

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
UNSUPPORTED_COMMAND = "command not supported"

MAX_FRAMES_PER_S = 50  # price frames per connection (the server allows 500 frames/s); faster rates batch ticks
COMMISSION_PER_LOT_SIDE = -3.5  # USD, charged at open and again at close


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


class MarketQuotes:
    """The broker's side of the demo market (eaclient/market.py): what `make run`'s reference feed quotes, plus this
    broker's offset, spread and jitter, at the moment of each step. Same interface as PriceWalk."""

    def __init__(self, symbols: Iterable[str], market: DemoMarket):
        self.market = market
        self.quotes = {s: self.step(s) for s in symbols}
        self.mid = {s: (q.bid + q.ask) / 2 for s, q in self.quotes.items()}  # what set_quote moves; the market wins

    def step(self, symbol: str) -> Quote:
        return Quote(*self.market.broker(symbol, time.time()))


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
    outbox_path: str | None = None  # sqlite3 file (eaclient/outbox.py); None: in memory
    market_turn_at: float | None = None  # quote the demo market turned then (unix s), not a random walk (`make run`)
    max_hold_s: float | None = None  # close a position this long after it opened (the demo's timed close)

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

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            url=self.url,
            account_id=self.account_id,
            api_key=self.api_key,
            price_protocol=self.protocol_version,
            balance_interval_s=self.balance_interval_s,
            heartbeat_interval_s=self.heartbeat_interval_s,
            network_timeout_s=self.network_timeout_s,
            event_retry_s=self.event_retry_s,
            max_backoff_s=self.max_backoff_s,
            outbox_path=self.outbox_path,
            ea_version=self.ea_version,
            mt5_build=self.mt5_build,
        )


@dataclass
class SimulatorCounters(ClientCounters):
    trades_opened: int = 0
    trades_closed: int = 0
    trades_modified: int = 0


# --- the EA -----------------------------------------------------------------------------------------------------


class SimulatedEA(Handler):
    """One simulated EA: the terminal behind an `EAClient`. `await run()` until `stop()` (or `duration_s`);
    `counters` tell what happened (the client's and the broker's in one)."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.counters = SimulatorCounters()
        self.client = EAClient(config.client_config(), self, counters=self.counters)
        if config.market_turn_at is None:
            self.walk: PriceWalk | MarketQuotes = PriceWalk(config.symbols, config.seed)
        else:
            self.walk = MarketQuotes(config.symbols, DemoMarket(turn_at=config.market_turn_at))
        self.positions: dict[int, SimPosition] = {}
        self.balance = config.starting_balance
        self.max_balance = config.starting_balance
        self.trading_disabled = False  # by DISABLE_TRADING, until ENABLE_TRADING
        self._ticket = now_us()  # tickets must grow across restarts (the server deduplicates on them)
        self._realized_today, self._day = 0.0, datetime.now(UTC).date()
        self._log = {"account_id": str(config.account_id)}

    # --- the client's life cycle, for callers that hold the EA ------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def session_id(self) -> UUID | None:
        return self.client.session_id

    @property
    def risk(self) -> binproto.RiskParameters | None:
        return self.client.risk

    @property
    def settings(self) -> binproto.ConfigUpdate | None:
        return self.client.settings

    def unacknowledged(self) -> list[TradeEvent]:
        return self.client.unacknowledged()

    def last_ack(self, ref_id: UUID) -> binproto.Ack | None:
        return self.client.last_ack(ref_id)

    def stop(self) -> None:
        self.client.stop()

    async def run(self, *, duration_s: float | None = None) -> SimulatorCounters:
        await self.client.run(duration_s=duration_s)
        return self.counters

    async def handle(self, message) -> None:
        await self.client.handle(message)

    async def token_refresh(self) -> bool:
        return await self.client.token_refresh()

    # --- what the client asks the terminal ----------------------------------------------------------------------

    def symbols(self) -> dict[str, int]:
        return {s: INSTRUMENTS[s].digits for s in self.config.symbols}

    def profile(self) -> binproto.AccountProfile:
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
            timestamp_us=now_us(),
        )

    def open_positions(self) -> list[binproto.Position]:
        return [
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
            for p in self.positions.values()
        ]

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
            timestamp_us=now_us(),
        )

    def status(self) -> TerminalStatus:
        return TerminalStatus(terminal_connected=True, trade_allowed=not self.trading_disabled)

    async def stream(self, client: EAClient) -> None:
        """The price stream while a session is live: every symbol steps `ticks_per_second` times a second, in at
        most MAX_FRAMES_PER_S frames (faster rates put several ticks of a symbol in one frame)."""
        if self.config.ticks_per_second <= 0:
            await asyncio.Event().wait()
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
        await self.client.send_prices((s, q.bid, q.ask, q.spread_points) for s, q in ticks)

    # --- signals --------------------------------------------------------------------------------------------------

    async def on_signal(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        if signal.action == Action.CLOSE:
            await self._close_by_signal(signal)
            return
        quote = self.walk.quotes.get(signal.symbol)
        price = (quote.ask if signal.action == Action.BUY else quote.bid) if quote else 0.0
        volume = self._signal_volume(signal, price)
        reason = self._signal_refusal(signal, quote, price, volume)
        if reason:
            await client.answer(signal, AckStatus.REJECTED, reason)
            log.info("EA rejected signal %s: %s", signal.signal_id, reason, extra=self._log)
            return
        await client.answer(signal, AckStatus.EXECUTED)
        seq, opened_us = client.outbox.next_seq(), now_us()
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
            open_time_us=opened_us,
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
        await client.emit(trade_opened(position, event_seq=seq, commission=commission, timestamp_us=opened_us))
        await client.positions_changed()

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
        if signal.valid_until_us <= now_us():  # by the EA's own clock
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
        if signal.valid_until_us <= now_us():
            await self.client.answer(signal, AckStatus.REJECTED, REJECT_EXPIRED)
            return
        targets = [
            p
            for p in self.positions.values()
            if p.ticket == signal.ticket or (not signal.ticket and p.symbol == signal.symbol and p.signal_id)
        ]
        if not targets:
            await self.client.answer(signal, AckStatus.REJECTED, FAIL_NO_POSITION)
            return
        await self.client.answer(signal, AckStatus.EXECUTED)
        for position in targets:
            await self._close_position(position, CloseReason.SIGNAL_CLOSE)
        await self.client.positions_changed()

    # --- positions ------------------------------------------------------------------------------------------------

    async def apply_quote(self, symbol: str, quote: Quote) -> None:
        """A new quote: remember it and close what hit its stop-loss or take-profit, or was held max_hold_s."""
        self.walk.quotes[symbol] = quote
        hits = [(p, r) for p in self.positions.values() if p.symbol == symbol and (r := stop_hit(p, quote))]
        if self.config.max_hold_s is not None:
            opened_before_us = now_us() - self.config.max_hold_s * 1e6
            closing = {p.ticket for p, _ in hits}
            hits += [
                (p, CloseReason.EXPERT)
                for p in self.positions.values()
                if p.symbol == symbol and p.open_time_us <= opened_before_us and p.ticket not in closing
            ]
        for position, reason in hits:
            await self._close_position(position, reason)
        if hits:
            await self.client.positions_changed()

    async def set_quote(self, symbol: str, bid: float, ask: float) -> Quote:
        """Quote `symbol` at exactly `bid`/`ask` now, for scripted demos and tests (typically with
        `ticks_per_second=0`): like one tick of the stream, the quote is applied (positions that hit their SL or TP
        close) and sent as a price tick; the walk continues from its mid. Returns the quote."""
        if symbol not in self.config.symbols:
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
        seq, closed_us = self.client.outbox.next_seq(), now_us()
        closed = trade_closed(position, event_seq=seq, volume=position.volume, close_price=price,
                              close_time_us=closed_us, profit=profit, commission=2 * close_commission, swap=0.0,
                              reason=reason, timestamp_us=closed_us)  # fmt: skip
        await self.client.emit(closed)

    # --- commands (RECONNECT and RESTART_EA are the client's) -----------------------------------------------------

    async def on_command(self, client: EAClient, command: binproto.Command) -> None:
        kind = command.command
        if kind == CommandType.CLOSE_ALL_POSITIONS:
            for position in list(self.positions.values()):
                await self._close_position(position, CloseReason.EXPERT)
            await client.positions_changed()
        elif kind in (CommandType.DISABLE_TRADING, CommandType.ENABLE_TRADING):
            self.trading_disabled = kind == CommandType.DISABLE_TRADING
        elif kind == CommandType.MODIFY_ORDER:
            await client.answer(command, *await self._modify(command))
            return
        else:
            await client.answer(command, AckStatus.FAILED, UNSUPPORTED_COMMAND)
            return
        await client.answer(command, AckStatus.EXECUTED)

    async def _modify(self, command: binproto.Command) -> tuple[AckStatus, str, int]:
        position = self.positions.get(command.ticket)
        if position is None:
            return AckStatus.FAILED, FAIL_NO_POSITION, RETCODE_POSITION_NOT_FOUND
        position.stop_loss, position.take_profit = command.stop_loss, command.take_profit
        self.counters.trades_modified += 1
        seq, modified_us = self.client.outbox.next_seq(), now_us()
        modified = trade_modified(position, signal_id=position.signal_id, event_seq=seq, modify_time_us=modified_us,
                                  timestamp_us=modified_us)  # fmt: skip
        await self.client.emit(modified)
        await self.client.positions_changed()
        return AckStatus.EXECUTED, "", 0


# --- many EAs in one process ------------------------------------------------------------------------------------


async def simulators_run(eas: list[SimulatedEA], *, duration_s: float | None = None) -> list[SimulatorCounters]:
    """Run every EA until `duration_s` passes or each is stopped (SIGINT/SIGTERM stop them all when set up by the
    caller with `SimulatedEA.stop`). One account per EA: the server keeps one session per account."""
    await clients_run([ea.client for ea in eas], duration_s=duration_s)
    return [ea.counters for ea in eas]
