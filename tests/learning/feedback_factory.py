"""A generated feedback set: closed signals whose outcome depends on their features, for the learning-loop tests."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from decimal import Decimal

from signals.models import SignalExecution, TradingSignal
from suho.tenancy import tenant_context


def feedback_generate(account, *, count: int, seed: int, now: datetime, closed: bool = True, days_ago: float = 1):
    """`count` closed signals with executions whose outcome depends on the signal's confidence and slippage:
    P(WIN) = sigmoid(4·(confidence − 0.5) − 0.4·slippage_pips). Returns the signals."""
    rng = random.Random(seed)
    signals, executions = [], []
    for index in range(count):
        confidence = rng.random()
        slippage_pips = rng.gauss(0.5, 1.0)
        win = rng.random() < 1 / (1 + math.exp(-(4 * (confidence - 0.5) - 0.4 * slippage_pips)))
        profit = Decimal(str(round(rng.uniform(5, 40), 2))) * (1 if win else -1)
        if index % 17 == 0:
            profit = Decimal("0.00")  # a breakeven now and then: not a win
        at = now - timedelta(days=days_ago, minutes=index)
        signal = TradingSignal(
            tenant_id=account.tenant_id, account=account, time=at, symbol="EURUSD",
            action="BUY" if index % 2 else "SELL", volume=Decimal("0.10"), valid_until=at + timedelta(minutes=5),
            status="closed" if closed else "executed", confidence_score=Decimal(str(round(confidence, 4))),
            model_version="seed-model", strategy_name="generated", polygon_ask=Decimal("1.09510"),
            price_deviation=Decimal("0.00020"), deviation_pips=Decimal(str(round(rng.gauss(1, 1), 2))),
            entry_price=Decimal("1.09530"),
        )  # fmt: skip
        signals.append(signal)
        executions.append(
            SignalExecution(
                tenant_id=account.tenant_id, account=account, signal=signal, time=at + timedelta(seconds=1),
                signal_entry_price=Decimal("1.09530"), actual_entry_price=Decimal("1.09540"),
                price_difference=Decimal("0.00010"), slippage_pips=Decimal(str(round(slippage_pips, 2))),
                execution_latency_ms=rng.randint(20, 300),
                spread_at_execution=Decimal(str(round(rng.uniform(5, 30), 2))),
                market_volatility=Decimal(str(round(rng.uniform(0.0001, 0.001), 6))), trade_closed=closed,
                profit=profit if closed else None,
                profit_pips=(profit / 10).quantize(Decimal("0.01")) if closed else None,
            )
        )  # fmt: skip
    with tenant_context(account.tenant_id):
        TradingSignal.objects.bulk_create(signals)
        SignalExecution.objects.bulk_create(executions)
    return signals
