"""Writes for reference market data: a batch of reference quotes stored, the latest mid cached, published."""

from __future__ import annotations

import json
from functools import partial

from django.db import connections, transaction

from quotes.feeds import ReferenceTick
from suho.bus import get_bus, subject_token
from suho.cache import REFERENCE_QUOTE_TTL_S, cache_set_many, reference_quote_key
from suho.routers import SERVICE

# Reference quotes are market data, not tenant data: no RLS, the service role writes them (default privileges).
INSERT_REFERENCE_QUOTES = """
INSERT INTO mt5_reference_quotes (time, symbol, bid, ask, source)
SELECT time, symbol, bid, ask, %s
FROM unnest(%s::timestamptz[], %s::text[], %s::float8[], %s::float8[]) AS t(time, symbol, bid, ask)
"""


def reference_quotes_record(*, ticks: list[ReferenceTick], source: str, publish: bool = False) -> int:
    """Store a batch in one statement; after commit cache the latest quote per symbol (`reference_quote:{symbol}`)
    and, with `publish`, send every tick to `mt5.reference.quotes.{symbol}`."""
    if not ticks:
        return 0
    columns = [[t.time for t in ticks], [t.symbol for t in ticks], [t.bid for t in ticks], [t.ask for t in ticks]]
    with transaction.atomic(using=SERVICE), connections[SERVICE].cursor() as cursor:
        cursor.execute(INSERT_REFERENCE_QUOTES, [source, *columns])
        transaction.on_commit(partial(_after_commit, ticks=ticks, source=source, publish=publish), using=SERVICE)
    return len(ticks)


def _after_commit(*, ticks: list[ReferenceTick], source: str, publish: bool) -> None:
    latest: dict[str, ReferenceTick] = {}
    for tick in ticks:
        if tick.symbol not in latest or tick.time >= latest[tick.symbol].time:
            latest[tick.symbol] = tick
    cache_set_many(
        [
            (reference_quote_key(symbol), REFERENCE_QUOTE_TTL_S,
             {"bid": t.bid, "ask": t.ask, "mid": t.mid, "timestamp": t.time.isoformat(), "source": source})
            for symbol, t in latest.items()
        ]
    )  # fmt: skip
    if publish:
        get_bus().publish_many(
            [
                (f"mt5.reference.quotes.{subject_token(t.symbol)}",
                 json.dumps({"symbol": t.symbol, "bid": t.bid, "ask": t.ask, "time": t.time.isoformat(),
                             "source": source}).encode())
                for t in ticks
            ]
        )  # fmt: skip
