"""`cache_set_many` writes a batch of latest values in one command per TTL (suho/cache.py, SET_MANY_EX)."""

from __future__ import annotations

import json
import uuid

import pytest

from suho.cache import BALANCE_TTL_S, QUOTE_TTL_S, cache_client, cache_set_many


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
