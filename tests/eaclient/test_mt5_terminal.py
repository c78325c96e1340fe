"""Mt5Terminal against a fake MetaTrader5 module shaped exactly as the type stubs declare (tests/eaclient/mt5_fake.py):
every call it makes, and each order_send retcode the agent handles. No real terminal is involved (none can run here)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from binproto import AccountType, OrderType
from eaclient.terminal import (
    RETCODE_DONE,
    RETCODE_MARKET_CLOSED,
    RETCODE_NO_MONEY,
    RETCODE_NO_REPLY,
    RETCODE_NOT_SENT,
    RETCODE_POSITION_CLOSED,
    RETCODE_REQUOTE,
    RETCODE_TIMEOUT,
    RETCODES_REQUOTE,
    DealEntry,
    DealReason,
    OrderRequest,
    TerminalError,
)
from eaclient.terminals.mt5 import NO_POSITION, NOT_INSTALLED, Mt5Terminal
from tests.eaclient.mt5_fake import CONSTANTS as MT5
from tests.eaclient.mt5_fake import TUPLES, FakeMt5, record, sent

TICK_DTYPE = np.dtype(  # copy_ticks_from's documented columns
    [("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"), ("volume", "<u8"), ("time_msc", "<i8"),
     ("flags", "<u4"), ("volume_real", "<f8")]
)  # fmt: skip


@pytest.fixture
def fake(monkeypatch):
    fake = FakeMt5()
    fake.symbols["EURUSD"] = record(
        "SymbolInfo", name="EURUSD", digits=5, point=1e-5, trade_contract_size=100000.0, volume_min=0.01,
        volume_max=100.0, volume_step=0.01, trade_mode=MT5["SYMBOL_TRADE_MODE_FULL"], filling_mode=1,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "MetaTrader5", fake.module)
    return fake


def buy(**overrides):
    values = {"symbol": "EURUSD", "order_type": OrderType.BUY, "volume": 0.1, "price": 1.0953, "stop_loss": 1.0932,
              "take_profit": 1.0982, "magic": 20251005, "comment": "suho:12340000111"}  # fmt: skip
    return OrderRequest(**{**values, **overrides})


def test_the_overlay_declares_the_documented_fields():
    assert len(TUPLES["SymbolInfo"]) == 96  # the documentation's symbol_info()._asdict() has 96 rows
    assert [f for f, _ in TUPLES["TradeDeal"]][:9] == [
        "ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id", "reason"
    ]  # fmt: skip
    assert [f for f, _ in TUPLES["OrderCheckResult"]][-2:] == ["comment", "request"]
    assert "login" in dict(TUPLES["AccountInfo"]) and "margin_free" in dict(TUPLES["AccountInfo"])


def test_connect_initializes_then_logs_in_and_never_shows_the_password(fake):
    terminal = Mt5Terminal(login=51234567, password="secret-pw", server="MetaQuotes-Demo")
    terminal.connect()
    assert fake.called("initialize") == [((), {"timeout": 60000})]
    assert fake.called("login") == [
        ((51234567,), {"timeout": 60000, "server": "MetaQuotes-Demo", "password": "secret-pw"})
    ]
    assert "secret-pw" not in repr(terminal)


def test_a_refused_login_is_a_terminal_error_with_the_last_error_and_shuts_down(fake):
    fake.login_ok, fake.error = False, (MT5["RES_E_AUTH_FAILED"], "Authorization failed")
    with pytest.raises(TerminalError, match="Authorization failed"):
        Mt5Terminal(login=1, password="x").connect()
    assert fake.called("shutdown")


def test_initialize_failure_is_a_terminal_error(fake):
    fake.initialize_ok, fake.error = False, (MT5["RES_E_INTERNAL_FAIL_INIT"], "IPC initialize failed")
    with pytest.raises(TerminalError, match="IPC initialize failed"):
        Mt5Terminal(path=r"C:\MT5\terminal64.exe").connect()
    assert fake.called("initialize")[0][0] == (r"C:\MT5\terminal64.exe",)


def test_without_the_package_connect_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # import fails as on Linux
    with pytest.raises(TerminalError, match="pip install MetaTrader5") as error:
        Mt5Terminal().connect()
    assert str(error.value) == NOT_INSTALLED


def test_status_and_account_map_the_named_tuples(fake):
    terminal = Mt5Terminal()
    assert terminal.status().build == 4755 and terminal.status().trade_allowed
    account = terminal.account()
    assert (account.login, account.account_type, account.leverage, account.equity) == (
        51234567,
        AccountType.DEMO,
        500,
        10012.5,
    )
    assert (account.company, account.server, account.currency) == ("MetaQuotes Ltd.", "MetaQuotes-Demo", "USD")
    fake.account = fake.account._replace(trade_mode=MT5["ACCOUNT_TRADE_MODE_REAL"])
    assert terminal.account().account_type == AccountType.LIVE
    fake.terminal = fake.terminal._replace(tradeapi_disabled=True)
    assert not terminal.status().trade_allowed


def test_symbol_selects_it_in_market_watch_first(fake):
    terminal = Mt5Terminal()
    info = terminal.symbol("EURUSD")
    assert fake.called("symbol_select") == [(("EURUSD", True), {})]
    assert (info.digits, info.point, info.contract_size, info.volume_step, info.tradeable) == (
        5,
        1e-5,
        100000.0,
        0.01,
        True,
    )
    assert terminal.symbol("NOSUCH") is None


def test_ticks_since_reads_copy_ticks_from_and_keeps_only_newer_ones(fake):
    fake.last_tick["EURUSD"] = record("Tick", time=1759667400, bid=1.0951, ask=1.0953, time_msc=1759667400250)
    fake.ticks["EURUSD"] = np.array(
        [(1759667399, 1.0950, 1.0952, 0.0, 0, 1759667399500, 6, 0.0),
         (1759667400, 1.0951, 1.0953, 0.0, 0, 1759667400250, 6, 0.0)], dtype=TICK_DTYPE
    )  # fmt: skip
    ticks = Mt5Terminal().ticks_since("EURUSD", 1759667399500_000)
    assert [(t.time_us, t.bid, t.ask) for t in ticks] == [(1759667400250_000, 1.0951, 1.0953)]
    assert fake.called("copy_ticks_from") == [(("EURUSD", 1759667399, 1000, MT5["COPY_TICKS_INFO"]), {})]


def test_a_first_call_or_a_long_gap_gives_the_last_tick_only(fake):
    fake.last_tick["EURUSD"] = record("Tick", time=1759667401, bid=1.1, ask=1.2, time_msc=1759667401000)
    terminal = Mt5Terminal()
    assert [t.bid for t in terminal.ticks_since("EURUSD", 0)] == [1.1]
    assert [t.bid for t in terminal.ticks_since("EURUSD", 1759667000000_000)] == [1.1]  # 401 s earlier
    assert terminal.ticks_since("EURUSD", 1759667401000_000) == []
    assert not fake.called("copy_ticks_from")


def test_without_tick_history_the_last_tick_stands_in(fake):
    fake.last_tick["EURUSD"] = record("Tick", time=1759667401, bid=1.1, ask=1.2, time_msc=1759667401000)
    fake.ticks["EURUSD"] = np.array([], dtype=TICK_DTYPE)
    assert [t.bid for t in Mt5Terminal().ticks_since("EURUSD", 1759667400000_000)] == [1.1]


def test_positions_map_type_prices_magic_and_comment(fake):
    fake.positions = [
        record("TradePosition", ticket=7, time_msc=1759667399913, type=MT5["POSITION_TYPE_SELL"], magic=20251005,
               volume=0.1, price_open=1.0954, sl=1.0990, tp=1.0900, profit=-3.5, symbol="EURUSD", comment="suho:1234")
    ]  # fmt: skip
    (position,) = Mt5Terminal().positions()
    assert (position.ticket, position.order_type, position.open_price, position.stop_loss) == (
        7,
        OrderType.SELL,
        1.0954,
        1.0990,
    )
    assert (position.open_time_us, position.magic, position.comment) == (1759667399913_000, 20251005, "suho:1234")


def test_positions_get_failure_is_a_terminal_error(fake):
    fake.module.positions_get = lambda **kwargs: None
    with pytest.raises(TerminalError, match="positions_get"):
        Mt5Terminal().positions()


def test_deals_since_keeps_trades_only_oldest_first(fake):
    fake.deals = [
        record("TradeDeal", ticket=12, order=13, time_msc=2000, type=MT5["DEAL_TYPE_SELL"], entry=MT5["DEAL_ENTRY_OUT"],
               position_id=7, reason=MT5["DEAL_REASON_TP"], volume=0.1, price=1.0982, profit=28.0, symbol="EURUSD"),
        record("TradeDeal", ticket=10, time_msc=1000, type=MT5["DEAL_TYPE_BALANCE"], profit=10000.0),
        record("TradeDeal", ticket=11, order=7, time_msc=1500, type=MT5["DEAL_TYPE_BUY"], entry=MT5["DEAL_ENTRY_IN"],
               position_id=7, reason=MT5["DEAL_REASON_EXPERT"], volume=0.1, price=1.0954, commission=-0.35,
               magic=20251005, symbol="EURUSD", comment="suho:1234"),
    ]  # fmt: skip
    deals = Mt5Terminal().deals_since(1_000_000)
    assert [(d.ticket, d.entry, d.reason, d.order_type) for d in deals] == [
        (11, DealEntry.IN, DealReason.EXPERT, OrderType.BUY), (12, DealEntry.OUT, DealReason.TP, OrderType.SELL)
    ]  # fmt: skip
    assert (deals[0].position_ticket, deals[0].commission, deals[0].time_us) == (7, -0.35, 1_500_000)


@pytest.mark.parametrize(
    ("symbol_filling", "order_filling"),
    [(1, "ORDER_FILLING_FOK"), (2, "ORDER_FILLING_IOC"), (0, "ORDER_FILLING_RETURN")],
)
def test_send_order_checks_then_sends_with_the_symbols_filling_mode(fake, symbol_filling, order_filling):
    fake.symbols["EURUSD"] = fake.symbols["EURUSD"]._replace(filling_mode=symbol_filling)
    fake.send_results = [sent(RETCODE_DONE, order=555, deal=556, price=1.0954, volume=0.1)]
    result = Mt5Terminal().send_order(buy())
    ((checked,), _), ((request,), _) = fake.called("order_check")[0], fake.called("order_send")[0]
    assert checked == request
    assert request == {
        "action": MT5["TRADE_ACTION_DEAL"], "symbol": "EURUSD", "volume": 0.1, "type": MT5["ORDER_TYPE_BUY"],
        "price": 1.0953, "sl": 1.0932, "tp": 1.0982, "deviation": 10, "magic": 20251005, "comment": "suho:12340000111",
        "type_time": MT5["ORDER_TIME_GTC"], "type_filling": MT5[order_filling],
    }  # fmt: skip
    assert result.ok and (result.position_ticket, result.deal, result.price) == (555, 556, 1.0954)


def test_a_check_refusal_sends_nothing(fake):
    fake.check_retcode = RETCODE_NO_MONEY
    result = Mt5Terminal().send_order(buy())
    assert (result.retcode, result.ok, result.outcome_unknown) == (RETCODE_NO_MONEY, False, False)
    assert not fake.called("order_send")


@pytest.mark.parametrize(
    ("retcode", "requote", "unknown"),
    [(RETCODE_REQUOTE, True, False), (RETCODE_NO_MONEY, False, False), (RETCODE_MARKET_CLOSED, False, False),
     (RETCODE_TIMEOUT, False, True)],
)  # fmt: skip
def test_order_send_refusals_keep_their_retcode(fake, retcode, requote, unknown):
    fake.send_results = [sent(retcode)]
    result = Mt5Terminal().send_order(buy())
    assert (result.retcode, result.ok, result.retcode in RETCODES_REQUOTE, result.outcome_unknown) == (
        retcode, False, requote, unknown
    )  # fmt: skip


def test_no_answer_from_order_send_is_an_unknown_outcome(fake):
    fake.send_results = [None]
    fake.error = (MT5["RES_E_INTERNAL_FAIL_TIMEOUT"], "IPC timeout")
    result = Mt5Terminal().send_order(buy())
    assert (result.retcode, result.outcome_unknown) == (RETCODE_NO_REPLY, True) and "IPC timeout" in result.comment


def test_no_answer_from_order_check_sends_nothing(fake):
    fake.module.order_check = lambda request: None
    result = Mt5Terminal().send_order(buy())
    assert (result.retcode, result.outcome_unknown) == (RETCODE_NOT_SENT, False) and not fake.called("order_send")


def test_close_position_sends_the_opposite_deal_at_the_bid(fake):
    fake.positions = [
        record("TradePosition", ticket=7, type=MT5["POSITION_TYPE_BUY"], volume=0.1, magic=5, symbol="EURUSD")
    ]
    fake.last_tick["EURUSD"] = record("Tick", bid=1.0980, ask=1.0982)
    fake.send_results = [sent(RETCODE_DONE, order=600, deal=601, price=1.0980, volume=0.1)]
    result = Mt5Terminal().close_position(7, comment="close")
    ((request,), _) = fake.called("order_send")[0]
    assert (request["type"], request["price"], request["position"], request["magic"]) == (
        MT5["ORDER_TYPE_SELL"],
        1.0980,
        7,
        5,
    )
    assert result.ok and result.position_ticket == 7


def test_close_or_modify_of_a_missing_position_sends_nothing(fake):
    terminal = Mt5Terminal()
    for result in (terminal.close_position(99), terminal.modify_position(99, stop_loss=1.0, take_profit=2.0)):
        assert (result.retcode, result.comment) == (RETCODE_POSITION_CLOSED, NO_POSITION)
    assert not fake.called("order_send")


def test_modify_position_sends_sltp(fake):
    fake.positions = [record("TradePosition", ticket=7, symbol="EURUSD")]
    fake.send_results = [sent(RETCODE_DONE, order=7)]
    assert Mt5Terminal().modify_position(7, stop_loss=1.0945, take_profit=1.099).ok
    ((request,), _) = fake.called("order_send")[0]
    assert request == {"action": MT5["TRADE_ACTION_SLTP"], "symbol": "EURUSD", "position": 7, "sl": 1.0945, "tp": 1.099}


def test_last_error_passes_the_package_tuple_through(fake):
    fake.error = (MT5["RES_E_NOT_FOUND"], "Terminal: Not found")
    assert Mt5Terminal().last_error() == (-4, "Terminal: Not found")
