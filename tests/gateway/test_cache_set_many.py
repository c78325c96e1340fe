"""`cache_set_many` writes a batch of latest values in one command per TTL (suho/cache.py, SET_MANY_EX); the
gateway's batch of latest quotes goes the same way, its JSON written by hand."""

from __future__ import annotations

import json
import uuid

import pytest

from quotes.ingest import TickRow, broker_quotes_after_commit
from suho.cache import BALANCE_TTL_S, QUOTE_TTL_S, cache_client, cache_set_many, quote_key
from suho.clock import us_to_datetime


@pytest.fixture
def keys():
    made = [f"test-set-many:{uuid.uuid4()}" for _ in range(3)]
    yield made
    cache_client().delete(*made)


def test_every_key_gets_its_own_value_and_ttl(keys):
    quote, other_quote, balance = keys
    cache_set_many(
        [(quote, QUOTE_TTL_S, {"bid": 1.1, "ask": 1.2}), (balance, BALANCE_TTL_S, {"balance": "100.50"}),
         (other_quote, QUOTE_TTL_S, [1, 2])]
    )  # fmt: skip

    client = cache_client()
    assert json.loads(client.get(quote)) == {"bid": 1.1, "ask": 1.2}
    assert json.loads(client.get(other_quote)) == [1, 2]
    assert json.loads(client.get(balance)) == {"balance": "100.50"}
    assert 0 < client.ttl(quote) <= QUOTE_TTL_S
    assert 0 < client.ttl(other_quote) <= QUOTE_TTL_S
    assert QUOTE_TTL_S < client.ttl(balance) <= BALANCE_TTL_S


def test_a_later_batch_replaces_the_value_and_renews_the_ttl(keys):
    key = keys[0]
    client = cache_client()
    client.set(key, "old", ex=1)

    cache_set_many([(key, BALANCE_TTL_S, {"v": 2})])

    assert json.loads(client.get(key)) == {"v": 2}
    assert client.ttl(key) > 1


def test_a_batch_caches_each_account_and_symbols_latest_quote_as_json_dumps_would():
    """broker_quotes_after_commit writes its JSON by hand (issue 21): the same values json.dumps would give."""
    account, other = str(uuid.uuid4()), str(uuid.uuid4())
    t = 1_764_900_000_123_456
    rows = [
        TickRow(t, "tenant", account, "EURUSD", 1.08123, 1.08141, 18, 0, True, "unknown", True),
        TickRow(t + 1, "tenant", other, "EURUSD", 1.1, 1.2, 20, 0, True, "unknown", True),
        TickRow(t + 2_000_000 - 123_456, "tenant", account, "EURUSD", 1.08125, 1.08143, 18.5, 0, True, "unknown",
                True),  # the latest of this account's EURUSD, on a whole second
        TickRow(t, "tenant", account, "US30.cash", 44_000.5, 44_001.25, 75, 0, True, "unknown", True),
    ]  # fmt: skip
    keys = [quote_key(account, "EURUSD"), quote_key(other, "EURUSD"), quote_key(account, "US30.cash")]
    try:
        broker_quotes_after_commit(rows)

        client = cache_client()
        expected = [
            {"bid": 1.08125, "ask": 1.08143, "spread": 18.5, "timestamp": us_to_datetime(rows[2].time_us).isoformat()},
            {"bid": 1.1, "ask": 1.2, "spread": 20, "timestamp": us_to_datetime(t + 1).isoformat()},
            {"bid": 44_000.5, "ask": 44_001.25, "spread": 75, "timestamp": us_to_datetime(t).isoformat()},
        ]
        assert [json.loads(client.get(key)) for key in keys] == expected
        assert [client.get(key).decode() for key in keys] == [json.dumps(value, separators=(",", ":"))
                                                             for value in expected]  # fmt: skip
        assert all(0 < client.ttl(key) <= QUOTE_TTL_S for key in keys)
    finally:
        cache_client().delete(*keys)


def test_a_batchs_cached_prices_read_back_as_the_same_doubles():
    """The cached quotes' prices are written by orjson, not repr (issue 21): whatever the digits, a reader gets the
    row's floats back; a frame's ticks share their time (formatted once) and another frame's has its own."""
    account = str(uuid.uuid4())
    t = 1_764_900_000_000_001
    prices = [(0.1 + 0.2, 1e-05, 3), (123456789.12345678, 4.5e-7, 0), (99_999_999_999.99998, 2.5, 4_294_967_295)]
    times = [t, t, t + 1_000_000]  # the first two from one frame
    rows = [TickRow(times[i], "tenant", account, f"S{i}", bid, ask, spread, 0, True, "unknown", True)
            for i, (bid, ask, spread) in enumerate(prices)]  # fmt: skip
    keys = [quote_key(account, f"S{i}") for i in range(len(prices))]
    try:
        broker_quotes_after_commit(rows)
        values = [json.loads(cache_client().get(key)) for key in keys]
    finally:
        cache_client().delete(*keys)
    assert [(v["bid"], v["ask"], v["spread"]) for v in values] == prices
    assert [v["timestamp"] for v in values] == [us_to_datetime(moment).isoformat() for moment in times]
