"""The reference EA (eaclient/simulated.py) against a real ASGI server: auth, ingest, signals, commands, resync.

The server is daphne in a subprocess (tests/gateway/conftest.py says why and how); the ingest test runs in both
INGEST_MODEs. The EA's own trading rules are tested offline in tests/eaclient/test_simulated.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.utils import timezone

from accounts.models import MT5Account
from eaclient.simulated import REJECT_OUTSIDE_RANGE, SimulatedEA, SimulatorConfig
from signals.delivery import signal_publish_on_commit
from signals.models import TradingSignal
from suho.tenancy import tenant_context
from trading.outbound import command_issue

live = pytest.mark.django_db(transaction=True, databases=["default", "owner", "operator"])


# --- the server: conftest's `server_url` (direct mode) or `bridge_server_url`; the account is its `ea_account` ----


@pytest.fixture
def ingest_server_url(ingest_mode, request):
    """The gateway in the test's INGEST_MODE (in bridge mode, conftest's `ingest_mode` runs the data bridge)."""
    return request.getfixturevalue("bridge_server_url" if ingest_mode == "bridge" else "server_url")


# --- helpers ------------------------------------------------------------------------------------------------------


def simulator(url: str, account: MT5Account, secret: str, **options) -> SimulatedEA:
    defaults = {"ticks_per_second": 10.0, "balance_interval_s": 0.5, "heartbeat_interval_s": 0.5, "seed": 7}
    return SimulatedEA(SimulatorConfig(url=url, account_id=account.account_id, api_key=secret, **defaults | options))


async def eventually(check, what: str, timeout: float = 10.0):
    """Poll `check` (a quick look at the EA in this process) until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def eventually_db(query: str, params, what: str, timeout: float = 10.0, accept=bool):
    deadline = time.monotonic() + timeout
    while True:
        found = await database_sync_to_async(rows)(query, params)
        if accept(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last rows: {found}")
        await asyncio.sleep(0.1)


def rows(sql: str, params=()):
    with connections["operator"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


async def started(ea: SimulatedEA) -> asyncio.Task:
    """Run the EA until the server has resynced it (risk parameters arrive after the hub has registered it)."""
    resyncs = ea.counters.risk_received
    task = asyncio.create_task(ea.run())
    await eventually(lambda: ea.connected and ea.counters.risk_received > resyncs, "authentication and resync")
    return task


async def stopped(ea: SimulatedEA, task: asyncio.Task, account: MT5Account, earlier=()) -> None:
    """Stop the EA, then wait until the server has written every volume row the account's EAs sent, once each
    (so nothing is in flight when the next step or the clean-up runs)."""
    ea.stop()
    await asyncio.wait_for(task, 15)
    sent = tuple(
        sum(getattr(e.counters, name) for e in (*earlier, ea))
        for name in ("ticks_sent", "balances_sent", "heartbeats_sent")
    )
    await eventually_db(
        "SELECT (SELECT count(*) FROM mt5_broker_quotes WHERE account_id = %(a)s),"
        " (SELECT count(*) FROM mt5_account_balance_history WHERE account_id = %(a)s),"
        " (SELECT count(*) FROM mt5_ea_heartbeat WHERE account_id = %(a)s)",
        {"a": account.account_id}, f"{sent} ticks, balances, heartbeats in the database", accept=lambda r: r == [sent],
    )  # fmt: skip


def signal_create(tenant, account, *, action: str, entry: float, low: float, high: float, sl=0.0, tp=0.0,
                  valid_for=timedelta(minutes=5)) -> uuid.UUID:  # fmt: skip
    with tenant_context(tenant.id):
        now = timezone.now()
        signal = TradingSignal.objects.create(
            time=now, tenant=tenant, account=account, symbol="EURUSD", action=action, entry_price=round(entry, 5),
            entry_price_min=round(low, 5), entry_price_max=round(high, 5), stop_loss=round(sl, 5) or None,
            take_profit=round(tp, 5) or None, volume=0.1, valid_until=now + valid_for,
        )  # fmt: skip
        signal_publish_on_commit(signal)
    return signal.signal_id


# --- against the server -------------------------------------------------------------------------------------------


@live
@pytest.mark.parametrize("protocol_version", [2, 1])
async def test_simulated_ea_authenticates_and_streams_ticks_balances_and_heartbeats_into_its_tenant(
    ea_account, ingest_server_url, protocol_version
):
    tenant, account, secret = ea_account
    ea = simulator(ingest_server_url, account, secret, ticks_per_second=25.0, protocol_version=protocol_version)
    task = await started(ea)
    await eventually(
        lambda: ea.counters.ticks_sent >= 200 and ea.counters.balances_sent >= 2 and ea.counters.heartbeats_sent >= 2,
        "200 ticks, 2 balances, 2 heartbeats sent",
    )
    await stopped(ea, task, account)

    quotes = await database_sync_to_async(rows)(
        "SELECT symbol, count(*), min(bid), max(ask), count(DISTINCT tenant_id), bool_and(ask > bid)"
        " FROM mt5_broker_quotes WHERE account_id = %s GROUP BY symbol ORDER BY symbol",
        [account.account_id],
    )
    assert [(symbol, tenants, ordered) for symbol, _n, _lo, _hi, tenants, ordered in quotes] == [
        ("EURUSD", 1, True), ("GBPUSD", 1, True), ("USDJPY", 1, True), ("XAUUSD", 1, True)
    ]  # fmt: skip
    prices = {symbol: (float(low), float(high)) for symbol, _n, low, high, _t, _o in quotes}
    assert 1.0 < prices["EURUSD"][0] < prices["EURUSD"][1] < 1.2  # realistic magnitudes, JPY and gold included
    assert 140 < prices["USDJPY"][0] < prices["USDJPY"][1] < 160
    assert 2300 < prices["XAUUSD"][0] < prices["XAUUSD"][1] < 2500
    assert sum(n for _s, n, *_ in quotes) == ea.counters.ticks_sent
    profile = await database_sync_to_async(rows)(
        "SELECT tenant_id, broker, currency, leverage FROM mt5_user_accounts WHERE account_id = %s",
        [account.account_id],
    )
    assert profile == [(tenant.id, "Suho Simulated Broker", "USD", 100)]
    assert (ea.counters.errors_received, ea.counters.auth_refusals, ea.unacknowledged()) == (0, 0, [])


@live
async def test_signals_are_executed_inside_their_range_rejected_outside_it_and_close_all_closes_with_profit(
    server_url, ea_account
):
    tenant, account, secret = ea_account
    ea = simulator(server_url, account, secret)
    task = await started(ea)

    ask = ea.walk.quotes["EURUSD"].ask
    inside = await database_sync_to_async(signal_create)(
        tenant, account, action="BUY", entry=ask, low=ask - 0.005, high=ask + 0.005, sl=ask - 0.05, tp=ask + 0.05
    )
    executed = await eventually_db(
        "SELECT s.status, e.ticket, o.status, o.open_price FROM mt5_trading_signals s"
        " JOIN mt5_signal_executions e USING (signal_id) JOIN mt5_trade_orders o ON o.order_id = e.order_id"
        " WHERE s.signal_id = %s", [inside], "the signal executed, with its execution and open order",
        accept=lambda r: r and r[0][0] == "executed",
    )  # fmt: skip
    [(_status, ticket, order_status, open_price)] = executed
    assert order_status == "open" and ticket in ea.positions
    assert float(open_price) == pytest.approx(ea.positions[ticket].open_price)
    await eventually(lambda: not ea.unacknowledged(), "EVENT_ACK for TRADE_OPENED")

    outside = await database_sync_to_async(signal_create)(
        tenant, account, action="SELL", entry=0.5, low=0.49, high=0.51
    )
    assert await eventually_db(
        "SELECT status, status_reason FROM mt5_trading_signals WHERE signal_id = %s", [outside],
        "the out-of-range signal rejected", accept=lambda r: r and r[0][0] == "rejected",
    ) == [("rejected", f"EA: {REJECT_OUTSIDE_RANGE}")]  # fmt: skip

    command = await database_sync_to_async(command_issue)(
        tenant_id=tenant.id, account_id=account.account_id, kind="close_all", issued_by="test", reason="flatten"
    )
    closed = await eventually_db(
        "SELECT o.status, o.close_reason, o.open_price, o.close_price, o.profit, e.trade_closed, e.profit, s.status"
        " FROM mt5_trade_orders o JOIN mt5_signal_executions e ON e.order_id = o.order_id"
        " JOIN mt5_trading_signals s ON s.signal_id = e.signal_id WHERE o.ticket = %s", [ticket],
        "the order closed by CLOSE_ALL_POSITIONS", accept=lambda r: r and r[0][0] == "closed",
    )  # fmt: skip
    [(_status, reason, opened, close_price, profit, execution_closed, execution_profit, signal_status)] = closed
    assert (reason, execution_closed, signal_status) == ("expert", True, "closed")
    assert float(profit) == pytest.approx(round((float(close_price) - float(opened)) * 0.1 * 100_000, 2), abs=0.011)
    assert execution_profit == profit
    assert await eventually_db(
        "SELECT status FROM mt5_ea_commands WHERE command_id = %s", [command.command_id], "the command executed",
        accept=lambda r: r == [("executed",)],
    )  # fmt: skip
    assert (ea.counters.signals_executed, ea.counters.signals_rejected, ea.counters.trades_closed) == (1, 1, 1)
    assert not ea.positions
    await stopped(ea, task, account)
    assert not ea.unacknowledged()


@live
async def test_ea_refreshes_reconnects_on_command_and_after_a_restart_gets_the_signal_made_while_it_was_away(
    server_url, ea_account
):
    tenant, account, secret = ea_account
    ea = simulator(server_url, account, secret)
    task = await started(ea)
    first_session = ea.session_id
    assert await ea.token_refresh()  # in-band refresh: the reconnect below then presents the new access token
    await eventually(lambda: ea.counters.token_refreshes == 1, "AUTH_RESULT for TOKEN_REFRESH")

    command = await database_sync_to_async(command_issue)(
        tenant_id=tenant.id, account_id=account.account_id, kind="reconnect", issued_by="test"
    )
    await eventually(
        lambda: ea.counters.reconnects == 1 and ea.connected and ea.counters.risk_received >= 2,
        "a reconnect and the server's resync (risk parameters and config sent again)",
    )
    assert ea.counters.config_received >= 2 and ea.session_id == first_session  # quick reconnect: access token
    assert await eventually_db(
        "SELECT status FROM mt5_ea_commands WHERE command_id = %s", [command.command_id], "the command executed",
        accept=lambda r: r == [("executed",)],
    )  # fmt: skip
    await stopped(ea, task, account)  # the EA goes away

    ask = ea.walk.quotes["EURUSD"].ask  # the restarted EA (same seed) starts near it: well inside ±0.01
    made_while_away = await database_sync_to_async(signal_create)(
        tenant, account, action="BUY", entry=ask, low=ask - 0.01, high=ask + 0.01
    )
    restarted = simulator(server_url, account, secret)
    task = await started(restarted)
    assert await eventually_db(
        "SELECT status FROM mt5_trading_signals WHERE signal_id = %s", [made_while_away],
        "the signal made while the EA was away executed after its restart", accept=lambda r: r == [("executed",)],
    ) == [("executed",)]  # fmt: skip
    assert restarted.counters.signals_executed == 1 and restarted.counters.repeated_deliveries == 0
    await eventually(lambda: not restarted.unacknowledged(), "EVENT_ACK for TRADE_OPENED")
    await stopped(restarted, task, account, earlier=[ea])
