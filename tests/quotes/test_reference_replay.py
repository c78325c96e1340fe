"""The replay feed (seeded random walk and recordings), the batching pump and the reference store and cache."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from quotes.feeds import ReferenceTick, ReplayFeed, feed_pump, random_walk, recorded_ticks
from quotes.models import ReferenceQuote
from quotes.selectors import reference_quote_latest
from quotes.services import reference_quotes_record
from suho.cache import cache_client, reference_quote_key

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def walk(seed: int, count: int = 40) -> list[ReferenceTick]:
    return list(random_walk(symbols=["EURUSD", "USDJPY"], seed=seed, start=START, count=count))


def test_the_same_seed_plays_the_same_stream_and_another_seed_another():
    assert walk(7) == walk(7)
    assert walk(7) != walk(8)


def test_a_random_walk_has_one_tick_per_symbol_per_step_with_a_positive_spread_at_the_symbols_precision():
    ticks = walk(3, count=6)
    assert [t.symbol for t in ticks] == ["EURUSD", "USDJPY"] * 3
    assert [t.time for t in ticks[::2]] == [START + timedelta(milliseconds=250 * i) for i in range(3)]
    for tick in ticks:
        assert tick.ask > tick.bid
        assert tick.ask - tick.bid == pytest.approx(0.0001 if tick.symbol == "EURUSD" else 0.01)
        assert round(tick.bid, 5 if tick.symbol == "EURUSD" else 3) == tick.bid


def test_a_recording_replays_from_json_lines_and_csv(tmp_path):
    jsonl = tmp_path / "ticks.jsonl"
    jsonl.write_text(json.dumps({"symbol": "EURUSD", "bid": 1.0949, "ask": 1.0951, "time": 1764000000000}) + "\n")
    csv_file = tmp_path / "ticks.csv"
    csv_file.write_text("symbol,bid,ask,time\nGBPUSD,1.2649,1.2651,2026-03-02T12:00:00+00:00\n")
    assert list(recorded_ticks(jsonl)) == [
        ReferenceTick("EURUSD", 1.0949, 1.0951, datetime.fromtimestamp(1764000000, UTC))
    ]
    assert list(recorded_ticks(csv_file)) == [ReferenceTick("GBPUSD", 1.2649, 1.2651, START)]


async def test_the_pump_hands_over_full_batches_and_the_rest_at_the_end():
    batches = []

    async def sink(batch):
        batches.append(list(batch))

    total = await asyncio.wait_for(feed_pump(ReplayFeed(walk(1, count=25)), sink, batch_size=10), timeout=5)
    assert total == 25
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [t for b in batches for t in b] == walk(1, count=25)


async def test_the_pump_flushes_a_partial_batch_when_the_feed_goes_quiet():
    flushed = asyncio.Event()
    release = asyncio.Event()
    batches = []

    class QuietFeed:
        async def __aiter__(self):
            for tick in walk(2, count=3):
                yield tick
            await release.wait()  # the market goes quiet

    async def sink(batch):
        batches.append(list(batch))
        flushed.set()

    pump = asyncio.create_task(feed_pump(QuietFeed(), sink, batch_size=100, flush_interval_s=0.05))
    await asyncio.wait_for(flushed.wait(), timeout=5)
    assert [len(b) for b in batches] == [3]
    release.set()
    assert await asyncio.wait_for(pump, timeout=5) == 3


@pytest.mark.django_db
def test_a_batch_is_stored_and_the_latest_quote_per_symbol_cached(django_capture_on_commit_callbacks):
    ticks = walk(5, count=10)
    cache_client().delete(reference_quote_key("EURUSD"), reference_quote_key("USDJPY"))
    with django_capture_on_commit_callbacks(execute=True):
        assert reference_quotes_record(ticks=ticks, source="replay") == 10

    stored = ReferenceQuote.objects.values_list("symbol", "bid", "ask", "time", "source")
    assert sorted((s, float(b), float(a), t, src) for s, b, a, t, src in stored) == sorted(
        (t.symbol, t.bid, t.ask, t.time, "replay") for t in ticks
    )
    last_eurusd = [t for t in ticks if t.symbol == "EURUSD"][-1]
    cached = reference_quote_latest(symbol="EURUSD")
    assert cached == {"bid": last_eurusd.bid, "ask": last_eurusd.ask, "mid": last_eurusd.mid,
                      "timestamp": last_eurusd.time.isoformat(), "source": "replay"}  # fmt: skip


def test_the_command_replays_a_seeded_walk_into_the_table(committed):
    cache_client().delete(reference_quote_key("EURUSD"))
    call_command(
        "reference_feed", "--source", "replay", "--symbols", "EURUSD", "--limit", "12", "--fast", "--seed", "9"
    )
    assert ReferenceQuote.objects.filter(symbol="EURUSD", source="replay").count() == 12
    assert reference_quote_latest(symbol="EURUSD")["source"] == "replay", "cached after commit"


async def test_a_realtime_replay_keeps_the_recorded_gaps_and_stamps_ticks_with_the_wall_clock():
    ticks = list(random_walk(symbols=["EURUSD"], seed=4, start=START, count=3, step=timedelta(milliseconds=20)))
    before = datetime.now(UTC)
    played = [tick async for tick in ReplayFeed(ticks, realtime=True)]
    assert [(t.symbol, t.bid, t.ask) for t in played] == [(t.symbol, t.bid, t.ask) for t in ticks]
    assert before <= played[0].time
    assert played[2].time - played[0].time >= timedelta(milliseconds=40)
