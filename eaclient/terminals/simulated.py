"""`SimulatedTerminal`: the Terminal interface over the simulated market and broker of eaclient/simulated.py, for
tests, demos and trying the agent without MetaTrader 5.

It behaves like a terminal the agent does not own: prices move with time (a seeded walk, `ticks_per_second` per
symbol, stepped when asked for ticks), orders fill at the current ask/bid within the request's deviation (else
REQUOTE), stop-loss and take-profit close positions as a broker would (deals with reason SL/TP), and every deal is
in the history. Given `state_path`, its account (balance, positions, deals, ticket counter) lives in a JSON file
written after every change, so it outlives the agent process as a real terminal does: a killed and restarted agent
finds the orders it sent. `order_delay_s` makes `send_order` answer only that long after the order was executed
(a slow terminal: the window in which a crash leaves the outcome unknown). Thread-safe: tests script it
(`set_quote`, `disconnect`) while the agent calls it from its worker thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from binproto import AccountType, CloseReason, OrderType
from eaclient.simulated import (
    COMMISSION_PER_LOT_SIDE,
    DEFAULT_SYMBOLS,
    INSTRUMENTS,
    PriceWalk,
    Quote,
    SimPosition,
    exit_price,
    position_margin,
    position_profit,
    stop_hit,
)
from eaclient.terminal import (
    RETCODE_CONNECTION,
    RETCODE_DONE,
    RETCODE_NO_MONEY,
    RETCODE_POSITION_CLOSED,
    RETCODE_REQUOTE,
    AccountInfo,
    Deal,
    DealEntry,
    DealReason,
    OrderRequest,
    OrderResult,
    Position,
    SymbolInfo,
    TerminalError,
    TerminalStatus,
    Tick,
)

BUILD = 4755
RETCODE_INVALID_VOLUME = 10014
NOT_CONNECTED = "terminal not connected"
NOT_RUNNING = "terminal not running"
_REASONS = {CloseReason.STOP_LOSS: DealReason.SL, CloseReason.TAKE_PROFIT: DealReason.TP}


def _now_us() -> int:
    return time.time_ns() // 1000


class SimulatedTerminal:
    def __init__(
        self,
        *,
        symbols: Iterable[str] = DEFAULT_SYMBOLS,
        seed: int | None = None,
        balance: float = 10_000.0,
        leverage: int = 100,
        login: int = 51234567,
        ticks_per_second: float = 2.0,
        state_path: str | Path | None = None,
        order_delay_s: float = 0.0,
    ):
        self.symbols = tuple(symbols)
        unknown = [s for s in self.symbols if s not in INSTRUMENTS]
        if unknown:
            raise ValueError(f"unknown symbols {unknown}; the simulator knows {', '.join(INSTRUMENTS)}")
        self.leverage, self.login, self.ticks_per_second = leverage, login, ticks_per_second
        self.order_delay_s = order_delay_s
        self.state_path = Path(state_path) if state_path else None
        self.walk = PriceWalk(self.symbols, seed)
        self.balance = balance
        self.held: dict[int, SimPosition] = {}
        self.comments: dict[int, str] = {}
        self.deals: list[Deal] = []
        self.connected = False
        self.reachable = True  # False: the terminal is not running (`disconnect`), connect fails
        self.trade_allowed = True
        self._next_ticket = _now_us()  # grows across runs without a state file too
        self._quote_time_us = {s: _now_us() for s in self.symbols}
        self._stepped_at = time.monotonic()
        self._lock = threading.RLock()
        if self.state_path is not None and self.state_path.exists():
            self._load()

    # --- scripting (tests, demos) -----------------------------------------------------------------------------------

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        """Quote `symbol` at exactly bid/ask now; positions that hit their SL or TP close."""
        with self._lock:
            point = INSTRUMENTS[symbol].point
            self.walk.mid[symbol] = (bid + ask) / 2
            self._apply(symbol, Quote(bid, ask, round((ask - bid) / point)))

    def disconnect(self) -> None:
        """The terminal goes away: calls raise TerminalError, and `connect` too until `restore`."""
        with self._lock:
            self.connected = self.reachable = False

    def restore(self) -> None:
        with self._lock:
            self.reachable = True

    # --- Terminal ---------------------------------------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if not self.reachable:
                raise TerminalError(NOT_RUNNING)
            self.connected = True

    def shutdown(self) -> None:
        with self._lock:
            self.connected = False

    def last_error(self) -> tuple[int, str]:
        return (1, "Success") if self.connected else (-10004, "No IPC connection")

    def status(self) -> TerminalStatus:
        with self._lock:
            self._require()
            return TerminalStatus(connected=True, trade_allowed=self.trade_allowed, build=BUILD)

    def account(self) -> AccountInfo:
        with self._lock:
            self._require()
            floating = sum(
                (position_profit(p, exit_price(p, self.walk.quotes[p.symbol])) for p in self.held.values()), 0.0
            )
            margin = round(sum((position_margin(p, self.leverage) for p in self.held.values()), 0.0), 2)
            equity = round(self.balance + floating, 2)
            return AccountInfo(
                login=self.login,
                account_type=AccountType.DEMO,
                leverage=self.leverage,
                balance=round(self.balance, 2),
                equity=equity,
                margin=margin,
                margin_free=round(equity - margin, 2),
                margin_level=round(equity / margin * 100, 2) if margin else 0.0,
                profit=round(floating, 2),
                currency="USD",
                company="Suho Simulated Broker",
                server="Suho-Simulated",
            )

    def symbol(self, name: str) -> SymbolInfo | None:
        instrument = INSTRUMENTS.get(name)
        if instrument is None or name not in self.symbols:
            return None
        return SymbolInfo(
            name=name,
            digits=instrument.digits,
            point=instrument.point,
            contract_size=instrument.contract_size,
            volume_min=0.01,
            volume_max=100.0,
            volume_step=0.01,
            tradeable=True,
        )

    def ticks_since(self, symbol: str, since_us: int) -> list[Tick]:
        with self._lock:
            self._require()
            self._step()
            quote, at_us = self.walk.quotes[symbol], self._quote_time_us[symbol]
            return [Tick(symbol, at_us, quote.bid, quote.ask)] if at_us > since_us else []

    def positions(self) -> list[Position]:
        with self._lock:
            self._require()
            self._step()
            return [
                Position(
                    ticket=p.ticket,
                    symbol=p.symbol,
                    order_type=p.order_type,
                    volume=p.volume,
                    open_price=p.open_price,
                    stop_loss=p.stop_loss,
                    take_profit=p.take_profit,
                    profit=position_profit(p, exit_price(p, self.walk.quotes[p.symbol])),
                    swap=0.0,
                    open_time_us=p.open_time_us,
                    magic=p.magic,
                    comment=self.comments.get(p.ticket, ""),
                )
                for p in self.held.values()
            ]

    def deals_since(self, since_us: int) -> list[Deal]:
        with self._lock:
            self._require()
            return [deal for deal in self.deals if deal.time_us >= since_us]

    def send_order(self, request: OrderRequest) -> OrderResult:
        with self._lock:
            if not self.connected:
                return OrderResult(retcode=RETCODE_CONNECTION, comment=NOT_CONNECTED)
            if request.position_ticket:
                return self._close(request.position_ticket, DealReason.EXPERT, request.comment)
            instrument = INSTRUMENTS.get(request.symbol)
            if instrument is None or request.symbol not in self.symbols:
                return OrderResult(retcode=10013, comment="invalid request: unknown symbol")
            if not 0.01 <= request.volume <= 100.0:
                return OrderResult(retcode=RETCODE_INVALID_VOLUME, comment="invalid volume")
            quote = self.walk.quotes[request.symbol]
            price = quote.ask if request.order_type == OrderType.BUY else quote.bid
            if abs(price - request.price) > request.deviation_points * instrument.point + 1e-12:
                return OrderResult(retcode=RETCODE_REQUOTE, comment="requote", price=price)
            ticket, opened_us = self._ticket(), _now_us()
            position = SimPosition(
                ticket=ticket,
                symbol=request.symbol,
                order_type=request.order_type,
                volume=request.volume,
                open_price=price,
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                signal_id=None,
                open_time_us=opened_us,
                magic=request.magic,
            )
            if position_margin(position, self.leverage) > self.account().margin_free:
                return OrderResult(retcode=RETCODE_NO_MONEY, comment="no money")
            commission = round(COMMISSION_PER_LOT_SIDE * request.volume, 2)
            self.held[ticket] = position
            self.comments[ticket] = request.comment
            self.balance += commission
            deal = self._deal(position, DealEntry.IN, DealReason.EXPERT, price, 0.0, commission, request.comment)
            self._save()
            result = OrderResult(
                retcode=RETCODE_DONE,
                comment="Request executed",
                order=ticket,
                deal=deal.ticket,
                position_ticket=ticket,
                price=price,
                volume=request.volume,
            )
        if self.order_delay_s:
            time.sleep(self.order_delay_s)  # executed and recorded; the answer is late
        return result

    def close_position(self, ticket: int, *, comment: str = "", magic: int = 0) -> OrderResult:
        with self._lock:
            if not self.connected:
                return OrderResult(retcode=RETCODE_CONNECTION, comment=NOT_CONNECTED)
            return self._close(ticket, DealReason.EXPERT, comment)

    def modify_position(self, ticket: int, *, stop_loss: float, take_profit: float) -> OrderResult:
        with self._lock:
            if not self.connected:
                return OrderResult(retcode=RETCODE_CONNECTION, comment=NOT_CONNECTED)
            position = self.held.get(ticket)
            if position is None:
                return OrderResult(retcode=RETCODE_POSITION_CLOSED, comment="no such position")
            position.stop_loss, position.take_profit = stop_loss, take_profit
            self._save()
            return OrderResult(retcode=RETCODE_DONE, comment="Request executed", order=ticket, position_ticket=ticket)

    # --- the broker -------------------------------------------------------------------------------------------------

    def _require(self) -> None:
        if not self.connected:
            raise TerminalError(NOT_CONNECTED)

    def _ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def _step(self) -> None:
        """Advance every symbol's walk by the ticks due since the last step (at most 10 at once)."""
        if self.ticks_per_second <= 0:
            return
        now = time.monotonic()
        due = min(10, int((now - self._stepped_at) * self.ticks_per_second))
        if due <= 0:
            return
        self._stepped_at = now
        for symbol in self.symbols:
            for _ in range(due):
                self._apply(symbol, self.walk.step(symbol))

    def _apply(self, symbol: str, quote: Quote) -> None:
        self.walk.quotes[symbol] = quote
        self._quote_time_us[symbol] = max(_now_us(), self._quote_time_us[symbol] + 1)
        hits = [(p, r) for p in self.held.values() if p.symbol == symbol and (r := stop_hit(p, quote))]
        for position, reason in hits:
            self._close(position.ticket, _REASONS[reason], self.comments.get(position.ticket, ""))

    def _close(self, ticket: int, reason: DealReason, comment: str) -> OrderResult:
        position = self.held.pop(ticket, None)
        if position is None:
            return OrderResult(retcode=RETCODE_POSITION_CLOSED, comment="no such position")
        self.comments.pop(ticket, None)
        price = exit_price(position, self.walk.quotes[position.symbol])
        profit = position_profit(position, price)
        commission = round(COMMISSION_PER_LOT_SIDE * position.volume, 2)
        self.balance += profit + commission
        deal = self._deal(position, DealEntry.OUT, reason, price, profit, commission, comment)
        self._save()
        return OrderResult(
            retcode=RETCODE_DONE,
            comment="Request executed",
            order=deal.order,
            deal=deal.ticket,
            position_ticket=ticket,
            price=price,
            volume=position.volume,
        )

    def _deal(
        self,
        position: SimPosition,
        entry: DealEntry,
        reason: DealReason,
        price: float,
        profit: float,
        commission: float,
        comment: str,
    ) -> Deal:
        opening = entry == DealEntry.IN
        same_way = position.order_type if opening else OrderType(1 - int(position.order_type))
        deal = Deal(
            ticket=self._ticket(),
            order=position.ticket if opening else self._ticket(),
            position_ticket=position.ticket,
            symbol=position.symbol,
            order_type=same_way,
            entry=entry,
            reason=reason,
            volume=position.volume,
            price=price,
            profit=profit,
            commission=commission,
            swap=0.0,
            fee=0.0,
            time_us=max(_now_us(), self.deals[-1].time_us + 1 if self.deals else 0),
            magic=position.magic,
            comment=comment,
        )
        self.deals.append(deal)
        return deal

    # --- the account file -------------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "balance": self.balance,
            "next_ticket": self._next_ticket,
            "positions": [
                {
                    **{
                        k: getattr(p, k)
                        for k in (
                            "ticket",
                            "symbol",
                            "volume",
                            "open_price",
                            "stop_loss",
                            "take_profit",
                            "open_time_us",
                            "magic",
                        )
                    },
                    "order_type": int(p.order_type),
                    "comment": self.comments.get(p.ticket, ""),
                }
                for p in self.held.values()
            ],
            "deals": [
                {
                    **deal.__dict__,
                    "order_type": int(deal.order_type),
                    "entry": int(deal.entry),
                    "reason": int(deal.reason),
                }
                for deal in self.deals
            ],
            "mid": self.walk.mid,
        }
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.state_path)

    def _load(self) -> None:
        assert self.state_path is not None
        state = json.loads(self.state_path.read_text())
        self.balance, self._next_ticket = state["balance"], max(self._next_ticket, state["next_ticket"])
        for row in state["positions"]:
            comment = row.pop("comment")
            position = SimPosition(**{**row, "order_type": OrderType(row["order_type"]), "signal_id": None})
            self.held[position.ticket] = position
            self.comments[position.ticket] = comment
        self.deals = [
            Deal(
                **{
                    **row,
                    "order_type": OrderType(row["order_type"]),
                    "entry": DealEntry(row["entry"]),
                    "reason": DealReason(row["reason"]),
                }
            )
            for row in state["deals"]
        ]
        for symbol, mid in state["mid"].items():
            if symbol in self.walk.mid:
                self.walk.mid[symbol] = mid
                self.walk.quotes[symbol] = self.walk._quote(symbol)

    def positions_count(self) -> int:
        """For tests: how many positions the broker holds (no connection needed)."""
        with self._lock:
            return len(self.held)
