"""The EA gateway end to end through Channels' communicator: auth, ingest, idempotent trade events, delivery.

The ingest tests run in both INGEST_MODEs (conftest's `ingest_mode`): both must produce the same rows."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

import binproto
from accounts.models import MT5Account
from suho.asgi import application
from suho.bus import get_bus
from suho.cache import cache_get, quote_key
from suho.tenancy import tenant_context
from tests.gateway.ea_client import connect, hello, ingest_settled, receive_until, rows, trade_opened, v1_packet

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])]


async def test_ea_streams_ticks_balance_heartbeat_and_a_trade_into_its_tenant(ea_account, ingest_mode):
    tenant, account, secret = ea_account
    seen: list[str] = []
    bus = get_bus()
    await asyncio.wrap_future(bus.subscribe(f"mt5.account.{account.account_id}.>", lambda s, d: seen.append(s)))
    communicator, result = await connect(account, secret)
    assert result.status == binproto.AuthStatus.OK
    now_us = time.time_ns() // 1000
    for i in range(125):  # 125 packets × 8 symbols = 1,000 ticks
        ticks = [(sid, 1.0 + sid / 10 + i / 1e5, 1.0002 + sid / 10 + i / 1e5) for sid in range(1, 9)]
        await communicator.send_to(bytes_data=v1_packet(ticks, now_us + i))
    await communicator.send_to(bytes_data=binproto.encode(binproto.AccountFinance(
        balance=10000.0, equity=10012.5, margin=100.0, margin_free=9912.5, margin_level=10012.5, floating_pnl=12.5,
        daily_pnl=12.5, drawdown_pct=0.0, max_balance=10000.0, open_positions=1, pending_orders=0,
        timestamp_us=now_us)))  # fmt: skip
    await communicator.send_to(bytes_data=binproto.encode(binproto.Heartbeat(
        connection_status=binproto.ConnectionStatus.ONLINE, latency_ms=12, uptime_s=60, mt5_build=4000,
        terminal_connected=True, trade_allowed=True, error_count=0, last_error_code=0, last_error_message="",
        timestamp_us=now_us)))  # fmt: skip
    await communicator.send_to(bytes_data=binproto.encode(trade_opened(123456789, 1)))
    ack = await receive_until(communicator, binproto.EventAck)
    assert ack.status == binproto.EventAckStatus.ACCEPTED
    closed = binproto.TradeClosed(
        event_seq=2, ticket=123456789, order_type=binproto.OrderType.BUY, volume=0.1, open_price=1.0954,
        close_price=1.0984, stop_loss=1.0934, take_profit=1.0984, signal_id=None, open_time_us=now_us,
        close_time_us=now_us + 1_000_000, profit=30.0, commission=-0.7, swap=0.0,
        close_reason=binproto.CloseReason.TAKE_PROFIT, symbol="EURUSD", timestamp_us=now_us + 1_000_000,
    )  # fmt: skip
    await communicator.send_to(bytes_data=binproto.encode(closed))
    ack = await receive_until(communicator, binproto.EventAck)
    assert (ack.event_type, ack.status) == (binproto.MsgType.TRADE_CLOSED, binproto.EventAckStatus.ACCEPTED)
    await communicator.disconnect()
    await ingest_settled()
    assert await database_sync_to_async(rows)(
        "SELECT tenant_id, status, profit::float FROM mt5_trade_orders WHERE account_id = %s", [account.account_id]
    ) == [(tenant.id, "closed", 30.0)]
    cached = cache_get(quote_key(account.account_id, "XAUUSD"))  # symbol id 8 in the last packet sent
    assert cached is not None and cached["bid"] == pytest.approx(1.0 + 8 / 10 + 124 / 1e5)
    assert await database_sync_to_async(rows)(
        "SELECT count(*), count(DISTINCT tenant_id) FROM mt5_broker_quotes WHERE account_id = %s",
        [account.account_id],
    ) == [(1000, 1)]
    assert await database_sync_to_async(rows)(
        "SELECT tenant_id, balance FROM mt5_account_balance_history WHERE account_id = %s", [account.account_id]
    ) == [(tenant.id, pytest.approx(10000))]
    assert len(await database_sync_to_async(rows)(
        "SELECT 1 FROM mt5_ea_heartbeat WHERE account_id = %s", [account.account_id])) == 1  # fmt: skip
    bus.flush()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not {"balance", "heartbeat", "trades.open", "trades.close"} <= {
        s.split(".", 3)[3] for s in seen
    }:
        await asyncio.sleep(0.05)
    kinds = {s.split(".", 3)[3] for s in seen}
    assert {"balance", "heartbeat", "trades.open", "trades.close", "quotes.EURUSD"} <= kinds


async def test_the_same_trade_event_three_times_yields_one_order_and_one_audit_entry(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    statuses = []
    for _ in range(3):
        await communicator.send_to(bytes_data=binproto.encode(trade_opened(555, 9)))
        statuses.append((await receive_until(communicator, binproto.EventAck)).status)
    await communicator.disconnect()
    assert statuses == [binproto.EventAckStatus.ACCEPTED] + [binproto.EventAckStatus.DUPLICATE] * 2
    assert await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_trade_orders WHERE account_id = %s AND ticket = 555", [account.account_id]
    ) == [(1,)]
    assert await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_audit_log WHERE account_id = %s AND event_type = 'trade_opened'",
        [account.account_id],
    ) == [(1,)]


async def test_a_signal_created_while_offline_arrives_on_reconnect_and_an_expired_one_does_not(ea_account):
    from signals.models import TradingSignal

    tenant, account, secret = ea_account

    def create_signals():
        with tenant_context(tenant.id):
            now = timezone.now()
            valid = TradingSignal.objects.create(
                time=now, tenant=tenant, account=account, symbol="EURUSD", action="BUY", entry_price=1.0953,
                entry_price_min=1.0951, entry_price_max=1.0955, stop_loss=1.0934, take_profit=1.0984,
                volume=0.1, valid_until=now + timedelta(minutes=5))  # fmt: skip
            TradingSignal.objects.create(
                time=now, tenant=tenant, account=account, symbol="EURUSD", action="SELL", volume=0.1,
                valid_until=now - timedelta(seconds=1))  # fmt: skip
            return valid.signal_id

    valid_id = await database_sync_to_async(create_signals)()
    communicator, _ = await connect(account, secret)
    signal = await receive_until(communicator, binproto.TradingSignal)
    assert signal.signal_id == valid_id
    assert signal.entry_min == pytest.approx(1.0951)
    assert await communicator.receive_nothing(timeout=0.5)  # the expired one never comes
    await communicator.disconnect()
    assert await database_sync_to_async(rows)(
        "SELECT status FROM mt5_trading_signals WHERE signal_id = %s", [valid_id]
    ) == [("sent",)]


async def test_a_bad_key_is_refused_with_its_reason_and_the_socket_closed(ea_account):
    _tenant, account, _secret = ea_account
    communicator = WebsocketCommunicator(application, "/ws/ea/")
    await communicator.connect()
    await communicator.send_to(bytes_data=hello(account, "suho_ea_nothing_wrong"))
    result = await receive_until(communicator, binproto.AuthResult)
    assert result.status != binproto.AuthStatus.OK
    closing = await receive_until(communicator, binproto.SessionClosing)
    assert closing.close_code == binproto.CloseCode.AUTH_FAILED


async def test_an_ea_silent_for_two_minutes_is_marked_offline_and_audited(ea_account):
    from accounts.selectors import ea_is_online
    from trading.connection import accounts_mark_silent_offline

    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    fresh = await database_sync_to_async(MT5Account.objects.using("operator").get)(account_id=account.account_id)
    assert ea_is_online(fresh)
    assert await database_sync_to_async(accounts_mark_silent_offline)(now=timezone.now()) == 0
    later = timezone.now() + timedelta(minutes=2, seconds=1)
    assert await database_sync_to_async(accounts_mark_silent_offline)(now=later) == 1
    stale = await database_sync_to_async(MT5Account.objects.using("operator").get)(account_id=account.account_id)
    assert stale.connection_status == "offline" and not ea_is_online(stale)
    assert await database_sync_to_async(rows)(
        "SELECT count(*) FROM mt5_audit_log WHERE account_id = %s AND event_type = 'ea_offline'", [account.account_id]
    ) == [(1,)]
    await communicator.disconnect()


async def test_latest_quote_comes_from_the_cache_and_from_the_database_when_the_cache_misses(ea_account, ingest_mode):
    from quotes.selectors import quote_latest
    from suho.cache import cache_client, quote_key

    tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    await communicator.send_to(bytes_data=v1_packet([(1, 1.0951, 1.0953)], time.time_ns() // 1000))
    await communicator.disconnect()
    await ingest_settled()

    def latest():
        with tenant_context(tenant.id):
            return quote_latest(
                account_id=account.account_id, symbol="EURUSD", since=timezone.now() - timedelta(minutes=5)
            )

    cached = await database_sync_to_async(latest)()
    assert (cached["source"], cached["bid"], cached["ask"]) == ("cache", 1.0951, 1.0953)
    cache_client().delete(quote_key(account.account_id, "EURUSD"))
    stored = await database_sync_to_async(latest)()
    assert (stored["source"], stored["bid"], stored["ask"]) == ("database", 1.0951, 1.0953)


async def test_a_close_that_arrives_before_its_open_is_kept_and_the_late_open_changes_nothing(ea_account):
    _tenant, account, secret = ea_account
    communicator, _ = await connect(account, secret)
    now_us = time.time_ns() // 1000
    close = binproto.TradeClosed(
        event_seq=2, ticket=4242, order_type=binproto.OrderType.SELL, volume=0.2, open_price=1.1, close_price=1.09,
        stop_loss=0.0, take_profit=1.09, signal_id=None, open_time_us=now_us - 60_000_000, close_time_us=now_us,
        profit=200.0, commission=-1.4, swap=0.0, close_reason=binproto.CloseReason.TAKE_PROFIT, symbol="EURUSD",
        timestamp_us=now_us,
    )  # fmt: skip
    await communicator.send_to(bytes_data=binproto.encode(close))
    assert (await receive_until(communicator, binproto.EventAck)).status == binproto.EventAckStatus.ACCEPTED
    opened = binproto.TradeOpened(
        event_seq=1, ticket=4242, order_type=binproto.OrderType.SELL, volume=0.2, price=1.1, stop_loss=0.0,
        take_profit=1.09, signal_id=None, open_time_us=now_us - 60_000_000, commission=-0.7, magic=0,
        symbol="EURUSD", timestamp_us=now_us,
    )  # fmt: skip
    await communicator.send_to(bytes_data=binproto.encode(opened))
    assert (await receive_until(communicator, binproto.EventAck)).status == binproto.EventAckStatus.ACCEPTED
    await communicator.disconnect()
    assert await database_sync_to_async(rows)(
        "SELECT status, profit, close_reason FROM mt5_trade_orders WHERE ticket = 4242", []
    ) == [("closed", pytest.approx(200), "take_profit")]
    assert await database_sync_to_async(rows)(
        "SELECT kind FROM mt5_trade_events WHERE ticket = 4242 ORDER BY kind", []
    ) == [("close",), ("open",)]
