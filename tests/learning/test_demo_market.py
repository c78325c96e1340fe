"""`make run`'s demo market (eaclient/market.py): the demo broker quotes the reference feed's market within a
fraction of a pip, and the reference strategy's first crossover comes on the first minute bars after the turn."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from factories import make_account

from compliance.risk import PRICE_DEVIATION_LIMIT_PERCENT
from eaclient.market import HISTORY_S, SYMBOLS, DemoMarket
from quotes.ingest import REFERENCE_MAX_AGE_S
from quotes.models import ReferenceQuote
from quotes.services import reference_quotes_record
from signals.reference_strategy import reference_strategy_run
from suho.cache import QUOTE_TTL_S, cache_set_many, quote_key
from suho.supervise import DEMO_STRATEGY_INTERVAL_S, DEMO_TURN_LEAD_S


def _mid(bid_ask) -> float:
    return (bid_ask[0] + bid_ask[1]) / 2


def test_the_demo_broker_stays_well_within_the_deviation_limit_of_the_reference():
    """Every symbol, over the history and two hours after the turn, against the reference of the same instant and
    the one REFERENCE_MAX_AGE_S older (the oldest the ingest prices a tick against)."""
    market = DemoMarket(turn_at=1_800_000_000.0)
    worst = 0.0
    for symbol in SYMBOLS:
        for step in range(-HISTORY_S, 2 * 3600, 7):
            at = market.turn_at + step + 0.3
            broker = _mid(market.broker(symbol, at))
            for lag in (0, REFERENCE_MAX_AGE_S):
                reference = _mid(market.reference(symbol, at - lag))
                worst = max(worst, abs(broker - reference) / reference * 100)
    assert worst < float(PRICE_DEVIATION_LIMIT_PERCENT) / 2, worst


def test_the_market_program_piped_into_the_feed_stores_the_half_hour_before_then_live_quotes(committed, monkeypatch):
    """As `make run` runs them: `python -m eaclient.market | manage.py reference_feed --file -`."""
    turn_at = time.time() - DEMO_TURN_LEAD_S
    market = subprocess.Popen([sys.executable, "-m", "eaclient.market", "--turn-at", str(turn_at),
                               "--symbols", "EURUSD,NOTASYMBOL"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    history = HISTORY_S // 5
    try:
        monkeypatch.setattr("sys.stdin", market.stdout)
        call_command("reference_feed", "--file", "-", "--limit", str(history + 4), stdout=io.StringIO())
    finally:
        market.terminate()
        market.wait(timeout=10)
    rows = list(ReferenceQuote.objects.order_by("time").values_list("symbol", "time", "bid", "ask"))
    assert len(rows) == history + 4 and {r[0] for r in rows} == {"EURUSD"}, "an unknown symbol is left out"
    assert time.time() - rows[0][1].timestamp() >= HISTORY_S - 1, "the half hour before first"
    assert time.time() - rows[-1][1].timestamp() < 5, "then live"
    at = rows[-1][1].timestamp()
    expected = DemoMarket(turn_at=turn_at).reference("EURUSD", at)
    assert (float(rows[-1][2]), float(rows[-1][3])) == pytest.approx(expected, abs=1e-5), "the market's quote"


def test_the_strategy_signals_both_ways_within_a_minute_of_the_feed_starting(account, settings):
    settings.REFERENCE_STRATEGY_ENABLED, settings.REFERENCE_SYMBOLS = True, ["EURUSD", "XAUUSD"]
    opted_in = make_account(account.tenant, account.user, strategy_parameters={"reference_strategy": True})
    start = time.time() - 90  # runs as beat would, every DEMO_STRATEGY_INTERVAL_S from 10 s after the start
    market = DemoMarket(turn_at=start - DEMO_TURN_LEAD_S)
    history = [start - HISTORY_S + 5 * i for i in range(HISTORY_S // 5)]
    first_signal, written, run = {}, 0, start + DEMO_STRATEGY_INTERVAL_S
    while run <= start + 70 and len(first_signal) < 2:  # the market's jitter can put one symbol's cross a bar later
        moments = history + [start + i / 2 for i in range(int((run - start) * 2) + 1)]
        _reference(market, moments[written:])
        written = len(moments)
        _broker_quotes(market, opted_in, at=run)
        for signal in reference_strategy_run(now=datetime.fromtimestamp(run, UTC)):
            first_signal.setdefault(signal.symbol, signal.action)
        run += DEMO_STRATEGY_INTERVAL_S
    assert first_signal == {"EURUSD": "BUY", "XAUUSD": "SELL"}
    assert run - start <= 60 + 2 * DEMO_STRATEGY_INTERVAL_S


def _reference(market, moments) -> None:
    from quotes.feeds import ReferenceTick

    ticks = [ReferenceTick(symbol, *market.reference(symbol, at), datetime.fromtimestamp(at, UTC))
             for at in moments for symbol in ("EURUSD", "XAUUSD")]  # fmt: skip
    reference_quotes_record(ticks=ticks, source="replay")


def _broker_quotes(market, account, *, at) -> None:
    quotes = []
    for symbol in ("EURUSD", "XAUUSD"):
        bid, ask, spread = market.broker(symbol, at)
        quote = {"bid": bid, "ask": ask, "spread": spread, "timestamp": timezone.now().isoformat()}
        quotes.append((quote_key(account.account_id, symbol), QUOTE_TTL_S, quote))
    cache_set_many(quotes)
    assert Decimal(str(bid)) > 0
