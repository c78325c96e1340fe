"""`Mt5Terminal`: the Terminal interface over MetaQuotes' `MetaTrader5` package (PyPI; Windows only), which talks to
the MetaTrader 5 terminal running on the same machine.

`MetaTrader5` is imported inside each method, never at module level, so everything else in eaclient installs and
runs without it (on Linux too). The calls, their arguments and the named tuples they return are type-checked against
metatrader5-stubs plus our overlay (eaclient/stubs/); tests drive every call against a fake module shaped exactly as
those stubs declare. Nothing here has been run against a real terminal.

Orders are market orders (TRADE_ACTION_DEAL) with the symbol's own filling mode, checked with `order_check` before
`order_send`. Position tickets are taken from `OrderSendResult.order`: in hedging accounts a market order's ticket is
the ticket of the position it opens.
"""

from __future__ import annotations

from binproto import AccountType, OrderType
from eaclient.terminal import (
    RETCODE_CHECK_OK,
    RETCODE_DONE,
    RETCODE_NO_REPLY,
    RETCODE_NOT_SENT,
    RETCODE_POSITION_CLOSED,
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

# SYMBOL_FILLING_MODE flags (MQL5 reference; the Python package does not export them).
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2
MAX_TICKS_PER_CALL = 1000
TICK_HISTORY_MAX_US = 60_000_000  # a longer gap is not replayed: the latest tick stands for it
HISTORY_AHEAD_S = 2 * 86400  # deal times are the trade server's clock, often hours ahead of UTC
NOT_INSTALLED = "the MetaTrader5 package is not installed (Windows only: pip install MetaTrader5)"
NO_POSITION = "no such position"


def filling_for(filling_mode: int, order_filling_fok: int, order_filling_ioc: int, order_filling_return: int) -> int:
    """The order filling type a symbol accepts for market orders: FOK if allowed, else IOC, else RETURN (as MQL5's
    CTrade.SetTypeFillingBySymbol chooses)."""
    if filling_mode & SYMBOL_FILLING_FOK:
        return order_filling_fok
    if filling_mode & SYMBOL_FILLING_IOC:
        return order_filling_ioc
    return order_filling_return


class Mt5Terminal:
    """One MetaTrader 5 terminal. `login` 0 uses the account the terminal is logged in to."""

    def __init__(
        self, *, path: str = "", login: int = 0, password: str = "", server: str = "", timeout_ms: int = 60000
    ):
        self.path = path
        self.login = login
        self._password = password
        self.server = server
        self.timeout_ms = timeout_ms

    def __repr__(self) -> str:  # never the password
        return f"Mt5Terminal(path={self.path!r}, login={self.login}, server={self.server!r})"

    def connect(self) -> None:
        try:
            import MetaTrader5 as mt5
        except ImportError as exc:
            raise TerminalError(NOT_INSTALLED) from exc
        ok = (
            mt5.initialize(self.path, timeout=self.timeout_ms) if self.path else mt5.initialize(timeout=self.timeout_ms)
        )
        if not ok:
            raise TerminalError(f"initialize failed: {mt5.last_error()}")
        if self.login:
            credentials: dict[str, str] = {"server": self.server} if self.server else {}
            if self._password:
                credentials["password"] = self._password
            if not mt5.login(self.login, timeout=self.timeout_ms, **credentials):
                error = mt5.last_error()
                mt5.shutdown()
                raise TerminalError(f"login to {self.login} failed: {error}")

    def shutdown(self) -> None:
        import MetaTrader5 as mt5

        mt5.shutdown()

    def last_error(self) -> tuple[int, str]:
        import MetaTrader5 as mt5

        code, message = mt5.last_error()
        return code, message

    def status(self) -> TerminalStatus:
        import MetaTrader5 as mt5

        info = mt5.terminal_info()
        if info is None:
            raise TerminalError(f"terminal_info failed: {mt5.last_error()}")
        return TerminalStatus(
            connected=info.connected, trade_allowed=info.trade_allowed and not info.tradeapi_disabled, build=info.build
        )

    def account(self) -> AccountInfo:
        import MetaTrader5 as mt5

        info = mt5.account_info()
        if info is None:
            raise TerminalError(f"account_info failed: {mt5.last_error()}")
        account_type = {
            mt5.ACCOUNT_TRADE_MODE_DEMO: AccountType.DEMO,
            mt5.ACCOUNT_TRADE_MODE_CONTEST: AccountType.CONTEST,
        }.get(info.trade_mode, AccountType.LIVE)
        return AccountInfo(
            login=info.login,
            account_type=account_type,
            leverage=info.leverage,
            balance=info.balance,
            equity=info.equity,
            margin=info.margin,
            margin_free=info.margin_free,
            margin_level=info.margin_level,
            profit=info.profit,
            currency=info.currency,
            company=info.company,
            server=info.server,
        )

    def symbol(self, name: str) -> SymbolInfo | None:
        import MetaTrader5 as mt5

        info = mt5.symbol_info(name)
        if info is None or not info.visible:
            if not mt5.symbol_select(name, True):
                return None
            info = mt5.symbol_info(name)
            if info is None:
                return None
        return SymbolInfo(
            name=info.name,
            digits=info.digits,
            point=info.point,
            contract_size=info.trade_contract_size,
            volume_min=info.volume_min,
            volume_max=info.volume_max,
            volume_step=info.volume_step,
            tradeable=info.trade_mode == mt5.SYMBOL_TRADE_MODE_FULL,
        )

    def ticks_since(self, symbol: str, since_us: int) -> list[Tick]:
        """The ticks after `since_us` from copy_ticks_from; the latest tick alone (symbol_info_tick) for a first call
        or after a long gap, measured on the terminal's own clock (its tick times are the trade server's)."""
        import MetaTrader5 as mt5

        last = mt5.symbol_info_tick(symbol)
        if last is None or last.time_msc * 1000 <= since_us:
            return []
        latest = Tick(symbol=symbol, time_us=last.time_msc * 1000, bid=last.bid, ask=last.ask)
        if since_us <= 0 or latest.time_us - since_us > TICK_HISTORY_MAX_US:
            return [latest]
        rows = mt5.copy_ticks_from(symbol, since_us // 1_000_000, MAX_TICKS_PER_CALL, mt5.COPY_TICKS_INFO)
        if rows is None or len(rows) == 0:  # no tick history kept: the latest tick instead
            return [latest]
        ticks = (
            Tick(symbol=symbol, time_us=int(row["time_msc"]) * 1000, bid=float(row["bid"]), ask=float(row["ask"]))
            for row in rows
        )
        return [tick for tick in ticks if tick.time_us > since_us] or [latest]

    def positions(self) -> list[Position]:
        import MetaTrader5 as mt5

        rows = mt5.positions_get()
        if rows is None:
            raise TerminalError(f"positions_get failed: {mt5.last_error()}")
        return [
            Position(
                ticket=row.ticket,
                symbol=row.symbol,
                order_type=OrderType.BUY if row.type == mt5.POSITION_TYPE_BUY else OrderType.SELL,
                volume=row.volume,
                open_price=row.price_open,
                stop_loss=row.sl,
                take_profit=row.tp,
                profit=row.profit,
                swap=row.swap,
                open_time_us=row.time_msc * 1000,
                magic=row.magic,
                comment=row.comment,
            )
            for row in rows
        ]

    def deals_since(self, since_us: int) -> list[Deal]:
        import MetaTrader5 as mt5

        since_s = since_us // 1_000_000
        rows = mt5.history_deals_get(since_s, since_s + HISTORY_AHEAD_S + max(0, _now_s() - since_s))
        if rows is None:
            raise TerminalError(f"history_deals_get failed: {mt5.last_error()}")
        deals = [
            Deal(
                ticket=row.ticket,
                order=row.order,
                position_ticket=row.position_id,
                symbol=row.symbol,
                order_type=OrderType.BUY if row.type == mt5.DEAL_TYPE_BUY else OrderType.SELL,
                entry=DealEntry(row.entry),
                reason=DealReason(row.reason) if row.reason in DealReason._value2member_map_ else DealReason.CLIENT,
                volume=row.volume,
                price=row.price,
                profit=row.profit,
                commission=row.commission,
                swap=row.swap,
                fee=row.fee,
                time_us=row.time_msc * 1000,
                magic=row.magic,
                comment=row.comment,
            )
            for row in rows
            if row.type in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL) and row.time_msc * 1000 >= since_us
        ]
        return sorted(deals, key=lambda deal: (deal.time_us, deal.ticket))

    def send_order(self, request: OrderRequest) -> OrderResult:
        import MetaTrader5 as mt5

        info = mt5.symbol_info(request.symbol)
        if info is None:
            return OrderResult(retcode=RETCODE_NOT_SENT, comment=f"symbol_info failed: {mt5.last_error()}")
        trade_request: mt5.TradeRequest = {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": request.symbol,
            "volume": request.volume,
            "type": mt5.ORDER_TYPE_BUY if request.order_type == OrderType.BUY else mt5.ORDER_TYPE_SELL,
            "price": request.price,
            "sl": request.stop_loss,
            "tp": request.take_profit,
            "deviation": request.deviation_points,
            "magic": request.magic,
            "comment": request.comment,
            "type_time": mt5.ORDER_TIME_GTC,
            "type_filling": filling_for(
                info.filling_mode, mt5.ORDER_FILLING_FOK, mt5.ORDER_FILLING_IOC, mt5.ORDER_FILLING_RETURN
            ),
        }
        if request.position_ticket:
            trade_request["position"] = request.position_ticket
        check = mt5.order_check(trade_request)
        if check is None:
            return OrderResult(retcode=RETCODE_NOT_SENT, comment=f"order_check failed: {mt5.last_error()}")
        if check.retcode not in (RETCODE_CHECK_OK, RETCODE_DONE):
            return OrderResult(retcode=check.retcode, comment=check.comment)
        result = mt5.order_send(trade_request)
        if result is None:  # the request may have reached the terminal: the agent reconciles from positions/deals
            return OrderResult(retcode=RETCODE_NO_REPLY, comment=f"order_send got no answer: {mt5.last_error()}")
        return OrderResult(
            retcode=result.retcode,
            comment=result.comment,
            order=result.order,
            deal=result.deal,
            position_ticket=request.position_ticket or result.order,
            price=result.price,
            volume=result.volume,
        )

    def close_position(self, ticket: int, *, comment: str = "", magic: int = 0) -> OrderResult:
        import MetaTrader5 as mt5

        rows = mt5.positions_get(ticket=ticket)
        if not rows:
            return OrderResult(retcode=RETCODE_POSITION_CLOSED, comment=NO_POSITION)
        position = rows[0]
        tick = mt5.symbol_info_tick(position.symbol)
        if tick is None:
            return OrderResult(retcode=RETCODE_NOT_SENT, comment=f"symbol_info_tick failed: {mt5.last_error()}")
        closing_buy = position.type == mt5.POSITION_TYPE_BUY
        return self.send_order(
            OrderRequest(
                symbol=position.symbol,
                order_type=OrderType.SELL if closing_buy else OrderType.BUY,
                volume=position.volume,
                price=tick.bid if closing_buy else tick.ask,
                magic=magic or position.magic,
                comment=comment,
                position_ticket=ticket,
            )
        )

    def modify_position(self, ticket: int, *, stop_loss: float, take_profit: float) -> OrderResult:
        import MetaTrader5 as mt5

        rows = mt5.positions_get(ticket=ticket)
        if not rows:
            return OrderResult(retcode=RETCODE_POSITION_CLOSED, comment=NO_POSITION)
        trade_request: mt5.TradeRequest = {
            "action": mt5.TRADE_ACTION_SLTP,
            "symbol": rows[0].symbol,
            "position": ticket,
            "sl": stop_loss,
            "tp": take_profit,
        }
        result = mt5.order_send(trade_request)
        if result is None:
            return OrderResult(retcode=RETCODE_NO_REPLY, comment=f"order_send got no answer: {mt5.last_error()}")
        return OrderResult(retcode=result.retcode, comment=result.comment, order=result.order, position_ticket=ticket)


def _now_s() -> int:
    import time

    return int(time.time())
