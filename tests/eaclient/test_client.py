"""The EA client's own rules: backoff, token timing, the connection state, the outbox (in memory and across a
restart), and, against a scripted server on a real socket (tests/eaclient/wire.py), resending a trade event until
its EVENT_ACK, answering a signal delivered twice only once, and refreshing the token before it expires."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

import binproto
from binproto import AckStatus, AuthStatus, ConnState, MsgType
from eaclient.client import ClientConfig, EAClient, Handler
from eaclient.outbox import Outbox
from eaclient.session import TOKEN_REFRESH_MARGIN_S, TOKEN_REUSE_MARGIN_S, Backoff, Session, Tokens
from tests.eaclient.wire import ScriptedServer, auth_ok


def trade_opened(seq: int, ticket: int = 1001) -> binproto.TradeOpened:
    now_us = time.time_ns() // 1000
    return binproto.TradeOpened(
        event_seq=seq, ticket=ticket, order_type=binproto.OrderType.BUY, volume=0.1, price=1.0954, stop_loss=0.0,
        take_profit=0.0, signal_id=None, open_time_us=now_us, commission=0.0, magic=0, symbol="EURUSD",
        timestamp_us=now_us,
    )  # fmt: skip


def event_ack(event: binproto.TradeOpened) -> binproto.EventAck:
    return binproto.EventAck(event_type=event.TYPE, event_seq=event.event_seq, ticket=event.ticket,
                             status=binproto.EventAckStatus.ACCEPTED)  # fmt: skip


def trading_signal() -> binproto.TradingSignal:
    return binproto.TradingSignal(
        signal_id=uuid.uuid4(), action=binproto.Action.BUY, entry_price=1.1, entry_min=0.0, entry_max=0.0,
        stop_loss=0.0, take_profit=0.0, volume=0.1, risk_percent=0.0, sizing_method=binproto.SizingMethod.FIXED_LOTS,
        confidence=0.5, valid_until_us=time.time_ns() // 1000 + 60_000_000, ticket=0, symbol="EURUSD",
        model_version="", strategy_name="",
    )  # fmt: skip


# --- the rules, with plain numbers --------------------------------------------------------------------------------


def test_backoff_doubles_from_one_second_up_to_its_cap_with_jitter_and_starts_over_after_a_success():
    backoff = Backoff(cap_s=30.0, rng=random.Random(1))
    steps = []
    for _ in range(8):
        backoff.failed()
        steps.append(backoff.delay())
    for delay, step in zip(steps, [1, 2, 4, 8, 16, 30, 30, 30], strict=True):
        assert step * 0.5 <= delay <= step
    backoff.succeeded()
    backoff.failed()
    assert 0.5 <= backoff.delay() <= 1.0
    assert 15.0 <= backoff.longest() <= 30.0  # a refused key: no point in hurrying


def test_the_token_is_refreshed_a_minute_before_expiry_or_a_fifth_of_its_lifetime_if_shorter():
    tokens = Tokens()
    tokens.keep(auth_ok(lifetime_s=900.0), now=1000.0)
    assert tokens.expires_at == pytest.approx(1900.0) and tokens.refresh_due == pytest.approx(1900.0 - 60.0)
    assert (tokens.access, tokens.refresh) == ("access-1", "refresh-1")
    assert tokens.usable(1900.0 - TOKEN_REUSE_MARGIN_S - 1) and not tokens.usable(1900.0 - TOKEN_REUSE_MARGIN_S + 1)

    tokens.keep(auth_ok(lifetime_s=100.0, access="access-2", refresh="refresh-2"), now=0.0)
    assert tokens.refresh_due == pytest.approx(100.0 - 100.0 / 5) and 100.0 / 5 < TOKEN_REFRESH_MARGIN_S

    quick_reconnect = auth_ok(lifetime_s=500.0, access="", refresh="")  # HELLO with the token: no new tokens
    tokens.keep(quick_reconnect, now=0.0)
    assert (tokens.access, tokens.refresh, tokens.expires_at) == ("access-2", "refresh-2", pytest.approx(500.0))
    tokens.forget()
    assert not tokens.usable(0.0)


def test_the_connection_state_allows_hello_only_until_auth_and_nothing_once_closing():
    session = Session()
    assert session.may_send(MsgType.HELLO) and not session.may_send(MsgType.TRADE_OPENED)
    assert not session.may_receive(MsgType.TRADING_SIGNAL) and session.may_receive(MsgType.AUTH_RESULT)
    session.on_auth_result(auth_ok())
    assert session.state == ConnState.AUTHENTICATED
    assert session.may_send(MsgType.TRADE_OPENED) and not session.may_send(MsgType.HELLO)
    session.on_auth_result(auth_ok())  # a refresh answered
    assert session.authenticated
    session.on_auth_result(binproto.AuthResult(status=AuthStatus.INVALID_TOKEN, session_id=None,
                                               access_expires_us=0, server_time_us=0, access_token="",
                                               refresh_token="", reason="refresh refused"))  # fmt: skip
    assert session.closing and not session.may_send(MsgType.ACK) and not session.may_send(MsgType.HEARTBEAT)
    assert session.may_receive(MsgType.SESSION_CLOSING) and not session.may_receive(MsgType.EVENT_ACK)


def test_the_outbox_keeps_events_in_order_until_acknowledged_and_says_which_are_overdue():
    outbox = Outbox()
    first, second = trade_opened(outbox.next_seq()), trade_opened(outbox.next_seq(), ticket=1002)
    assert second.event_seq == first.event_seq + 1
    outbox.add(second)
    outbox.add(first)
    assert outbox.pending() == [first, second] and outbox.overdue(10.0) == [first, second]  # never sent: due now
    outbox.sent(first)
    assert outbox.overdue(10.0) == [second] and outbox.overdue(0.0) == [first, second]
    assert outbox.ack(MsgType.TRADE_OPENED, first.ticket, first.event_seq)
    assert not outbox.ack(MsgType.TRADE_OPENED, first.ticket, first.event_seq)  # a second EVENT_ACK: nothing left
    assert not outbox.ack(MsgType.TRADE_CLOSED, second.ticket, second.event_seq)  # another kind of event
    assert outbox.pending() == [second] and len(outbox) == 1


def test_a_persisted_outbox_resends_after_a_restart_and_never_reuses_an_event_seq(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    before = Outbox(path)
    acked, kept = trade_opened(before.next_seq()), trade_opened(before.next_seq(), ticket=1002)
    before.add(acked)
    before.add(kept)
    before.ack(MsgType.TRADE_OPENED, acked.ticket, acked.event_seq)
    unused = before.next_seq()  # handed out, then the process died before the event was stored
    before.close()

    after = Outbox(path)
    assert after.pending() == [kept] and after.overdue(10.0) == [kept]
    assert after.next_seq() > unused
    after.close()


# --- the client against a scripted server -------------------------------------------------------------------------


class Recorder(Handler):
    """Executes every signal and command once and remembers what it was asked."""

    def __init__(self) -> None:
        self.signals: list[binproto.TradingSignal] = []

    async def on_signal(self, client: EAClient, signal: binproto.TradingSignal) -> None:
        self.signals.append(signal)
        await client.answer(signal, AckStatus.EXECUTED)


def client_for(server: ScriptedServer, handler: Handler | None = None, **options) -> EAClient:
    config = ClientConfig(url=server.url, account_id=uuid.uuid4(), api_key="suho_ea_k_s", max_backoff_s=1.0,
                          **{"heartbeat_interval_s": 60.0, "balance_interval_s": 60.0} | options)  # fmt: skip
    return EAClient(config, handler or Recorder())


async def running(client: EAClient, server: ScriptedServer, connection: int = 0) -> asyncio.Task:
    task = asyncio.create_task(client.run())
    await server.until(lambda: len(server.connections) > connection and client.connected, "a connection")
    return task


async def stopped(client: EAClient, task: asyncio.Task) -> None:
    client.stop()
    await asyncio.wait_for(task, 10)


async def test_a_trade_event_is_resent_until_its_event_ack_on_the_same_connection_and_after_a_reconnect():
    async with ScriptedServer() as server:
        client = client_for(server, event_retry_s=0.2)
        task = await running(client, server)
        event = trade_opened(client.outbox.next_seq())
        await client.emit(event)
        await server.until(lambda: len(server.sent(binproto.TradeOpened, 0)) >= 2, "the event resent (no EVENT_ACK)")
        await server.sockets[0].close()
        await server.until(lambda: server.sent(binproto.TradeOpened, 1), "the event resent after the reconnect")
        assert server.sent(binproto.TradeOpened, 1)[0] == event

        await server.send(1, event_ack(event))
        await server.until(lambda: not client.unacknowledged(), "the outbox emptied by EVENT_ACK")
        resent = len(server.sent(binproto.TradeOpened, 1))
        await asyncio.sleep(1.5)  # more than one outbox check with a 0.2 s retry: nothing more is sent
        assert len(server.sent(binproto.TradeOpened, 1)) == resent and client.counters.event_acks == 1
        await stopped(client, task)


async def test_a_signal_delivered_twice_across_a_reconnect_is_executed_once_and_answered_alike_both_times():
    async with ScriptedServer() as server:
        handler = Recorder()
        client = client_for(server, handler)
        task = await running(client, server)
        signal = trading_signal()
        await server.send(0, signal)
        await server.until(lambda: server.sent(binproto.Ack, 0), "the ACK")
        await server.sockets[0].close()
        await server.until(lambda: len(server.connections) > 1 and client.connected, "the reconnect")
        await server.send(1, signal)  # at-least-once: the server resends what it has no ACK recorded for
        await server.until(lambda: server.sent(binproto.Ack, 1), "the repeated ACK")

        [first], [again] = server.sent(binproto.Ack, 0), server.sent(binproto.Ack, 1)
        assert handler.signals == [signal] and client.counters.repeated_deliveries == 1
        assert (again.ref_id, again.status, again.timestamp_us) == (signal.signal_id, AckStatus.EXECUTED,
                                                                    first.timestamp_us)  # fmt: skip
        await stopped(client, task)


async def test_the_token_is_refreshed_before_it_expires_and_the_next_hello_presents_the_new_access_token():
    issued = []

    def auth(hello: binproto.Hello) -> binproto.AuthResult:
        issued.append(time.monotonic())
        return auth_ok(lifetime_s=2.5)  # refresh due a fifth of it before expiry: after 2 s

    async with ScriptedServer(auth) as server:
        client = client_for(server)
        task = await running(client, server)
        [refresh] = await server.until(lambda: server.sent(binproto.TokenRefresh, 0), "TOKEN_REFRESH", timeout=15)
        assert refresh.refresh_token == "refresh-1" and time.monotonic() - issued[0] >= 2.0 - 0.05
        await server.send(0, auth_ok(access="access-2", refresh="refresh-2"))
        await server.until(lambda: client.counters.token_refreshes == 1, "the refreshed tokens kept")
        await server.sockets[0].close()
        [hello] = await server.until(lambda: server.sent(binproto.Hello, 1), "the HELLO of the reconnect")
        assert (hello.auth_method, hello.access_token) == (binproto.AuthMethod.ACCESS_TOKEN, "access-2")
        await stopped(client, task)


async def test_nothing_is_sent_once_the_server_says_it_is_closing_and_the_event_goes_out_on_the_next_session():
    async with ScriptedServer() as server:
        client = client_for(server)
        task = await running(client, server)
        closing = binproto.SessionClosing(close_code=binproto.CloseCode.SERVICE_RESTART, retry_after_ms=100,
                                          reason="draining")  # fmt: skip
        await server.send(0, closing)
        await server.until(lambda: client.counters.last_close, "SESSION_CLOSING read")
        event = trade_opened(client.outbox.next_seq())
        await client.emit(event)  # CLOSING: the state allows nothing, the event waits in the outbox
        await server.sockets[0].close()
        await server.until(lambda: server.sent(binproto.TradeOpened, 1), "the event on the next session")
        assert server.sent(binproto.TradeOpened, 0) == [] and client.unacknowledged() == [event]
        await stopped(client, task)
