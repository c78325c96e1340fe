"""The agent with a SimulatedTerminal and no server: its rules for signals and commands, the trade events it derives
from the terminal's deals, and its journal's promise of one order per signal (a repeated delivery, a crash between
order_send and its answer, an order_send that never answers). End to end through the server: test_agent_e2e.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

import pytest

import binproto
from binproto import AckStatus, Action, CloseReason, CommandType, MsgType, SizingMethod
from eaclient.agent import FAIL_OUTCOME_UNKNOWN, Agent, AgentConfig, order_comment
from eaclient.journal import DONE, SENDING, Journal
from eaclient.simulated import REJECT_EXPIRED, REJECT_OUTSIDE_RANGE, REJECT_TRADING_DISABLED
from eaclient.terminal import RETCODE_NO_REPLY, OrderRequest, OrderResult
from eaclient.terminals.simulated import SimulatedTerminal

NOWHERE = "ws://127.0.0.1:9/ws/ea/"  # connection refused: the agent works offline, trade events wait in the outbox
ACCOUNT = uuid.UUID("5678aaaa-bbbb-4ccc-8ddd-eeeeffff0001")
pytestmark = pytest.mark.timeout(60)


def now_us() -> int:
    return time.time_ns() // 1000


def config(state_dir, **overrides) -> AgentConfig:
    values = dict(url=NOWHERE, account_id=ACCOUNT, api_key="suho_ea_test_key", state_dir=state_dir,
                  symbols=("EURUSD", "XAUUSD"), poll_interval_s=0.05, settle_wait_s=0.5)  # fmt: skip
    return AgentConfig(**{**values, **overrides})


def buy_signal(**overrides) -> binproto.TradingSignal:
    values = dict(
        signal_id=uuid.uuid4(), action=Action.BUY, entry_price=1.0853, entry_min=1.0840, entry_max=1.0860,
        stop_loss=1.0800, take_profit=1.0950, volume=0.1, risk_percent=1.0, sizing_method=SizingMethod.FIXED_LOTS,
        confidence=0.8, valid_until_us=now_us() + 300_000_000, ticket=0, symbol="EURUSD", model_version="m1",
        strategy_name="s1",
    )  # fmt: skip
    return binproto.TradingSignal(**{**values, **overrides})


def command(kind: CommandType, **overrides) -> binproto.Command:
    values = dict(command_id=uuid.uuid4(), command=kind, ticket=0, stop_loss=0.0, take_profit=0.0, issued_us=now_us())
    return binproto.Command(**{**values, **overrides})


async def until(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(agent: Agent):
    task = asyncio.create_task(agent.run())
    await until(lambda: agent.terminal_up and agent.journal.meta("deal_watermark_us") is not None)
    try:
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def terminal(tmp_path):
    terminal = SimulatedTerminal(
        symbols=("EURUSD", "XAUUSD"), seed=1, ticks_per_second=0, state_path=tmp_path / "t.json"
    )
    terminal.set_quote("EURUSD", 1.0850, 1.0852)
    return terminal


def events(agent: Agent, kind: MsgType) -> list:
    return [event for event in agent.client.unacknowledged() if event.TYPE == kind]


async def test_a_signal_inside_the_range_is_executed_once_with_comment_magic_and_ticket(tmp_path, terminal):
    signal = buy_signal()
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(signal)
        assert agent.client.last_ack(signal.signal_id).status == AckStatus.EXECUTED
        await until(lambda: events(agent, MsgType.TRADE_OPENED))
    (position,) = terminal.held.values()
    assert (position.volume, position.open_price, position.stop_loss, position.take_profit) == (
        0.1,
        1.0852,
        1.08,
        1.095,
    )
    assert (
        terminal.comments[position.ticket] == order_comment(signal.signal_id)
        and len(order_comment(signal.signal_id)) <= 16
    )
    (opened,) = events(agent, MsgType.TRADE_OPENED)
    assert (opened.ticket, opened.signal_id, opened.magic, opened.price) == (
        position.ticket,
        signal.signal_id,
        position.magic,
        1.0852,
    )
    assert Journal(tmp_path / "state" / "journal.sqlite3").signal(signal.signal_id).state == DONE


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [({"entry_min": 1.0855, "entry_max": 1.0870}, REJECT_OUTSIDE_RANGE),
     ({"valid_until_us": 1_000_000}, REJECT_EXPIRED)],
)  # fmt: skip
async def test_a_signal_the_agent_may_not_execute_is_rejected_with_the_protocols_reason(
    tmp_path, terminal, overrides, reason
):
    signal = buy_signal(**overrides)
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(signal)
        ack = agent.client.last_ack(signal.signal_id)
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, reason)
    assert terminal.positions_count() == 0


async def test_disable_trading_is_obeyed_and_survives_a_restart(tmp_path, terminal):
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(command(CommandType.DISABLE_TRADING))
    signal = buy_signal()
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(signal)
        assert (agent.client.last_ack(signal.signal_id).reason, terminal.positions_count()) == (
            REJECT_TRADING_DISABLED,
            0,
        )
        await agent.client.handle(command(CommandType.ENABLE_TRADING))
        again = buy_signal()
        await agent.client.handle(again)
        assert agent.client.last_ack(again.signal_id).status == AckStatus.EXECUTED


async def test_a_signal_delivered_again_after_a_reconnect_and_restart_leaves_one_order(tmp_path, terminal):
    signal = buy_signal()
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(signal)
        await agent.client.handle(signal)  # a redelivery on the same session: the client repeats its ACK
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:  # a new process: memory gone
        await agent.client.handle(signal)
        assert agent.client.last_ack(signal.signal_id).status == AckStatus.EXECUTED
    assert terminal.positions_count() == 1


async def test_a_crash_after_order_send_is_settled_from_the_terminal_without_a_second_order(tmp_path, terminal):
    signal = buy_signal()
    state = tmp_path / "state"
    async with running(Agent(config(state), terminal)):
        pass  # first start: the journal exists
    comment = order_comment(signal.signal_id)
    journal = Journal(state / "journal.sqlite3")
    journal.sending(signal.signal_id, comment=comment, magic=53100001, now_us=now_us())  # written, then order_send …
    terminal.send_order(OrderRequest(symbol="EURUSD", order_type=binproto.OrderType.BUY, volume=0.1, price=1.0852,
                                     magic=53100001, comment=comment))  # … executed, and the agent died  # fmt: skip
    journal.close()
    async with running(Agent(config(state), terminal)) as agent:
        assert agent.journal.signal(signal.signal_id).state == DONE
        await agent.client.handle(signal)  # the server resends the unanswered signal
        assert agent.client.last_ack(signal.signal_id).status == AckStatus.EXECUTED
        await until(lambda: events(agent, MsgType.TRADE_OPENED))
        assert events(agent, MsgType.TRADE_OPENED)[0].signal_id == signal.signal_id
    assert terminal.positions_count() == 1


async def test_a_crash_before_order_send_lets_a_redelivery_execute_once(tmp_path, terminal):
    signal = buy_signal()
    state = tmp_path / "state"
    async with running(Agent(config(state), terminal)):
        pass
    journal = Journal(state / "journal.sqlite3")
    journal.sending(signal.signal_id, comment=order_comment(signal.signal_id), magic=53100001, now_us=now_us() - 10**7)
    journal.close()
    async with running(Agent(config(state), terminal)) as agent:
        assert agent.journal.signal(signal.signal_id) is None  # never reached the terminal: forgotten
        await agent.client.handle(signal)
        await agent.client.handle(signal)
    assert terminal.positions_count() == 1


class SilentTerminal(SimulatedTerminal):
    """Executes (or not) but never answers order_send: the MetaTrader5 package returned None."""

    execute = True

    def send_order(self, request):
        if self.execute:
            super().send_order(request)
        return OrderResult(retcode=RETCODE_NO_REPLY, comment="order_send got no answer")


@pytest.mark.parametrize("executed", [True, False])
async def test_an_unanswered_order_send_is_settled_and_never_repeated(tmp_path, executed):
    terminal = SilentTerminal(symbols=("EURUSD",), seed=1, ticks_per_second=0)
    terminal.execute = executed
    terminal.set_quote("EURUSD", 1.0850, 1.0852)
    signal = buy_signal()
    async with running(Agent(config(tmp_path / "state", symbols=("EURUSD",)), terminal)) as agent:
        await agent.client.handle(signal)
        ack = agent.client.last_ack(signal.signal_id)
        assert ack.status == (AckStatus.EXECUTED if executed else AckStatus.FAILED)
        if not executed:
            assert (ack.reason, ack.reason_code) == (FAIL_OUTCOME_UNKNOWN, RETCODE_NO_REPLY)
    async with running(Agent(config(tmp_path / "state", symbols=("EURUSD",)), terminal)) as agent:
        await agent.client.handle(signal)
        assert agent.client.last_ack(signal.signal_id).status == ack.status
    assert terminal.positions_count() == (1 if executed else 0)


async def test_commands_close_all_and_modify_become_trade_events(tmp_path, terminal):
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        for _ in range(2):
            await agent.client.handle(buy_signal())
        ticket = next(iter(terminal.held))
        await agent.client.handle(command(CommandType.MODIFY_ORDER, ticket=ticket, stop_loss=1.081, take_profit=1.096))
        await until(lambda: events(agent, MsgType.TRADE_MODIFIED))
        (modified,) = events(agent, MsgType.TRADE_MODIFIED)
        assert (modified.ticket, modified.stop_loss, modified.take_profit) == (ticket, 1.081, 1.096)
        close_all = command(CommandType.CLOSE_ALL_POSITIONS)
        await agent.client.handle(close_all)
        assert agent.client.last_ack(close_all.command_id).status == AckStatus.EXECUTED
        await until(lambda: len(events(agent, MsgType.TRADE_CLOSED)) == 2)
        assert {e.close_reason for e in events(agent, MsgType.TRADE_CLOSED)} == {CloseReason.EXPERT}
    assert terminal.positions_count() == 0


async def test_a_stop_loss_hit_in_the_terminal_is_reported_as_such(tmp_path, terminal):
    signal = buy_signal()
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        await agent.client.handle(signal)
        terminal.set_quote("EURUSD", 1.0790, 1.0792)
        await until(lambda: events(agent, MsgType.TRADE_CLOSED))
        (closed,) = events(agent, MsgType.TRADE_CLOSED)
    assert (closed.close_reason, closed.signal_id, closed.close_price) == (
        CloseReason.STOP_LOSS,
        signal.signal_id,
        1.079,
    )


async def test_a_terminal_that_disconnects_is_reattached(tmp_path, terminal):
    async with running(Agent(config(tmp_path / "state"), terminal)) as agent:
        terminal.disconnect()
        await until(lambda: not agent.terminal_up)
        assert not agent.status().terminal_connected
        terminal.restore()
        await until(lambda: agent.terminal_up, timeout_s=15)


def test_a_journal_entry_is_written_before_the_order(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    signal_id = uuid.uuid4()
    journal.sending(signal_id, comment="suho:abc", magic=1, now_us=1)
    assert journal.signal(signal_id).state == SENDING
    with pytest.raises(Exception, match="UNIQUE"):
        journal.sending(signal_id, comment="suho:abc", magic=1, now_us=2)


class GlitchingTerminal(SimulatedTerminal):
    """positions() fails unexpectedly a few times (not a TerminalError: a bug or a malformed answer)."""

    glitches = 0

    def positions(self):
        if self.glitches:
            self.glitches -= 1
            raise RuntimeError("malformed answer")
        return super().positions()


async def test_an_unexpected_failure_while_watching_is_logged_and_the_watching_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr("eaclient.agent.WATCH_RETRY_S", 0.05)
    terminal = GlitchingTerminal(symbols=("EURUSD",), seed=1, ticks_per_second=0)
    terminal.set_quote("EURUSD", 1.0850, 1.0852)
    async with running(Agent(config(tmp_path / "state", symbols=("EURUSD",)), terminal)) as agent:
        terminal.glitches = 3
        await until(lambda: terminal.glitches == 0)
        ticket = terminal.send_order(
            OrderRequest(symbol="EURUSD", order_type=binproto.OrderType.BUY, volume=0.1, price=1.0852, magic=7)
        ).position_ticket  # opened by hand in the terminal: reported all the same
        await until(lambda: events(agent, MsgType.TRADE_OPENED))
        assert events(agent, MsgType.TRADE_OPENED)[0].ticket == ticket
