"""Issue 6, acceptance 1: the trading loop end to end with the reference EA (eaclient/simulated.py) on a real server.

Seed §6.3's worked example: the ML engine prices EURUSD on the reference feed (1.0949/1.0951) and posts the seed's
JSON; the EA's broker quotes 1.0951/1.0953, so the signal becomes entry 1.0953, range 1.0951–1.0955, SL/TP +0.0002.
The gateway delivers it to the EA, which fills it at its own ask; the EA's quote then reaches the take-profit, its
own SL/TP watcher closes the position, and the schema's triggers fill the execution row (slippage, latency, profit).
The feedback export then writes it and marks it used for training.

The server is the gateway tests' daphne subprocess (`server_url`, a session-scoped fixture in
tests/gateway/conftest.py, imported from there and used by name), the EA a `SimulatedEA` without a price stream
(`ticks_per_second=0`): its quotes are scripted with `SimulatedEA.set_quote`, so every price is the example's.
"""

from __future__ import annotations

import asyncio
import csv
import time
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.services import api_key_create
from eaclient.simulated import position_profit
from quotes.selectors import quote_latest
from signals.learning import feedback_export
from signals.models import SignalExecution, TradingSignal
from suho.routers import operator_path
from suho.tenancy import tenant_context
from tests.gateway.conftest import server_url  # noqa: F401  (a fixture: tests/gateway/conftest.py is not in this folder)
from tests.gateway.test_simulated_ea import eventually, simulator, started, stopped
from tests.signals.conftest import BROKER_ASK, BROKER_BID, reference_put, seed_json

PIP = Decimal("0.0001")  # EURUSD
CENTS = Decimal("0.01")


@pytest.fixture
def ea_key(account) -> str:
    return api_key_create(account=account)[1]


def _signal(signal_id) -> TradingSignal:
    with operator_path():
        return TradingSignal.objects.get(signal_id=signal_id)


def _execution(signal_id) -> SignalExecution | None:
    with operator_path():
        return SignalExecution.objects.filter(signal_id=signal_id).first()


async def _until(check, what: str, timeout: float = 10.0):
    """Poll `check` (a database read, run in a thread) until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while not (result := await database_sync_to_async(check)()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def _quote(ea, account, bid: float, ask: float) -> None:
    """The EA quotes bid/ask; wait until the server holds it as the account's latest broker quote."""
    await ea.set_quote("EURUSD", bid, ask)

    def landed():
        with tenant_context(account.tenant_id):
            quote = quote_latest(
                account_id=account.account_id, symbol="EURUSD", since=timezone.now() - timedelta(minutes=5)
            )
        return quote is not None and (quote["bid"], quote["ask"]) == (bid, ask)

    await _until(landed, f"the broker quote {bid}/{ask} on the server")


async def test_the_seed_example_runs_through_the_reference_ea_to_a_take_profit_and_into_the_feedback_export(
    server_url,  # noqa: F811 (the imported fixture)
    account,
    api,
    ea_key,
    tmp_path,
):
    ea = simulator(server_url, account, ea_key, ticks_per_second=0.0)
    task = await started(ea)
    try:
        await _quote(ea, account, 1.0950, 1.0952)  # an earlier tick: the execution's volatility has two samples
        await _quote(ea, account, float(BROKER_BID), float(BROKER_ASK))
        await database_sync_to_async(reference_put)()

        # Intake: ML entry 1.0952, SL 1.0932, TP 1.0982 on the reference ask 1.0951 → the broker's ask 1.0953.
        response = await database_sync_to_async(api.post)("/api/signals/", seed_json(account.account_id))
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "pending", response.json()
        signal_id = response.json()["signal_id"]
        signal = await database_sync_to_async(_signal)(signal_id)
        assert (signal.entry_price, signal.entry_price_min, signal.entry_price_max) == (
            Decimal("1.0953"), Decimal("1.0951"), Decimal("1.0955"))  # fmt: skip
        assert (signal.stop_loss, signal.take_profit) == (Decimal("1.0934"), Decimal("1.0984"))
        assert (signal.polygon_ask, signal.broker_ask, signal.price_deviation) == (
            Decimal("1.0951"), Decimal("1.0953"), Decimal("0.0002"))  # fmt: skip

        # Delivered and executed by the EA at its own ask.
        await eventually(lambda: ea.counters.signals_executed == 1 and ea.positions, "the EA to open the position")
        [position] = ea.positions.values()
        assert (position.signal_id, position.symbol, position.open_price) == (
            UUID(signal_id), "EURUSD", pytest.approx(1.0953))  # fmt: skip
        assert (position.stop_loss, position.take_profit) == (pytest.approx(1.0934), pytest.approx(1.0984))
        executed = await _until(lambda: (s := _signal(signal_id)).status == "executed" and s, "status executed")
        # Through SENT: the gateway marked it sent and the EA acknowledged it (the database's lifecycle guard
        # allows PENDING → SENT → EXECUTED → CLOSED only).
        assert None not in (executed.sent_to_ea_at, executed.acked_at, executed.executed_at)
        assert executed.closed_at is None

        # The EA's bid reaches the take-profit: its SL/TP watcher closes the position there.
        await ea.set_quote("EURUSD", position.take_profit, round(position.take_profit + 0.0002, 5))
        assert ea.counters.trades_closed == 1 and not ea.positions
        execution = await _until(lambda: (e := _execution(signal_id)) and e.trade_closed and e, "the closed trade")
        closed = await database_sync_to_async(_signal)(signal_id)
        assert (closed.status, closed.closed_at is not None) == ("closed", True)
        await eventually(lambda: not ea.unacknowledged(), "EVENT_ACKs for TRADE_OPENED and TRADE_CLOSED")
        assert (ea.counters.signals_received, ea.counters.signals_rejected, ea.counters.errors_received) == (1, 0, 0)
        await stopped(ea, task, account)
    finally:
        if not task.done():
            ea.stop()
            await asyncio.wait_for(task, 15)

    opened_at = Decimal(str(position.open_price))
    closed_at = Decimal(str(position.take_profit))
    assert (execution.signal_entry_price, execution.actual_entry_price) == (Decimal("1.0953"), opened_at)
    assert execution.price_difference == opened_at - Decimal("1.0953")
    assert execution.slippage_pips == ((opened_at - Decimal("1.0953")) / PIP).quantize(CENTS) == Decimal("0.00")
    assert execution.execution_latency_ms is not None and execution.execution_latency_ms >= 0
    assert execution.spread_at_execution == Decimal("20")
    assert execution.market_volatility is not None and execution.market_volatility > 0
    assert (execution.close_reason, execution.close_price) == ("take_profit", closed_at)
    assert execution.profit == Decimal(str(position_profit(position, position.take_profit))).quantize(CENTS)
    assert execution.profit > 0
    assert execution.profit_pips == ((closed_at - opened_at) / PIP).quantize(CENTS) == Decimal("31.00")

    # The learning loop's export writes it as a WIN and marks it used for training.
    path = await database_sync_to_async(feedback_export)(directory=tmp_path)
    with path.open(newline="") as handle:
        exported = [row for row in csv.DictReader(handle) if row["signal_id"] == signal_id]
    assert [(row["trade_result"], Decimal(row["profit"]), Decimal(row["profit_pips"])) for row in exported] == [
        ("WIN", execution.profit, execution.profit_pips)]  # fmt: skip
    marked = await database_sync_to_async(_execution)(signal_id)
    assert marked.feedback_status == SignalExecution.FeedbackStatus.INCLUDED and marked.exported_at is not None
