"""Reads for quotes: broker-vs-reference deviation analytics (seed §6.4)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from quotes.models import BrokerQuote, ReferenceQuote
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


def quote_latest(*, account_id, symbol: str, since: datetime) -> dict | None:
    """The account's latest broker quote: the cache (≤ 5 s old) or, on a miss, the newest row since `since`.

    `since` is the oldest quote the caller can use (the intake: SIGNAL_MAX_QUOTE_AGE_S), sent as a literal, so only
    the partitions (TimescaleDB: chunks) of that window are planned: the table keeps 90 days in 30-minute chunks,
    and an unbounded read planned every one of them on each miss (an EA that stopped streaming). Runs in the
    caller's tenant context; returns {"bid", "ask", "spread", "timestamp", "source"} or None.
    """
    from suho.cache import cache_get, quote_key

    cached = cache_get(quote_key(account_id, symbol))
    if cached is not None:
        return {**cached, "source": "cache"}
    row = quote_latest_rows(account_id=account_id, symbol=symbol, since=since).first()
    if row is None:
        return None
    return {"bid": float(row["bid"]), "ask": float(row["ask"]), "spread": float(row["spread"]),
            "timestamp": row["time"].isoformat(), "source": "database"}  # fmt: skip


def quote_latest_rows(*, account_id, symbol: str, since: datetime):
    """`quote_latest`'s read on a cache miss (a lazy queryset, newest first)."""
    return (
        BrokerQuote.objects.filter(account_id=account_id, symbol=symbol, time__gte=since)
        .order_by("-time")
        .values("bid", "ask", "spread", "time")
    )


REFERENCE_LATEST = f"""
SELECT bid, ask FROM {ReferenceQuote._meta.db_table}
 WHERE symbol = ANY(%s) AND time >= %s
 ORDER BY time DESC LIMIT 1
"""


def reference_bid_ask_since(*, symbols: list[str], since: datetime) -> tuple[Decimal, Decimal] | None:
    """(bid, ask) of the reference feed's newest quote of any of `symbols` at or after `since`; None: none.

    One statement written out (no ORM): every signal POST reads it before its commit (issue 21)."""
    rows = fetch_dicts(ReferenceQuote, *reference_bid_ask_statement(symbols=symbols, since=since))
    return (rows[0]["bid"], rows[0]["ask"]) if rows else None


def reference_bid_ask_statement(*, symbols: list[str], since: datetime) -> tuple[str, list]:
    """`reference_bid_ask_since`'s SQL and parameters, for a caller that sends it with other statements in one
    round trip (suho.sql.statements_in_context); its rows: none, or one (bid, ask)."""
    return REFERENCE_LATEST, [symbols, since]


# Seed §6.4 per symbol and broker server: the quote's own broker_server, or the account's server when the EA did
# not report one (the gateway stores '').
DEVIATION_BY_SYMBOL_AND_BROKER = """
SELECT
    q.symbol,
    coalesce(nullif(q.broker_server, ''), a.server, '') AS broker_server,
    AVG(q.price_deviation) AS avg_deviation,
    STDDEV(q.price_deviation) AS stddev_deviation,
    MAX(ABS(q.price_deviation)) AS max_deviation,
    COUNT(*) AS sample_count
FROM mt5_broker_quotes q
JOIN mt5_user_accounts a ON a.account_id = q.account_id
WHERE q.time >= NOW() - %(hours)s * INTERVAL '1 hour'
  AND q.polygon_mid_price IS NOT NULL
GROUP BY 1, 2
ORDER BY q.symbol, avg_deviation DESC;
"""

# The seed's arbitrage detection (§6.4, use case 4): symbols and brokers whose quotes strayed from the reference
# by more than the threshold, with how often and how far.
DEVIATION_ANOMALIES = """
SELECT
    q.symbol,
    coalesce(nullif(q.broker_server, ''), a.server, '') AS broker_server,
    COUNT(*) AS anomaly_count,
    MAX(ABS(q.deviation_percent)) AS max_abs_deviation_percent,
    MIN(q.time) AS first_seen,
    MAX(q.time) AS last_seen
FROM mt5_broker_quotes q
JOIN mt5_user_accounts a ON a.account_id = q.account_id
WHERE q.time >= NOW() - %(hours)s * INTERVAL '1 hour'
  AND ABS(q.deviation_percent) > %(threshold_percent)s
GROUP BY 1, 2
ORDER BY max_abs_deviation_percent DESC;
"""


def deviation_by_symbol_and_broker(*, hours: int = 24) -> list[dict]:
    """Seed §6.4 per (symbol, broker server): avg, stddev and max |deviation| in price units, and the sample count.

    Tenant context as `deviation_by_symbol`; on the operator path it compares brokers across the platform.
    """
    return fetch_dicts(BrokerQuote, DEVIATION_BY_SYMBOL_AND_BROKER, {"hours": hours})


def deviation_anomalies(*, threshold_percent: float = 0.05, hours: int = 1) -> list[dict]:
    """Symbols and brokers with quotes whose |deviation_percent| exceeded `threshold_percent` (percent of the
    reference mid: 0.05 = 5 pips on EURUSD) in the last `hours`, worst first."""
    return fetch_dicts(BrokerQuote, DEVIATION_ANOMALIES, {"hours": hours, "threshold_percent": threshold_percent})


def reference_quote_latest(*, symbol: str) -> dict | None:
    """The latest reference quote of a symbol: the cache or, on a miss, the newest row ({"bid","ask","mid",...})."""
    from suho.cache import cache_get, reference_quote_key

    cached = cache_get(reference_quote_key(symbol))
    if cached is not None:
        return cached
    row = ReferenceQuote.objects.filter(symbol=symbol).order_by("-time").first()
    if row is None:
        return None
    return {"bid": float(row.bid), "ask": float(row.ask), "mid": float(row.mid), "timestamp": row.time.isoformat(),
            "source": row.source}  # fmt: skip


def reference_mids(*, symbol: str, since) -> list[tuple]:
    """(time, mid) of a symbol's reference quotes since `since`, oldest first: the reference strategy's input."""
    rows = (
        ReferenceQuote.objects.filter(symbol=symbol, time__gte=since).order_by("time").values_list("time", "bid", "ask")
    )
    return [(time, (bid + ask) / 2) for time, bid, ask in rows]
