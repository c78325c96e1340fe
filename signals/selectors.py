"""Reads for signals: the execution feedback the ML engine retrains on (seed §7.3)."""

from __future__ import annotations

from signals.models import SignalExecution
from suho.sql import fetch_dicts

# Seed §7.3, with the window as a parameter (the seed's is 7 days).
FEEDBACK_ROWS = """
SELECT
    s.signal_id,
    s.model_version,
    s.strategy_name,
    s.confidence_score,
    s.polygon_ask,

    e.actual_entry_price,
    e.price_difference AS execution_slippage,
    e.execution_latency_ms,

    e.profit,
    e.profit_pips,

    CASE
        WHEN e.profit > 0 THEN 'WIN'
        WHEN e.profit < 0 THEN 'LOSS'
        ELSE 'BREAKEVEN'
    END AS trade_result,

    e.market_volatility,
    e.spread_at_execution

FROM mt5_trading_signals s
JOIN mt5_signal_executions e ON s.signal_id = e.signal_id
WHERE e.trade_closed = true
  AND e.feedback_status = 'pending'
  AND s.time >= NOW() - %(days)s * INTERVAL '1 day'
ORDER BY s.time DESC;
"""


def feedback_rows(*, days: int = 7) -> list[dict]:
    """Closed executions not yet used for training, newest signal first, with the seed's WIN/LOSS/BREAKEVEN label.

    Runs in the caller's tenant context, or inside `operator_path()` for the platform-wide feedback export.
    """
    return fetch_dicts(SignalExecution, FEEDBACK_ROWS, {"days": days})
