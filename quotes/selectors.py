"""Reads for quotes: broker-vs-reference deviation analytics (seed §6.4)."""

from __future__ import annotations

from quotes.models import BrokerQuote
from suho.sql import fetch_dicts

# Seed §6.4, with the window as a parameter (the seed's is 24 hours).
DEVIATION_BY_SYMBOL = """
SELECT
    symbol,
    AVG(price_deviation) AS avg_deviation_pips,
    STDDEV(price_deviation) AS stddev_deviation,
    MAX(ABS(price_deviation)) AS max_deviation,
    COUNT(*) AS sample_count
FROM mt5_broker_quotes
WHERE time >= NOW() - %(hours)s * INTERVAL '1 hour'
  AND polygon_mid_price IS NOT NULL
GROUP BY symbol
ORDER BY avg_deviation_pips DESC;
"""


def deviation_by_symbol(*, hours: int = 24) -> list[dict]:
    """Average, spread and worst broker deviation from the reference mid per symbol over the last `hours`.

    Despite the seed's column name, `avg_deviation_pips` is in price units (broker mid − reference mid), as the
    seed's own example result shows. Runs in the caller's tenant context (one tenant's quotes) or, inside
    `operator_path()`, over every tenant (broker comparison across the platform).
    """
    return fetch_dicts(BrokerQuote, DEVIATION_BY_SYMBOL, {"hours": hours})


def quote_latest(*, account_id, symbol: str) -> dict | None:
    """The account's latest broker quote: the cache (≤ 5 s old) or, on a miss, the newest row in the database.

    Runs in the caller's tenant context; returns {"bid", "ask", "spread", "timestamp", "source"} or None.
    """
    from suho.cache import cache_get, quote_key

    cached = cache_get(quote_key(account_id, symbol))
    if cached is not None:
        return {**cached, "source": "cache"}
    row = (
        BrokerQuote.objects.filter(account_id=account_id, symbol=symbol)
        .order_by("-time")
        .values("bid", "ask", "spread", "time")
        .first()
    )
    if row is None:
        return None
    return {"bid": float(row["bid"]), "ask": float(row["ask"]), "spread": float(row["spread"]),
            "timestamp": row["time"].isoformat(), "source": "database"}  # fmt: skip
