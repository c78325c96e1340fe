"""The agent: joins one MetaTrader 5 terminal (any `Terminal`) to Suho through an `EAClient`.

It streams the terminal's ticks, balance and equity, positions and trade events (each buy/sell deal becomes
TRADE_OPENED or TRADE_CLOSED with the MT5 position ticket, magic number and the signal it executed; an SL/TP change
becomes TRADE_MODIFIED), executes the signals it receives through the terminal and obeys commands. It refuses a
signal with the protocol's reasons (docs/protocol.md §8) when the price is outside the entry range, the signal has
expired, trading is disabled, or a risk parameter forbids it.

Never twice: an order carries the comment `<prefix>:<first hex digits of the signal id>` (MT5 comments are cut to as
little as 16 characters by some brokers, so the full id stays in the journal) and the magic number. The journal
(eaclient/journal.py) records the signal as SENDING before `order_send` and its outcome after; a signal found there
is answered from it and never sent again, across restarts too, and a SENDING entry left by a crash is settled from
the terminal's positions and deals before anything else happens.

The terminal is called from one worker thread (the MetaTrader5 package blocks on IPC with the terminal); the event
loop keeps serving the server meanwhile. A terminal that stops answering is reconnected with backoff while the
session with the server stays up (heartbeats say `terminal_connected` false); the server's restarts are the
EAClient's business (reconnect, resync, outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import binproto
from binproto import AckStatus, Action, CloseReason, CommandType, OrderType, SizingMethod
from eaclient.client import ClientConfig, EAClient, Handler, TerminalStatus, now_us
from eaclient.journal import DONE, FAILED, REJECTED, SENDING, UNKNOWN, Journal, KnownPosition, SignalEntry
from eaclient.simulated import (
    FAIL_NO_POSITION,
    REJECT_EMERGENCY_STOP,
    REJECT_EXPIRED,
    REJECT_OUTSIDE_HOURS,
    REJECT_OUTSIDE_RANGE,
    REJECT_SPREAD,
    REJECT_SYMBOL_NOT_ALLOWED,
    REJECT_TRADING_DISABLED,
    REJECT_UNKNOWN_SYMBOL,
    REJECT_VOLUME,
    within_trading_hours,
)
from eaclient.terminal import (
    RETCODE_POSITION_CLOSED,
    RETCODES_REQUOTE,
    AccountInfo,
    Deal,
    DealEntry,
    DealReason,
    OrderRequest,
    OrderResult,
    Position,
    SymbolInfo,
    Terminal,
    TerminalError,
    Tick,
)
from eaclient.trade_events import trade_closed, trade_modified, trade_opened

log = logging.getLogger(__name__)
T = TypeVar("T")

AGENT_VERSION = "suho-ea/0.1.0"
DEFAULT_MAGIC = 53100001
DEFAULT_COMMENT_PREFIX = "suho"
COMMENT_MAX = 16  # the shortest cut brokers are known to apply to order comments
REJECT_TERMINAL_DOWN = "terminal not connected"
REJECT_DAILY_LOSS = "daily loss limit reached"
REJECT_DRAWDOWN = "drawdown limit reached"
FAIL_OUTCOME_UNKNOWN = "order outcome unknown; it is not sent again"
SETTLE_WAIT_S = 10.0  # after an unanswered order_send: how long to look for the order in the terminal
LOOKBACK_US = 7 * 86400 * 1_000_000  # deal history read at the first start and to settle a crashed order
TERMINAL_BACKOFF_MAX_S = 30.0
WATCH_RETRY_S = 5.0  # after an unexpected failure reading the terminal
_DEAL_CLOSE_REASONS = {
    DealReason.SL: CloseReason.STOP_LOSS,
    DealReason.TP: CloseReason.TAKE_PROFIT,
    DealReason.SO: CloseReason.STOP_OUT,
    DealReason.EXPERT: CloseReason.EXPERT,
}


def order_comment(signal_id: UUID, prefix: str = DEFAULT_COMMENT_PREFIX) -> str:
    """The comment an order for `signal_id` carries: at most COMMENT_MAX characters."""
    prefix = (prefix or DEFAULT_COMMENT_PREFIX)[:5]
    return f"{prefix}:{signal_id.hex[: COMMENT_MAX - len(prefix) - 1]}"


@dataclass(frozen=True)
class AgentConfig:
    url: str
    account_id: UUID
    api_key: str = field(repr=False)
    state_dir: Path
    symbols: tuple[str, ...] = ("EURUSD",)
    magic: int = DEFAULT_MAGIC  # unless the server's CONFIG_UPDATE names one
    deviation_points: int = 10  # unless CONFIG_UPDATE's slippage_points says otherwise
    poll_interval_s: float = 0.25  # ticks, positions and deals are read this often
    balance_interval_s: float = 30.0
    heartbeat_interval_s: float = 30.0
    settle_wait_s: float = SETTLE_WAIT_S
    terminal_kind: str = "terminal"  # shown in the profile's settings: mt5 or simulated

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            url=self.url,
            account_id=self.account_id,
            api_key=self.api_key,
            outbox_path=str(self.state_dir / "outbox.sqlite3"),
            ea_version=AGENT_VERSION,
            balance_interval_s=self.balance_interval_s,
            heartbeat_interval_s=self.heartbeat_interval_s,
        )


class Agent(Handler):
    """`await run()` until `stop()`."""

    def __init__(self, config: AgentConfig, terminal: Terminal):
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.terminal = terminal
        self.journal = Journal(config.state_dir / "journal.sqlite3")
        self.client = EAClient(config.client_config(), self)
        self.symbol_info: dict[str, SymbolInfo] = {}
        self.last_tick: dict[str, Tick] = {}
        self.snapshot: dict[int, Position] = {}  # the positions last read
        self.account_info: AccountInfo | None = None
        self.terminal_up = False
        self.trade_allowed = True
        self.build = 0
        self._close_reasons: dict[int, CloseReason] = {}  # positions the agent closes itself, and why
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="terminal")
        self._watch_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._log = {"account_id": str(config.account_id)}

    @property
    def trading_disabled(self) -> bool:
        return self.journal.meta("trading_disabled") == "1"

    async def _call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """A terminal call on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args, **kwargs))

    # --- life cycle ---------------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self.client.stop()

    async def run(self) -> None:
        """Attach to the terminal, settle what a crash left, then serve the server until `stop()`."""
        self._stopping.clear()
        try:
            if not await self._terminal_attach():
                return
            await self._settle_crashed_orders()
            async with self._watch_lock:
                await self._watch_once()
            watcher = asyncio.create_task(self._watch_loop())
            try:
                await self.client.run()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.journal.close()
            self.client.outbox.close()

    async def _terminal_attach(self) -> bool:
        """Connect to the terminal, retrying with backoff; False if stopped first."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._call(self.terminal.connect)
                status = await self._call(self.terminal.status)
                infos = {name: await self._call(self.terminal.symbol, name) for name in self.config.symbols}
            except TerminalError as exc:
                log.warning("terminal unavailable: %s; retrying in %.0f s", exc, delay, extra=self._log)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                delay = min(delay * 2, TERMINAL_BACKOFF_MAX_S)
                continue
            missing = [name for name, info in infos.items() if info is None]
            if missing:
                log.warning("the broker has no symbol(s) %s: not streamed", ", ".join(missing), extra=self._log)
            self.symbol_info = {name: info for name, info in infos.items() if info is not None}
            self.terminal_up, self.trade_allowed, self.build = True, status.trade_allowed, status.build
            log.info(
                "terminal attached (build %d, trading %s)",
                status.build,
                "allowed" if status.trade_allowed else "NOT allowed",
                extra=self._log,
            )
            return True
        return False

    async def _terminal_lost(self, exc: TerminalError) -> None:
        if self.terminal_up:
            log.warning("terminal connection lost: %s", exc, extra=self._log)
        self.terminal_up = False
        await self._terminal_attach()

    # --- what the EAClient asks for -----------------------------------------------------------------------------

    def symbols(self) -> dict[str, int]:
        return {name: info.digits for name, info in self.symbol_info.items()}

    def status(self) -> TerminalStatus:
        return TerminalStatus(terminal_connected=self.terminal_up, trade_allowed=self.trade_allowed)

    def profile(self) -> binproto.AccountProfile | None:
        account = self.account_info
        if account is None:
            return None
        settings = (
            ("agent", AGENT_VERSION),
            ("terminal", self.config.terminal_kind),
            ("symbols", ",".join(self.symbol_info)[:255]),
        )
        return binproto.AccountProfile(
            login=account.login,
            account_type=account.account_type,
            leverage=account.leverage,
            mt5_build=self.build,
            broker=_label(account.company),
            server=_label(account.server),
            currency=_label(account.currency),
            ea_version=AGENT_VERSION,
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
                profit=p.profit,
                symbol=p.symbol,
            )
            for p in list(self.snapshot.values())[: binproto.MAX_POSITIONS]
        ]

    def finance(self) -> binproto.AccountFinance | None:
        account = self.account_info
        if account is None:
            return None
        max_balance = max(float(self.journal.meta("max_balance") or 0.0), account.balance)
        self.journal.meta_set("max_balance", repr(max_balance))
        return binproto.AccountFinance(
            balance=account.balance,
            equity=account.equity,
            margin=max(0.0, account.margin),
            margin_free=account.margin_free,
            margin_level=max(0.0, account.margin_level),
            floating_pnl=account.profit,
            daily_pnl=round(self._daily_pnl(account), 2),
            drawdown_pct=round(_drawdown_pct(account.equity, max_balance), 4),
            max_balance=max_balance,
            open_positions=len(self.snapshot),
            pending_orders=0,
            timestamp_us=now_us(),
        )

    def _daily_pnl(self, account: AccountInfo) -> float:
        """Equity now minus the first balance seen today (UTC)."""
        today = datetime.now(UTC).date().isoformat()
        stored = (self.journal.meta("day_start") or "").split("|")
        if stored[0] != today:
            self.journal.meta_set("day_start", f"{today}|{account.balance!r}")
            return account.profit
        return account.equity - float(stored[1])

    async def stream(self, client: EAClient) -> None:
        """Prices: every poll, each symbol's newest tick since the last one sent."""
        while True:
            if self.terminal_up:
                batch = []
                try:
                    for name, info in self.symbol_info.items():
                        last = self.last_tick.get(name)
                        ticks = await self._call(self.terminal.ticks_since, name, last.time_us if last else 0)
                        if ticks:
                            tick = self.last_tick[name] = ticks[-1]
                            batch.append((name, tick.bid, tick.ask, max(0, round((tick.ask - tick.bid) / info.point))))
                except TerminalError:
                    pass  # the watch loop notices and reattaches
                if batch:
                    await client.send_prices(batch)
            await asyncio.sleep(self.config.poll_interval_s)

    # --- watching the terminal: trade events ----------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            try:
                async with self._watch_lock:
                    await self._watch_once()
            except TerminalError as exc:
                await self._terminal_lost(exc)
            except Exception:  # one bad read must not end the watching: logged, tried again
                log.exception("watching the terminal failed; trying again", extra=self._log)
                await asyncio.sleep(WATCH_RETRY_S)

    async def _watch_once(self) -> None:
        """Read account, positions and new deals; emit the trade events they imply; POSITIONS on change. Call with
        `_watch_lock` held (one reader at a time: a deal is reported once)."""
        status = await self._call(self.terminal.status)
        self.account_info = await self._call(self.terminal.account)
        positions = {p.ticket: p for p in await self._call(self.terminal.positions)}
        self.trade_allowed, self.build = status.trade_allowed, status.build
        first_start = self.journal.meta("deal_watermark_us") is None
        since = now_us() - LOOKBACK_US if first_start else int(self.journal.meta("deal_watermark_us") or 0)
        deals = [d for d in await self._call(self.terminal.deals_since, since) if not self.journal.deal_seen(d.ticket)]
        previous, self.snapshot = self.snapshot, positions
        if first_start:  # history from before this agent: known, not reported
            self.journal.deals_mark_seen([d.ticket for d in deals])
            for position in positions.values():
                self.journal.position_keep(
                    _known(position, self._signal_of(position.ticket, position.comment, position.magic))
                )
            self.journal.meta_set("deal_watermark_us", str(max([d.time_us for d in deals], default=now_us())))
            return
        changed = set(previous) != set(positions)
        for deal in deals:
            await self._report_deal(deal, positions, previous)
            self.journal.deals_mark_seen([deal.ticket])
            self.journal.meta_set("deal_watermark_us", str(deal.time_us))
        for ticket, position in positions.items():
            known = self.journal.position(ticket)
            if known is not None and (known.stop_loss, known.take_profit) != (position.stop_loss, position.take_profit):
                await self._report_modified(position, known)
                changed = True
        if changed or deals:
            await self.client.positions_changed()

    def _signal_of(self, ticket: int, comment: str, magic: int) -> UUID | None:
        entry = self.journal.signal_by_ticket(ticket) or self.journal.signal_by_comment(comment, magic)
        return entry.signal_id if entry is not None else None

    async def _report_deal(self, deal: Deal, positions: dict[int, Position], previous: dict[int, Position]) -> None:
        seq = self.client.outbox.next_seq()
        if deal.entry == DealEntry.IN:
            position = positions.get(deal.position_ticket)
            signal_id = self._signal_of(deal.position_ticket, deal.comment, deal.magic)
            known = KnownPosition(
                ticket=deal.position_ticket,
                signal_id=signal_id,
                symbol=deal.symbol,
                order_type=deal.order_type,
                volume=deal.volume,
                open_price=deal.price,
                stop_loss=position.stop_loss if position else 0.0,
                take_profit=position.take_profit if position else 0.0,
                open_time_us=deal.time_us,
                magic=deal.magic,
            )
            self.journal.position_keep(known)
            log.info(
                "position %d opened: %s %s %.2f @ %s%s",
                known.ticket,
                known.order_type.name,
                known.symbol,
                known.volume,
                known.open_price,
                f" for signal {signal_id}" if signal_id else "",
                extra=self._log,
            )
            await self.client.emit(
                trade_opened(known, event_seq=seq, commission=deal.commission, timestamp_us=now_us())
            )
            return
        if deal.entry not in (DealEntry.OUT, DealEntry.OUT_BY):
            log.warning(
                "deal %d (%s) not reported: reversals are not supported", deal.ticket, deal.entry.name, extra=self._log
            )
            return
        stored = self.journal.position(deal.position_ticket)
        before = previous.get(deal.position_ticket)
        if stored is not None:
            known = stored
        else:  # opened before the agent knew it: what the last snapshot said
            known = KnownPosition(
                ticket=deal.position_ticket,
                signal_id=None,
                symbol=deal.symbol,
                order_type=OrderType(1 - int(deal.order_type)),
                volume=deal.volume,
                open_price=before.open_price if before else deal.price,
                stop_loss=before.stop_loss if before else 0.0,
                take_profit=before.take_profit if before else 0.0,
                open_time_us=before.open_time_us if before else deal.time_us,
                magic=deal.magic,
            )
        reason = self._close_reasons.pop(deal.position_ticket, None) or _DEAL_CLOSE_REASONS.get(
            deal.reason, CloseReason.MANUAL
        )
        log.info(
            "position %d closed (%s) @ %s, profit %.2f",
            known.ticket,
            reason.name.lower(),
            deal.price,
            deal.profit,
            extra=self._log,
        )
        closed = trade_closed(known, event_seq=seq, volume=deal.volume, close_price=deal.price,
                              close_time_us=deal.time_us, profit=deal.profit, commission=deal.commission,
                              swap=deal.swap, reason=reason, timestamp_us=now_us())  # fmt: skip
        await self.client.emit(closed)

    async def _report_modified(self, position: Position, known: KnownPosition) -> None:
        updated = KnownPosition(
            **{**known.__dict__, "stop_loss": position.stop_loss, "take_profit": position.take_profit}
        )
        self.journal.position_keep(updated)
        log.info(
            "position %d modified: SL %s TP %s",
            position.ticket,
            position.stop_loss,
            position.take_profit,
            extra=self._log,
        )
        modified = trade_modified(position, signal_id=known.signal_id, event_seq=self.client.outbox.next_seq(),
                                  modify_time_us=now_us(), timestamp_us=now_us())  # fmt: skip
        await self.client.emit(modified)

    # --- signals ------------------------------------------------------------------------------------------------

    async def on_signal(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        async with self._watch_lock:  # the answer goes out before the TRADE_OPENED the watcher reports
            entry = self.journal.signal(signal.signal_id)
            if entry is not None and entry.state == SENDING:
                entry = await self._settle(entry, final=True)
            if entry is not None and entry.ack_status is not None:
                log.info(
                    "signal %s delivered again: answered %s as before (%s)",
                    signal.signal_id,
                    entry.ack_status.name,
                    entry.state,
                    extra=self._log,
                )
                await client.answer(signal, entry.ack_status, entry.reason, entry.reason_code)
                return
            if signal.action == Action.CLOSE:
                await self._close_by_signal(client, signal)
            else:
                await self._execute(client, signal)
        with contextlib.suppress(TerminalError):
            async with self._watch_lock:
                await self._watch_once()

    async def _refuse(self, client: EAClient, signal: binproto.TradingSignal, reason: str) -> None:
        self.journal.answered(
            signal.signal_id, state=REJECTED, ack_status=AckStatus.REJECTED, reason=reason, now_us=now_us()
        )
        log.info("signal %s refused: %s", signal.signal_id, reason, extra=self._log)
        await client.answer(signal, AckStatus.REJECTED, reason)

    async def _execute(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        info = self.symbol_info.get(signal.symbol)
        tick: Tick | None = None
        if self.terminal_up and info is not None:
            try:
                ticks = await self._call(self.terminal.ticks_since, signal.symbol, 0)
                tick = ticks[-1] if ticks else self.last_tick.get(signal.symbol)
            except TerminalError:
                tick = None
        reason = self._refusal(signal, info, tick)
        if reason or info is None or tick is None:
            await self._refuse(client, signal, reason or REJECT_TERMINAL_DOWN)
            return
        price = tick.ask if signal.action == Action.BUY else tick.bid
        volume = self._volume(signal, info, price)
        risk = client.risk
        if volume < info.volume_min or (
            risk is not None and risk.max_position_lots and volume > risk.max_position_lots
        ):
            await self._refuse(client, signal, REJECT_VOLUME)
            return
        settings = client.settings
        magic = settings.magic if settings is not None and settings.magic else self.config.magic
        comment = order_comment(signal.signal_id, settings.comment_prefix if settings is not None else "")
        request = OrderRequest(
            symbol=signal.symbol,
            order_type=OrderType.BUY if signal.action == Action.BUY else OrderType.SELL,
            volume=volume,
            price=price,
            stop_loss=round(signal.stop_loss, info.digits),
            take_profit=round(signal.take_profit, info.digits),
            deviation_points=settings.slippage_points
            if settings is not None and settings.slippage_points
            else self.config.deviation_points,
            magic=magic,
            comment=comment,
        )
        self.journal.sending(signal.signal_id, comment=comment, magic=magic, now_us=now_us())  # write-ahead
        log.info(
            "signal %s: sending %s %s %.2f @ %s (SL %s TP %s, comment %s)",
            signal.signal_id,
            request.order_type.name,
            request.symbol,
            volume,
            price,
            request.stop_loss,
            request.take_profit,
            comment,
            extra=self._log,
        )
        result = await self._send(request)
        if result is not None and result.retcode in RETCODES_REQUOTE:
            result = await self._requote(signal, request, result)
        if result is not None and result.ok:
            await self._executed(client, signal, result.position_ticket)
            return
        if result is None or result.outcome_unknown:
            entry = self.journal.signal(signal.signal_id)
            settled = await self._settle(entry, final=True) if entry is not None else None
            if settled is not None and settled.state == DONE:
                await self._executed(client, signal, settled.ticket)
                return
            code = result.retcode if result is not None else 0
            log.error("signal %s: %s (retcode %d)", signal.signal_id, FAIL_OUTCOME_UNKNOWN, code, extra=self._log)
            await client.answer(signal, AckStatus.FAILED, FAIL_OUTCOME_UNKNOWN, code)
            return
        self.journal.answered(
            signal.signal_id,
            state=FAILED,
            ack_status=AckStatus.FAILED,
            reason=result.comment[:255],
            reason_code=result.retcode,
            now_us=now_us(),
        )
        log.warning(
            "signal %s: the terminal refused the order: %s (retcode %d)",
            signal.signal_id,
            result.comment,
            result.retcode,
            extra=self._log,
        )
        await client.answer(signal, AckStatus.FAILED, result.comment[:255], result.retcode)

    async def _send(self, request: OrderRequest) -> OrderResult | None:
        try:
            return await self._call(self.terminal.send_order, request)
        except TerminalError as exc:
            log.warning("order_send failed: %s", exc, extra=self._log)
            return None  # unknown: settled from the terminal

    async def _requote(
        self, signal: binproto.TradingSignal, request: OrderRequest, first: OrderResult
    ) -> OrderResult | None:
        """One more try at a fresh price, if it is still inside the entry range."""
        try:
            ticks = await self._call(self.terminal.ticks_since, request.symbol, 0)
        except TerminalError:
            return first
        if not ticks:
            return first
        price = ticks[-1].ask if request.order_type == OrderType.BUY else ticks[-1].bid
        if (signal.entry_min and price < signal.entry_min) or (signal.entry_max and price > signal.entry_max):
            return first
        log.info("signal %s: requote (%d), retrying at %s", signal.signal_id, first.retcode, price, extra=self._log)
        return await self._send(OrderRequest(**{**request.__dict__, "price": price}))

    async def _executed(self, client: EAClient, signal: binproto.TradingSignal, ticket: int) -> None:
        self.journal.answered(
            signal.signal_id, state=DONE, ack_status=AckStatus.EXECUTED, ticket=ticket, now_us=now_us()
        )
        log.info("signal %s executed: position %d", signal.signal_id, ticket, extra=self._log)
        await client.answer(signal, AckStatus.EXECUTED)

    def _refusal(self, signal: binproto.TradingSignal, info: SymbolInfo | None, tick: Tick | None) -> str:
        risk, settings = self.client.risk, self.client.settings
        if signal.valid_until_us <= now_us():  # by the agent's own clock
            return REJECT_EXPIRED
        if risk is not None and risk.emergency_stop:
            return REJECT_EMERGENCY_STOP
        if self.trading_disabled or (risk is not None and not risk.trading_enabled) or not self.trade_allowed:
            return REJECT_TRADING_DISABLED
        if not self.terminal_up:
            return REJECT_TERMINAL_DOWN
        if info is None or tick is None or not info.tradeable:
            return REJECT_UNKNOWN_SYMBOL
        if risk is not None and risk.allowed_symbols and signal.symbol not in risk.allowed_symbols:
            return REJECT_SYMBOL_NOT_ALLOWED
        if risk is not None and not within_trading_hours(risk.trading_hours, datetime.now(UTC)):
            return REJECT_OUTSIDE_HOURS
        account = self.account_info
        if risk is not None and account is not None:
            if risk.max_daily_loss and self._daily_pnl(account) <= -risk.max_daily_loss:
                return REJECT_DAILY_LOSS
            max_balance = max(float(self.journal.meta("max_balance") or 0.0), account.balance)
            if risk.max_drawdown_pct and _drawdown_pct(account.equity, max_balance) >= risk.max_drawdown_pct:
                return REJECT_DRAWDOWN
        price = tick.ask if signal.action == Action.BUY else tick.bid
        if (signal.entry_min and price < signal.entry_min) or (signal.entry_max and price > signal.entry_max):
            return REJECT_OUTSIDE_RANGE
        spread_points = round((tick.ask - tick.bid) / info.point)
        if settings is not None and settings.max_spread_points and spread_points > settings.max_spread_points:
            return REJECT_SPREAD
        return ""

    def _volume(self, signal: binproto.TradingSignal, info: SymbolInfo, price: float) -> float:
        """Fixed lots, or the lots whose stop-loss loses `risk_percent` of equity; down to the symbol's volume step."""
        volume = signal.volume
        if signal.sizing_method == SizingMethod.RISK_PERCENT and signal.stop_loss and price and self.account_info:
            loss_per_lot = abs(price - signal.stop_loss) * info.contract_size
            if signal.symbol.startswith("USD"):
                loss_per_lot /= price
            volume = self.account_info.equity * signal.risk_percent / 100 / loss_per_lot if loss_per_lot else 0.0
        steps = math.floor(round(volume / info.volume_step, 6))
        return round(min(steps * info.volume_step, info.volume_max), 8)

    async def _close_by_signal(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        if signal.valid_until_us <= now_us():
            await self._refuse(client, signal, REJECT_EXPIRED)
            return
        targets = [
            p
            for p in self.snapshot.values()
            if p.ticket == signal.ticket
            or (not signal.ticket and p.symbol == signal.symbol and self._signal_of(p.ticket, p.comment, p.magic))
        ]
        if not targets:
            await self._refuse(client, signal, FAIL_NO_POSITION)
            return
        failed = await self._close_all(targets, CloseReason.SIGNAL_CLOSE)
        status = AckStatus.FAILED if failed else AckStatus.EXECUTED
        self.journal.answered(
            signal.signal_id,
            state=FAILED if failed else DONE,
            ack_status=status,
            reason=failed.comment[:255] if failed else "",
            reason_code=failed.retcode if failed else 0,
            now_us=now_us(),
        )
        await client.answer(signal, status, failed.comment[:255] if failed else "", failed.retcode if failed else 0)

    async def _close_all(self, positions: list[Position], reason: CloseReason) -> OrderResult | None:
        """Close each position; the last refusal, or None when all closed."""
        failed = None
        for position in positions:
            self._close_reasons[position.ticket] = reason
            try:
                result = await self._call(self.terminal.close_position, position.ticket, magic=position.magic)
            except TerminalError as exc:
                result = OrderResult(retcode=0, comment=str(exc))
            if not result.ok and result.retcode != RETCODE_POSITION_CLOSED:
                self._close_reasons.pop(position.ticket, None)
                failed = result
            log.info(
                "closing position %d (%s): %s",
                position.ticket,
                reason.name.lower(),
                "done" if result.ok else result.comment,
                extra=self._log,
            )
        return failed

    # --- settling an order whose answer was lost ------------------------------------------------------------------

    async def _settle_crashed_orders(self) -> None:
        for entry in self.journal.signals_in(SENDING):
            await self._settle(entry, final=False)

    async def _settle(self, entry: SignalEntry, *, final: bool) -> SignalEntry | None:
        """Look for the order of a SENDING entry in the terminal (by comment and magic). Found: DONE with its
        position. Not found: after a live `order_send` without answer (`final`) the outcome stays unknown and is
        recorded so (never sent again); after a crash, once `settle_wait_s` has passed since it was sent, the order
        never left, so the entry is forgotten and a later delivery of the signal is judged afresh."""
        wait_us = int(self.config.settle_wait_s * 1_000_000)
        # A live order_send: wait from now. After a crash: from when it was sent (a terminal may still execute an
        # order it received just before the agent died).
        deadline_us = now_us() + wait_us if final else entry.created_us + wait_us
        while True:
            try:
                ticket = await self._find_order(entry)
            except TerminalError:
                ticket = None
            if ticket:
                self.journal.answered(
                    entry.signal_id, state=DONE, ack_status=AckStatus.EXECUTED, ticket=ticket, now_us=now_us()
                )
                log.info(
                    "signal %s: its order was found in the terminal (position %d)",
                    entry.signal_id,
                    ticket,
                    extra=self._log,
                )
                return self.journal.signal(entry.signal_id)
            if now_us() >= deadline_us:
                break
            await asyncio.sleep(min(0.5, self.config.poll_interval_s))
        if final:
            self.journal.answered(
                entry.signal_id,
                state=UNKNOWN,
                ack_status=AckStatus.FAILED,
                reason=FAIL_OUTCOME_UNKNOWN,
                now_us=now_us(),
            )
            return self.journal.signal(entry.signal_id)
        log.info("signal %s: no order of it in the terminal; it was never sent", entry.signal_id, extra=self._log)
        self.journal.forget(entry.signal_id)
        return None

    async def _find_order(self, entry: SignalEntry) -> int | None:
        for position in await self._call(self.terminal.positions):
            if _same_order(position.comment, position.magic, entry):
                return position.ticket
        for deal in await self._call(self.terminal.deals_since, entry.created_us - LOOKBACK_US):
            if deal.entry == DealEntry.IN and _same_order(deal.comment, deal.magic, entry):
                return deal.position_ticket
        return None

    # --- commands -----------------------------------------------------------------------------------------------

    async def on_command(self, client: EAClient, command: binproto.Command) -> None:
        kind = command.command
        status, reason, code = AckStatus.EXECUTED, "", 0
        if kind == CommandType.CLOSE_ALL_POSITIONS:
            try:
                positions = await self._call(self.terminal.positions)
            except TerminalError as exc:
                positions, status, reason = [], AckStatus.FAILED, str(exc)[:255]
            failed = await self._close_all(positions, CloseReason.EXPERT)
            if failed is not None:
                status, reason, code = AckStatus.FAILED, failed.comment[:255], failed.retcode
        elif kind in (CommandType.DISABLE_TRADING, CommandType.ENABLE_TRADING):
            self.journal.meta_set("trading_disabled", "1" if kind == CommandType.DISABLE_TRADING else "0")
            log.info(
                "trading %s by the server",
                "disabled" if kind == CommandType.DISABLE_TRADING else "enabled",
                extra=self._log,
            )
        elif kind == CommandType.MODIFY_ORDER:
            try:
                result = await self._call(
                    self.terminal.modify_position,
                    command.ticket,
                    stop_loss=command.stop_loss,
                    take_profit=command.take_profit,
                )
            except TerminalError as exc:
                result = OrderResult(retcode=0, comment=str(exc))
            if not result.ok:
                status, reason, code = AckStatus.FAILED, result.comment[:255] or FAIL_NO_POSITION, result.retcode
        await client.answer(command, status, reason, code)
        with contextlib.suppress(TerminalError):
            async with self._watch_lock:
                await self._watch_once()


def _same_order(comment: str, magic: int, entry: SignalEntry) -> bool:
    """The order an entry wrote down: same magic, and the comment (a broker may have cut it, never below 10)."""
    return (
        magic == entry.magic
        and bool(comment)
        and (comment == entry.comment or (len(comment) >= 10 and entry.comment.startswith(comment)))
    )


def _known(position: Position, signal_id: UUID | None) -> KnownPosition:
    return KnownPosition(
        ticket=position.ticket,
        signal_id=signal_id,
        symbol=position.symbol,
        order_type=position.order_type,
        volume=position.volume,
        open_price=position.open_price,
        stop_loss=position.stop_loss,
        take_profit=position.take_profit,
        open_time_us=position.open_time_us,
        magic=position.magic,
    )


def _drawdown_pct(equity: float, max_balance: float) -> float:
    return max(0.0, (max_balance - equity) / max_balance * 100) if max_balance > 0 else 0.0


def _label(text: str) -> str:
    return text.encode()[: binproto.MAX_LABEL_BYTES].decode(errors="ignore")
